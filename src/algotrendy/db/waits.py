"""Waiting for an event with a timeout, without losing a cancellation (here, in the lowest layer
that may use asyncio: the outbox, the bus, the venues and the services all poll this way).

    if await wait_event(self._wakeup, poll):   # True: set; False: timed out
        ...

Why not ``asyncio.wait_for(event.wait(), t)`` under ``suppress(TimeoutError)``: on Python 3.11,
``wait_for`` turns a cancellation that arrives while its own timeout fires into a
``TimeoutError`` (CPython gh-86296, fixed in 3.12 by rebuilding it on ``asyncio.timeout``). A
polling loop that suppresses ``TimeoutError`` then never sees the cancel and runs on, and whoever
awaits the cancelled task (a service's ``stop``) waits forever. Seen here: the jobs runner's stop
hung a test for 300 s on a loaded machine. ``asyncio.timeout`` tells the two apart: an outside
cancellation is always re-raised as ``CancelledError``.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:  # noqa: ASYNC109 - the helper itself
    """Wait until ``event`` is set (``True``) or ``timeout`` seconds pass (``False``); a
    cancellation of the caller always propagates."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
