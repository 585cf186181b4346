"""One account's orders are placed one batch at a time in this process (from the intents to
the venue's answers applied): one account's flood cannot hold everyone else's orders and cancels,
and its queued orders share one intent transaction.

An order's intent transaction (risk check and cash reservation) locks its account row: on SQLite
every transaction queues for the one connection in arrival order, on PostgreSQL a second intent
for the same account waits on the row lock while holding a pooled connection. Either way, 32
concurrent orders of one account would put 32 intents (and their venue and booking transactions)
in front of another user's cancel. Here an account's orders queue in arrival order instead, and
at most one batch of them is in the database at a time, so other accounts' work interleaves with
it. Whoever leads the account's queue takes every order queued so far (up to ``most``) and runs
them together (``placing.Placing``: one intent transaction for all, then the venue
for each in order); each caller gets its own order's answer as soon as it is known. When the
leader's own order is answered it hands the lead to the next queued caller, so a flood never
starves the leader's own request.

The price: one account's orders reach the venue one after the other (a slow venue slows that
account only). Listeners that could place the same account's next order (strategy deployments)
hear of fills after the batch (``listeners``). Within one process only: the database lock stays
what makes the check and reservation safe across processes.

Written here: asyncio has queues and locks but no leader-runs-the-batch hand-off.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from algotrendy.core.errors import TemporaryError

T = TypeVar("T")
R = TypeVar("R")


class Queued(Generic[T, R]):
    """One caller's item in its account's queue, and its answer once known."""

    __slots__ = ("_wake", "error", "item", "result", "settled")

    def __init__(self, item: T) -> None:
        self.item = item
        self.settled = False
        self.result: R | None = None
        self.error: BaseException | None = None
        self._wake = asyncio.Event()
        """Set when the answer is in, or when this caller is to lead its account's queue."""

    def answer(self, result: R) -> None:
        if not self.settled:
            self.result, self.settled = result, True
            self._wake.set()

    def fail(self, error: BaseException) -> None:
        if not self.settled:
            self.error, self.settled = error, True
            self._wake.set()


class Batches(Generic[T, R]):
    """Per-key FIFO queues whose items run in batches of at most ``most`` by ``run``; ``run``
    answers (or fails) each item of its batch. Keys nobody waits on keep nothing. A call made
    by the task leading a key (from inside ``run``) runs at once, alone, instead of waiting for
    itself."""

    def __init__(self, run: Callable[[list[Queued[T, R]]], Awaitable[None]], *, most: int = 64) -> None:
        self._run = run
        self._most = most
        self._queues: dict[uuid.UUID, deque[Queued[T, R]]] = {}
        self._leaders: dict[uuid.UUID, asyncio.Task[object] | None] = {}

    async def submit(self, key: uuid.UUID, item: T) -> R:
        me = Queued[T, R](item)
        task = asyncio.current_task()
        if key in self._leaders and self._leaders[key] is task:
            await self._run_batch([me])
            return self._outcome(me)
        queue = self._queues.setdefault(key, deque())
        queue.append(me)
        if key not in self._leaders:
            self._leaders[key] = None  # this caller leads: nobody else does
            me._wake.set()
        try:
            while True:
                await me._wake.wait()
                if me.settled:
                    return self._outcome(me)
                await self._lead(key, me, task)
        except BaseException:
            if me in queue:  # cancelled while queued: the order is not placed
                queue.remove(me)
            if key in self._leaders and self._leaders[key] is None and me._wake.is_set():
                self._hand_over(key)  # asked to lead, but left first
            raise

    async def _lead(self, key: uuid.UUID, me: Queued[T, R], task: asyncio.Task[object] | None) -> None:
        me._wake.clear()
        queue = self._queues[key]
        self._leaders[key] = task
        try:
            while not me.settled and queue:
                batch = [queue.popleft() for _ in range(min(self._most, len(queue)))]
                await self._run_batch(batch)
        finally:
            self._hand_over(key)

    def _hand_over(self, key: uuid.UUID) -> None:
        """The lead to the next queued caller, or the key forgotten when nobody is queued."""
        queue = self._queues.get(key)
        if queue:
            self._leaders[key] = None
            queue[0]._wake.set()
        else:
            self._queues.pop(key, None)
            self._leaders.pop(key, None)

    async def _run_batch(self, batch: list[Queued[T, R]]) -> None:
        try:
            await self._run(batch)
        except asyncio.CancelledError:
            # The leader is going away mid-batch: the others' outcome is not known to them.
            lost = TemporaryError(
                "the order's outcome is not known yet: look it up by its client_order_id or "
                "retry with the same Idempotency-Key"
            )
            for q in batch:
                q.fail(lost)
            raise
        except Exception as exc:
            for q in batch:
                q.fail(exc)
        for q in batch:  # ``run`` must answer each; one it missed is a bug, not a hang
            q.fail(RuntimeError("the order was not answered by its batch"))

    @staticmethod
    def _outcome(me: Queued[T, R]) -> R:
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def waiting(self, key: uuid.UUID) -> int:
        """How many callers are queued for ``key`` (the batch being run not included)."""
        queue = self._queues.get(key)
        return len(queue) if queue else 0
