"""In-process token buckets: the embedded default for the ``RateLimiter`` port.

A bucket holds up to ``capacity`` tokens and refills at ``rate`` tokens per second on
``clock.monotonic()``; a hit takes ``cost`` tokens or is refused with ``retry_after`` = the seconds
until ``cost`` tokens are there. A missing bucket is a full one, so idle buckets can be dropped:
at most ``max_keys`` are kept, the least recently used evicted first. ``hit`` never awaits, so it
is atomic within the event loop. ``redis.RedisRateLimiter`` runs the same arithmetic in Lua.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.ports import RateDecision

EPSILON = 1e-9
"""Float slack: waiting exactly ``retry_after`` must be enough despite rounding."""


def check_bucket(capacity: float, rate: float, cost: float) -> None:
    """Refuse arguments no bucket can honour (shared with the Redis limiter)."""
    if not all(math.isfinite(x) for x in (capacity, rate, cost)):
        raise ValueError("capacity, rate and cost must be finite numbers")
    if not capacity > 0:
        raise ValueError(f"capacity must be positive, got {capacity!r}")
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate!r}")
    if not 0 <= cost <= capacity:
        raise ValueError(f"cost must be between 0 and capacity ({capacity!r}), got {cost!r}")


def take(tokens: float, *, cost: float, rate: float) -> tuple[bool, float, float]:
    """Decide one hit on a refilled bucket: ``(allowed, tokens left, retry_after)``."""
    if tokens + EPSILON >= cost:
        return True, max(0.0, tokens - cost), 0.0
    return False, tokens, (cost - tokens) / rate


class MemoryRateLimiter:
    """Token buckets keyed by string, in this process."""

    def __init__(self, clock: Clock | None = None, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock: Clock = clock or SystemClock()
        self._max_keys = max_keys
        # key -> (tokens, monotonic time they were counted); order = least recent first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, key: str, *, capacity: float, rate: float, cost: float = 1.0) -> RateDecision:
        check_bucket(capacity, rate, cost)
        now = self._clock.monotonic()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - last) * rate)
        allowed, tokens, retry_after = take(tokens, cost=cost, rate=rate)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return RateDecision(allowed=allowed, remaining=tokens, retry_after=retry_after)

    async def reset(self, key: str) -> None:
        self._buckets.pop(key, None)
