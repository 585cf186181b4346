"""Which bar timestamps a market *should* have: the expected-bar schedules behind ``quality.assess``.

Calendars (the ``calendar`` argument; ``None`` picks the asset type's default):

* ``"24/7"`` (crypto default): every bar of the timeframe, on a grid anchored at the first bar.
* ``"FX"`` (fx default): the FX week, open from Sunday 17:00 to Friday 17:00 America/New_York
  (daylight-saving aware). Daily FX bars are expected Monday..Friday. Holidays are not known, so
  a weekday closure (Christmas, New Year) is a gap, while a weekend is not.
* any exchange_calendars name (``"XNYS"`` for stock/etf/index, ``"CMES"`` for futures, or e.g.
  ``"XLON"``): daily bars are expected on the session labels (the session date at 00:00 UTC);
  intraday bars are expected from each session's open up to its close, minus any lunch break.

Timeframes longer than one day use the plain grid anchored at the first bar on every calendar.
All timestamps are int64 nanoseconds since the epoch (UTC), labelled by the bar's open time.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import exchange_calendars as xc
import numpy as np
import numpy.typing as npt
import pandas as pd

from algotrendy.core.market import I64, AssetType, Timeframe

CONTINUOUS: Final = "24/7"
FX: Final = "FX"
_NEW_YORK: Final = "America/New_York"
_DEFAULTS: Final = {
    AssetType.CRYPTO: CONTINUOUS,
    AssetType.FX: FX,
    AssetType.STOCK: "XNYS",
    AssetType.ETF: "XNYS",
    AssetType.INDEX: "XNYS",
    AssetType.FUTURES: "CMES",
}


def resolve(asset_type: AssetType, calendar: str | None) -> str:
    """The calendar name to use: the given one, or the asset type's default."""
    name = calendar.strip() if calendar is not None else _DEFAULTS[asset_type]
    if name.upper() == FX:
        return FX
    if name in (CONTINUOUS, FX):
        return name
    if name not in xc.get_calendar_names():
        hint = "use '24/7', 'FX' or an exchange_calendars name such as 'XNYS'"
        raise ValueError(f"unknown calendar {name!r}; {hint}")
    return name


def expected(first: int, last: int, *, timeframe: Timeframe, calendar: str, present: I64) -> I64:
    """Sorted unique open times of every bar expected in ``[first, last]`` (both inclusive).

    ``present`` (the unique bar timestamps) only chooses the grid alignment of intraday bars on a
    session calendar: anchored at the session open (09:30, 10:30, ...) or at whole multiples of
    the timeframe since the epoch (09:00, 10:00, ...), whichever matches more of the bars.
    """
    step = timeframe.nanos
    if last < first:
        return np.empty(0, dtype=np.int64)
    if calendar == CONTINUOUS or timeframe.seconds > 86_400:
        # integer arithmetic: np.arange(first, last + 1, step) sizes itself in float64 and can be
        # one bar short at nanosecond magnitudes
        return first + np.arange((last - first) // step + 1, dtype=np.int64) * step
    if timeframe.seconds == 86_400:
        labels = _weekdays(first, last) if calendar == FX else _sessions(calendar, first, last)
        return _clip(labels, first, last)
    starts, ends = _fx_weeks(first, last) if calendar == FX else _session_segments(calendar, first, last)
    by_open = _clip(_grid(starts, ends, step, starts), first, last)
    if not np.any(starts % step):
        return by_open
    by_clock = _clip(_grid(starts, ends, step, starts - starts % step), first, last)
    hits_open = np.count_nonzero(member(present, by_open))
    hits_clock = np.count_nonzero(member(present, by_clock))
    return by_clock if hits_clock > hits_open else by_open


def member(values: I64, sorted_set: I64) -> npt.NDArray[np.bool_]:
    """``np.isin(values, sorted_set)`` for a sorted ``sorted_set``, by binary search (no hashing)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    found: npt.NDArray[np.bool_] = sorted_set[at] == values
    return found


def _grid(starts: I64, ends: I64, step: int, anchors: I64) -> I64:
    """Every ``anchor + k*step`` below ``end``, for each segment, as one sorted unique array.

    Segments come sorted and disjoint, so the result is already sorted; with clock-aligned
    anchors two segments can share the bar that straddles a break, hence the dedupe."""
    counts = np.maximum(0, -((anchors - ends) // step))  # ceil((end - anchor) / step)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.repeat(anchors, counts) + offsets * step
    if np.any(out[1:] < out[:-1]):  # not expected from any calendar; stay correct anyway
        return np.unique(out).astype(np.int64, copy=False)
    deduped: I64 = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return deduped


def _clip(ts: I64, first: int, last: int) -> I64:
    lo = int(np.searchsorted(ts, first, side="left"))
    hi = int(np.searchsorted(ts, last, side="right"))
    return ts[lo:hi]


def _ns(index: pd.DatetimeIndex) -> I64:
    return index.as_unit("ns").asi8.astype(np.int64, copy=False)


def _day(ns: int) -> date:
    return pd.Timestamp(ns, unit="ns").date()


def _weekdays(first: int, last: int) -> I64:
    days = pd.bdate_range(_day(first), _day(last))
    return _ns(days)


def _fx_weeks(first: int, last: int) -> tuple[I64, I64]:
    """Open/close instants of every FX week around ``[first, last]``: Sunday 17:00 to Friday 17:00
    New York wall-clock time, converted to UTC (so 21:00Z in summer, 22:00Z in winter)."""
    lo = _day(first) - timedelta(days=8)
    hi = _day(last) + timedelta(days=8)
    sundays = pd.date_range(lo, hi, freq="W-SUN")
    opens = (sundays + pd.Timedelta(hours=17)).tz_localize(_NEW_YORK).tz_convert("UTC")
    closes = (sundays + pd.Timedelta(days=5, hours=17)).tz_localize(_NEW_YORK).tz_convert("UTC")
    return _ns(opens), _ns(closes)


def _exchange(name: str, first: int, last: int) -> xc.ExchangeCalendar:
    """The exchange calendar covering whole years around the data (so repeated calls hit the
    exchange_calendars cache)."""
    y0, y1 = _day(first).year, _day(last).year
    try:
        return xc.get_calendar(name, start=f"{y0 - 1}-12-24", end=f"{y1 + 1}-01-07")
    except (ValueError, xc.errors.CalendarError) as exc:
        raise ValueError(f"calendar {name!r} does not cover {y0}..{y1}: {exc}") from exc


def _sessions(name: str, first: int, last: int) -> I64:
    cal = _exchange(name, first, last)
    return _ns(pd.DatetimeIndex(cal.sessions))


def _session_segments(name: str, first: int, last: int) -> tuple[I64, I64]:
    """Trading intervals [start, end) of every session; a lunch break splits a session in two
    (sessions without a break get an empty second interval, which yields no bars)."""
    sched = _exchange(name, first, last).schedule
    close = sched["close"]
    opens, closes = _ns(pd.DatetimeIndex(sched["open"])), _ns(pd.DatetimeIndex(close))
    break_start = _ns(pd.DatetimeIndex(sched["break_start"].fillna(close)))
    break_end = _ns(pd.DatetimeIndex(sched["break_end"].fillna(close)))
    starts, ends = np.concatenate([opens, break_end]), np.concatenate([break_start, closes])
    keep = ends > starts
    order = np.argsort(starts[keep], kind="stable")
    return starts[keep][order], ends[keep][order]
