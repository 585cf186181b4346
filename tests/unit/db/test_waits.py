"""``wait_event``: set, timed out, and a cancellation that meets a wake-up is never lost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from algotrendy.db.waits import wait_event


async def test_set_and_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 10) is True


async def _old_style(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


@pytest.mark.parametrize("settle", [0, 1, 2, 3])
async def test_a_cancel_arriving_with_a_wake_up_stops_a_polling_loop(settle: int) -> None:
    """A runner loop polls an event; its stop cancels it just as the event wakes it. The loop
    must end: with ``wait_for`` on Python 3.11 the cancel can be swallowed and it runs on."""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 10)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    event.set()
    for _ in range(settle):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    assert task in done and task.cancelled()
