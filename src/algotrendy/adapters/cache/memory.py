"""In-process TTL + LRU cache: the embedded default for the ``Cache`` port.

Every method runs without awaiting, so each one is atomic within the event loop (``incr`` needs no
lock). Expiry is per key on ``clock.monotonic()``; expired entries are dropped when touched, and the
least recently used entry goes when ``max_entries`` is exceeded.
"""

from __future__ import annotations

from collections import OrderedDict

from algotrendy.core.clock import Clock, SystemClock


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")


class MemoryCache:
    """A bounded TTL/LRU cache of bytes in this process."""

    def __init__(self, max_entries: int = 10_000, clock: Clock | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock: Clock = clock or SystemClock()
        # key -> (value, expires_at on the monotonic scale or None); order = least recent first
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._entries)

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at = entry[1]
        if expires_at is not None and self._clock.monotonic() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: str, value: bytes, expires_at: float | None) -> None:
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock.monotonic() + ttl

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return None if entry is None else entry[0]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        self._store(key, bytes(value), self._expiry(ttl))

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def incr(self, key: str, *, ttl: float | None = None) -> int:
        """Add one and return the new value; ``ttl`` applies only when the key is created."""
        _check_ttl(ttl)
        entry = self._live(key)
        if entry is None:
            self._store(key, b"1", self._expiry(ttl))
            return 1
        try:
            value = int(entry[0]) + 1
        except ValueError:
            raise ValueError(f"cache value at {key!r} is not an integer") from None
        self._store(key, str(value).encode(), entry[1])
        return value

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
