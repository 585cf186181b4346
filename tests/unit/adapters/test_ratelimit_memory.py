"""MemoryRateLimiter: token buckets on a ManualClock."""

from __future__ import annotations

import pytest

from algotrendy.adapters.ratelimit.memory import MemoryRateLimiter
from algotrendy.core.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock)


async def test_exhaustion_exactly_at_capacity(limiter: MemoryRateLimiter) -> None:
    decisions = [await limiter.hit("k", capacity=5, rate=0.5) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.retry_after == 0 for d in decisions)
    refused = await limiter.hit("k", capacity=5, rate=0.5)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(2.0)  # 1 token at 0.5 tokens/s


async def test_refill_over_time(limiter: MemoryRateLimiter, clock: ManualClock) -> None:
    for _ in range(4):
        assert (await limiter.hit("k", capacity=4, rate=2)).allowed
    clock.advance(0.25)  # half a token
    refused = await limiter.hit("k", capacity=4, rate=2)
    assert not refused.allowed
    assert refused.remaining == pytest.approx(0.5)
    assert refused.retry_after == pytest.approx(0.25)
    clock.advance(refused.retry_after)  # waiting exactly retry_after is enough
    allowed = await limiter.hit("k", capacity=4, rate=2)
    assert allowed.allowed
    assert allowed.remaining == pytest.approx(0)
    clock.advance(1.0)  # two tokens
    assert (await limiter.hit("k", capacity=4, rate=2)).remaining == pytest.approx(1)


async def test_refill_is_capped_at_capacity(limiter: MemoryRateLimiter, clock: ManualClock) -> None:
    assert (await limiter.hit("k", capacity=3, rate=1)).remaining == 2
    clock.advance(1000)
    assert (await limiter.hit("k", capacity=3, rate=1)).remaining == 2


async def test_cost_greater_than_one(limiter: MemoryRateLimiter, clock: ManualClock) -> None:
    first = await limiter.hit("k", capacity=10, rate=1, cost=4)
    assert first.allowed and first.remaining == 6
    second = await limiter.hit("k", capacity=10, rate=1, cost=4)
    assert second.allowed and second.remaining == 2
    third = await limiter.hit("k", capacity=10, rate=1, cost=4)
    assert not third.allowed
    assert third.remaining == 2  # a refused hit takes nothing
    assert third.retry_after == pytest.approx(2.0)  # until 4 tokens, not until 1
    cheap = await limiter.hit("k", capacity=10, rate=1, cost=2)
    assert cheap.allowed and cheap.remaining == 0
    clock.advance(3.5)
    refused = await limiter.hit("k", capacity=10, rate=1, cost=4)
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert (await limiter.hit("k", capacity=10, rate=1, cost=4)).allowed


async def test_keys_are_independent(limiter: MemoryRateLimiter) -> None:
    assert (await limiter.hit("a", capacity=1, rate=0.1)).allowed
    assert not (await limiter.hit("a", capacity=1, rate=0.1)).allowed
    assert (await limiter.hit("b", capacity=1, rate=0.1)).allowed
    assert not (await limiter.hit("b", capacity=1, rate=0.1)).allowed


async def test_reset_refills(limiter: MemoryRateLimiter) -> None:
    assert (await limiter.hit("k", capacity=1, rate=0.001)).allowed
    assert not (await limiter.hit("k", capacity=1, rate=0.001)).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k", capacity=1, rate=0.001)).allowed
    await limiter.reset("never-seen")


async def test_idle_buckets_are_evicted_lru(clock: ManualClock) -> None:
    limiter = MemoryRateLimiter(clock=clock, max_keys=2)
    await limiter.hit("a", capacity=2, rate=0.001)
    await limiter.hit("b", capacity=2, rate=0.001)
    await limiter.hit("a", capacity=2, rate=0.001)  # a is recent, b the least recent
    await limiter.hit("c", capacity=2, rate=0.001)
    assert len(limiter) == 2
    assert (await limiter.hit("b", capacity=2, rate=0.001)).remaining == 1  # b started over: full
    assert (await limiter.hit("c", capacity=2, rate=0.001)).remaining == 0  # c was kept


async def test_cost_zero_peeks(limiter: MemoryRateLimiter) -> None:
    await limiter.hit("k", capacity=3, rate=1)
    peek = await limiter.hit("k", capacity=3, rate=1, cost=0)
    assert peek.allowed and peek.remaining == 2


@pytest.mark.parametrize(
    ("capacity", "rate", "cost"),
    [(0, 1, 1), (1, 0, 1), (1, -1, 1), (2, 1, 3), (2, 1, -1), (float("inf"), 1, 1), (2, float("nan"), 1)],
)
async def test_bad_arguments_are_refused(
    limiter: MemoryRateLimiter, capacity: float, rate: float, cost: float
) -> None:
    with pytest.raises(ValueError):
        await limiter.hit("k", capacity=capacity, rate=rate, cost=cost)
