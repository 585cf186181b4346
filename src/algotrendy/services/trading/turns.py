"""One order at a time per account in this process (from its intent to the venue's answer
applied), so one account's flood cannot hold everyone else's orders and cancels.

An order's intent transaction (risk check and cash reservation) locks its account row: on SQLite
every transaction queues for the one connection in arrival order, on PostgreSQL a second intent
for the same account waits on the row lock while holding a pooled connection. Either way, 32
concurrent orders of one account put 32 intents (and their venue and booking transactions) in
front of another user's cancel. Waiting for the account's turn here first keeps at most one of
that account's transactions in the database queue, so other accounts' work interleaves with it.
The price: one account's orders reach the venue one after the other (a slow venue slows that
account only). Listeners that could place the same account's next order (strategy deployments)
hear of fills after the turn (``listeners``). Within one process only: the database lock stays
what makes the check and reservation safe across processes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Turns:
    """FIFO turns per key (``asyncio.Lock`` is fair); a key's lock is dropped when nobody holds
    or waits for it, so idle accounts cost no memory. Re-entrant for the task that holds the
    turn: a nested ``turn`` of the same key in that task runs at once instead of waiting for
    itself."""

    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}
        self._holders: dict[uuid.UUID, asyncio.Task[object] | None] = {}

    @asynccontextmanager
    async def turn(self, key: uuid.UUID) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if key in self._holders and self._holders[key] is task:
            yield
            return
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                self._holders[key] = task
                try:
                    yield
                finally:
                    del self._holders[key]
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def waiting(self, key: uuid.UUID) -> int:
        """How many callers hold or wait for ``key``'s turn."""
        entry = self._locks.get(key)
        return entry[1] if entry else 0
