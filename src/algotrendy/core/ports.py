"""Ports to outside parts that several services share: cache, rate limiter, mail.

Adapters implement them (memory and Redis, console and SMTP); ``app/container.py`` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Cache(Protocol):
    """A TTL key/value cache of bytes. Misses return ``None``; nothing here is the source of truth."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, *, ttl: float | None = None) -> int:
        """Atomically add one and return the new value; ``ttl`` applies when the key is created."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: float
    retry_after: float
    """Seconds until one token is available (0 when allowed)."""


class RateLimiter(Protocol):
    """Token buckets keyed by string: ``capacity`` tokens, refilled at ``rate`` tokens/second."""

    async def hit(self, key: str, *, capacity: float, rate: float, cost: float = 1.0) -> RateDecision: ...

    async def reset(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message (``content_type`` as ``maintype/subtype``)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


class Mailer(Protocol):
    """Sends one message; raises ``core.errors.TemporaryError`` when the server can be retried."""

    async def send(self, message: MailMessage) -> None: ...
