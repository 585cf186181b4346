"""Data-quality report of one bar series: a pure function of the bars and their market calendar.

``assess(bars, timeframe=..., asset_type=...)`` returns a ``QualityReport``:

* ``summary``: rows, first/last bar, expected/missing bars on the calendar, coverage and a score
  (``SCORE_FORMULA`` says how it is computed; the same text is in every report);
* ``gaps``: each stretch of expected bars that is absent, as last bar present -> next bar present;
* ``duplicates``: timestamps that occur more than once (and whether the copies disagree);
* ``violations``: bars that break an OHLC rule (see ``Rule``);
* ``zero_volume`` and ``zero_volume_runs``: bars with volume 0, and their consecutive runs;
* ``stale_runs``: at least ``stale_min_run`` consecutive identical bars that are flat (O=H=L=C)
  or have zero volume: a frozen price, the mark of a halted or dead feed;
* ``outliers``: log returns whose robust z-score ``(r - median) / (1.4826 * MAD)`` exceeds
  ``outlier_z`` in absolute value (a fat-tailed market move is flagged too: review, not defect);
* ``off_calendar``: bars present where the calendar expects none (or off the bar grid).

Every list is capped at ``max_items`` entries in time order; its ``total`` always counts all.
Which bars are expected comes from ``_calendars`` (24/7, the FX week, exchange sessions).
Timestamps serialise to JSON as ISO-8601 UTC with a ``Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, PlainSerializer

from algotrendy.core.market import I64, NS_PER_SECOND, AssetType, Bars, Timeframe
from algotrendy.services.marketdata import _calendars

Mask = npt.NDArray[np.bool_]
T = TypeVar("T")

SCORE_FORMULA: Final = (
    "score = 100 * coverage * (1 - defective_bars / bars), rounded to 2 decimals, where "
    "coverage = (expected_bars - missing_bars) / expected_bars and defective_bars counts the rows that "
    "are a duplicate copy, off the calendar, break an OHLC rule, lie in a stale run or have zero volume "
    "(zero volume is not counted for indices); outliers are reported but not scored"
)
_MAD_TO_SIGMA: Final = 1.4826
_MEAN_AD_TO_SIGMA: Final = 1.2533  # sqrt(pi/2): the fallback scale when more than half the returns are equal
_MIN_RETURNS: Final = 10
_COLUMNS: Final = ("open", "high", "low", "close", "volume")


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


UtcTime = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Rule(StrEnum):
    """The OHLCV rules a bar must satisfy."""

    HIGH_BELOW_OPEN_CLOSE = "high_below_open_close"  # high < max(open, close)
    LOW_ABOVE_OPEN_CLOSE = "low_above_open_close"  # low > min(open, close)
    HIGH_BELOW_LOW = "high_below_low"  # high < low
    NON_POSITIVE_PRICE = "non_positive_price"  # a price <= 0
    NON_FINITE = "non_finite"  # NaN or infinite price or volume
    NEGATIVE_VOLUME = "negative_volume"  # volume < 0


class Listing(_Out, Generic[T]):
    total: int
    truncated: bool
    items: list[T]


class Gap(_Out):
    last_present: UtcTime
    next_present: UtcTime
    missing: int  # expected bars absent between the two (per the calendar)
    elapsed_bars: int  # wall-clock timeframe steps strictly between the two (weekends included)


class Duplicate(_Out):
    ts: UtcTime
    rows: int  # rows carrying this timestamp
    conflicting: bool  # the copies differ in a value


class Violation(_Out):
    ts: UtcTime
    rules: list[Rule]
    open: float
    high: float
    low: float
    close: float
    volume: float


class Run(_Out):
    start: UtcTime
    end: UtcTime  # the last bar of the run (inclusive)
    bars: int


class StaleRun(Run):
    price: float  # the close the run is frozen at
    flat: bool  # every bar is O=H=L=C
    zero_volume: bool  # every bar has volume 0


class Outlier(_Out):
    ts: UtcTime  # the bar whose close ends the return
    log_return: float
    z: float


class Summary(_Out):
    bars: int  # rows, duplicates included
    first: UtcTime | None
    last: UtcTime | None
    timeframe: str
    asset_type: AssetType
    calendar: str
    expected_bars: int  # bars the calendar expects from first to last, both included
    missing_bars: int
    off_calendar_bars: int
    duplicate_rows: int  # extra copies (rows minus distinct timestamps)
    defective_bars: int
    coverage: float  # 0..1
    score: float  # 0..100
    score_formula: str = SCORE_FORMULA


class QualityReport(_Out):
    summary: Summary
    gaps: Listing[Gap]
    duplicates: Listing[Duplicate]
    violations: Listing[Violation]
    zero_volume: Listing[UtcTime]
    zero_volume_runs: Listing[Run]
    stale_runs: Listing[StaleRun]
    outliers: Listing[Outlier]
    off_calendar: Listing[UtcTime]


def assess(
    bars: Bars,
    *,
    timeframe: Timeframe,
    asset_type: AssetType,
    calendar: str | None = None,
    outlier_z: float = 8.0,
    stale_min_run: int = 3,
    max_items: int = 100,
) -> QualityReport:
    """Check ``bars`` against the calendar of ``asset_type`` (or ``calendar``; see ``_calendars``).

    Raises ``ValueError`` when the timestamps go backwards (duplicates are allowed and reported),
    the calendar is unknown, or a parameter is out of range.
    """
    if not outlier_z > 0:
        raise ValueError(f"outlier_z must be > 0, got {outlier_z}")
    if stale_min_run < 2:
        raise ValueError(f"stale_min_run must be >= 2, got {stale_min_run}")
    if max_items < 0:
        raise ValueError(f"max_items must be >= 0, got {max_items}")
    ts = np.asarray(bars.ts, dtype=np.int64)
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        i = int(back[0])
        raise ValueError(
            f"bars are not in time order: row {i + 1} ({_iso(_dt(int(ts[i + 1])))}) "
            f"comes after row {i} ({_iso(_dt(int(ts[i])))}); sort them first"
        )
    cal = _calendars.resolve(asset_type, calendar)
    cols = tuple(np.asarray(getattr(bars, name), dtype=np.float64) for name in _COLUMNS)
    o, h, lo, c, v = cols
    n = len(ts)
    first_copy: Mask = np.ones(n, dtype=np.bool_)
    first_copy[1:] = ts[1:] != ts[:-1]
    uts = ts[first_copy]
    expected = np.empty(0, dtype=np.int64)
    if n:
        first, last = int(uts[0]), int(uts[-1])
        expected = _calendars.expected(first, last, timeframe=timeframe, calendar=cal, present=uts)
    off_rows = ~_calendars.member(ts, expected)
    off = np.flatnonzero(off_rows & first_copy)
    missing = len(expected) - (len(uts) - len(off))

    rules = _rules(o, h, lo, c, v)
    bad: Mask = np.logical_or.reduce([m for _, m in rules])
    zero = v == 0
    stale_starts, stale_ends = _stale(o, h, lo, c, v, stale_min_run)
    defective_rows = ~first_copy | off_rows | bad | _cover(n, stale_starts, stale_ends)
    if asset_type is not AssetType.INDEX:
        defective_rows |= zero
    defective = int(np.count_nonzero(defective_rows))
    coverage = 1.0 - missing / len(expected) if len(expected) else (1.0 if n else 0.0)
    score = round(100.0 * coverage * (1.0 - defective / n), 2) if n else 0.0
    summary = Summary(
        bars=n,
        first=_dt(int(ts[0])) if n else None,
        last=_dt(int(ts[-1])) if n else None,
        timeframe=str(timeframe),
        asset_type=asset_type,
        calendar=cal,
        expected_bars=len(expected),
        missing_bars=missing,
        off_calendar_bars=len(off),
        duplicate_rows=n - len(uts),
        defective_bars=defective,
        coverage=coverage,
        score=score,
    )

    def violation(i: int) -> Violation:
        return Violation(
            ts=_dt(int(ts[i])),
            rules=[rule for rule, broken in rules if broken[i]],
            open=float(o[i]),
            high=float(h[i]),
            low=float(lo[i]),
            close=float(c[i]),
            volume=float(v[i]),
        )

    def stale_run(k: int) -> StaleRun:
        s, e = int(stale_starts[k]), int(stale_ends[k])  # the bars of a run are identical
        return StaleRun(
            start=_dt(int(ts[s])),
            end=_dt(int(ts[e])),
            bars=e - s + 1,
            price=float(c[s]),
            flat=bool(o[s] == h[s] == lo[s] == c[s]),
            zero_volume=bool(zero[s : e + 1].all()),
        )

    zero_starts, zero_ends = _runs(zero)

    def zero_run(k: int) -> Run:
        s, e = int(zero_starts[k]), int(zero_ends[k])
        return Run(start=_dt(int(ts[s])), end=_dt(int(ts[e])), bars=e - s + 1)

    def at(i: int) -> datetime:
        return _dt(int(ts[i]))

    cap = max_items
    return QualityReport(
        summary=summary,
        gaps=_gaps(uts, expected, timeframe.nanos, cap),
        duplicates=_duplicates(ts, first_copy, cols, cap),
        violations=_listing(np.flatnonzero(bad), cap, violation),
        zero_volume=_listing(np.flatnonzero(zero), cap, at),
        zero_volume_runs=_listing(np.arange(len(zero_starts)), cap, zero_run),
        stale_runs=_listing(np.arange(len(stale_starts)), cap, stale_run),
        outliers=_outliers(uts, c[first_copy], outlier_z, cap),
        off_calendar=_listing(off, cap, at),
    )


def _dt(ns: int) -> datetime:
    seconds, rest = divmod(ns, NS_PER_SECOND)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)


def _listing(indices: npt.NDArray[np.intp], cap: int, make: Callable[[int], T]) -> Listing[T]:
    total = len(indices)
    return Listing[T](total=total, truncated=total > cap, items=[make(int(i)) for i in indices[:cap]])


def _runs(mask: Mask) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and last index (inclusive) of every maximal run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def _cover(n: int, starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]) -> Mask:
    """Row mask of the inclusive index ranges ``starts[k]..ends[k]``."""
    marks = np.zeros(n + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends + 1, -1)
    return np.cumsum(marks[:n]) > 0


def _rules(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> list[tuple[Rule, Mask]]:
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
    return [
        (Rule.HIGH_BELOW_OPEN_CLOSE, h < np.maximum(o, c)),
        (Rule.LOW_ABOVE_OPEN_CLOSE, lo > np.minimum(o, c)),
        (Rule.HIGH_BELOW_LOW, h < lo),
        (Rule.NON_POSITIVE_PRICE, (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)),
        (Rule.NON_FINITE, ~finite),
        (Rule.NEGATIVE_VOLUME, v < 0),
    ]


def _stale(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, min_run: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row ranges of at least ``min_run`` consecutive identical bars, each flat or without volume."""
    if len(o) < 2:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    quiet = ((o == h) & (h == lo) & (lo == c)) | (v == 0)
    same = (o[1:] == o[:-1]) & (h[1:] == h[:-1]) & (lo[1:] == lo[:-1]) & (c[1:] == c[:-1])
    link_starts, link_ends = _runs(same & quiet[1:] & quiet[:-1])  # link k joins rows k and k+1
    long = link_ends - link_starts + 2 >= min_run
    return link_starts[long], link_ends[long] + 1


def _gaps(uts: I64, expected: I64, step: int, cap: int) -> Listing[Gap]:
    if len(uts) < 2:
        return Listing[Gap](total=0, truncated=False, items=[])
    before = np.searchsorted(expected, uts[:-1], side="right")
    missing = np.searchsorted(expected, uts[1:], side="left") - before

    def gap(i: int) -> Gap:
        return Gap(
            last_present=_dt(int(uts[i])),
            next_present=_dt(int(uts[i + 1])),
            missing=int(missing[i]),
            elapsed_bars=int((uts[i + 1] - uts[i]) // step) - 1,
        )

    return _listing(np.flatnonzero(missing > 0), cap, gap)


def _duplicates(ts: I64, first_copy: Mask, cols: Sequence[np.ndarray], cap: int) -> Listing[Duplicate]:
    starts, ends = _runs(~first_copy)  # rows that repeat the previous timestamp
    starts = starts - 1  # include the first copy

    def make(k: int) -> Duplicate:
        s, e = int(starts[k]), int(ends[k])
        rows = np.stack([col[s : e + 1] for col in cols])
        conflicting = not bool(np.all((rows == rows[:, :1]) | (np.isnan(rows) & np.isnan(rows[:, :1]))))
        return Duplicate(ts=_dt(int(ts[s])), rows=e - s + 1, conflicting=conflicting)

    return _listing(np.arange(len(starts)), cap, make)


def _outliers(ts: I64, close: np.ndarray, limit: float, cap: int) -> Listing[Outlier]:
    """Robust z-scores of the log returns between consecutive distinct timestamps."""
    ok = np.isfinite(close) & (close > 0)
    valid = ok[1:] & ok[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.log(close[1:] / close[:-1])[valid]
    when = ts[1:][valid]
    if len(returns) < _MIN_RETURNS:
        return Listing[Outlier](total=0, truncated=False, items=[])
    centre = float(np.median(returns))
    dev = np.abs(returns - centre)
    scale = _MAD_TO_SIGMA * float(np.median(dev)) or _MEAN_AD_TO_SIGMA * float(np.mean(dev))
    if scale <= 0:
        return Listing[Outlier](total=0, truncated=False, items=[])
    z = (returns - centre) / scale

    def outlier(i: int) -> Outlier:
        return Outlier(ts=_dt(int(when[i])), log_return=float(returns[i]), z=float(z[i]))

    return _listing(np.flatnonzero(np.abs(z) > limit), cap, outlier)
