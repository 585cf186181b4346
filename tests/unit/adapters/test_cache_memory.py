"""MemoryCache: TTL on a ManualClock, LRU bound, incr semantics."""

from __future__ import annotations

import asyncio

import pytest

from algotrendy.adapters.cache.memory import MemoryCache
from algotrendy.core.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def test_get_set_delete(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    assert await cache.get("a") is None
    await cache.set("a", b"1")
    assert await cache.get("a") == b"1"
    await cache.set("a", b"2")
    assert await cache.get("a") == b"2"
    await cache.delete("a")
    assert await cache.get("a") is None
    await cache.delete("missing")  # no error


async def test_expiry_is_per_key(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.set("short", b"s", ttl=5)
    await cache.set("long", b"l", ttl=10)
    await cache.set("forever", b"f")
    clock.advance(4.999)
    assert await cache.get("short") == b"s"
    clock.advance(0.001)  # exactly at the ttl: gone
    assert await cache.get("short") is None
    assert await cache.get("long") == b"l"
    clock.advance(5)
    assert await cache.get("long") is None
    clock.advance(10_000)
    assert await cache.get("forever") == b"f"


async def test_set_replaces_ttl(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"1", ttl=1)
    await cache.set("k", b"2")
    clock.advance(2)
    assert await cache.get("k") == b"2"


async def test_bad_ttl_is_refused(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", b"1", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await cache.incr("k", ttl=-1)


async def test_lru_evicts_least_recently_used(clock: ManualClock) -> None:
    cache = MemoryCache(max_entries=3, clock=clock)
    for key in ("a", "b", "c"):
        await cache.set(key, key.encode())
    assert await cache.get("a") == b"a"  # a is now the most recent; b the least
    await cache.set("d", b"d")
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]
    await cache.incr("e")  # incr also inserts and evicts (a is least recent now)
    assert await cache.get("a") is None
    assert len(cache) == 3


async def test_incr_creates_with_ttl_and_keeps_it(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    assert await cache.incr("n", ttl=10) == 1
    clock.advance(6)
    assert await cache.incr("n", ttl=10) == 2  # ttl not renewed by later increments
    assert await cache.get("n") == b"2"
    clock.advance(4)
    assert await cache.get("n") is None
    assert await cache.incr("n", ttl=10) == 1  # expired: created again with a fresh ttl
    clock.advance(9.9)
    assert await cache.incr("n") == 2


async def test_incr_without_ttl_and_on_existing_value(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.set("n", b"41", ttl=3)
    assert await cache.incr("n", ttl=100) == 42  # existing key: its own ttl stays
    clock.advance(3)
    assert await cache.get("n") is None
    assert await cache.incr("m") == 1
    clock.advance(1e6)
    assert await cache.incr("m") == 2


async def test_incr_on_non_integer_raises(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    await cache.set("s", b"abc")
    with pytest.raises(ValueError, match="not an integer"):
        await cache.incr("s")
    assert await cache.get("s") == b"abc"


async def test_incr_is_atomic_in_the_event_loop(clock: ManualClock) -> None:
    cache = MemoryCache(clock=clock)
    results = await asyncio.gather(*(cache.incr("n", ttl=60) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await cache.get("n") == b"200"


async def test_ping_close_and_default_clock() -> None:
    cache = MemoryCache()
    await cache.ping()
    await cache.set("k", b"v", ttl=60)
    assert await cache.get("k") == b"v"
    await cache.close()
    assert await cache.get("k") is None


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryCache(max_entries=0)
