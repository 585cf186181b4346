"""Redis token buckets: the split-mode ``RateLimiter``, one bucket shared by every process.

A hit is ONE Lua script, so it is atomic however many processes hit the same key. It reads the
Redis server's clock (``TIME``), so all processes share one clock, and keeps ``tokens`` and ``ts``
(microseconds) in a hash that expires when the bucket would be full again: a missing bucket is a
full one. The arithmetic is ``memory.MemoryRateLimiter``'s, to the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from algotrendy.adapters.cache.redis import close_client, redis_client, redis_errors
from algotrendy.adapters.ratelimit.memory import EPSILON, check_bucket
from algotrendy.core.ports import RateDecision

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS[1] bucket hash; ARGV: capacity, rate (tokens/s), cost, epsilon.
# Returns {allowed (0/1), tokens left, retry_after}; floats as strings (Lua numbers become integers).
_HIT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local epsilon = tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
local elapsed = math.max(0, now - ts) / 1000000
tokens = math.min(capacity, tokens + elapsed * rate)
local allowed = 0
local retry_after = 0
if tokens + epsilon >= cost then
  allowed = 1
  tokens = math.max(0, tokens - cost)
else
  retry_after = (cost - tokens) / rate
end
local refill_ms = math.min(math.ceil((capacity - tokens) / rate * 1000), 1e15)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(1, refill_ms)))
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry_after)}
"""


class RedisRateLimiter:
    """The ``RateLimiter`` port on Redis; pass a URL (we own the pool) or an existing client."""

    def __init__(
        self, url_or_client: str | Redis, *, prefix: str = "algotrendy:rl:", max_connections: int = 50
    ) -> None:
        self._client, self._owned = redis_client(url_or_client, max_connections=max_connections)
        self._prefix = prefix
        self._hit: Any = self._client.register_script(_HIT)

    @property
    def client(self) -> Redis:
        return self._client

    async def hit(self, key: str, *, capacity: float, rate: float, cost: float = 1.0) -> RateDecision:
        check_bucket(capacity, rate, cost)
        args = [repr(float(capacity)), repr(float(rate)), repr(float(cost)), repr(EPSILON)]
        with redis_errors("rate limit"):
            allowed, remaining, retry_after = await self._hit(keys=[self._prefix + key], args=args)
        return RateDecision(allowed=bool(allowed), remaining=float(remaining), retry_after=float(retry_after))

    async def reset(self, key: str) -> None:
        with redis_errors("rate limit reset"):
            await self._client.delete(self._prefix + key)

    async def ping(self) -> None:
        with redis_errors("rate limit ping"):
            await self._client.ping()

    async def close(self) -> None:
        if self._owned:
            await close_client(self._client)
