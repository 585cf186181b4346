"""Resample bars to a coarser timeframe (pure numpy, no per-bar Python loops).

Aggregation: open = first, high = max, low = min, close = last, volume = sum. A bucket
without source bars produces no bar (gaps stay gaps). NaN in a source column propagates.

Where buckets start (every output bar is labelled by its bucket's *open* time):

* intraday target, ``session=None``: UTC epoch multiples of the target (1h bars at hh:00,
  4h bars at 00/04/08/...Z), so 24/7 markets get the usual exchange-style candles.
* intraday target with a ``SessionSpec``: buckets are anchored at each session's open
  (09:30, 10:30, ... for US equities) and cut at its close; bars outside sessions are dropped.
* ``1d``: one bar per trading session, labelled with the session *date* at 00:00 UTC (the
  convention of the daily sample files). Without a session the trading day is the UTC day
  (crypto). With a ``SessionSpec`` it is the exchange's day in its own time zone, DST
  included; a session that crosses midnight (FX: 17:00 to 17:00 America/New_York) is
  labelled with the date on which it closes, so Sunday 17:00 New York opens Monday's bar.
  A source bar belongs to the session that contains its *open* time; bars in no session
  (pre/post-market, weekend prints) are left out and counted in ``Resampled.outside``.
* ``1w``: weeks start on **Monday** and are labelled Monday 00:00 UTC; a week holds the
  sessions whose date falls in Monday..Sunday (so the FX Sunday-evening open lands in the
  week it trades for).

Partial buckets are flagged, not dropped: ``resample`` returns ``Resampled`` (a ``Bars``)
with ``counts`` (source bars in each output bar) and two flags. ``incomplete_last`` is True
when the data end before the last bucket ends (the bar is still forming: do not store it as
final). ``incomplete_first`` is True when the data start after the first bucket began (for
example 1m data starting at 22:15 resampled to 1h). A bucket inside the data that lacks
source bars (a halt, a missing minute) is *not* flagged; ``counts`` shows it. For ``1w`` the
trading days of a week come from the session (weekdays or the caller's schedule), so a week
ending on a Friday holiday needs a calendar schedule to be seen as complete.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from algotrendy.core.market import F64, I64, NS_PER_SECOND, Bars, Timeframe

__all__ = ["DAY_NS", "WEEK_NS", "Resampled", "SessionSchedule", "SessionSpec", "resample", "week_start"]

DAY_NS = 86_400 * NS_PER_SECOND
WEEK_NS = 7 * DAY_NS
_MONDAY_NS = 4 * DAY_NS  # 1970-01-05, the first Monday after the epoch
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_WEEKDAYS = (0, 1, 2, 3, 4)


def week_start(ts: I64) -> I64:
    """Monday 00:00 UTC of the (UTC) week containing each timestamp."""
    out: I64 = ts - (ts - _MONDAY_NS) % WEEK_NS
    return out


def _as_ns(values: Any, name: str) -> I64:
    """int64 ns UTC from int64 ns, datetime64 of any unit, or a (tz-aware) DatetimeIndex/Series."""
    arr = np.asarray(values) if not isinstance(values, pd.Index | pd.Series) else values
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    try:
        idx = pd.DatetimeIndex(arr)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be int64 ns or datetimes: {exc}") from exc
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class SessionSchedule:
    """Trading sessions computed by the caller (e.g. from ``exchange_calendars``).

    ``sessions``: session dates at 00:00 UTC; ``opens``/``closes``: the session's open and close
    instants, UTC. All int64 ns, same length, sessions strictly increasing and not overlapping.
    Half days, holidays and DST come out exactly as the calendar has them. It must cover the
    bars: a bar after the last close (or before the first open) is in no session.
    """

    sessions: I64
    opens: I64
    closes: I64

    def __post_init__(self) -> None:
        n = len(self.sessions)
        if len(self.opens) != n or len(self.closes) != n:
            raise ValueError(
                f"schedule columns differ in length: sessions {n}, opens {len(self.opens)}, "
                f"closes {len(self.closes)}"
            )
        if n == 0:
            raise ValueError("schedule has no sessions")
        if np.any(self.sessions % DAY_NS != 0):
            raise ValueError("schedule sessions must be dates at 00:00 UTC")
        if np.any(self.closes <= self.opens):
            raise ValueError("schedule has a session whose close is not after its open")
        if np.any(np.diff(self.sessions) <= 0) or np.any(self.opens[1:] < self.closes[:-1]):
            raise ValueError("schedule sessions must be increasing and must not overlap")


@dataclass(frozen=True, slots=True, eq=False)
class SessionSpec:
    """What a trading day is, for resampling intraday bars into days (and weeks).

    Either local hours: ``tz`` (IANA name), ``open``/``close`` local times, and the
    ``weekdays`` (0 = Monday) whose sessions trade. ``close <= open`` means the session
    crosses midnight and is labelled with its closing date; ``close == 00:00`` means midnight
    at the end of the day (24:00). Holidays are not known this way (they simply have no bars).
    Or a ``schedule`` from an exchange calendar, which then overrides the local hours.
    """

    tz: str = "UTC"
    open: time = time(0, 0)
    close: time = time(0, 0)
    weekdays: tuple[int, ...] = _ALL_DAYS
    schedule: SessionSchedule | None = None

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"session tz {self.tz!r} is not an IANA time zone name") from exc
        if not self.weekdays or any(d not in _ALL_DAYS for d in self.weekdays):
            raise ValueError(f"session weekdays {self.weekdays!r} must be non-empty, each 0 (Mon)..6 (Sun)")
        for name, t in (("open", self.open), ("close", self.close)):
            if t.tzinfo is not None:
                raise ValueError(f"session {name} must be a naive local time (tz goes in 'tz')")

    @classmethod
    def utc_days(cls) -> SessionSpec:
        """24/7 markets (crypto): the trading day is the UTC calendar day, every day."""
        return cls()

    @classmethod
    def us_equity(cls) -> SessionSpec:
        """NYSE/Nasdaq regular hours: 09:30-16:00 America/New_York, Monday to Friday."""
        return cls(tz="America/New_York", open=time(9, 30), close=time(16, 0), weekdays=_WEEKDAYS)

    @classmethod
    def fx(cls) -> SessionSpec:
        """Spot FX: the day rolls at 17:00 America/New_York; Sunday's evening opens Monday."""
        return cls(tz="America/New_York", open=time(17, 0), close=time(17, 0), weekdays=_WEEKDAYS)

    @classmethod
    def from_schedule(cls, *, sessions: Any, opens: Any, closes: Any) -> SessionSpec:
        """A spec from a calendar's schedule; accepts int64 ns, datetime64 or DatetimeIndex
        (e.g. ``s = cal.schedule; from_schedule(sessions=s.index, opens=s.open, closes=s.close)``).
        """
        sched = SessionSchedule(
            _as_ns(sessions, "sessions"), _as_ns(opens, "opens"), _as_ns(closes, "closes")
        )
        return cls(schedule=sched)

    def sessions_between(self, first_ts: int, last_ts: int) -> SessionSchedule:
        """The sessions that can contain instants in [first_ts, last_ts] (a few extra at both ends)."""
        if self.schedule is not None:
            return self.schedule
        days = np.arange(first_ts // DAY_NS - 2, last_ts // DAY_NS + 3, dtype=np.int64)
        days = days[np.isin((days + 3) % 7, np.asarray(self.weekdays, dtype=np.int64))]
        open_ns = _time_ns(self.open)
        close_ns = _time_ns(self.close) or DAY_NS
        spans_midnight = int(close_ns <= open_ns)
        opens = _localize((days - spans_midnight) * DAY_NS + open_ns, self.tz)
        closes = _localize(days * DAY_NS + close_ns, self.tz)
        return SessionSchedule(days * DAY_NS, opens, closes)


def _time_ns(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * NS_PER_SECOND + t.microsecond * 1000


def _localize(local_ns: I64, tz: str) -> I64:
    """Wall-clock times in ``tz`` -> UTC ns (ambiguous: the first, DST, reading; gaps: shift forward)."""
    if tz == "UTC" or len(local_ns) == 0:
        return local_ns
    idx = pd.DatetimeIndex(local_ns.astype("datetime64[ns]"))
    aware = idx.tz_localize(tz, ambiguous=np.ones(len(idx), dtype=bool), nonexistent="shift_forward")
    return np.asarray(aware.as_unit("ns").asi8, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class Resampled(Bars):
    """Resampled bars plus how they were filled (see the module docstring).

    ``counts[i]``: source bars aggregated into bar i. ``incomplete_first``/``incomplete_last``:
    the data begin after the first bucket opened / end before the last bucket closes.
    ``outside``: source bars left out because their open time is in no session (extended
    hours, weekend prints); always 0 without a session.
    """

    counts: I64
    incomplete_first: bool = False
    incomplete_last: bool = False
    outside: int = 0

    def __post_init__(self) -> None:
        Bars.__post_init__(self)
        if len(self.counts) != len(self.ts):
            raise ValueError(f"counts has {len(self.counts)} rows, ts has {len(self.ts)}")

    def complete(self) -> Bars:
        """The bars whose bucket the data cover entirely (drops a partial first and last bar)."""
        start = 1 if self.incomplete_first else 0
        stop = len(self) - (1 if self.incomplete_last else 0)
        return self.slice(start, max(start, stop))


def _validate(bars: Bars, source: Timeframe, target: Timeframe) -> None:
    if target.seconds < source.seconds:
        raise ValueError(f"target {target} is finer than source {source}; resampling only coarsens")
    if target.seconds % source.seconds != 0:
        raise ValueError(f"target {target} is not a whole multiple of source {source}")
    if not target.intraday and target.seconds not in (86_400, 604_800):
        raise ValueError(f"target {target} is not supported: daily and longer targets must be 1d or 1w")
    if len(bars) > 1:
        gaps = np.diff(bars.ts)
        if gaps.min() < source.nanos:
            raise ValueError(
                f"bars are not {source} bars: two are {int(gaps.min()) // NS_PER_SECOND}s apart "
                f"(timestamps must be increasing and at least {source} apart)"
            )


def resample(
    bars: Bars, *, source: Timeframe, target: Timeframe, session: SessionSpec | None = None
) -> Resampled:
    """Aggregate ``bars`` (of timeframe ``source``) into ``target`` bars.

    Raises ValueError when ``target`` is finer than ``source``, not a whole multiple of it, or
    a daily+ target other than 1d/1w, and when the bars are spaced closer than ``source``.
    """
    _validate(bars, source, target)
    n = len(bars)
    if n == 0:
        return _empty()
    ts = bars.ts
    if not source.intraday:
        # daily (or weekly) source: labels are already session dates; the session only
        # tells which weekdays trade, for the weekly completeness flags.
        if target.seconds == source.seconds:
            return _from_groups(bars, ts, np.arange(n, dtype=np.int64), False, False)
        days = ts - ts % DAY_NS
        sched = (session or SessionSpec.utc_days()).sessions_between(int(ts[0]), int(ts[-1]) + WEEK_NS)
        first, last = _week_flags(days, sched)
        return _grouped(bars, week_start(days), first, last)
    if target.intraday and session is None:
        span = target.nanos
        key = ts - ts % span
        return _grouped(bars, key, bool(ts[0] > key[0]), bool(ts[-1] + source.nanos < key[-1] + span))

    spec = session or SessionSpec.utc_days()
    extra = WEEK_NS if target.seconds == 604_800 else 0
    sched = spec.sessions_between(int(ts[0]), int(ts[-1]) + extra)
    idx = np.searchsorted(sched.opens, ts, side="right") - 1
    inside = idx >= 0
    inside &= ts < sched.closes[np.maximum(idx, 0)]
    outside = n - int(np.count_nonzero(inside))
    if outside:
        bars = _take(bars, inside)
        idx = idx[inside]
        ts = bars.ts
        if len(ts) == 0:
            return _empty(outside)
    opens, closes = sched.opens[idx], sched.closes[idx]
    end_of_data = ts[-1] + source.nanos
    if target.intraday:
        span = target.nanos
        key = opens + (ts - opens) // span * span
        first = bool(ts[0] > key[0])
        last = bool(end_of_data < min(int(key[-1]) + span, int(closes[-1])))
    else:
        key = sched.sessions[idx]
        first, last = bool(ts[0] > opens[0]), bool(end_of_data < closes[-1])
        if target.seconds == 604_800:
            week_first, week_last = _week_flags(key, sched)
            key = week_start(key)
            first, last = first or week_first, last or week_last
    return _grouped(bars, key, first, last, outside)


def _week_flags(days: I64, sched: SessionSchedule) -> tuple[bool, bool]:
    """Is the first week entered after its first session / the last left before its last one?"""
    weeks = week_start(sched.sessions)
    w0, w1 = week_start(days[:1])[0], week_start(days[-1:])[0]
    i0 = int(np.searchsorted(weeks, w0, side="left"))
    i1 = int(np.searchsorted(weeks, w1, side="right")) - 1
    first = i0 < len(weeks) and weeks[i0] == w0 and bool(days[0] > sched.sessions[i0])
    last = i1 >= 0 and weeks[i1] == w1 and bool(days[-1] < sched.sessions[i1])
    return first, last


def _take(bars: Bars, mask: npt.NDArray[np.bool_]) -> Bars:
    return Bars(
        bars.ts[mask], bars.open[mask], bars.high[mask], bars.low[mask], bars.close[mask], bars.volume[mask]
    )


def _grouped(
    bars: Bars, key: I64, incomplete_first: bool, incomplete_last: bool, outside: int = 0
) -> Resampled:
    """Aggregate runs of equal (non-decreasing) ``key``; each run becomes one bar labelled ``key``."""
    starts = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=np.int64), starts.astype(np.int64)))
    return _from_groups(bars, key, starts, incomplete_first, incomplete_last, outside)


def _from_groups(
    bars: Bars, key: I64, starts: I64, incomplete_first: bool, incomplete_last: bool, outside: int = 0
) -> Resampled:
    n = len(bars)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1] = n
    high: F64 = np.maximum.reduceat(bars.high, starts)
    low: F64 = np.minimum.reduceat(bars.low, starts)
    volume: F64 = np.add.reduceat(bars.volume, starts)
    return Resampled(
        key[starts].astype(np.int64, copy=False),
        bars.open[starts],
        high,
        low,
        bars.close[ends - 1],
        volume,
        counts=ends - starts,
        incomplete_first=incomplete_first,
        incomplete_last=incomplete_last,
        outside=outside,
    )


def _empty(outside: int = 0) -> Resampled:
    e = Bars.empty()
    return Resampled(
        e.ts, e.open, e.high, e.low, e.close, e.volume, counts=np.empty(0, dtype=np.int64), outside=outside
    )
