"""Real-time order, fill, position and account updates (and risk alerts) for WebSocket clients.

The hub subscribes to the events on the bus (``trading.>`` and the risk monitor's
``risk.threshold.breached``; published from the outbox, so an update is sent only for a change
that committed) under a group of its own per process, so with several processes on NATS every
process sees every event, and fans each one out to the connections of the user it belongs to
(``owner_id``). A slow client's queue is bounded: the oldest updates are dropped first and the
client is told how many it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from algotrendy.core.events import Bus, Envelope, Subscription

QUEUE_SIZE = 1000
TOPICS = ("trading.>", "risk.threshold.breached")


class UpdateHub:
    def __init__(self) -> None:
        self._queues: dict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._subscriptions: list[Subscription] = []
        self._dropped: dict[int, int] = {}

    async def subscribe(self, bus: Bus) -> None:
        group = f"trading-ws-{uuid.uuid4().hex[:12]}"
        for topic in TOPICS:
            self._subscriptions.append(await bus.subscribe(topic, group=group, handler=self._on_event))

    async def unsubscribe(self) -> None:
        for subscription in self._subscriptions:
            await subscription.stop()
        self._subscriptions.clear()

    async def _on_event(self, envelope: Envelope) -> None:
        owner = envelope.data.get("owner_id")
        if owner is None:
            return
        queues = self._queues.get(uuid.UUID(str(owner)))
        if not queues:
            return
        message = {
            "type": envelope.event_type,
            "event_id": str(envelope.event_id),
            "timestamp": envelope.timestamp.isoformat(),
            "data": {k: v for k, v in envelope.data.items() if k != "owner_id"},
        }
        for queue in queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                self._dropped[id(queue)] = self._dropped.get(id(queue), 0) + 1
            queue.put_nowait(message)

    async def updates(
        self, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.setdefault(owner_id, set()).add(queue)
        try:
            while True:
                message = await queue.get()
                dropped = self._dropped.pop(id(queue), 0)
                if dropped:
                    yield {"type": "dropped", "count": dropped}
                if portfolio_id is None or message["data"].get("portfolio_id") == str(portfolio_id):
                    yield message
        finally:
            queues = self._queues.get(owner_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    self._queues.pop(owner_id, None)

    def connections(self, owner_id: uuid.UUID) -> int:
        return len(self._queues.get(owner_id, ()))
