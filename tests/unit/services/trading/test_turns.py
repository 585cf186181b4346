"""Per-account batches: queued orders run together in arrival order, each caller gets its own
answer, accounts are independent, the lead is handed over, failures and cancellations reach the
right callers, nothing is kept after."""

from __future__ import annotations

import asyncio
import uuid
from typing import NamedTuple

import pytest

from algotrendy.core.errors import TemporaryError
from algotrendy.services.trading.turns import Batches, Queued


class Runner:
    """Answers each item with its double; an item in ``hold`` waits for ``release``."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.hold: set[int] = set()
        self.fail: set[int] = set()

    async def __call__(self, batch: list[Queued[int, int]]) -> None:
        self.batches.append([q.item for q in batch])
        if self.fail & {q.item for q in batch}:
            raise RuntimeError("boom")
        for q in batch:
            if q.item in self.hold:
                await self.release.wait()
            q.answer(q.item * 2)


class Held(NamedTuple):
    run: Runner
    batches: Batches[int, int]
    key: uuid.UUID
    first: asyncio.Task[int]
    rest: list[asyncio.Task[int]]


async def _queued(batches: Batches[int, int], key: uuid.UUID, n: int) -> None:
    for _ in range(50):
        if batches.waiting(key) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{batches.waiting(key)} queued, expected {n}")


async def _held(most: int, queued: tuple[int, ...]) -> Held:
    """Item 1's batch running and held (``run.release``), ``queued`` waiting behind it."""
    run = Runner()
    batches: Batches[int, int] = Batches(run, most=most)
    key = uuid.uuid4()
    run.hold = {1}
    first = asyncio.create_task(batches.submit(key, 1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batches.submit(key, i)) for i in queued]
    await _queued(batches, key, len(queued))
    return Held(run, batches, key, first, rest)


async def test_queued_items_run_as_one_batch_in_order_and_each_gets_its_answer() -> None:
    run, batches, _a, first, rest = await _held(3, (2, 3, 4, 5, 6))
    b = uuid.uuid4()
    assert await asyncio.wait_for(batches.submit(b, 100), 1) == 200  # b is not behind a
    run.release.set()
    assert await asyncio.gather(first, *rest) == [2, 4, 6, 8, 10, 12]
    assert run.batches == [[1], [100], [2, 3, 4], [5, 6]]
    assert not batches._queues and not batches._leaders  # idle accounts keep nothing


async def test_the_leader_answers_its_caller_and_hands_the_lead_over() -> None:
    """A flood never holds the leader's own answer: it leads until its own item is answered."""
    run, _batches, _a, leader, followers = await _held(1, (2, 3, 4))
    run.release.set()
    assert await leader == 2
    assert await asyncio.gather(*followers) == [4, 6, 8]
    assert run.batches == [[1], [2], [3], [4]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    run, _batches, _a, first, rest = await _held(2, (2, 3, 4))
    run.fail = {3}
    run.release.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == 2 and results[3] == 8
    assert all(isinstance(r, RuntimeError) for r in results[1:3])  # the batch [2, 3]
    assert run.batches == [[1], [2, 3], [4]]


async def test_an_unanswered_item_fails_instead_of_hanging() -> None:
    async def forgetful(batch: list[Queued[int, int]]) -> None:
        return None

    batches: Batches[int, int] = Batches(forgetful)
    with pytest.raises(RuntimeError, match="not answered"):
        await asyncio.wait_for(batches.submit(uuid.uuid4(), 1), 1)


async def test_a_cancelled_queued_caller_is_not_run() -> None:
    run, batches, _a, first, (gone, kept) = await _held(64, (2, 3))
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    run.release.set()
    assert await first == 2 and await kept == 6
    assert run.batches == [[1], [3]]
    assert not batches._queues and not batches._leaders


async def test_a_leader_cancelled_mid_batch_hands_the_lead_to_the_next_caller() -> None:
    run, batches, _a, leader, queued = await _held(2, (2, 3, 4))
    leader.cancel()
    results = await asyncio.wait_for(asyncio.gather(leader, *queued, return_exceptions=True), 1)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [4, 6, 8]
    assert run.batches == [[1], [2, 3], [4]]
    assert not batches._queues and not batches._leaders


async def test_others_in_a_cancelled_leaders_batch_learn_the_outcome_is_unknown() -> None:
    run, _batches, _a, first, rest = await _held(3, (2, 3))
    run.release.set()
    run.release = asyncio.Event()
    run.hold = {2}
    await asyncio.sleep(0)
    while run.batches[-1] != [2, 3]:
        await asyncio.sleep(0)
    rest[0].cancel()  # 1's caller was answered and handed the lead to 2's, which runs [2, 3]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert results[0] == 2
    assert isinstance(results[1], asyncio.CancelledError)
    assert isinstance(results[2], TemporaryError)


async def test_the_leading_task_may_submit_again_from_inside_its_batch() -> None:
    batches: Batches[int, int]
    seen: list[list[int]] = []

    async def run(batch: list[Queued[int, int]]) -> None:
        seen.append([q.item for q in batch])
        for q in batch:
            if q.item == 1:  # e.g. a listener placing the account's next order
                q.answer(await batches.submit(key, 10))
            else:
                q.answer(q.item * 2)

    batches = Batches(run)
    key = uuid.uuid4()
    assert await asyncio.wait_for(batches.submit(key, 1), 1) == 20
    assert seen == [[1], [10]]
    assert not batches._queues and not batches._leaders
