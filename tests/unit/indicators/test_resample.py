"""resample(): OHLCV aggregation, bucket labels, sessions (time zones, DST, FX roll), flags."""

from __future__ import annotations

from datetime import time

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.core.market import Bars, Timeframe
from algotrendy.indicators.resample import DAY_NS, SessionSpec, resample, week_start

M1, M5, M15, H1, H4, D1, W1 = (Timeframe.parse(t) for t in ("1m", "5m", "15m", "1h", "4h", "1d", "1w"))
MIN = 60 * 10**9


def ns(text: str) -> int:
    """'2024-01-01 09:30' (UTC) -> int64 ns."""
    return int(np.datetime64(text, "ns").astype(np.int64))


def bars_of(rows: list[tuple[str, float, float, float, float, float]]) -> Bars:
    cols = list(zip(*rows, strict=True))
    return Bars(
        np.array([ns(t) for t in cols[0]], dtype=np.int64), *(np.array(c, dtype=np.float64) for c in cols[1:])
    )


def minutes(start_utc: str, count: int, first_price: float = 100.0) -> Bars:
    """``count`` consecutive 1m bars from ``start_utc``; bar i: o=p+i, h=o+0.5, l=o-0.5, c=o+0.25, v=1."""
    ts = ns(start_utc) + np.arange(count, dtype=np.int64) * MIN
    o = first_price + np.arange(count, dtype=np.float64)
    return Bars(ts, o, o + 0.5, o - 0.5, o + 0.25, np.ones(count))


def concat(*parts: Bars) -> Bars:
    return Bars(
        *(
            np.concatenate([getattr(p, c) for p in parts])
            for c in ("ts", "open", "high", "low", "close", "volume")
        )
    )


def rows(b: Bars) -> list[tuple[str, float, float, float, float, float]]:
    return [
        (str(np.datetime64(int(t), "ns"))[:16], float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(b.ts, b.open, b.high, b.low, b.close, b.volume, strict=True)
    ]


# ---------------------------------------------------------------- intraday, UTC epoch buckets


def test_one_minute_to_five_minutes_hand_worked_with_gaps() -> None:
    src = bars_of(
        [
            ("2024-01-01T00:01", 10, 12, 9, 11, 1),
            ("2024-01-01T00:02", 11, 13, 10, 12, 2),
            ("2024-01-01T00:04", 12, 12.5, 8, 9, 3),  # 00:03 missing
            ("2024-01-01T00:06", 9, 10, 9, 10, 4),
            ("2024-01-01T00:12", 10, 10, 7, 8, 5),  # 00:07..00:11 missing
        ]
    )
    out = resample(src, source=M1, target=M5)
    # bucket 00:00 = {00:01, 00:02, 00:04}: open 10 (first), high max(12,13,12.5)=13,
    # low min(9,10,8)=8, close 9 (last), volume 1+2+3=6. 00:05 = {00:06}. 00:10 = {00:12}.
    # No bar for an empty bucket; labels are the bucket open times.
    assert rows(out) == [
        ("2024-01-01T00:00", 10, 13, 8, 9, 6),
        ("2024-01-01T00:05", 9, 10, 9, 10, 4),
        ("2024-01-01T00:10", 10, 10, 7, 8, 5),
    ]
    assert out.counts.tolist() == [3, 1, 1]
    # data begin at 00:01 (after 00:00) and end at 00:13 (before 00:15): both ends partial
    assert out.incomplete_first and out.incomplete_last
    assert rows(out.complete()) == [("2024-01-01T00:05", 9, 10, 9, 10, 4)]


def test_four_hour_buckets_sit_on_utc_epoch_multiples() -> None:
    src = bars_of([(f"2024-01-01T{h:02d}:00", h, h + 1, h - 1, h, 1) for h in range(2, 10)])
    out = resample(src, source=H1, target=H4)
    # 02,03 -> 00:00 ; 04..07 -> 04:00 ; 08,09 -> 08:00
    assert rows(out) == [
        ("2024-01-01T00:00", 2, 4, 1, 3, 2),
        ("2024-01-01T04:00", 4, 8, 3, 7, 4),
        ("2024-01-01T08:00", 8, 10, 7, 9, 2),
    ]
    assert out.incomplete_first and out.incomplete_last
    assert len(out.complete()) == 1


def test_bars_ending_exactly_on_a_bucket_edge_are_complete() -> None:
    out = resample(minutes("2024-01-01T00:00", 120), source=M1, target=H1)
    assert out.counts.tolist() == [60, 60]
    assert not out.incomplete_first and not out.incomplete_last
    assert len(out.complete()) == 2


def test_target_equal_to_source_keeps_the_bars() -> None:
    src = minutes("2024-01-01T00:00", 7)
    out = resample(src, source=M1, target=M1)
    assert np.array_equal(out.ts, src.ts) and np.array_equal(out.close, src.close)
    assert out.counts.tolist() == [1] * 7 and not out.incomplete_last


def test_empty_bars_give_empty_result() -> None:
    out = resample(Bars.empty(), source=M1, target=H1)
    assert len(out) == 0 and len(out.counts) == 0 and not out.incomplete_last


@pytest.mark.parametrize(
    ("source", "target", "words"),
    [
        ("1h", "15m", ["15m", "1h", "finer"]),
        ("15m", "1h", None),
        ("30m", "45m", ["45m", "30m", "multiple"]),
        ("7m", "1d", ["1d", "7m", "multiple"]),
        ("1d", "3d", ["3d"]),
        ("1d", "1h", ["1h", "1d", "finer"]),
    ],
)
def test_invalid_requests_are_refused_naming_both_timeframes(
    source: str, target: str, words: list[str] | None
) -> None:
    src = minutes("2024-01-01T00:00", 1)
    if words is None:
        resample(src, source=Timeframe.parse(source), target=Timeframe.parse(target))
        return
    with pytest.raises(ValueError) as err:
        resample(src, source=Timeframe.parse(source), target=Timeframe.parse(target))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bars_closer_than_the_source_timeframe_are_refused() -> None:
    with pytest.raises(ValueError, match="not 1h bars"):
        resample(minutes("2024-01-01T00:00", 5), source=H1, target=H4)


# ---------------------------------------------------------------- sessions and days


def test_crypto_days_are_utc_days_by_default() -> None:
    src = concat(minutes("2024-01-01T23:58", 4))  # 23:58, 23:59 | 00:00, 00:01
    out = resample(src, source=M1, target=D1)
    assert [r[0] for r in rows(out)] == ["2024-01-01T00:00", "2024-01-02T00:00"]
    assert out.counts.tolist() == [2, 2]
    assert out.incomplete_first and out.incomplete_last


def test_us_equity_minutes_make_session_days_across_dst_and_drop_extended_hours() -> None:
    # Fri 2023-03-10 is EST (09:30 New York = 14:30 UTC); DST starts Sun 03-12, so Mon 03-13
    # opens at 13:30 UTC. Each day: 60 pre-market minutes, 390 regular, 30 after-hours.
    fri = concat(
        minutes("2023-03-10T13:30", 60, 1.0),
        minutes("2023-03-10T14:30", 390, 100.0),
        minutes("2023-03-10T21:00", 30, 1000.0),
    )
    mon = concat(
        minutes("2023-03-13T12:30", 60, 1.0),
        minutes("2023-03-13T13:30", 390, 200.0),
        minutes("2023-03-13T20:00", 30, 1000.0),
    )
    out = resample(concat(fri, mon), source=M1, target=D1, session=SessionSpec.us_equity())
    # regular session only: open = first regular minute's open (100 / 200), close = last
    # regular minute's close (100+389+0.25 / 200+389+0.25), high/low from regular minutes only,
    # labelled with the session date at 00:00 UTC.
    assert rows(out) == [
        ("2023-03-10T00:00", 100, 489.5, 99.5, 489.25, 390),
        ("2023-03-13T00:00", 200, 589.5, 199.5, 589.25, 390),
    ]
    assert out.counts.tolist() == [390, 390]
    assert out.outside == 2 * (60 + 30)  # pre-market and after-hours minutes, left out
    assert not out.incomplete_first and not out.incomplete_last


def test_session_day_that_starts_on_the_previous_utc_day_is_labelled_by_local_date() -> None:
    # ASX: 10:00-16:00 Australia/Sydney. On Mon 2024-01-08 (AEDT, UTC+11) the session opens
    # at Sun 23:00 UTC and closes Mon 05:00 UTC; its date is the local date, Monday.
    asx = SessionSpec(tz="Australia/Sydney", open=time(10), close=time(16), weekdays=(0, 1, 2, 3, 4))
    src = minutes("2024-01-07T23:00", 360)
    out = resample(src, source=M1, target=D1, session=asx)
    assert [r[0] for r in rows(out)] == ["2024-01-08T00:00"]
    assert out.counts.tolist() == [360] and not out.incomplete_first and not out.incomplete_last
    utc = resample(src, source=M1, target=D1)
    assert [r[0] for r in rows(utc)] == ["2024-01-07T00:00", "2024-01-08T00:00"]


def test_fx_day_rolls_at_five_pm_new_york_in_winter_and_summer() -> None:
    def hours(start: str, n: int) -> Bars:
        ts = ns(start) + np.arange(n, dtype=np.int64) * 3600 * 10**9
        p = np.arange(n, dtype=np.float64) + 1.0
        return Bars(ts, p, p, p, p, np.ones(n))

    fx = SessionSpec.fx()
    # winter (EST): Sun 2024-01-07 22:00 UTC = 17:00 New York opens Monday's session
    winter = resample(hours("2024-01-07T22:00", 48), source=H1, target=D1, session=fx)
    assert [r[0] for r in rows(winter)] == ["2024-01-08T00:00", "2024-01-09T00:00"]
    assert winter.counts.tolist() == [24, 24] and not winter.incomplete_last
    # summer (EDT): the roll is at 21:00 UTC
    summer = resample(hours("2024-07-07T21:00", 25), source=H1, target=D1, session=fx)
    assert [r[0] for r in rows(summer)] == ["2024-07-08T00:00", "2024-07-09T00:00"]
    assert summer.counts.tolist() == [24, 1] and summer.incomplete_last
    # the FX week: Sunday evening belongs to the week of the Monday it trades for
    week = resample(hours("2024-01-07T22:00", 120), source=H1, target=W1, session=fx)
    assert [r[0] for r in rows(week)] == ["2024-01-08T00:00"]
    assert week.counts.tolist() == [120] and not week.incomplete_first and not week.incomplete_last


@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")  # inside exchange_calendars
def test_calendar_schedule_handles_holiday_and_half_day() -> None:
    sched = xc.get_calendar("XNYS").schedule.loc["2023-11-22":"2023-11-27"]
    spec = SessionSpec.from_schedule(sessions=sched.index, opens=sched.open, closes=sched.close)
    # Wed 22nd full day, Thu 23rd Thanksgiving (closed), Fri 24th closes 13:00 New York (18:00 UTC)
    src = concat(
        minutes("2023-11-22T14:30", 390),
        minutes("2023-11-24T14:30", 210, 500.0),
        minutes("2023-11-24T18:00", 30, 900.0),
    )  # after the early close: dropped
    out = resample(src, source=M1, target=D1, session=spec)
    assert [r[0] for r in rows(out)] == ["2023-11-22T00:00", "2023-11-24T00:00"]
    assert out.counts.tolist() == [390, 210]
    assert out.close[-1] == 500 + 209 + 0.25
    assert not out.incomplete_last  # the calendar knows the 24th ends at 13:00
    # local hours alone cannot know the early close: the same data look unfinished
    plain = resample(src.slice(0, 600), source=M1, target=D1, session=SessionSpec.us_equity())
    assert plain.counts.tolist() == [390, 210] and plain.incomplete_last


def test_session_anchored_intraday_buckets_start_at_the_open() -> None:
    src = minutes("2024-01-08T14:30", 390)  # Mon, 09:30-16:00 New York (EST)
    out = resample(src, source=M1, target=H1, session=SessionSpec.us_equity())
    assert [r[0][11:] for r in rows(out)] == ["14:30", "15:30", "16:30", "17:30", "18:30", "19:30", "20:30"]
    assert out.counts.tolist() == [60, 60, 60, 60, 60, 60, 30]  # the last bucket is cut at the close
    assert not out.incomplete_last
    epoch = resample(src, source=M1, target=H1)
    assert [r[0][11:] for r in rows(epoch)][:2] == ["14:00", "15:00"] and epoch.incomplete_first


def test_session_spec_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        SessionSpec(tz="Mars/Olympus")
    with pytest.raises(ValueError, match="weekdays"):
        SessionSpec(weekdays=(7,))
    with pytest.raises(ValueError, match="overlap"):
        SessionSpec.from_schedule(
            sessions=np.array([0, DAY_NS]), opens=np.array([0, 10]), closes=np.array([20, 30])
        )
    with pytest.raises(ValueError, match="00:00 UTC"):
        SessionSpec.from_schedule(sessions=np.array([5]), opens=np.array([0]), closes=np.array([20]))


# ---------------------------------------------------------------- weeks


def _days(dates: list[str]) -> Bars:
    return bars_of([(d + "T00:00", i + 1, i + 2, i, i + 1.5, 10 * (i + 1)) for i, d in enumerate(dates)])


def test_daily_to_weekly_weeks_start_monday_hand_worked() -> None:
    # Thu 01-04, Fri 01-05 | Mon 01-08, Tue 01-09, Fri 01-12 | Mon 01-15
    src = _days(["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09", "2024-01-12", "2024-01-15"])
    out = resample(src, source=D1, target=W1, session=SessionSpec.us_equity())
    # bar i: o=i+1, h=i+2, l=i, c=i+1.5, v=10(i+1)
    # week 01-01: i=0,1 -> o1 h3 l0 c2.5 v30; week 01-08: i=2,3,4 -> o3 h6 l2 c5.5 v120;
    # week 01-15: i=5 -> o6 h7 l5 c6.5 v60
    assert rows(out) == [
        ("2024-01-01T00:00", 1, 3, 0, 2.5, 30),
        ("2024-01-08T00:00", 3, 6, 2, 5.5, 120),
        ("2024-01-15T00:00", 6, 7, 5, 6.5, 60),
    ]
    # the data start on Thursday (the week's sessions start Monday) and end on Monday
    assert out.incomplete_first and out.incomplete_last


def test_a_full_monday_to_friday_week_is_complete_for_equities_but_not_for_24_7() -> None:
    src = _days(["2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12"])
    eq = resample(src, source=D1, target=W1, session=SessionSpec.us_equity())
    assert not eq.incomplete_first and not eq.incomplete_last
    crypto = resample(src, source=D1, target=W1)  # 24/7: Saturday and Sunday still to come
    assert crypto.incomplete_last


def test_week_start_is_monday() -> None:
    # 2024-01-07 is a Sunday, 2024-01-08 a Monday
    got = week_start(np.array([ns("2024-01-07T12:00"), ns("2024-01-08T00:00"), ns("2024-01-14T23:59")]))
    assert [str(np.datetime64(int(t), "ns"))[:10] for t in got] == ["2024-01-01", "2024-01-08", "2024-01-08"]


# ---------------------------------------------------------------- properties vs pandas


@settings(max_examples=60, deadline=None)
@given(
    present=st.lists(st.booleans(), min_size=1, max_size=400),
    seed=st.integers(0, 2**32 - 1),
    start_minute=st.integers(0, 2000),
    target=st.sampled_from(["5m", "15m", "1h", "4h", "1d"]),
)
def test_matches_a_pandas_groupby_reference(
    present: list[bool], seed: int, start_minute: int, target: str
) -> None:
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(present)
    if len(idx) == 0:
        return
    ts = ns("2024-02-28T22:00") + (start_minute + idx.astype(np.int64)) * MIN
    o = 100 + rng.normal(size=len(ts)).cumsum()
    c = o + rng.normal(size=len(ts))
    h = np.maximum(o, c) + rng.random(len(ts))
    lo = np.minimum(o, c) - rng.random(len(ts))
    v = rng.random(len(ts)) * 10
    tf = Timeframe.parse(target)
    out = resample(Bars(ts, o, h, lo, c, v), source=M1, target=tf)
    df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": v})
    ref = df.groupby(ts // tf.nanos * tf.nanos).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    assert np.array_equal(out.ts, ref.index.to_numpy())
    for col in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(out, col), ref[col].to_numpy())
    np.testing.assert_allclose(out.volume, ref["volume"].to_numpy(), rtol=1e-12)
    assert out.counts.sum() == len(ts)
    assert out.incomplete_first == bool(ts[0] % tf.nanos != 0)
    assert out.incomplete_last == bool((ts[-1] + MIN) % tf.nanos != 0)
