"""resample() on the real sample data against the venue's own bars and a pandas reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algotrendy.core.market import Bars, Timeframe
from algotrendy.indicators.resample import SessionSpec, resample

DATA = Path(__file__).resolve().parents[2] / "src" / "algotrendy" / "sample_data"
M1, H1, D1, W1 = (Timeframe.parse(t) for t in ("1m", "1h", "1d", "1w"))


def load(name: str) -> Bars:
    df = pd.read_csv(DATA / name)
    ts = np.asarray(pd.DatetimeIndex(df["timestamp"]).as_unit("ns").asi8, dtype=np.int64)
    return Bars(ts, *(df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")))


def test_btc_minutes_resampled_to_hours_equal_binance_hours_on_every_full_hour() -> None:
    minutes, hours = load("BTCUSDT_1m_binance.csv.gz"), load("BTCUSDT_1h_binance.csv.gz")
    out = resample(minutes, source=M1, target=H1)
    # the 1m download starts at 22:15, so the first hour is partial and flagged; it ends at 21:01
    assert out.incomplete_first and out.incomplete_last
    assert pd.Timestamp(int(out.ts[0]), tz="UTC") == pd.Timestamp("2023-03-16T22:00Z")
    full = out.counts == 60
    common, i_out, i_ref = np.intersect1d(out.ts[full], hours.ts, return_indices=True)
    assert len(common) == full.sum() == 1100  # the README's "all 1,100 full hours"
    got = out.slice(0, len(out))
    sel = np.flatnonzero(full)[i_out]
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(got, col)[sel], getattr(hours, col)[i_ref]), col
    np.testing.assert_allclose(got.volume[sel], hours.volume[i_ref], rtol=1e-9, atol=0)
    # the partial hours (first, halt of 2023-03-24 12:00, last) are exactly the flagged or short ones
    assert out.counts[~full].tolist() == [45, 40, 2]


def test_spy_daily_to_weekly_matches_pandas_weeks_starting_monday() -> None:
    daily = load("SPY_1d.csv")
    out = resample(daily, source=D1, target=W1, session=SessionSpec.us_equity())
    df = pd.DataFrame(
        {c: getattr(daily, c) for c in ("open", "high", "low", "close", "volume")},
        index=pd.to_datetime(daily.ts, utc=True),
    )
    ref = (
        df.resample("W-MON", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
    )
    assert len(out) == len(ref) > 1000
    assert np.array_equal(out.ts, pd.DatetimeIndex(ref.index).as_unit("ns").asi8)
    assert (pd.to_datetime(out.ts).day_of_week == 0).all()
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(out, col), ref[col].to_numpy()), col
    np.testing.assert_allclose(out.volume, ref["volume"].to_numpy(), rtol=1e-12)
    # 1999-11-01 is a Monday and 2020-08-28 a Friday: both end weeks are whole
    assert not out.incomplete_first and not out.incomplete_last


def test_eurusd_hours_make_fx_days_that_roll_at_five_pm_new_york() -> None:
    hours = load("EURUSD_1h.csv")
    out = resample(hours, source=H1, target=D1, session=SessionSpec.fx())
    inner = out.counts[1:-1]
    # no hour is missing inside a trading week, so every day between the ends has 24 hours,
    # whether New York is on EST (roll 22:00 UTC) or EDT (roll 21:00 UTC)
    assert (inner == 24).all()
    # two prints at Friday 17:00 New York (2017-10-06 and 10-20, 21:00 UTC) fall after the
    # week's close, in no session: they are left out and counted
    assert out.outside == 2 and out.counts.sum() == len(hours) - 2
    assert set(pd.to_datetime(out.ts).day_of_week) == {0, 1, 2, 3, 4}
    # reference: the FX trade date of an hour is the New York date of (its open time + 7 h)
    local = pd.to_datetime(hours.ts, utc=True).tz_convert("America/New_York")
    trade_date = (local + pd.Timedelta(hours=7)).tz_localize(None).normalize()
    df = pd.DataFrame({c: getattr(hours, c) for c in ("open", "high", "low", "close", "volume")})
    ref = df.groupby(trade_date.as_unit("ns").asi8).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    ref = ref[pd.to_datetime(ref.index).day_of_week < 5]  # the two stray prints dated Saturday
    assert np.array_equal(out.ts, ref.index.to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(out, col), ref[col].to_numpy()), col
    assert out.incomplete_first and out.incomplete_last


@pytest.mark.parametrize("target", ["5m", "15m", "1h", "4h", "1d"])
def test_eth_minutes_volume_and_extremes_are_conserved(target: str) -> None:
    minutes = load("ETHUSDT_1m_binance.csv.gz")
    out = resample(minutes, source=M1, target=Timeframe.parse(target))
    assert out.counts.sum() == len(minutes)
    assert out.volume.sum() == pytest.approx(minutes.volume.sum(), rel=1e-12)
    assert out.high.max() == minutes.high.max() and out.low.min() == minutes.low.min()
    assert out.open[0] == minutes.open[0] and out.close[-1] == minutes.close[-1]
