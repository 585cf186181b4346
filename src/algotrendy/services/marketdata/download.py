"""Download bar history from a source into the bar store: paged, paced, resumable.

Pure orchestration over two protocols: ``BarSource`` (the shape the adapters in
``algotrendy.adapters.sources`` implement, repeated here because services never import adapters;
``app/container.py`` injects the concrete source) and ``core.market.BarStore``.

* **Where it starts**: at ``since_ns``; or, when the store already holds bars of the series at or
  after ``since_ns``, at the newest of them (``store.last_ts``). That bar is fetched again on
  purpose: a bar stored while still forming, or revised by the venue since, is corrected, and
  ``upsert`` keeps one copy. So a download that was interrupted continues where it stopped.
* **Paging**: ``fetch_bars(start_ns=cursor, end_ns=end, limit=...)``; each page is written with
  ``store.upsert`` before the next is asked for, and the cursor moves to the page's last bar +
  one timeframe. An empty page ends the download.
* **Where it stops**: at ``until_ns`` or now, whichever is earlier, and only *closed* bars are
  stored (``ts + timeframe <= now``; the forming bar is left for the next run).
* **Rate**: request starts are spaced at least ``1 / source.rate_limit`` seconds apart (a token
  bucket holding one token), on the injected clock.
* **Untrusted pages**: a page out of order is refused (``TemporaryError``, nothing of it stored);
  bars outside ``[cursor, end)`` are dropped. Rows the source rejected (its ``rejected``
  attribute, see the adapters' rule) are counted in the progress and the result
  (``DownloadResult.clean`` is False) and are never stored; a page made only of rejected rows is
  stepped over.
* **Errors** from the source (``TemporaryError`` after its retries, ``NotFound``, ``Invalid``)
  propagate; every page finished before them is stored and was reported to ``progress``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import structlog

from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.errors import Invalid, TemporaryError
from algotrendy.core.market import AssetType, Bars, BarStore, SeriesKey, Timeframe, to_ns

log = structlog.get_logger(__name__)

MAX_REPORTED_REJECTIONS = 1000


class BarSource(Protocol):
    """What ``download`` needs of a source (the same shape as ``adapters.sources.base.BarSource``)."""

    @property
    def name(self) -> str: ...

    @property
    def asset_types(self) -> frozenset[AssetType]: ...

    @property
    def timeframes(self) -> frozenset[Timeframe]: ...

    @property
    def page_limit(self) -> int: ...

    @property
    def rate_limit(self) -> float: ...

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> Bars: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    ts: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Reported after every page (and once at the end, with ``done=True``)."""

    key: SeriesKey
    pages: int
    bars: int
    written: int
    rejected: int
    last_ts: int | None
    start_ns: int
    end_ns: int
    done: bool = False

    @property
    def fraction(self) -> float:
        """Share of the time range covered so far (0..1), for a progress bar."""
        if self.done:
            return 1.0
        if self.last_ts is None or self.end_ns <= self.start_ns:
            return 0.0
        return min(1.0, max(0.0, (self.last_ts - self.start_ns) / (self.end_ns - self.start_ns)))


@dataclass(frozen=True, slots=True)
class DownloadResult:
    key: SeriesKey
    source: str
    pages: int
    bars: int
    """Bars received and accepted (a re-fetched bar counts again)."""
    written: int
    """Rows the store inserted or changed."""
    rejected: tuple[Rejection, ...]
    """Rows the source rejected (the first ``MAX_REPORTED_REJECTIONS``)."""
    rejected_count: int
    first_ts: int | None
    last_ts: int | None
    resumed_from: int | None
    """The stored bar the download resumed at, or ``None`` for a fresh start."""
    start_ns: int
    end_ns: int

    @property
    def clean(self) -> bool:
        return self.rejected_count == 0


Progress = Callable[[DownloadProgress], object]
Sleep = Callable[[float], Awaitable[None]]


class _Pacer:
    """Token bucket of capacity one: successive ``wait`` calls return ``interval`` apart."""

    def __init__(self, rate: float, clock: Clock, sleep: Sleep) -> None:
        if not rate > 0:
            raise Invalid("the source's rate limit must be positive", field="rate_limit")
        self._interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None

    async def wait(self) -> None:
        now = self._clock.monotonic()
        if self._next is not None and now < self._next:
            await self._sleep(self._next - now)
            now = max(self._clock.monotonic(), self._next)
        self._next = now + self._interval


async def download(
    source: BarSource,
    store: BarStore,
    key: SeriesKey,
    *,
    asset_type: AssetType,
    since_ns: int,
    until_ns: int | None = None,
    progress: Progress | None = None,
    page_limit: int | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> DownloadResult:
    """Page ``key``'s history from ``source`` into ``store`` (see the module docstring)."""
    clock = clock or SystemClock()
    tf = key.timeframe
    if tf not in source.timeframes:
        have = ", ".join(str(t) for t in sorted(source.timeframes))
        raise Invalid(f"{source.name} has no {tf} bars; it serves {have}", field="timeframe")
    if asset_type not in source.asset_types:
        raise Invalid(f"{source.name} does not serve {asset_type.value} data", field="asset_type")
    limit = source.page_limit if page_limit is None else min(page_limit, source.page_limit)
    if limit < 1:
        raise Invalid("page_limit must be at least 1", field="page_limit")

    closed_before = to_ns(clock.now()) - tf.nanos + 1  # bars with ts < this have closed
    end = closed_before if until_ns is None else min(until_ns, closed_before)
    last = await store.last_ts(key)
    resumed_from = last if last is not None and last >= since_ns else None
    start = resumed_from if resumed_from is not None else since_ns
    pacer = _Pacer(source.rate_limit, clock, sleep or asyncio.sleep)
    log.info(
        "marketdata.download.start",
        series=str(key),
        source=source.name,
        start=start,
        end=end,
        resumed_from=resumed_from,
    )

    state = _State(key=key, start=start, end=end)
    cursor = start
    while cursor < end:
        await pacer.wait()
        page = await source.fetch_bars(key.symbol, tf, start_ns=cursor, end_ns=end, limit=limit)
        state.pages += 1
        rejected = _rejections(page)
        state.reject(rejected)
        page = _trusted(page, source.name, key, cursor, end)
        if len(page) == 0:
            stepped = [r.ts for r in rejected if r.ts is not None and r.ts >= cursor]
            if not stepped:
                break
            cursor = max(stepped) + tf.nanos  # a page of nothing but bad rows: step over them
            await _report(progress, state.progress())
            continue
        state.written += await store.upsert(key, page, asset_type=asset_type)
        state.bars += len(page)
        state.first_ts = int(page.ts[0]) if state.first_ts is None else state.first_ts
        state.last_ts = int(page.ts[-1])
        cursor = state.last_ts + tf.nanos
        await _report(progress, state.progress())

    await _report(progress, state.progress(done=True))
    result = DownloadResult(
        key=key,
        source=source.name,
        pages=state.pages,
        bars=state.bars,
        written=state.written,
        rejected=tuple(state.rejections),
        rejected_count=state.rejected_count,
        first_ts=state.first_ts,
        last_ts=state.last_ts,
        resumed_from=resumed_from,
        start_ns=start,
        end_ns=end,
    )
    log.info(
        "marketdata.download.done",
        series=str(key),
        source=source.name,
        pages=result.pages,
        bars=result.bars,
        written=result.written,
        rejected=result.rejected_count,
    )
    return result


@dataclass(slots=True)
class _State:
    key: SeriesKey
    start: int
    end: int
    pages: int = 0
    bars: int = 0
    written: int = 0
    rejected_count: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    rejections: list[Rejection] = field(default_factory=list)

    def reject(self, rows: list[Rejection]) -> None:
        self.rejected_count += len(rows)
        room = MAX_REPORTED_REJECTIONS - len(self.rejections)
        self.rejections.extend(rows[: max(0, room)])

    def progress(self, *, done: bool = False) -> DownloadProgress:
        return DownloadProgress(
            key=self.key,
            pages=self.pages,
            bars=self.bars,
            written=self.written,
            rejected=self.rejected_count,
            last_ts=self.last_ts,
            start_ns=self.start,
            end_ns=self.end,
            done=done,
        )


def _rejections(page: Bars) -> list[Rejection]:
    """The rows a source flagged on this page (duck-typed ``rejected`` of ``ts``/``reason``)."""
    out = []
    for row in getattr(page, "rejected", ()) or ():
        ts = getattr(row, "ts", None)
        out.append(Rejection(ts=ts if isinstance(ts, int) else None, reason=str(getattr(row, "reason", "?"))))
    return out


def _trusted(page: Bars, source: str, key: SeriesKey, cursor: int, end: int) -> Bars:
    """The page's bars in ``[cursor, end)``; a page out of time order is refused whole."""
    ts = page.ts
    if len(ts) > 1 and bool(np.any(np.diff(ts) <= 0)):
        raise TemporaryError(
            f"{source} returned {key.symbol} bars out of time order", code="bad_upstream_data"
        )
    mask = (ts >= cursor) & (ts < end)
    if bool(mask.all()):
        return page
    return Bars(
        ts[mask], page.open[mask], page.high[mask], page.low[mask], page.close[mask], page.volume[mask]
    )


async def _report(progress: Progress | None, event: DownloadProgress) -> None:
    if progress is None:
        return
    outcome = progress(event)
    if inspect.isawaitable(outcome):
        await outcome
