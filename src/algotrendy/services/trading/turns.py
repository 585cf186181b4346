"""One order intent at a time per account in this process, so one account's flood cannot hold
everyone else's orders and cancels.

An order's intent transaction (risk check and cash reservation) locks its account row: on SQLite
every transaction queues for the one connection in arrival order, on PostgreSQL a second intent
for the same account waits on the row lock while holding a pooled connection. Either way, 32
concurrent orders of one account put 32 intents (and their venue and booking transactions) in
front of another user's cancel. Waiting for the account's turn here first costs that account
nothing (its intents are serialized by the row lock anyway) and keeps at most one of its intents
in the database queue, so other accounts' work interleaves with it. Within one process only: the
database lock stays what makes the check and reservation safe across processes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Turns:
    """FIFO turns per key (``asyncio.Lock`` is fair); a key's lock is dropped when nobody holds
    or waits for it, so idle accounts cost no memory."""

    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, key: uuid.UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
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
