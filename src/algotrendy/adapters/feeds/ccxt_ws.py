"""Live crypto bars and trades from a venue's websocket, through ccxt.pro.

``CcxtWebsocketFeed("binance")`` implements ``LiveFeed``: ``bars(keys)`` yields a
``closed=False`` update whenever a series' forming bar changes and one ``closed=True`` update per
bar, issued when the venue starts the next bar; ``trades(symbols)`` yields each print once.

How it stays correct on a real network:

- **One stream per series, many consumers.** Each series (and each trade symbol) has one pump task
  that watches it and fans updates out to every subscriber's own buffer. A new subscriber first
  gets the forming bar. Partial updates are dropped for a subscriber that falls ``max_pending``
  behind; closed bars never are.
- **Reconnects.** When the connection drops, ccxt fails the pending watch; the pump logs
  ``feeds.ccxt_stream_lost``, waits (exponential backoff with jitter, ``reconnect_delay`` up to
  ``max_reconnect_delay``) and watches again, which redials and resubscribes. Every re-established
  connection is logged (``feeds.ccxt_reconnected``) and counted in ``reconnects``. The venue
  resends the forming bar after a resubscription; the trackers make that a no-op, so no closed bar
  is ever emitted twice. Bars missed entirely while disconnected are not backfilled.
- **Untrusted messages.** A message ccxt's parser chokes on would otherwise stop ccxt's receive
  loop for good: it is caught, logged (``feeds.ccxt_message_dropped``) and dropped. Parsed candles
  and trades are checked again (``tracking.ohlcv_problem`` / ``trade_problem``: NaN, infinities,
  missing fields, non-positive prices, negative volume, inconsistent high/low, future timestamps)
  and dropped with a ``feeds.ccxt_data_rejected`` warning; they are never emitted. Candles are
  checked as ccxt stores them (a validating cache under ``exchange.ohlcvs``), so a bad candle
  cannot overwrite the last good state of a bar, and again when the pump reads them. ccxt's
  ``newUpdates`` is off: the pump reads ccxt's whole cache and the tracker keeps what is new.

``urls``, ``options`` and ``config`` are deep-merged into the ccxt exchange's own, which is how a
test points it at a fake venue; ``markets`` (ccxt's unified market structures) skips the REST
``load_markets`` call entirely.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import ccxt
import ccxt.pro
import structlog
from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

from algotrendy.adapters.feeds.tracking import BarTracker, Rejected, TradeTracker, ohlcv_problem
from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.errors import ConfigurationError, Invalid, NotFound
from algotrendy.core.market import BarUpdate, SeriesKey, Trade

log = structlog.get_logger(__name__)

T = TypeVar("T")
_NETWORK_ERRORS = (ccxt.BaseError, OSError)


class _CheckedCandles(ArrayCacheByTimestamp):  # type: ignore[misc]
    """ccxt's candle cache for a watched series, refusing invalid candles on the way in.

    ccxt replaces a cached candle in place by its timestamp, so without this a NaN candle would
    overwrite the last good state of the forming bar before the pump gets to read it.
    """

    def __init__(self, max_size: int, accept: Callable[[Any], bool], rows: Iterable[Any] = ()) -> None:
        super().__init__(max_size)
        self._accept = accept
        for row in rows:
            self.append(row)

    def append(self, item: Any) -> None:
        if self._accept(item):
            super().append(item)


@dataclass(eq=False)
class _Subscriber(Generic[T]):
    """One consumer's buffer; the pump appends, the consumer's iterator takes."""

    max_pending: int
    buffer: deque[T] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    overflowed: int = 0

    def put(self, item: T, *, droppable: bool) -> None:
        if droppable and len(self.buffer) >= self.max_pending:
            if not self.overflowed:
                log.warning("feeds.ccxt_consumer_behind", pending=len(self.buffer))
            self.overflowed += 1
            return
        self.buffer.append(item)
        self.wake.set()


@dataclass(eq=False)
class _Pump(Generic[T]):
    """The single watcher of one stream and the subscribers it feeds."""

    name: str
    snapshot: Callable[[], T | None] = lambda: None
    """What a new subscriber gets first (the forming bar)."""
    subscribers: set[_Subscriber[T]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def publish(self, item: T, *, droppable: bool) -> None:
        for sub in self.subscribers:
            sub.put(item, droppable=droppable)

    def fail(self, error: BaseException) -> None:
        for sub in self.subscribers:
            sub.error = error
            sub.wake.set()


class CcxtWebsocketFeed:
    """A ``LiveFeed`` over a ccxt.pro exchange's websocket (see the module docstring)."""

    def __init__(
        self,
        exchange_id: str,
        *,
        venue: str | None = None,
        urls: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        markets: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        reconnect_delay: float = 0.25,
        max_reconnect_delay: float = 30.0,
        max_pending: int = 10_000,
    ) -> None:
        if exchange_id not in ccxt.pro.exchanges:
            raise ConfigurationError(f"ccxt.pro has no websocket exchange {exchange_id!r}")
        if not 0 < reconnect_delay <= max_reconnect_delay:
            raise ValueError("need 0 < reconnect_delay <= max_reconnect_delay")
        settings: dict[str, Any] = {"enableRateLimit": True, **(config or {})}
        settings["newUpdates"] = False  # the trackers read ccxt's whole cache (see module docstring)
        if urls:
            settings["urls"] = dict(urls)
        if options:
            settings["options"] = dict(options)
        self._exchange: Any = getattr(ccxt.pro, exchange_id)(settings)
        self._exchange.handle_message = self._guard(self._exchange.handle_message)
        self._exchange.on_connected = self._count_connections(self._exchange.on_connected)
        if markets:
            self._exchange.set_markets(
                list(markets.values()) if isinstance(markets, Mapping) else list(markets)
            )
        self.venue = venue or exchange_id
        self._clock: Clock = clock or SystemClock()
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._max_pending = max_pending
        self._bar_pumps: dict[SeriesKey, _Pump[BarUpdate]] = {}
        self._trade_pumps: dict[str, _Pump[Trade]] = {}
        self._markets_lock = asyncio.Lock()
        self._connections: dict[str, int] = {}
        self._closed = False
        self.reconnects = 0
        """Connections re-established after a drop."""
        self.dropped = 0
        """Messages dropped: ccxt could not parse them, or their candle/trade failed the checks."""

    async def __aenter__(self) -> CcxtWebsocketFeed:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- ccxt hooks ----------------------------------------------------------------------------

    def _guard(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def guarded(client: Any, message: Any) -> Any:
            try:
                return handler(client, message)
            except Exception as exc:  # an unparseable message must not stop ccxt's receive loop
                self.dropped += 1
                log.warning(
                    "feeds.ccxt_message_dropped",
                    venue=self.venue,
                    error_type=type(exc).__name__,
                    error=str(exc)[:200],
                    message=repr(message)[:200],
                )
                return None

        return guarded

    def _count_connections(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def on_connected(client: Any, message: Any = None) -> Any:
            url = str(getattr(client, "url", ""))
            count = self._connections[url] = self._connections.get(url, 0) + 1
            if count > 1:
                self.reconnects += 1
                log.info("feeds.ccxt_reconnected", venue=self.venue, url=url, reconnects=self.reconnects)
            else:
                log.info("feeds.ccxt_connected", venue=self.venue, url=url)
            return handler(client, message)

        return on_connected

    # ---- public API ----------------------------------------------------------------------------

    async def bars(self, keys: list[SeriesKey]) -> AsyncIterator[BarUpdate]:
        """Live updates of ``keys`` until the consumer stops or the feed is closed.

        Raises ``NotFound`` for a market the venue does not list and ``Invalid`` for another venue
        or a timeframe it does not stream. A consumer that stops early should close the iterator
        (``contextlib.aclosing``) so the series' stream is released at once.
        """
        wanted = list(dict.fromkeys(keys))
        if self._closed or not wanted:
            return
        await self._load_markets()
        if self._closed:
            return
        streams = [(key, *self._stream_of(key)) for key in wanted]
        sub: _Subscriber[BarUpdate] = _Subscriber(self._max_pending)
        joined: list[SeriesKey] = []
        try:
            for key, symbol, timeframe in streams:
                pump = self._bar_pumps.get(key)
                if pump is None:
                    tracker = BarTracker(key, key.timeframe.seconds * 1000)
                    tracker.prime(self._check_candles(str(key), symbol, timeframe, tracker.timeframe_ms))
                    pump = self._bar_pumps[key] = _Pump(str(key), tracker.forming)
                    pump.task = self._start(pump, self._pump_bars(pump, tracker, symbol, timeframe))
                forming = pump.snapshot()
                if forming is not None:
                    sub.put(forming, droppable=True)
                pump.subscribers.add(sub)
                joined.append(key)
            async for update in self._drain(sub):
                yield update
        finally:
            for key in joined:
                self._leave(self._bar_pumps, key, sub)

    async def trades(self, symbols: list[str]) -> AsyncIterator[Trade]:
        """Each new print of ``symbols`` (venue symbols such as ``BTCUSDT`` or ``BTC/USDT``), once."""
        wanted = list(dict.fromkeys(symbols))
        if self._closed or not wanted:
            return
        await self._load_markets()
        if self._closed:
            return
        resolved = [(text, self._market_symbol(text)) for text in wanted]
        sub: _Subscriber[Trade] = _Subscriber(self._max_pending)
        joined: list[str] = []
        try:
            for text, symbol in resolved:
                pump = self._trade_pumps.get(text)
                if pump is None:
                    pump = self._trade_pumps[text] = _Pump(f"{text}@{self.venue}/trades")
                    tracker = TradeTracker(text, self.venue)
                    tracker.prime(list((self._exchange.trades or {}).get(symbol) or []))
                    pump.task = self._start(pump, self._pump_trades(pump, tracker, symbol))
                pump.subscribers.add(sub)
                joined.append(text)
            async for trade in self._drain(sub):
                yield trade
        finally:
            for text in joined:
                self._leave(self._trade_pumps, text, sub)

    async def close(self) -> None:
        """Stop every stream and end every iterator; idempotent."""
        if self._closed:
            return
        self._closed = True
        pumps: list[_Pump[Any]] = [*self._bar_pumps.values(), *self._trade_pumps.values()]
        tasks = [p.task for p in pumps if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pump in pumps:
            for sub in pump.subscribers:
                sub.wake.set()
        self._bar_pumps.clear()
        self._trade_pumps.clear()
        await self._exchange.close()

    # ---- plumbing ------------------------------------------------------------------------------

    async def _load_markets(self) -> None:
        delay = self._reconnect_delay
        async with self._markets_lock:
            while not self._exchange.markets and not self._closed:
                try:
                    await self._exchange.load_markets()
                except ccxt.NetworkError as exc:
                    log.warning(
                        "feeds.ccxt_markets_unavailable",
                        venue=self.venue,
                        error_type=type(exc).__name__,
                        error=str(exc)[:200],
                        retry_in=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_reconnect_delay)

    def _market_symbol(self, text: str) -> str:
        """ccxt's unified symbol for ``BTC/USDT``, ``BTCUSDT`` or ``BTC-USDT`` (spot preferred)."""
        markets: Mapping[str, Any] = self._exchange.markets or {}
        if text in markets:
            return text
        by_id: Mapping[str, list[Mapping[str, Any]]] = self._exchange.markets_by_id or {}
        candidates = by_id.get(text) or by_id.get(text.upper()) or []
        if candidates:
            spot = [m for m in candidates if m.get("spot")]
            return str((spot or candidates)[0]["symbol"])
        dashed = text.replace("-", "/").upper()
        if dashed in markets:
            return dashed
        raise NotFound(f"{self.venue} has no market {text!r}")

    def _stream_of(self, key: SeriesKey) -> tuple[str, str]:
        if key.venue != self.venue:
            raise Invalid(f"this feed serves venue {self.venue!r}, not {key.venue!r}", field="venue")
        timeframes: Mapping[str, Any] = self._exchange.timeframes or {}
        if key.timeframe.label not in timeframes:
            raise Invalid(f"{self.venue} streams no {key.timeframe} bars", field="timeframe")
        return self._market_symbol(key.symbol), key.timeframe.label

    def _check_candles(self, stream: str, symbol: str, timeframe: str, timeframe_ms: int) -> list[Any]:
        """Put a validating cache under ccxt for this series; returns the candles it already held."""
        by_timeframe = self._exchange.ohlcvs.setdefault(symbol, {})
        held = by_timeframe.get(timeframe)
        rows = list(held or [])
        if not isinstance(held, _CheckedCandles):

            def accept(row: Any) -> bool:
                problem = ohlcv_problem(row, now_ms=self._now_ms(), timeframe_ms=timeframe_ms)
                if problem is not None:
                    self._report(stream, [Rejected(problem, repr(row)[:200])])
                return problem is None

            limit = int(self._exchange.safe_integer(self._exchange.options, "OHLCVLimit", 1000))
            by_timeframe[timeframe] = _CheckedCandles(limit, accept, rows)
        return rows

    def _start(self, pump: _Pump[Any], work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                error = t.exception()
                log.error(
                    "feeds.ccxt_stream_failed",
                    venue=self.venue,
                    stream=pump.name,
                    error_type=type(error).__name__,
                )
                pump.fail(error or RuntimeError("stream failed"))

        task.add_done_callback(done)
        return task

    def _leave(self, pumps: dict[Any, _Pump[Any]], name: Any, sub: _Subscriber[Any]) -> None:
        pump = pumps.get(name)
        if pump is None:
            return
        pump.subscribers.discard(sub)
        if not pump.subscribers:
            del pumps[name]
            if pump.task is not None:
                pump.task.cancel()

    async def _drain(self, sub: _Subscriber[T]) -> AsyncIterator[T]:
        while True:
            while sub.buffer:
                yield sub.buffer.popleft()
            if sub.error is not None:
                raise sub.error
            if self._closed:
                return
            sub.wake.clear()
            await sub.wake.wait()

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _report(self, stream: str, rejected: Iterable[Rejected]) -> None:
        for item in rejected:
            self.dropped += 1
            log.warning(
                "feeds.ccxt_data_rejected",
                venue=self.venue,
                stream=stream,
                reason=item.reason,
                item=item.item,
            )

    async def _lost(self, stream: str, error: BaseException, delay: float) -> float:
        """Log a failed watch, wait out the backoff, return the next backoff."""
        log.warning(
            "feeds.ccxt_stream_lost",
            venue=self.venue,
            stream=stream,
            error_type=type(error).__name__,
            error=str(error)[:200],
            retry_in=round(delay, 3),
        )
        await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter, not crypto
        return min(delay * 2, self._max_reconnect_delay)

    async def _pump_bars(
        self, pump: _Pump[BarUpdate], tracker: BarTracker, symbol: str, timeframe: str
    ) -> None:
        delay = self._reconnect_delay
        while True:
            try:
                rows = await self._exchange.watch_ohlcv(symbol, timeframe)
            except _NETWORK_ERRORS as exc:
                delay = await self._lost(pump.name, exc, delay)
                continue
            delay = self._reconnect_delay
            updates, rejected = tracker.push(rows, now_ms=self._now_ms())
            self._report(pump.name, rejected)
            for update in updates:
                pump.publish(update, droppable=not update.closed)

    async def _pump_trades(self, pump: _Pump[Trade], tracker: TradeTracker, symbol: str) -> None:
        delay = self._reconnect_delay
        while True:
            try:
                trades = await self._exchange.watch_trades(symbol)
            except _NETWORK_ERRORS as exc:
                delay = await self._lost(pump.name, exc, delay)
                continue
            delay = self._reconnect_delay
            fresh, rejected = tracker.push(trades, now_ms=self._now_ms())
            self._report(pump.name, rejected)
            for trade in fresh:
                pump.publish(trade, droppable=False)
