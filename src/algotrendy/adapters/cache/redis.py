"""Redis cache: the split-mode ``Cache``, shared by every process.

``redis`` is an optional extra (``algotrendy[redis]``), imported only when a client is built.
Keys are namespaced with ``prefix``. ``incr`` is one Lua script (create-with-ttl is atomic).
A Redis that cannot be reached raises ``core.errors.TemporaryError`` (503, retryable).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from algotrendy.core.errors import ConfigurationError, TemporaryError

if TYPE_CHECKING:
    from redis.asyncio import Redis

_INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCR', KEYS[1])
if created and ARGV[1] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
"""


def redis_client(url_or_client: str | Redis, *, max_connections: int = 50) -> tuple[Redis, bool]:
    """A ``redis.asyncio`` client and whether we own it (and so close it) from a URL or a client.

    The pool blocks (up to 20 s) when all ``max_connections`` are busy instead of failing, so a
    burst of concurrent requests queues for a connection.
    """
    if not isinstance(url_or_client, str):
        return url_or_client, False
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError("Redis needs the 'redis' extra: pip install 'algotrendy[redis]'") from exc
    pool = BlockingConnectionPool.from_url(url_or_client, max_connections=max_connections, timeout=20)
    return Redis.from_pool(pool), True


async def close_client(client: Redis) -> None:
    await client.aclose()


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn an unreachable or timing-out Redis into ``TemporaryError``."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise TemporaryError(f"{what}: Redis is unavailable ({type(exc).__name__})") from exc


def ttl_ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


class RedisCache:
    """The ``Cache`` port on Redis; pass a URL (we own the pool) or an existing client."""

    def __init__(self, url: str | Redis, *, prefix: str = "algotrendy:", max_connections: int = 50) -> None:
        self._client, self._owned = redis_client(url, max_connections=max_connections)
        self._prefix = prefix
        self._incr: Any = self._client.register_script(_INCR)

    @property
    def client(self) -> Redis:
        """The underlying client, e.g. to share its pool with ``RedisRateLimiter``."""
        return self._client

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        with redis_errors("cache get"):
            value = await self._client.get(self._key(key))
        if isinstance(value, str):  # a client given with decode_responses=True
            return value.encode()
        return value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        px = ttl_ms(ttl)
        with redis_errors("cache set"):
            await self._client.set(self._key(key), value, px=px)

    async def delete(self, key: str) -> None:
        with redis_errors("cache delete"):
            await self._client.delete(self._key(key))

    async def incr(self, key: str, *, ttl: float | None = None) -> int:
        """Add one and return the new value; ``ttl`` applies only when the key is created."""
        from redis.exceptions import ResponseError

        px = ttl_ms(ttl)
        with redis_errors("cache incr"):
            try:
                value = await self._incr(keys=[self._key(key)], args=["" if px is None else px])
            except ResponseError as exc:
                if "not an integer" not in str(exc):
                    raise
                raise ValueError(f"cache value at {key!r} is not an integer") from exc
        return int(value)

    async def ping(self) -> None:
        with redis_errors("cache ping"):
            await self._client.ping()

    async def close(self) -> None:
        if self._owned:
            await close_client(self._client)
