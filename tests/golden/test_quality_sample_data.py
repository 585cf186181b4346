"""The quality report on the real sample files finds exactly what sample_data/README.md lists:
its gaps, zero-volume bars, the Binance halt and the two bad MSFT rows, and nothing on the clean
equity files."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import algotrendy
from algotrendy.core.market import AssetType, Bars, Timeframe
from algotrendy.services.marketdata.quality import QualityReport, Rule, assess

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"

FILES = {  # name -> (file, timeframe, asset type)
    "BTCUSDT_1h": ("BTCUSDT_1h_binance.csv.gz", "1h", AssetType.CRYPTO),
    "ETHUSDT_1h": ("ETHUSDT_1h_binance.csv.gz", "1h", AssetType.CRYPTO),
    "BTCUSDT_1m": ("BTCUSDT_1m_binance.csv.gz", "1m", AssetType.CRYPTO),
    "ETHUSDT_1m": ("ETHUSDT_1m_binance.csv.gz", "1m", AssetType.CRYPTO),
    "EURUSD_1h": ("EURUSD_1h.csv", "1h", AssetType.FX),
    "MSFT_1d": ("MSFT_1d.csv", "1d", AssetType.STOCK),
    "SPY_1d": ("SPY_1d.csv", "1d", AssetType.ETF),
    "SPX_1d": ("SPX_1d.csv", "1d", AssetType.INDEX),
    "AAPL_1d": ("AAPL_1d.csv", "1d", AssetType.STOCK),
    "GOOG_1d": ("GOOG_1d.csv", "1d", AssetType.STOCK),
}

# README, BTCUSDT_1h: last bar present -> next bar present (missing bars)
BTC_1H_GAPS = [
    ("2017-09-06T16", "2017-09-06T23", 6),
    ("2018-01-04T03", "2018-01-04T05", 1),
    ("2018-02-08T00", "2018-02-09T10", 33),
    ("2018-06-26T01", "2018-06-26T12", 10),
    ("2018-06-27T12", "2018-06-27T14", 1),
    ("2018-07-04T00", "2018-07-04T08", 7),
    ("2018-10-19T05", "2018-10-19T09", 3),
    ("2018-11-14T01", "2018-11-14T09", 7),
    ("2019-03-12T01", "2019-03-12T08", 6),
    ("2019-05-15T02", "2019-05-15T13", 10),
    ("2019-08-15T01", "2019-08-15T10", 8),
    ("2019-11-13T01", "2019-11-13T04", 2),
    ("2019-11-25T01", "2019-11-25T04", 2),
    ("2020-02-09T01", "2020-02-09T03", 1),
    ("2020-02-19T11", "2020-02-19T17", 5),
    ("2020-03-04T09", "2020-03-04T11", 1),
    ("2020-04-25T01", "2020-04-25T04", 2),
    ("2020-06-28T01", "2020-06-28T05", 3),
    ("2020-11-30T05", "2020-11-30T07", 1),
    ("2020-12-21T13", "2020-12-21T18", 4),
    ("2020-12-25T01", "2020-12-25T03", 1),
    ("2021-02-11T03", "2021-02-11T05", 1),
    ("2021-03-06T01", "2021-03-06T03", 1),
    ("2021-04-20T01", "2021-04-20T04", 2),
    ("2021-04-25T04", "2021-04-25T08", 3),
    ("2021-08-13T01", "2021-08-13T06", 4),
    ("2021-09-29T06", "2021-09-29T09", 2),
    ("2023-03-24T12", "2023-03-24T14", 1),
]
ETH_1H_GAPS = BTC_1H_GAPS[:-1]  # the same list minus 2023-03-24, after the ETH file ends


def utc(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}:00:00+00:00" if len(text) == 13 else text.replace("Z", "+00:00"))


@functools.cache
def load(name: str) -> Bars:
    frame = pd.read_csv(SAMPLES / FILES[name][0])
    ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).as_unit("ns").asi8
    cols = (frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume"))
    return Bars(ts.astype(np.int64), *cols)


@functools.cache
def report(name: str) -> QualityReport:
    _, timeframe, asset_type = FILES[name]
    return assess(load(name), timeframe=Timeframe.parse(timeframe), asset_type=asset_type)


def gaps(name: str) -> list[tuple[datetime, datetime, int]]:
    listing = report(name).gaps
    assert not listing.truncated
    return [(g.last_present, g.next_present, g.missing) for g in listing.items]


def test_btc_1h_has_the_readmes_28_gaps_and_4_zero_volume_bars() -> None:
    r = report("BTCUSDT_1h")
    assert (r.summary.expected_bars, r.summary.bars, r.summary.missing_bars) == (58_547, 58_419, 128)
    assert gaps("BTCUSDT_1h") == [(utc(a), utc(b), n) for a, b, n in BTC_1H_GAPS]
    assert all(g.elapsed_bars == g.missing for g in r.gaps.items)
    assert r.zero_volume.items == [
        utc(t) for t in ("2017-09-06T16", "2019-06-07T21", "2021-02-11T03", "2023-03-24T12")
    ]
    assert (r.violations.total, r.duplicates.total, r.off_calendar.total, r.stale_runs.total) == (0, 0, 0, 0)


def test_eth_1h_has_the_same_gaps_minus_the_last_and_5_zero_volume_bars() -> None:
    r = report("ETHUSDT_1h")
    assert (r.summary.expected_bars, r.summary.missing_bars, r.gaps.total) == (45_151, 127, 27)
    assert gaps("ETHUSDT_1h") == [(utc(a), utc(b), n) for a, b, n in ETH_1H_GAPS]
    assert r.zero_volume.items == [
        utc(t) for t in ("2017-08-19T23", "2017-09-06T16", "2017-09-09T20", "2019-06-07T21", "2021-02-11T03")
    ]
    assert (r.violations.total, r.duplicates.total, r.off_calendar.total, r.stale_runs.total) == (0, 0, 0, 0)


@pytest.mark.parametrize("name", ["BTCUSDT_1m", "ETHUSDT_1m"])
def test_1m_files_show_the_binance_halt_as_a_stale_run_then_an_80_minute_gap(name: str) -> None:
    r = report(name)
    assert (r.summary.expected_bars, r.summary.missing_bars) == (66_167, 80)
    assert gaps(name) == [(utc("2023-03-24T12:39:00Z"), utc("2023-03-24T14:00:00Z"), 80)]
    halt = (utc("2023-03-24T11:28:00Z"), utc("2023-03-24T12:39:00Z"), 72)
    assert r.zero_volume.total == 72
    assert (r.zero_volume.items[0], r.zero_volume.items[-1]) == halt[:2]
    assert [(z.start, z.end, z.bars) for z in r.zero_volume_runs.items] == [halt]
    (stale,) = r.stale_runs.items
    assert (stale.start, stale.end, stale.bars, stale.flat, stale.zero_volume) == (*halt, True, True)
    if name == "BTCUSDT_1m":
        assert stale.price == 28080.0
    assert (r.violations.total, r.duplicates.total, r.off_calendar.total) == (0, 0, 0)


def test_msft_misses_one_session_and_has_exactly_the_two_bad_rows() -> None:
    r = report("MSFT_1d")
    assert (r.summary.expected_bars, r.summary.missing_bars, r.summary.calendar) == (3_020, 1, "XNYS")
    # 2010-04-02 was Good Friday, so the session after 04-01 is 04-05
    assert gaps("MSFT_1d") == [(utc("2010-03-31T00"), utc("2010-04-05T00"), 1)]
    assert [(v.ts, v.rules, v.open, v.high, v.low, v.close) for v in r.violations.items] == [
        (utc("2007-02-28T00"), [Rule.HIGH_BELOW_OPEN_CLOSE], 27.95, 27.96, 27.92, 28.17),  # close > high
        (utc("2011-08-02T00"), [Rule.HIGH_BELOW_OPEN_CLOSE], 26.98, 26.95, 26.48, 26.64),  # open > high
    ]
    assert (r.zero_volume.total, r.duplicates.total, r.off_calendar.total, r.stale_runs.total) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("name", "sessions"), [("SPY_1d", 5_241), ("SPX_1d", 5_031), ("AAPL_1d", 3_379), ("GOOG_1d", 2_148)]
)
def test_clean_equity_files_have_every_xnys_session_and_no_bad_rows(name: str, sessions: int) -> None:
    r = report(name)
    s = r.summary
    assert s.bars == s.expected_bars == sessions
    assert (s.missing_bars, s.coverage, s.score) == (0, 1.0, 100.0)
    for listing in (r.gaps, r.violations, r.duplicates, r.zero_volume, r.stale_runs, r.off_calendar):
        assert listing.total == 0


def test_eurusd_weekends_are_closed_and_only_the_two_holiday_closures_are_gaps() -> None:
    r = report("EURUSD_1h")
    closures = [(g.last_present, g.next_present, g.elapsed_bars, g.missing) for g in r.gaps.items]
    # 72 hourly bars of wall-clock time each; 24 of them (the holiday Monday) inside the FX week
    assert closures == [
        (utc("2017-12-22T21"), utc("2017-12-25T22"), 72, 24),  # Christmas
        (utc("2017-12-29T21"), utc("2018-01-01T22"), 72, 24),  # New Year
    ]
    assert (r.summary.calendar, r.summary.missing_bars) == ("FX", 48)
    # the README's other 40 closures are weekends: the bars either side are the week's edges
    ts = load("EURUSD_1h").ts
    steps = np.diff(ts) // (3_600 * 10**9) - 1
    closed = steps[steps > 0].tolist()
    assert len(closed) == 42 and sorted(set(closed)) == [47, 48, 49, 72]
    # found beyond the README: two one-tick flat bars at Friday 17:00 New York, after the weekly close
    assert r.off_calendar.items == [utc("2017-10-06T21"), utc("2017-10-20T21")]
    assert (r.violations.total, r.duplicates.total, r.zero_volume.total, r.stale_runs.total) == (0, 0, 0, 0)


def test_reports_serialise_to_json_for_the_api() -> None:
    data = report("MSFT_1d").model_dump(mode="json")
    assert data["summary"]["first"] == "2006-01-03T00:00:00Z"
    assert data["gaps"]["items"][0]["next_present"] == "2010-04-05T00:00:00Z"
    assert data["violations"]["items"][1]["rules"] == ["high_below_open_close"]
