"""Listener calls: at once, or held until the block of the task that opened it ends."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from algotrendy.core.venue import VenueFill
from algotrendy.engine.orders import OrderStatus
from algotrendy.services.trading.listeners import Listeners


def _fill(trade_id: str) -> VenueFill:
    one = Decimal(1)
    return VenueFill(trade_id, "c1", "v1", "AAPL", "BUY", one, one, Decimal(0), "USD", 0)


def _recording(listeners: Listeners) -> list[str]:
    heard: list[str] = []

    async def on_fill(row: dict[str, Any], vf: VenueFill) -> None:
        heard.append(f"fill {vf.trade_id}")

    async def on_final(row: dict[str, Any], status: OrderStatus, reason: str) -> None:
        heard.append(f"{status.value} {row['id']}")

    listeners.fill.append(on_fill)
    listeners.final.append(on_final)
    return heard


async def test_calls_run_at_once_outside_a_block() -> None:
    listeners = Listeners()
    heard = _recording(listeners)
    await listeners.filled({"id": "o1"}, _fill("t1"))
    await listeners.ended({"id": "o1"}, OrderStatus.CANCELLED, "user")
    assert heard == ["fill t1", "cancelled o1"]


async def test_the_block_holds_its_own_task_calls_until_it_ends_in_order() -> None:
    listeners = Listeners()
    heard = _recording(listeners)
    seen_inside: list[str] = []

    async def stream() -> None:  # another task (the venue's stream): never held
        await listeners.filled({"id": "o9"}, _fill("t9"))

    async with listeners.after():
        await listeners.filled({"id": "o1"}, _fill("t1"))
        async with listeners.after():  # nested: the outermost block decides
            await listeners.ended({"id": "o1"}, OrderStatus.REJECTED, "venue")
        await asyncio.create_task(stream())
        seen_inside = list(heard)
    assert seen_inside == ["fill t9"]
    assert heard == ["fill t9", "fill t1", "rejected o1"]


async def test_a_failing_listener_is_logged_and_the_rest_still_hear() -> None:
    listeners = Listeners()

    async def broken(row: dict[str, Any], vf: VenueFill) -> None:
        raise RuntimeError("deployment bug")

    listeners.fill.append(broken)
    heard = _recording(listeners)
    async with listeners.after():
        await listeners.filled({"id": "o1"}, _fill("t1"))
    assert heard == ["fill t1"]


async def test_held_calls_still_run_when_the_block_fails() -> None:
    listeners = Listeners()
    heard = _recording(listeners)
    try:
        async with listeners.after():
            await listeners.filled({"id": "o1"}, _fill("t1"))
            raise ValueError("the order path failed after booking a fill")
    except ValueError:
        pass
    assert heard == ["fill t1"]
    assert not listeners._held
