"""Who hears of booked fills and final orders (strategy deployments), and when.

A listener runs after the commit that booked what it hears of, in the task that committed it.
One exception: inside ``after(...)`` (an order placed through its account's queue, ``turns``),
the calls that task makes are held and run in order when the block ends, after the task has
handed on the lead of that queue. A deployment that hears a fill may place its next order on the
same account; run inside the batch, that order would be placed in the middle of the batch that
booked the fill, ahead of the orders queued before it. Calls made by other tasks (the venue's
event stream, reconciliation) are never held: only the task that opened the block.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog

from algotrendy.core.venue import VenueFill
from algotrendy.engine.orders import OrderStatus

log = structlog.get_logger(__name__)

FillListener = Callable[[dict[str, Any], VenueFill], Awaitable[None]]
FinalListener = Callable[[dict[str, Any], OrderStatus, str], Awaitable[None]]


class Listeners:
    def __init__(self) -> None:
        self.fill: list[FillListener] = []
        """Called after each fill commits (strategy deployments hear their fills here)."""
        self.final: list[FinalListener] = []
        """Called after an order becomes cancelled, rejected or expired."""
        self._held: dict[asyncio.Task[Any], list[Callable[[], Awaitable[None]]]] = {}

    @asynccontextmanager
    async def after(self) -> AsyncIterator[None]:
        """Hold this task's listener calls until the block ends (nested blocks: the outermost)."""
        task = asyncio.current_task()
        if task is None or task in self._held:
            yield
            return
        held = self._held[task] = []
        try:
            yield
        finally:
            del self._held[task]
            for call in held:
                await call()

    async def filled(self, row: dict[str, Any], vf: VenueFill) -> None:
        for listener in self.fill:
            await self._run(functools.partial(listener, row, vf), trade_id=vf.trade_id)

    async def ended(self, row: dict[str, Any], status: OrderStatus, reason: str) -> None:
        for listener in self.final:
            await self._run(functools.partial(listener, row, status, reason), order_id=str(row["id"]))

    async def _run(self, call: Callable[[], Awaitable[None]], **context: str) -> None:
        async def guarded() -> None:
            try:
                await call()
            except Exception:
                log.exception("trading.listener.failed", **context)

        task = asyncio.current_task()
        held = self._held.get(task) if task is not None else None
        if held is not None:
            held.append(guarded)
        else:
            await guarded()
