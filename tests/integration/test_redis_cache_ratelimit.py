"""RedisCache and RedisRateLimiter on a real Redis (ALGO_TEST_REDIS_URL; skipped when down).

Each test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator

import pytest

from algotrendy.adapters.cache.redis import RedisCache
from algotrendy.adapters.ratelimit.memory import MemoryRateLimiter
from algotrendy.adapters.ratelimit.redis import RedisRateLimiter
from algotrendy.core.errors import TemporaryError
from algotrendy.core.ports import RateDecision
from tests.support import require_service

SLOW = 1e-6  # tokens/s: so slow that refill during a test is negligible


@pytest.fixture
def redis_url() -> str:
    return require_service("redis")


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    from redis.asyncio import Redis

    value = f"test:{uuid.uuid4().hex}:"
    yield value
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=value + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def cache(redis_url: str, prefix: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(redis_url, prefix=prefix + "c:")
    yield cache
    await cache.close()


@pytest.fixture
async def limiter(redis_url: str, prefix: str) -> AsyncIterator[RedisRateLimiter]:
    limiter = RedisRateLimiter(redis_url, prefix=prefix + "rl:")
    yield limiter
    await limiter.close()


# ---------------------------------------------------------------- cache


async def test_cache_get_set_delete(cache: RedisCache) -> None:
    await cache.ping()
    assert await cache.get("a") is None
    await cache.set("a", b"\x00\xffbytes")
    assert await cache.get("a") == b"\x00\xffbytes"
    await cache.delete("a")
    assert await cache.get("a") is None
    await cache.delete("missing")


async def test_cache_prefixes_isolate(redis_url: str, prefix: str, cache: RedisCache) -> None:
    other = RedisCache(redis_url, prefix=prefix + "other:")
    try:
        await cache.set("k", b"mine")
        assert await other.get("k") is None
        raw = await cache.client.get(prefix + "c:k")
        assert raw == b"mine"
    finally:
        await other.close()


async def test_cache_expiry(cache: RedisCache) -> None:
    await cache.set("short", b"s", ttl=0.1)
    await cache.set("long", b"l", ttl=30)
    assert await cache.get("short") == b"s"
    await asyncio.sleep(0.25)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"l"


async def test_cache_incr_ttl_applies_on_creation(cache: RedisCache, prefix: str) -> None:
    assert await cache.incr("n", ttl=0.3) == 1
    pttl = await cache.client.pttl(prefix + "c:n")
    assert 0 < pttl <= 300
    await asyncio.sleep(0.1)
    assert await cache.incr("n", ttl=30) == 2  # not renewed
    assert 0 < await cache.client.pttl(prefix + "c:n") <= 200
    await asyncio.sleep(0.3)
    assert await cache.get("n") is None
    assert await cache.incr("n") == 1
    assert await cache.client.pttl(prefix + "c:n") == -1  # no ttl asked: none set
    await cache.set("m", b"41")
    assert await cache.incr("m", ttl=5) == 42
    assert await cache.client.pttl(prefix + "c:m") == -1  # existing key keeps its (no) ttl


async def test_cache_incr_non_integer(cache: RedisCache) -> None:
    await cache.set("s", b"abc")
    with pytest.raises(ValueError, match="not an integer"):
        await cache.incr("s")


async def test_cache_incr_atomic_under_concurrency(cache: RedisCache, prefix: str) -> None:
    results = await asyncio.gather(*(cache.incr("n", ttl=60) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.get("n") == b"200"
    assert 0 < await cache.client.pttl(prefix + "c:n") <= 60_000


async def test_unreachable_redis_is_a_temporary_error() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0")
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(TemporaryError):
            await cache.ping()
        with pytest.raises(TemporaryError):
            await cache.get("k")
        with pytest.raises(TemporaryError):
            await limiter.hit("k", capacity=1, rate=1)
    finally:
        await cache.close()
        await limiter.close()


# ---------------------------------------------------------------- rate limiter


async def test_bucket_exhaustion_exactly_at_capacity(limiter: RedisRateLimiter) -> None:
    decisions = [await limiter.hit("k", capacity=5, rate=SLOW) for _ in range(5)]
    assert all(d.allowed and d.retry_after == 0 for d in decisions)
    assert [d.remaining for d in decisions] == pytest.approx([4, 3, 2, 1, 0], abs=1e-3)
    refused = await limiter.hit("k", capacity=5, rate=SLOW)
    assert not refused.allowed
    assert refused.remaining == pytest.approx(0, abs=1e-3)
    assert refused.retry_after == pytest.approx(1 / SLOW, rel=1e-3)


async def test_refill_over_time_and_expiry(limiter: RedisRateLimiter, prefix: str) -> None:
    assert (await limiter.hit("k", capacity=2, rate=20)).allowed
    assert (await limiter.hit("k", capacity=2, rate=20)).allowed
    refused = await limiter.hit("k", capacity=2, rate=20)
    assert not refused.allowed
    assert 0 < refused.retry_after <= 0.05
    pttl = await limiter.client.pttl(prefix + "rl:k")
    assert 0 < pttl <= 100  # the time to refill fully
    await asyncio.sleep(refused.retry_after + 0.005)
    assert (await limiter.hit("k", capacity=2, rate=20)).allowed
    await asyncio.sleep(0.2)  # fully refilled: the hash has expired
    assert await limiter.client.exists(prefix + "rl:k") == 0
    assert (await limiter.hit("k", capacity=2, rate=20)).remaining == pytest.approx(1, abs=0.01)


async def test_cost_greater_than_one(limiter: RedisRateLimiter) -> None:
    assert (await limiter.hit("k", capacity=10, rate=SLOW, cost=4)).remaining == pytest.approx(6, abs=1e-3)
    assert (await limiter.hit("k", capacity=10, rate=SLOW, cost=4)).remaining == pytest.approx(2, abs=1e-3)
    refused = await limiter.hit("k", capacity=10, rate=SLOW, cost=4)
    assert not refused.allowed
    assert refused.remaining == pytest.approx(2, abs=1e-3)
    assert refused.retry_after == pytest.approx(2 / SLOW, rel=1e-3)
    assert (await limiter.hit("k", capacity=10, rate=SLOW, cost=2)).allowed


async def test_keys_independent_and_reset(limiter: RedisRateLimiter) -> None:
    assert (await limiter.hit("a", capacity=1, rate=SLOW)).allowed
    assert not (await limiter.hit("a", capacity=1, rate=SLOW)).allowed
    assert (await limiter.hit("b", capacity=1, rate=SLOW)).allowed
    await limiter.reset("a")
    assert (await limiter.hit("a", capacity=1, rate=SLOW)).allowed
    assert not (await limiter.hit("b", capacity=1, rate=SLOW)).allowed


async def test_shared_client_is_not_closed(redis_url: str, prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=prefix + "c:")
    limiter = RedisRateLimiter(cache.client, prefix=prefix + "rl:")
    await limiter.hit("k", capacity=1, rate=SLOW)
    await limiter.close()  # not ours: the pool stays open
    await cache.ping()
    await cache.close()


async def test_atomic_under_200_concurrent_hits(limiter: RedisRateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.hit("k", capacity=50, rate=SLOW) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50
    remaining = sorted(d.remaining for d in decisions if d.allowed)
    assert remaining == pytest.approx(list(range(50)), abs=1e-3)


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from algotrendy.adapters.ratelimit.redis import RedisRateLimiter

    async def main(url, prefix, hits):
        control = Redis.from_url(url)
        limiter = RedisRateLimiter(url, prefix=prefix + "rl:")
        # open the pool's connections and load the script first, so both processes start warm
        await asyncio.gather(*(limiter.hit("warmup", capacity=1e9, rate=1) for _ in range(hits)))
        await control.incr(prefix + "ready")
        await control.blpop([prefix + "go"], timeout=30)
        decisions = await asyncio.gather(
            *(limiter.hit("shared", capacity=100, rate=1e-6) for _ in range(hits))
        )
        print(sum(d.allowed for d in decisions))
        await limiter.close()
        await control.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_bucket_shared_across_processes(redis_url: str, prefix: str, limiter: RedisRateLimiter) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, redis_url, prefix, "150",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        for _ in range(2)
    ]  # fmt: skip
    try:
        client = limiter.client
        async with asyncio.timeout(60):
            while int(await client.get(prefix + "ready") or 0) < 2:
                await asyncio.sleep(0.01)
            await client.rpush(prefix + "go", b"1", b"1")
            outputs = [await proc.communicate() for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    allowed = [int(out) for out, _ in outputs]
    assert sum(allowed) == 100, allowed
    assert not (await limiter.hit("shared", capacity=100, rate=SLOW)).allowed


async def test_memory_and_redis_agree(limiter: RedisRateLimiter) -> None:
    memory = MemoryRateLimiter()
    scenario: list[tuple[str, float, float, float]] = [
        # key, capacity, rate, cost
        *[("a", 3, SLOW, 1)] * 4,
        ("b", 10, SLOW, 4),
        ("b", 10, SLOW, 4),
        ("b", 10, SLOW, 4),
        ("b", 10, SLOW, 2),
        ("b", 10, SLOW, 0.5),
        ("c", 2.5, SLOW, 1),
        ("c", 2.5, SLOW, 1),
        ("c", 2.5, SLOW, 1),
        ("c", 2.5, SLOW, 0.5),
        ("c", 2.5, SLOW, 0.5),
        ("a", 3, SLOW, 1),
    ]

    async def run(target: MemoryRateLimiter | RedisRateLimiter) -> list[RateDecision]:
        out = [await target.hit(k, capacity=c, rate=r, cost=x) for k, c, r, x in scenario]
        await target.reset("a")
        out.append(await target.hit("a", capacity=3, rate=SLOW))
        return out

    expected = await run(memory)
    got = await run(limiter)
    assert [d.allowed for d in got] == [d.allowed for d in expected]
    assert [d.allowed for d in expected] == [
        True, True, True, False,  # a: capacity 3
        True, True, False, True, False,  # b: costs 4, 4, 4 (refused: 2 left), 2, 0.5
        True, True, False, True, False,  # c: capacity 2.5: 1, 1, 1 (refused), 0.5, 0.5
        False, True,  # a still empty; after reset full again
    ]  # fmt: skip
    assert [d.remaining for d in got] == pytest.approx([d.remaining for d in expected], abs=1e-3)
    assert [d.retry_after for d in got] == pytest.approx([d.retry_after for d in expected], rel=1e-3)
