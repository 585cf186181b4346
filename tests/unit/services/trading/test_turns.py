"""Per-account turns: FIFO within an account, independent across accounts, nothing kept after."""

from __future__ import annotations

import asyncio
import uuid

from algotrendy.services.trading.turns import Turns


async def test_one_account_runs_in_arrival_order_while_another_is_not_held() -> None:
    turns = Turns()
    a, b = uuid.uuid4(), uuid.uuid4()
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: uuid.UUID, name: str, hold: bool = False) -> None:
        async with turns.turn(key):
            order.append(name)
            if hold:
                await release.wait()

    first = asyncio.create_task(work(a, "a1", hold=True))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(work(a, f"a{i}")) for i in range(2, 6)]
    await asyncio.sleep(0)
    assert turns.waiting(a) == 5
    await asyncio.wait_for(work(b, "b1"), 1)  # another account is not behind a's flood
    assert order == ["a1", "b1"]
    release.set()
    await asyncio.gather(first, *queued)
    assert order == ["a1", "b1", "a2", "a3", "a4", "a5"]
    assert turns.waiting(a) == 0 and turns.waiting(b) == 0
    assert not turns._locks  # idle accounts keep no lock


async def test_a_failure_or_cancellation_gives_the_turn_back() -> None:
    turns = Turns()
    a = uuid.uuid4()
    try:
        async with turns.turn(a):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    holder_in = asyncio.Event()

    async def hold() -> None:
        async with turns.turn(a):
            holder_in.set()
            await asyncio.sleep(10)

    holder = asyncio.create_task(hold())
    await holder_in.wait()
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert turns.waiting(a) == 2
    waiter.cancel()
    holder.cancel()
    await asyncio.gather(holder, waiter, return_exceptions=True)
    assert turns.waiting(a) == 0
    async with turns.turn(a):  # free again
        assert turns.waiting(a) == 1
    assert not turns._holders


async def test_the_holding_task_may_nest_its_turn_while_others_wait() -> None:
    turns = Turns()
    a = uuid.uuid4()
    order: list[str] = []

    async def other() -> None:
        async with turns.turn(a):
            order.append("other")

    async with turns.turn(a):
        waiter = asyncio.create_task(other())
        await asyncio.sleep(0)
        async with turns.turn(a):  # the holder's own nested turn: no wait for itself
            order.append("nested")
        await asyncio.sleep(0)
        assert order == ["nested"] and not waiter.done()  # the turn is still held
    await asyncio.wait_for(waiter, 1)
    assert order == ["nested", "other"]
    assert not turns._locks and not turns._holders
