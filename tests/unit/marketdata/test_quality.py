"""Data-quality detectors on small hand-built series: gaps against each calendar, duplicates,
OHLC rules, zero volume, stale runs, robust-z outliers, caps, score and edge cases."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from algotrendy.core.market import AssetType, Bars, Timeframe
from algotrendy.services.marketdata.quality import SCORE_FORMULA, Rule, assess

H = 3_600 * 10**9
M1, M30, H1, D1 = (Timeframe.parse(t) for t in ("1m", "30m", "1h", "1d"))
CRYPTO, STOCK, FX = AssetType.CRYPTO, AssetType.STOCK, AssetType.FX


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * 10**9


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make(ts: Sequence[int], rows: Sequence[tuple[float, float, float, float, float]] | None = None) -> Bars:
    """Bars at ``ts``; by default a gently rising, well-formed series with volume 10."""
    if rows is None:
        rows = [(100 + i, 101 + i, 99 + i, 100.5 + i, 10.0) for i in range(len(ts))]
    cols = np.array(rows, dtype=np.float64).reshape(len(ts), 5).T
    return Bars(np.array(ts, dtype=np.int64), cols[0], cols[1], cols[2], cols[3], cols[4])


def hourly(start: str, n: int) -> list[int]:
    return [ns(start) + i * H for i in range(n)]


def with_closes(closes: Sequence[float], start: str = "2024-01-01T00:00:00Z") -> Bars:
    ts = hourly(start, len(closes))
    return make(ts, [(c, c * 1.001, c * 0.999, c, 5.0) for c in closes])


# ---- gaps, duplicates, ordering -----------------------------------------------------------------


def test_complete_crypto_series_is_clean_and_scores_100() -> None:
    report = assess(make(hourly("2024-01-01T00:00:00Z", 48)), timeframe=H1, asset_type=CRYPTO)
    s = report.summary
    assert (s.bars, s.expected_bars, s.missing_bars, s.coverage, s.score) == (48, 48, 0, 1.0, 100.0)
    assert (s.first, s.last, s.calendar) == (dt("2024-01-01T00:00Z"), dt("2024-01-02T23:00Z"), "24/7")
    found = (report.gaps, report.duplicates, report.violations, report.zero_volume, report.stale_runs)
    for listing in (*found, report.outliers, report.off_calendar):
        assert listing.total == 0 and listing.items == []


def test_missing_hours_are_one_gap_from_last_present_to_next_present() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 10)
    del ts[4:7]  # 04:00, 05:00, 06:00 absent
    report = assess(make(ts), timeframe=H1, asset_type=CRYPTO)
    (gap,) = report.gaps.items
    assert (gap.last_present, gap.next_present) == (dt("2024-01-01T03:00Z"), dt("2024-01-01T07:00Z"))
    assert (gap.missing, gap.elapsed_bars) == (3, 3)
    assert (report.summary.expected_bars, report.summary.missing_bars) == (10, 3)
    assert report.summary.coverage == pytest.approx(0.7)


def test_duplicate_timestamps_are_reported_with_whether_the_copies_disagree() -> None:
    t = hourly("2024-01-01T00:00:00Z", 4)
    a, b, c, c2, d = (1, 2, 1, 2, 5), (2, 3, 2, 3, 5), (3, 4, 3, 4, 5), (3, 4, 3, 3.5, 5), (4, 5, 4, 5, 5)
    rows = [a, b, b, c, c2, c, d]
    report = assess(make([t[0], t[1], t[1], t[2], t[2], t[2], t[3]], rows), timeframe=H1, asset_type=CRYPTO)
    assert [(d.ts, d.rows, d.conflicting) for d in report.duplicates.items] == [
        (dt("2024-01-01T01:00Z"), 2, False),
        (dt("2024-01-01T02:00Z"), 3, True),
    ]
    assert report.summary.duplicate_rows == 3 and report.gaps.total == 0
    assert report.summary.missing_bars == 0 and report.summary.defective_bars == 3


def test_unsorted_input_is_refused() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 3)
    with pytest.raises(ValueError, match="not in time order"):
        assess(make([ts[0], ts[2], ts[1]]), timeframe=H1, asset_type=CRYPTO)


def test_empty_series_gives_an_empty_report() -> None:
    report = assess(Bars.empty(), timeframe=H1, asset_type=STOCK)
    s = report.summary
    assert s.bars == s.expected_bars == s.missing_bars == 0
    assert (s.first, s.last, s.coverage, s.score) == (None, None, 0.0, 0.0)
    assert report.gaps.total == report.outliers.total == report.stale_runs.total == 0


def test_single_bar_is_complete_and_has_no_returns() -> None:
    report = assess(make([ns("2024-07-01T00:00:00Z")]), timeframe=D1, asset_type=STOCK)
    s = report.summary
    assert (s.expected_bars, s.missing_bars, s.coverage, s.score) == (1, 0, 1.0, 100.0)
    assert report.outliers.total == 0 and report.gaps.total == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outlier_z": 0.0}, "outlier_z"),
        ({"stale_min_run": 1}, "stale_min_run"),
        ({"max_items": -1}, "max_items"),
        ({"calendar": "NOPE"}, "unknown calendar"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assess(make(hourly("2024-01-01T00:00:00Z", 3)), timeframe=H1, asset_type=CRYPTO, **kwargs)  # type: ignore[arg-type]


# ---- OHLC rules, zero volume, stale runs ---------------------------------------------------------


def test_each_ohlc_rule_is_named_on_the_bar_that_breaks_it() -> None:
    rows = [
        (10, 11, 9, 10.5, 1),  # fine
        (10, 10.2, 9, 10.5, 1),  # close above high
        (10, 11, 10.2, 10.5, 1),  # low above open
        (10, 9, 11, 10, 1),  # high below low (and both open/close rules)
        (0, 11, 0, 10, 1),  # non-positive price
        (10, math.nan, 9, 10, 1),  # NaN
        (10, 11, 9, 10, -5),  # negative volume
    ]
    report = assess(make(hourly("2024-01-01T00:00:00Z", len(rows)), rows), timeframe=H1, asset_type=CRYPTO)
    got = [(v.ts.hour, v.rules) for v in report.violations.items]
    assert got == [
        (1, [Rule.HIGH_BELOW_OPEN_CLOSE]),
        (2, [Rule.LOW_ABOVE_OPEN_CLOSE]),
        (3, [Rule.HIGH_BELOW_OPEN_CLOSE, Rule.LOW_ABOVE_OPEN_CLOSE, Rule.HIGH_BELOW_LOW]),
        (4, [Rule.NON_POSITIVE_PRICE]),
        (5, [Rule.NON_FINITE]),
        (6, [Rule.NEGATIVE_VOLUME]),
    ]
    first = report.violations.items[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (10, 10.2, 9, 10.5, 1)
    assert json.loads(report.model_dump_json())["violations"]["items"][4]["high"] is None  # NaN -> null


def test_zero_volume_bars_and_their_runs() -> None:
    volumes = [5, 0, 0, 5, 0, 5, 0, 0, 0]
    rows = [(100 + i, 101 + i, 99 + i, 100 + i, v) for i, v in enumerate(volumes)]
    report = assess(make(hourly("2024-01-01T00:00:00Z", len(rows)), rows), timeframe=H1, asset_type=CRYPTO)
    assert [t.hour for t in report.zero_volume.items] == [1, 2, 4, 6, 7, 8]
    runs = [(r.start.hour, r.end.hour, r.bars) for r in report.zero_volume_runs.items]
    assert runs == [(1, 2, 2), (4, 4, 1), (6, 8, 3)]
    assert report.stale_runs.total == 0  # prices move, so no run is stale


def test_flat_identical_bars_form_a_stale_run_once_long_enough() -> None:
    rows = [(100, 101, 99, 100, 5)] + [(100, 100, 100, 100, 0)] * 4 + [(100, 101, 99, 100.5, 5)]
    rows += [(101, 101, 101, 101, 3)] * 2 + [(102, 103, 101, 102, 5)]  # two flat bars: below the minimum
    report = assess(make(hourly("2024-01-01T00:00:00Z", len(rows)), rows), timeframe=H1, asset_type=CRYPTO)
    (run,) = report.stale_runs.items
    assert (run.start.hour, run.end.hour, run.bars, run.price) == (1, 4, 4, 100.0)
    assert run.flat and run.zero_volume
    bars = make(hourly("2024-01-01T00:00:00Z", len(rows)), rows)
    loose = assess(bars, timeframe=H1, asset_type=CRYPTO, stale_min_run=2)
    got = [(r.start.hour, r.bars, r.zero_volume) for r in loose.stale_runs.items]
    assert got == [(1, 4, True), (6, 2, False)]


def test_repeated_bars_with_range_and_volume_are_a_quiet_market_not_stale() -> None:
    rows = [(100, 100.01, 100, 100.01, 2.5)] * 5
    report = assess(make(hourly("2024-01-01T00:00:00Z", 5), rows), timeframe=H1, asset_type=CRYPTO)
    assert report.stale_runs.total == 0


def test_repeated_bars_without_volume_are_stale_even_when_not_flat() -> None:
    rows = [(100, 101, 99, 100, 5)] + [(100, 101, 99, 100.5, 0)] * 3
    report = assess(make(hourly("2024-01-01T00:00:00Z", 4), rows), timeframe=H1, asset_type=CRYPTO)
    (run,) = report.stale_runs.items
    assert (run.start.hour, run.bars, run.flat, run.zero_volume) == (1, 3, False, True)


# ---- outliers --------------------------------------------------------------------------------------


def test_outlier_is_the_return_far_from_the_median_in_robust_sigmas() -> None:
    returns = [0.001, -0.001] * 10 + [0.05]
    closes = list(100 * np.exp(np.cumsum([0.0, *returns])))
    report = assess(with_closes(closes), timeframe=H1, asset_type=CRYPTO)
    # median 0.001; |r - median| has median 0.002, so sigma = 1.4826 * 0.002
    (out,) = report.outliers.items
    assert out.ts == dt("2024-01-01T21:00Z")
    assert out.log_return == pytest.approx(0.05)
    assert out.z == pytest.approx((0.05 - 0.001) / (1.4826 * 0.002))
    assert assess(with_closes(closes), timeframe=H1, asset_type=CRYPTO, outlier_z=20).outliers.total == 0


def test_negative_outliers_are_found_too() -> None:
    returns = [0.001, -0.001] * 10 + [-0.05, 0.001]
    closes = list(100 * np.exp(np.cumsum([0.0, *returns])))
    (out,) = assess(with_closes(closes), timeframe=H1, asset_type=CRYPTO).outliers.items
    assert out.z < -8 and out.log_return == pytest.approx(-0.05)


def test_when_most_returns_are_equal_the_scale_falls_back_to_mean_deviation() -> None:
    closes = [100.0] * 21 + [101.0]  # 20 zero returns and one jump: MAD is 0
    (out,) = assess(with_closes(closes), timeframe=H1, asset_type=CRYPTO).outliers.items
    jump = math.log(1.01)
    assert out.z == pytest.approx(jump / (1.2533 * jump / 21))
    assert assess(with_closes([100.0] * 30), timeframe=H1, asset_type=CRYPTO).outliers.total == 0


def test_too_few_returns_give_no_outliers() -> None:
    assert assess(with_closes([100, 100, 200, 100]), timeframe=H1, asset_type=CRYPTO).outliers.total == 0


# ---- caps, score, serialisation ------------------------------------------------------------------


def test_lists_are_capped_but_totals_count_everything() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 40)[::2]  # every other hour: 19 one-bar gaps
    report = assess(make(ts), timeframe=H1, asset_type=CRYPTO, max_items=5)
    assert (report.gaps.total, len(report.gaps.items), report.gaps.truncated) == (19, 5, True)
    assert report.gaps.items[0].last_present == dt("2024-01-01T00:00Z")
    assert report.summary.missing_bars == 19


def test_score_is_coverage_times_the_share_of_sound_bars() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 10)
    del ts[5]  # one missing of 10 expected
    rows = [(100, 101, 99, 100, 5)] * 9
    rows[2] = (100, 99, 98, 100, 5)  # one OHLC violation
    rows[7] = (100, 101, 99, 100, 0)  # one zero-volume bar
    report = assess(make(ts, rows), timeframe=H1, asset_type=CRYPTO)
    assert report.summary.defective_bars == 2
    assert report.summary.score == round(100 * 0.9 * (1 - 2 / 9), 2)
    assert report.summary.score_formula == SCORE_FORMULA
    index = assess(make(ts, rows), timeframe=H1, asset_type=AssetType.INDEX, calendar="24/7")
    assert index.summary.defective_bars == 1  # index volume is not traded: zero volume is not scored


def test_json_has_iso_utc_timestamps_with_z() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 5)
    del ts[2]
    data = json.loads(assess(make(ts), timeframe=H1, asset_type=CRYPTO).model_dump_json())
    assert data["summary"]["first"] == "2024-01-01T00:00:00Z"
    assert data["gaps"]["items"] == [
        {
            "last_present": "2024-01-01T01:00:00Z",
            "next_present": "2024-01-01T03:00:00Z",
            "missing": 1,
            "elapsed_bars": 1,
        }
    ]


# ---- calendars -------------------------------------------------------------------------------------


def test_daily_stock_bars_expect_xnys_sessions_only() -> None:
    days = ["2024-06-28", "2024-06-29", "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-08", "2024-07-09"]
    report = assess(make([ns(f"{d}T00:00:00Z") for d in days]), timeframe=D1, asset_type=STOCK)
    # 06-29 is a Saturday; 07-04 is Independence Day and 07-05 a missing session
    (gap,) = report.gaps.items
    assert (gap.last_present, gap.next_present) == (dt("2024-07-03T00:00Z"), dt("2024-07-08T00:00Z"))
    assert (gap.missing, gap.elapsed_bars) == (1, 4)
    assert report.off_calendar.items == [dt("2024-06-29T00:00Z")]
    s = report.summary
    assert (s.expected_bars, s.missing_bars, s.calendar) == (7, 1, "XNYS")


def test_intraday_stock_bars_run_from_open_to_close_with_early_closes() -> None:
    # 2024-07-03 closes at 13:00 New York (17:00Z); 07-04 is a holiday
    day = [ns("2024-07-02T13:30:00Z") + i * H // 2 for i in range(13)]
    early = [ns("2024-07-03T13:30:00Z") + i * H // 2 for i in range(7)]
    friday = [ns("2024-07-05T13:30:00Z") + i * H // 2 for i in range(13)]
    report = assess(make(day + early + friday), timeframe=M30, asset_type=STOCK)
    assert (report.summary.expected_bars, report.summary.missing_bars, report.gaps.total) == (33, 0, 0)
    assert report.off_calendar.total == 0
    late = assess(make([*day, ns("2024-07-02T20:00:00Z"), *early]), timeframe=M30, asset_type=STOCK)
    assert late.off_calendar.items == [dt("2024-07-02T20:00Z")]  # after the close


def test_hourly_stock_bars_may_be_clock_aligned_or_session_aligned() -> None:
    for first in ("13:00", "13:30"):
        ts = [ns(f"2024-07-0{d}T{first}:00Z") + i * H for d in (1, 2) for i in range(7)]
        report = assess(make(ts), timeframe=H1, asset_type=STOCK)
        assert (report.summary.expected_bars, report.gaps.total, report.off_calendar.total) == (14, 0, 0)


def test_lunch_breaks_are_not_expected() -> None:
    # Hong Kong: 09:30-12:00 and 13:00-16:00 local = 01:30-04:00Z and 05:00-08:00Z
    ts = [ns(f"2024-01-02T{t}:00Z") for t in ("01:30", "02:30", "03:30", "05:00", "06:00", "07:00")]
    report = assess(make(ts), timeframe=H1, asset_type=STOCK, calendar="XHKG")
    assert (report.summary.expected_bars, report.gaps.total, report.off_calendar.total) == (6, 0, 0)
    clock = [ns(f"2024-01-02T0{h}:00:00Z") for h in (1, 2, 3, 5, 6, 7)]
    report = assess(make(clock), timeframe=H1, asset_type=STOCK, calendar="XHKG")
    assert (report.summary.expected_bars, report.gaps.total, report.off_calendar.total) == (6, 0, 0)


def fx_hours(first: str, last: str) -> list[int]:
    """Every hour of the FX week (Sunday 17:00 to Friday 17:00 New York) in [first, last]."""
    ny, out = ZoneInfo("America/New_York"), []
    t, end = dt(first), dt(last)
    while t <= end:
        local = t.astimezone(ny)
        wd, hour = local.weekday(), local.hour
        if wd in (0, 1, 2, 3) or (wd == 6 and hour >= 17) or (wd == 4 and hour < 17):
            out.append(int(t.timestamp()) * 10**9)
        t += timedelta(hours=1)
    return out


def test_fx_weekends_are_closed_but_a_weekday_closure_is_a_gap() -> None:
    ts = fx_hours("2024-06-17T00:00:00Z", "2024-06-28T20:00:00Z")
    monday = (ns("2024-06-23T21:00:00Z"), ns("2024-06-24T20:00:00Z"))  # Sun 17:00 -> Mon 17:00 New York
    ts = [t for t in ts if not monday[0] <= t <= monday[1]]
    report = assess(make(ts), timeframe=H1, asset_type=FX)
    (gap,) = report.gaps.items
    assert (gap.last_present, gap.next_present) == (dt("2024-06-21T20:00Z"), dt("2024-06-24T21:00Z"))
    assert (gap.missing, gap.elapsed_bars) == (24, 72)
    assert (report.summary.missing_bars, report.off_calendar.total, report.summary.calendar) == (24, 0, "FX")


def test_fx_week_follows_new_york_daylight_saving_time() -> None:
    # US clocks went back on 2017-11-05: Friday closes 21:00Z, Sunday opens 22:00Z
    ts = fx_hours("2017-11-03T18:00:00Z", "2017-11-06T01:00:00Z")
    assert ts[2:4] == [ns("2017-11-03T20:00:00Z"), ns("2017-11-05T22:00:00Z")]
    assert assess(make(ts), timeframe=H1, asset_type=FX).gaps.total == 0
    extra = sorted([*ts, ns("2017-11-03T21:00:00Z"), ns("2017-11-05T21:00:00Z")])
    report = assess(make(extra), timeframe=H1, asset_type=FX)
    assert report.off_calendar.items == [dt("2017-11-03T21:00Z"), dt("2017-11-05T21:00Z")]
    # and forward on 2018-03-11: Friday closes 22:00Z, Sunday opens 21:00Z
    spring = fx_hours("2018-03-09T19:00:00Z", "2018-03-11T23:00:00Z")
    assert spring[2:4] == [ns("2018-03-09T21:00:00Z"), ns("2018-03-11T21:00:00Z")]
    assert assess(make(spring), timeframe=H1, asset_type=FX).summary.missing_bars == 0


def test_daily_fx_bars_are_expected_on_weekdays() -> None:
    days = ["2024-06-14", "2024-06-17", "2024-06-19", "2024-06-22"]  # Fri, Mon, Wed, Sat
    report = assess(make([ns(f"{d}T00:00:00Z") for d in days]), timeframe=D1, asset_type=FX)
    assert [(g.last_present.day, g.missing) for g in report.gaps.items] == [(17, 1), (19, 2)]
    assert report.off_calendar.items == [dt("2024-06-22T00:00Z")]


def test_crypto_daily_and_minute_bars_expect_every_step() -> None:
    days = [ns("2024-01-01T00:00:00Z") + i * 24 * H for i in (0, 1, 2, 5, 6)]
    assert assess(make(days), timeframe=D1, asset_type=CRYPTO).summary.missing_bars == 2
    minutes = [ns("2024-01-01T00:00:00Z") + i * 60 * 10**9 for i in (0, 1, 2, 3, 9)]
    (gap,) = assess(make(minutes), timeframe=M1, asset_type=CRYPTO).gaps.items
    assert (gap.missing, gap.next_present) == (5, dt("2024-01-01T00:09Z"))


def test_bars_off_the_timeframe_grid_are_off_calendar() -> None:
    ts = hourly("2024-01-01T00:00:00Z", 4)
    ts.insert(2, ts[1] + H // 2)
    report = assess(make(ts), timeframe=H1, asset_type=CRYPTO)
    assert report.off_calendar.items == [dt("2024-01-01T01:30Z")] and report.gaps.total == 0


def test_chart_style_names_in_the_api_match_the_registry() -> None:
    from typing import get_args

    from algotrendy.indicators.charts import CHART_STYLES
    from algotrendy.services.marketdata.interface import ChartStyleName

    assert list(get_args(ChartStyleName)) == list(CHART_STYLES)
