"""Events and the bus port.

Every event travels in the spec's envelope::

    {"event_id": "...", "event_type": "user.registered", "timestamp": "...Z",
     "data": {...}, "source": "users"}

``Event`` subclasses carry the typed ``data`` and their topic (``<service>.<event>``, past
tense). Delivery is at least once; consumers make it exactly-once with an inbox
(``db.inbox``). ``Bus.publish`` returns only once the bus has *durably accepted* the event:
JetStream has acknowledged it, or, for the in-process bus, which keeps nothing across a
crash, every subscribed group has handled it. The outbox relay marks a row sent only then.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of typed event payloads. Subclasses set ``topic``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    topic: ClassVar[str] = ""


class Envelope(BaseModel):
    """The wire form of an event (spec: Event-Driven Communication)."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
    timestamp: datetime
    data: dict[str, Any]
    source: str

    @classmethod
    def of(cls, event: Event, *, source: str, at: datetime, event_id: uuid.UUID | None = None) -> Envelope:
        if not event.topic:
            raise ValueError(f"{type(event).__name__} has no topic")
        if at.tzinfo is None:
            raise ValueError("event timestamps must be timezone-aware")
        return cls(
            event_id=event_id or uuid.uuid4(),
            event_type=event.topic,
            timestamp=at,
            data=event.model_dump(mode="json"),
            source=source,
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


Handler = Callable[[Envelope], Awaitable[None]]
"""A consumer. Raising means "not handled": the bus redelivers with backoff."""


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stop receiving; in-flight deliveries finish first."""
        ...


class Bus(Protocol):
    """Publish/subscribe with consumer groups and at-least-once delivery.

    ``subscribe(pattern, group=..., handler=...)``: every *group* gets each matching event once
    (redelivered until handled); handlers in the same group share the work. ``pattern`` is an
    event type or a prefix wildcard such as ``"user.*"`` / ``"trading.>"``.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, envelope: Envelope) -> None: ...

    async def subscribe(self, pattern: str, *, group: str, handler: Handler) -> Subscription: ...

    async def ping(self) -> None:
        """Raise if the bus is not usable (for /ready)."""
        ...


def topic_matches(pattern: str, event_type: str) -> bool:
    """NATS-style matching on dot-separated tokens: ``*`` one token, ``>`` the rest."""
    p = pattern.split(".")
    t = event_type.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t):
            return False
        if tok != "*" and tok != t[i]:
            return False
    return len(p) == len(t)
