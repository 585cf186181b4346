"""The paper exchange's two streams: prices in (``Tape``) and execution reports out (``Reports``).

Prices in: which part of each bar update a resting order may still meet.

A ``QuoteSource`` streams bar updates: a bar is updated while it forms and once more when it
closes. Matching every update on its whole open/high/low would fill an order again and again on
the same high, and would fill an order on prices printed before it existed. ``Tape`` remembers the
last update it saw of one symbol and turns each new update into a ``Segment`` (a bar for
``engine.execution.match_bar``) holding only what is new:

- an update of *another* bar than the last one: the whole bar (its open, high, low, volume). That
  is normally the next bar; an older one means the source started over (a replay looping or
  restarting its history), and for the orders that is still the market moving on;
- an update of the *same* bar: the move since the previous update. Open = the previous close;
  high = the new high if it rose above the previous high, else max(previous close, close); low
  likewise; volume = its growth since the previous update. A high is thus met by the one update
  that set it, never again;
- a tape seeded from a ``Quote`` (when a stream starts, on demand or after a restart) knows the
  price but not the bar's high and low so far: the first update of that same bar is matched only
  between the quote and its close. Without a seed the first update only sets the baseline.

A bar whose numbers are missing, not finite, negative or inconsistent (high/low not containing
its open and close) raises ``VenueDataError`` and leaves the tape unchanged: the caller
quarantines it (RELIABILITY.md API10); ``usable_quote`` does the same for a ``Quote``.

Reports out: ``Reports`` fans an account's execution reports out to its consumers. Each
``subscribe()`` gets its own unbounded queue from the moment it is called, so every consumer sees
every report published after it subscribed, in publication order; nothing is replayed (a consumer
reconciles with ``fills``/``open_orders``). ``end()`` ends every stream (and later ones at once)
until ``reopen()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from decimal import Decimal

from algotrendy.adapters.brokers._validate import dec, req
from algotrendy.core.market import BarUpdate
from algotrendy.core.venue import Quote, VenueDataError, VenueEvent

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of the price path orders have not met yet, as a bar for ``match_bar``;
    ``volume`` is what traded in it (``None``: unknown)."""

    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal | None


@dataclass(frozen=True, slots=True)
class _Mark:
    ts: int
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None
    extremes: bool
    """Whether ``high``/``low`` are the bar's so far (from an update) or unknown (from a quote)."""


class Tape:
    """The last update seen of one symbol (see the module docstring)."""

    def __init__(self, seed: Quote | None = None) -> None:
        p = None if seed is None else seed.price
        self._mark = None if seed is None or p is None else _Mark(seed.ts, p, p, p, seed.volume, False)

    def advance(self, u: BarUpdate) -> Segment | None:
        """The new part of ``u``, or ``None`` when nothing in it is new to resting orders."""
        o, h = req(u.open, "open", positive=True), req(u.high, "high", positive=True)
        lo, c = req(u.low, "low", positive=True), req(u.close, "close", positive=True)
        v = req(u.volume, "volume")
        if lo > min(o, c) or h < max(o, c):
            raise VenueDataError("bar high/low do not contain its open and close")
        m = self._mark
        seg: Segment | None = None
        if m is not None and not u.ts <= m.ts < u.ts + u.key.timeframe.nanos:
            seg = Segment(o, h, lo, v)
        elif m is not None:
            high = h if m.extremes and h > m.high else max(m.close, c)
            low = lo if m.extremes and lo < m.low else min(m.close, c)
            seg = Segment(m.close, high, low, None if m.volume is None else max(v - m.volume, _ZERO))
        self._mark = _Mark(u.ts, h, lo, c, v, True)
        return seg


def usable_quote(quote: Quote) -> Quote | None:
    """``quote`` with a checked positive price and non-negative volume, or ``None``."""
    try:
        price = req(quote.price, "price", positive=True)
        volume = dec(quote.volume, "volume", optional=True)
    except VenueDataError:
        return None
    return Quote(quote.symbol, quote.ts, price, volume)


class _Stream:
    """One consumer's queue (an ``AsyncIterator`` of reports)."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports
        self.queue: asyncio.Queue[VenueEvent | None] = asyncio.Queue()

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> VenueEvent:
        event = await self.queue.get()
        if event is None:
            self.queue.put_nowait(None)  # stay ended
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop receiving (a consumer that leaves early): what was queued can still be read."""
        with contextlib.suppress(ValueError):
            self._reports.streams.remove(self)
            self.queue.put_nowait(None)


class Reports:
    """An account's execution reports, fanned out to every subscribed consumer."""

    def __init__(self) -> None:
        self.streams: list[_Stream] = []
        self.ended = False

    def subscribe(self) -> _Stream:
        stream = _Stream(self)
        if self.ended:
            stream.queue.put_nowait(None)
        else:
            self.streams.append(stream)
        return stream

    def publish(self, event: VenueEvent) -> None:
        for stream in self.streams:
            stream.queue.put_nowait(event)

    def end(self) -> None:
        self.ended = True
        for stream in self.streams:
            stream.queue.put_nowait(None)
        self.streams.clear()

    def reopen(self) -> None:
        self.ended = False
