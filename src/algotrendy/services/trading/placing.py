"""Placing one account's checked orders (``TradingService.submit_order`` checks them first):
their intents in ONE serialized transaction (``store.lock_account``), then the venue for each.

Concurrent orders of one account queue in arrival order (``turns.Batches``); whoever leads the
queue places every order queued so far. In the intent transaction each order's pre-trade risk
check (``engine.risk``) runs against positions, open orders and equity as they stand plus the
orders before it in the batch, and a buy's cash is reserved (``engine.ledger``); the order rows
(created -> validated -> submitted, ``venue_state=pending``) and their outbox events are written
in the same transaction. Concurrent orders therefore cannot jointly exceed a limit, within a
batch or across batches and processes (the account lock). A denial is stored as a rejected
order with its reasons and an ``OrderDenied`` event. Only then is the venue called, one order
after the other, and each caller answered as soon as its own order is.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.failpoints import Failpoints
from algotrendy.core.venue import QuoteSource, Venue
from algotrendy.engine.orders import OrderSide
from algotrendy.engine.risk import RiskDecision, RiskLimits
from algotrendy.services.trading import store
from algotrendy.services.trading import views as reads
from algotrendy.services.trading.accounts import Books
from algotrendy.services.trading.bookings import new_order_row
from algotrendy.services.trading.checks import decide, reserve
from algotrendy.services.trading.execution import Execution
from algotrendy.services.trading.interface import OrderCreate, OrderRead
from algotrendy.services.trading.settings import TradingSettings
from algotrendy.services.trading.turns import Batches, Queued
from algotrendy.services.trading.views import account_snapshot, with_order

log = structlog.get_logger(__name__)

Placed = tuple[OrderRead, bool]
"""The order as it stands after the venue's answer, and whether this call created it."""


class Placing:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        relaxed_sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        quotes: QuoteSource,
        settings: TradingSettings,
        execution: Execution,
        failpoints: Failpoints,
        existing: Callable[[Ask], Awaitable[OrderRead | None]],
    ) -> None:
        self._sessions = sessions
        self._relaxed_sessions = relaxed_sessions
        """Sessions whose commits do not wait for the disk (``db.engine``): intents for a venue
        whose book is in this database."""
        self._clock = clock
        self._quotes = quotes
        self._settings = settings
        self._execution = execution
        self._fail = failpoints
        self._existing = existing
        """The order an earlier request made with the same key or client order id, if any."""
        self._batches: Batches[Ask, Placed] = Batches(self._place_batch)
        """One batch of an account's orders at a time in this process (``turns``)."""
        self._day_marks: dict[uuid.UUID, tuple[date, Decimal]] = {}
        """The latest start-of-day equity mark the order path committed or read, per portfolio
        (a mark is stored once and never changed)."""

    async def place(self, ask: Ask) -> Placed:
        return await self._batches.submit(ask.request.portfolio_id, ask)

    async def _place_batch(self, batch: list[Queued[Ask, Placed]]) -> None:
        """The intents of one account's queued orders (risk checks and reservations, in arrival
        order, committed together), then the venue for each. A venue keeping its book in our
        database (paper) records each order after the intents in the same log: their commit
        need not wait for the disk (``Venue``). A denial has no venue record after it to make it
        durable: the batch is decided again, durably. A duplicate key or client order id fails
        the whole transaction: each order is then placed on its own."""
        asks = [q.item for q in batch]
        relaxed = all(a.venue.books_in_our_database for a in asks)
        try:
            try:
                placed = await self._intents(asks, durable=not relaxed)
            except _DecideDurably:
                placed = await self._intents(asks, durable=True)
        except IntegrityError:
            if len(batch) > 1:
                for q in batch:
                    try:
                        await self._place_batch([q])
                    except Exception as exc:
                        q.fail(exc)
                return
            # A concurrent request with the same key or client id won the race: answer with it.
            found = await self._existing(asks[0])
            if found is None:
                raise
            batch[0].answer((found, False))
            return
        self._fail.hit("trading.after_intent_commit")
        for q, (decision, row) in zip(batch, placed, strict=True):
            try:
                with structlog.contextvars.bound_contextvars(**q.item.log_context):  # its request's
                    await self._answer(q, decision, row)
            except Exception as exc:
                q.fail(exc)

    async def _answer(self, q: Queued[Ask, Placed], decision: RiskDecision, row: dict[str, Any]) -> None:
        """The venue for one order of a committed batch, or its denial as stored."""
        if decision.allowed:
            q.answer((await self._execution.send(row["id"], q.item.venue, row), True))
            return
        log.info("trading.order.denied", order_id=str(row["id"]), reason=decision.reason)
        async with self._sessions() as session:
            q.answer((reads.order(await store.order_by_id(session, row["id"]) or {}), True))

    async def _intents(self, asks: list[Ask], *, durable: bool) -> list[tuple[RiskDecision, dict[str, Any]]]:
        """ONE serialized transaction for one account's orders, in order: each one's risk check
        against the account as it stands with the ones before it (their open quantity, their
        reservation, their time for the rate throttle), its reservation, its order row and its
        events. ``_DecideDurably`` (rolled back) for a denial in a transaction that would not wait
        for the disk."""
        pid = asks[0].request.portfolio_id
        per_minute = [a.limits.max_orders_per_minute for a in asks]
        order_times = max((n for n in per_minute if n is not None), default=None)
        placed: list[tuple[RiskDecision, dict[str, Any]]] = []
        sessions = self._sessions if durable else self._relaxed_sessions
        async with sessions() as session, session.begin():
            locked = await store.lock_account(session, pid)
            assert locked is not None  # created by ``submit_order``
            snapshot = await account_snapshot(
                session,
                locked,
                self._quotes,
                self._clock,
                mark_day=True,
                order_times=order_times,
                peak=False,
                known_mark=self._day_marks.get(pid),
            )
            books = Books.new_order(pid, snapshot.balances)
            for ask in asks:
                request, now, order_id = ask.request, self._clock.now(), uuid.uuid4()
                decision = decide(request, ask.reference, snapshot, ask.limits, locked, now)
                if decision.allowed and request.side is OrderSide.BUY:
                    decision = reserve(books, order_id, request, ask.reference, locked, self._settings)
                if not decision.allowed and not durable:
                    raise _DecideDurably
                row = new_order_row(
                    order_id=order_id,
                    owner_id=ask.owner_id,
                    request=request,
                    client_order_id=ask.client_order_id,
                    idempotency_key=ask.idempotency_key,
                    digest=ask.digest,
                    venue=ask.venue.name,
                    reference=ask.reference,
                    decision=decision,
                    deployment_id=ask.deployment_id,
                    now=now,
                    local_id=ask.local_id,
                    tag=ask.tag,
                )
                placed.append((decision, row))
                snapshot = await with_order(snapshot, self._quotes, request, now, placed=decision.allowed)
            await self._execution.insert_orders(session, placed)
            await books.save(session, now)
        # Committed: the day's mark is in the database (stored once, never changed).
        if len(self._day_marks) > 10_000:
            self._day_marks.clear()
        self._day_marks[pid] = (snapshot.day, snapshot.view.day_start_equity)
        return placed


@dataclass(frozen=True, slots=True)
class Ask:
    """One order as ``TradingService.submit_order`` checked it, for the intent and the venue."""

    owner_id: uuid.UUID
    request: OrderCreate
    venue: Venue
    reference: Decimal
    limits: RiskLimits[Decimal]
    digest: str
    idempotency_key: str | None
    client_order_id: str
    deployment_id: uuid.UUID | None
    local_id: str | None
    tag: str | None
    log_context: Mapping[str, Any]
    """The submitting request's log context (its request id): the batch's leader logs this
    order's steps under it."""


class _DecideDurably(Exception):
    """A denial reached in a transaction whose commit would not wait for the disk (rolled back)."""
