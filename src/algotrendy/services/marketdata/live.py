"""Real-time market data: subscriptions, one pump per live series, fan-out to subscribers, and
``marketdata.bar.closed`` events on the bus.

A pump reads one series from a ``LiveFeed`` (the replay of stored bars by default, a venue's
websocket stream when configured) and puts each update on the queue of every subscription
that wants it. A slow subscriber loses forming-bar updates first (its queue is bounded); closed
bars are kept. Subscriptions belong to the user who made them: nobody else can stream or
delete one (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid, NotFound
from algotrendy.core.events import Bus, Envelope
from algotrendy.core.market import BarUpdate, LiveFeed, SeriesInfo, SeriesKey
from algotrendy.services.marketdata import series as sx
from algotrendy.services.marketdata.interface import BarClosed, SubscribeRequest, SubscriptionRead

log = structlog.get_logger(__name__)

FeedFactory = Callable[[SeriesInfo], LiveFeed]
QUEUE_SIZE = 1000


@dataclass
class _Subscription:
    id: str
    owner: uuid.UUID
    keys: list[SeriesKey]
    fields: list[str]
    read: SubscriptionRead
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    listeners: int = 0


class LiveHub:
    def __init__(
        self,
        *,
        feed_for: FeedFactory,
        catalog: Callable[[], Awaitable[list[SeriesInfo]]],
        bus: Bus,
        clock: Clock,
        max_per_user: int = 20,
    ) -> None:
        self._feed_for = feed_for
        self._catalog = catalog
        self._bus = bus
        self._clock = clock
        self._max = max_per_user
        self._subs: dict[str, _Subscription] = {}
        self._pumps: dict[SeriesKey, tuple[asyncio.Task[None], LiveFeed]] = {}

    async def subscribe(self, *, owner: uuid.UUID, request: SubscribeRequest) -> SubscriptionRead:
        if sum(1 for s in self._subs.values() if s.owner == owner) >= self._max:
            raise Invalid(
                f"at most {self._max} subscriptions per user; delete one first",
                field="symbols",
                code="too_many_subscriptions",
            )
        catalog = await self._catalog()
        infos: list[SeriesInfo] = []
        for symbol in request.symbols:
            resolved = sx.resolve(catalog, symbol=symbol, venue=None, interval=request.interval)
            if resolved.key.timeframe != resolved.target:
                raise Invalid(
                    f"{resolved.key.symbol} streams at {resolved.key.timeframe.label} only",
                    field="interval",
                    code="bad_interval",
                )
            infos.append(resolved.info)
        sub_id = "sub_" + secrets.token_hex(8)
        read = SubscriptionRead(
            subscription_id=sub_id,
            symbols=[i.key.symbol for i in infos],
            fields=list(request.fields),
            interval=request.interval,
            stream_url=f"/api/v1/market-data/ws?subscription_id={sub_id}",
            created_at=self._clock.now(),
        )
        self._subs[sub_id] = _Subscription(sub_id, owner, [i.key for i in infos], list(request.fields), read)
        for info in infos:
            self._ensure_pump(info)
        log.info("marketdata.subscribed", subscription_id=sub_id, series=len(infos))
        return read

    async def unsubscribe(self, *, owner: uuid.UUID, subscription_id: str) -> None:
        sub = self._own(owner, subscription_id)
        del self._subs[sub.id]
        await sub.queue.put({"type": "closed", "subscription_id": sub.id})
        await self._stop_idle_pumps()

    def get(self, *, owner: uuid.UUID, subscription_id: str) -> SubscriptionRead:
        return self._own(owner, subscription_id).read

    def list(self, *, owner: uuid.UUID) -> list[SubscriptionRead]:
        return [s.read for s in self._subs.values() if s.owner == owner]

    def _own(self, owner: uuid.UUID, subscription_id: str) -> _Subscription:
        sub = self._subs.get(subscription_id)
        if sub is None or sub.owner != owner:
            raise NotFound(f"subscription {subscription_id!r} not found", code="subscription_not_found")
        return sub

    async def stream(self, *, owner: uuid.UUID, subscription_id: str) -> AsyncIterator[dict[str, Any]]:
        """Messages for one subscription until it is deleted or the hub closes."""
        sub = self._own(owner, subscription_id)
        sub.listeners += 1
        try:
            while True:
                message = await sub.queue.get()
                yield message
                if message.get("type") == "closed":
                    return
        finally:
            sub.listeners -= 1

    # ---- pumps --------------------------------------------------------------------------------

    def _ensure_pump(self, info: SeriesInfo) -> None:
        if info.key in self._pumps and not self._pumps[info.key][0].done():
            return
        feed = self._feed_for(info)
        task = asyncio.get_running_loop().create_task(self._pump(info.key, feed), name=f"live:{info.key}")
        self._pumps[info.key] = (task, feed)

    async def _pump(self, key: SeriesKey, feed: LiveFeed) -> None:
        try:
            async for update in feed.bars([key]):
                self._fan_out(key, update)
                if update.closed:
                    await self._announce(update)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("marketdata.pump_failed", series=str(key), error=type(exc).__name__)

    def _fan_out(self, key: SeriesKey, update: BarUpdate) -> None:
        sent_at = self._clock.now().isoformat().replace("+00:00", "Z")
        for sub in self._subs.values():
            if key not in sub.keys:
                continue
            message = _message(sub, update, sent_at)
            if sub.queue.full():
                if not update.closed:
                    continue  # a slow reader loses forming-bar updates first
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
            sub.queue.put_nowait(message)

    async def _announce(self, update: BarUpdate) -> None:
        event = BarClosed(
            symbol=update.key.symbol,
            venue=update.key.venue,
            interval=update.key.timeframe.label,
            timestamp=sx.ns_to_datetime(update.ts),
            open=update.open,
            high=update.high,
            low=update.low,
            close=update.close,
            volume=update.volume,
        )
        try:
            await self._bus.publish(Envelope.of(event, source="marketdata", at=self._clock.now()))
        except Exception as exc:  # a bus hiccup must not stop the stream
            log.warning("marketdata.bar_event_failed", series=str(update.key), error=type(exc).__name__)

    async def _stop_idle_pumps(self) -> None:
        wanted = {k for s in self._subs.values() for k in s.keys}
        for key in [k for k in self._pumps if k not in wanted]:
            task, feed = self._pumps.pop(key)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await feed.close()

    async def close(self) -> None:
        for sub in list(self._subs.values()):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait({"type": "closed", "subscription_id": sub.id})
        self._subs.clear()
        await self._stop_idle_pumps()


def _message(sub: _Subscription, update: BarUpdate, sent_at: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "bar",
        "subscription_id": sub.id,
        "symbol": update.key.symbol,
        "venue": update.key.venue,
        "interval": update.key.timeframe.label,
        "timestamp": sx.ns_to_datetime(update.ts).isoformat().replace("+00:00", "Z"),
        "closed": update.closed,
        "sent_at": sent_at,
    }
    fields = set(sub.fields)
    if "price" in fields:
        msg["price"] = update.close
    if "volume" in fields:
        msg["volume"] = update.volume
    if fields & {"ohlc", "bars"}:
        msg.update(
            open=update.open, high=update.high, low=update.low, close=update.close, volume=update.volume
        )
    return msg
