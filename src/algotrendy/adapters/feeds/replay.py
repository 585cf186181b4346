"""Stored bars replayed as live updates: the embedded default ``LiveFeed`` (paper trading, demos).

``ReplayFeed(store, speed=60).bars([key])`` reads the series from the ``BarStore`` and yields one
``BarUpdate(closed=True)`` per stored bar, paced at ``speed`` times real time: at ``speed=60`` a
1m bar arrives every second, a 1h bar every minute; ``speed=0`` (or ``inf``) replays as fast as
the consumer takes them. Pacing follows the injected ``Clock``'s ``monotonic()`` and never skips a
bar: a consumer that falls behind gets the late bars at once, then the schedule resumes.

Timing and order. A bar is labelled by its open time ``ts`` but is only known once it closes, so
its closed update is due at ``ts + timeframe``. Several series are merged on that due time; at
the same instant shorter timeframes come first (the 10:59 1m bar before the 10:00 1h bar, both
due at 11:00), then the order of ``keys``. No series ever shows a bar before it closed.

Intra-bar updates (``intrabar=True``, off by default). Each bar is preceded by three
``closed=False`` updates that walk a price path through it, so resting orders (stops, limits)
can trigger inside the bar the way they would live:

    due at      ts               ts + tf/3          ts + 2tf/3          ts + tf
    price       open             first extreme      second extreme      close  (closed=True)
    high/low    open/open        running            bar's high/low      bar's high/low
    volume      0                volume/3           2*volume/3          volume

The path is open -> low -> high -> close for a bar that closed up (close >= open) and
open -> high -> low -> close for one that closed down, the usual assumption when only OHLC is known.

Memory. Each series is read in windows of ``chunk_size`` bars' worth of time (``store.read`` with
``start``/``end``), never whole; an empty window (a gap in the data) is skipped by probing with
``limit=1`` reads, galloping then bisecting, so a long gap costs a few tiny reads rather than many
empty windows or one huge one.

Subscribers. Every ``bars()`` call is an independent replay with its own cursors and clock origin.
``close()`` ends them all (a waiting one wakes at once). With ``loop_forever`` the replay starts
over when the data runs out, shifting timestamps forward by the replayed span (rounded up to a
multiple of every timeframe) so time keeps increasing across passes.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.errors import NotFound
from algotrendy.core.market import NS_PER_SECOND, BarStore, BarUpdate, SeriesKey

Sleep = Callable[[float], Awaitable[None]]
_YIELD_EVERY = 256
"""Unpaced replays let the event loop run other tasks at least this often (events)."""

_CLOSED, _PARTIAL = 0, 1
"""Rank at equal due times: closed bars before the next bars' opening updates."""


@dataclass(frozen=True, slots=True)
class _Span:
    first_ts: int
    last_ts: int


class _SeriesCursor:
    """The due-time ordered updates of one series, read from the store window by window."""

    def __init__(
        self,
        store: BarStore,
        key: SeriesKey,
        *,
        start: int,
        stop: int,
        chunk_size: int,
        intrabar: bool,
        shift: int,
    ) -> None:
        self.key = key
        self.tf_ns = key.timeframe.nanos
        self._store = store
        self._cursor = start
        self._stop = stop
        self._window = chunk_size * self.tf_ns
        self._intrabar = intrabar
        self._shift = shift
        self._rows: list[tuple[int, float, float, float, float, float]] = []
        self._row = 0
        self._events: deque[tuple[int, int, BarUpdate]] = deque()

    async def next(self) -> tuple[int, int, BarUpdate] | None:
        """``(due_ns, rank, update)`` of the next update, or ``None`` when the series is done."""
        while not self._events:
            if self._row >= len(self._rows) and not await self._read_chunk():
                return None
            self._expand(self._rows[self._row])
            self._row += 1
        return self._events.popleft()

    def _expand(self, row: tuple[int, float, float, float, float, float]) -> None:
        ts, o, h, l, c, v = row  # noqa: E741
        key, tf, t = self.key, self.tf_ns, ts + self._shift
        if self._intrabar:
            first, second = (l, h) if c >= o else (h, l)
            self._events.extend(
                (
                    (t, _PARTIAL, BarUpdate(key, t, o, o, o, o, 0.0, False)),
                    (
                        t + tf // 3,
                        _PARTIAL,
                        BarUpdate(key, t, o, max(o, first), min(o, first), first, v / 3, False),
                    ),
                    (t + 2 * tf // 3, _PARTIAL, BarUpdate(key, t, o, h, l, second, 2 * v / 3, False)),
                )
            )
        self._events.append((t + tf, _CLOSED, BarUpdate(key, t, o, h, l, c, v, True)))

    async def _read_chunk(self) -> bool:
        while self._cursor < self._stop:
            end = min(self._cursor + self._window, self._stop)
            bars = await self._store.read(self.key, start=self._cursor, end=end)
            self._cursor = end
            if len(bars):
                self._rows = list(
                    zip(
                        bars.ts.tolist(),
                        bars.open.tolist(),
                        bars.high.tolist(),
                        bars.low.tolist(),
                        bars.close.tolist(),
                        bars.volume.tolist(),
                        strict=True,
                    )
                )
                self._row = 0
                return True
            self._cursor = await self._skip_gap(self._cursor)
        return False

    async def _skip_gap(self, lo: int) -> int:
        """Start of a window holding the next bar at or after ``lo`` (``stop`` if there is none)."""
        step = self._window
        while lo < self._stop:
            hi = min(lo + step, self._stop)
            if not await self._any(lo, hi):
                lo, step = hi, step * 2
                continue
            while hi - lo > self._window:
                mid = lo + (hi - lo) // 2
                if await self._any(lo, mid):
                    hi = mid
                else:
                    lo = mid
            return lo
        return self._stop

    async def _any(self, start: int, end: int) -> bool:
        return len(await self._store.read(self.key, start=start, end=end, limit=1)) > 0


class _Pacer:
    """When each due time should be released, relative to the first one, at ``speed`` x."""

    def __init__(self, speed: float, clock: Clock) -> None:
        self._speed = speed
        self._clock = clock
        self._origin: tuple[int, float] | None = None

    @property
    def paced(self) -> bool:
        return 0 < self._speed < math.inf

    def delay(self, due_ns: int) -> float:
        """Seconds to wait before releasing an update due at ``due_ns`` (<= 0: now)."""
        if not self.paced:
            return 0.0
        now = self._clock.monotonic()
        if self._origin is None:
            self._origin = (due_ns, now)
            return 0.0
        origin_ns, origin_mono = self._origin
        return origin_mono + (due_ns - origin_ns) / NS_PER_SECOND / self._speed - now


class ReplayFeed:
    """A ``LiveFeed`` replaying a ``BarStore`` (see the module docstring)."""

    def __init__(
        self,
        store: BarStore,
        *,
        speed: float = 1.0,
        start_ns: int | None = None,
        end_ns: int | None = None,
        clock: Clock | None = None,
        loop_forever: bool = False,
        intrabar: bool = False,
        chunk_size: int = 5_000,
        sleep: Sleep | None = None,
    ) -> None:
        if math.isnan(speed) or speed < 0:
            raise ValueError(f"speed must be >= 0 (0 or inf: as fast as possible), got {speed!r}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise ValueError("end_ns must be after start_ns")
        self._store = store
        self._speed = speed
        self._start_ns = start_ns
        self._end_ns = end_ns
        self._clock: Clock = clock or SystemClock()
        self._loop_forever = loop_forever
        self._intrabar = intrabar
        self._chunk_size = chunk_size
        self._sleep: Sleep = sleep or asyncio.sleep
        self._closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self) -> None:
        """End every replay; each iterator stops at its next step (a sleeping one at once)."""
        self._closed.set()

    async def __aenter__(self) -> ReplayFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def bars(self, keys: list[SeriesKey]) -> AsyncIterator[BarUpdate]:
        """Replay ``keys`` merged in due-time order; raises ``NotFound`` for a series not stored."""
        wanted = list(dict.fromkeys(keys))
        if self.closed or not wanted:
            return
        pacer = _Pacer(self._speed, self._clock)
        shift = 0
        released = 0
        while True:
            spans = await self._spans(wanted)
            cursors = [self._cursor(key, spans[key], shift) for key in wanted]
            heap: list[tuple[int, int, int, int, BarUpdate]] = []
            for index, cursor in enumerate(cursors):
                await self._push(heap, index, cursor)
            if not heap:
                return
            while heap:
                due, _, _, index, update = heapq.heappop(heap)
                delay = pacer.delay(due)
                if delay > 0:
                    await self._pause(delay)
                elif released % _YIELD_EVERY == _YIELD_EVERY - 1:
                    await asyncio.sleep(0)
                if self.closed:
                    return
                yield update
                released += 1
                await self._push(heap, index, cursors[index])
            if not self._loop_forever:
                return
            shift += self._loop_shift(spans)

    async def _spans(self, keys: list[SeriesKey]) -> dict[SeriesKey, _Span]:
        catalog = {
            info.key: info
            for symbol in {k.symbol for k in keys}
            for info in await self._store.series(symbol=symbol)
        }
        spans: dict[SeriesKey, _Span] = {}
        for key in keys:
            info = catalog.get(key)
            if info is None or info.count == 0:
                raise NotFound(f"no stored bars for {key}")
            spans[key] = _Span(info.first_ts, info.last_ts)
        return spans

    def _cursor(self, key: SeriesKey, span: _Span, shift: int) -> _SeriesCursor:
        start = span.first_ts if self._start_ns is None else max(span.first_ts, self._start_ns)
        stop = span.last_ts + 1 if self._end_ns is None else min(span.last_ts + 1, self._end_ns)
        return _SeriesCursor(
            self._store,
            key,
            start=start,
            stop=stop,
            chunk_size=self._chunk_size,
            intrabar=self._intrabar,
            shift=shift,
        )

    def _loop_shift(self, spans: dict[SeriesKey, _Span]) -> int:
        """How far the next pass moves time: the replayed span, rounded up to a multiple of every
        timeframe so bars stay on their boundaries."""
        unit = math.lcm(*(key.timeframe.nanos for key in spans))
        first = min(
            span.first_ts if self._start_ns is None else max(span.first_ts, self._start_ns)
            for span in spans.values()
        )
        last_close = max(
            (span.last_ts if self._end_ns is None else min(span.last_ts, self._end_ns - 1))
            + key.timeframe.nanos
            for key, span in spans.items()
        )
        return max(unit, -(-(last_close - first) // unit) * unit)

    @staticmethod
    async def _push(
        heap: list[tuple[int, int, int, int, BarUpdate]], index: int, cursor: _SeriesCursor
    ) -> None:
        event = await cursor.next()
        if event is not None:
            due, rank, update = event
            heapq.heappush(heap, (due, rank, cursor.tf_ns, index, update))

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the feed is closed meanwhile."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({sleeper, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closer.cancel()
