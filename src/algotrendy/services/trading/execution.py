"""What the venue says, applied: acknowledgements, status changes, fills, and reconciliation.

Every venue report (the ``submit`` answer, the event stream, a resolved ambiguous order,
reconciliation) goes through ``on_venue_order`` / ``on_fill`` under the account lock, in one
transaction with its outbox events:

- a fill is stored once per ``(portfolio, trade_id)``: a duplicate changes nothing (G3); it
  moves the order through the state machine (``engine.orders.Order.apply_fill``) and books the
  position and the ledger (``accounts.book_fill``). A fill for an order already cancelled or
  expired (it executed before the cancel took effect: the documented late fill) is booked on
  the position and the ledger and counted on the order without changing its final status;
- a status the state machine does not allow is refused, logged and recorded in
  ``trading_order_events`` with ``accepted=false``; nothing else changes (G5);
- an order the venue has and we do not (placed elsewhere, or lost between accept and commit)
  is adopted as an external order.

An ambiguous submission is resolved by ``fetch_order`` with backoff (``resolve``); reconciliation
(on start and periodically) does the rest: pending/unknown orders, open orders, fills since the
last one, and positions. A position difference that fills cannot explain halts the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import TemporaryError
from algotrendy.core.failpoints import NONE as NO_FAILPOINTS
from algotrendy.core.failpoints import Failpoints
from algotrendy.core.venue import (
    OrderRequest,
    Venue,
    VenueAmbiguous,
    VenueError,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from algotrendy.db.outbox import Outbox
from algotrendy.engine.orders import (
    InvalidTransition,
    OrderStatus,
)
from algotrendy.engine.risk import RiskDecision
from algotrendy.services.trading import store
from algotrendy.services.trading import views as reads
from algotrendy.services.trading.accounts import Books
from algotrendy.services.trading.bookings import (
    book_fill_row,
    engine_order,
    insert_order,
    order_event,
)
from algotrendy.services.trading.interface import (
    STATUS_EVENTS,
    OrderCreated,
    OrderRead,
    OrderUnknown,
    VenueState,
)

log = structlog.get_logger(__name__)
ZERO = Decimal(0)
RESOLVE_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Seen:
    """What this process already knows it has applied, so a venue report it repeats (the stream
    echoing the submit answer, a fill delivered twice) is dropped without a database read.

    Only lower bounds are kept: an order's acknowledgement, status and booked quantity only ever
    move forward, and a trade id once booked stays booked, so a remembered state can make a
    report look new (then the database decides) but never hide one that is. Bounded: the oldest
    entries are forgotten first, and a forgotten one is simply read again.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self.fills: OrderedDict[tuple[uuid.UUID, str], None] = OrderedDict()
        self.orders: OrderedDict[str, tuple[bool, OrderStatus, Decimal]] = OrderedDict()

    def fill(self, portfolio_id: uuid.UUID, trade_id: str) -> None:
        self.fills[(portfolio_id, trade_id)] = None
        if len(self.fills) > self._capacity:
            self.fills.popitem(last=False)

    def order(self, row: dict[str, Any]) -> None:
        self.orders[row["client_order_id"]] = (
            row["venue_state"] == VenueState.ACKNOWLEDGED.value,
            OrderStatus(row["status"]),
            row["filled_quantity"],
        )
        self.orders.move_to_end(row["client_order_id"])
        if len(self.orders) > self._capacity:
            self.orders.popitem(last=False)

    def nothing_new(self, vo: VenueOrder) -> bool:
        known = self.orders.get(vo.client_order_id)
        if known is None:
            return False
        acknowledged, status, filled = known
        target = OrderStatus(vo.status)
        final_news = target in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
        return acknowledged and vo.filled_quantity <= filled and (not final_news or status.is_final)


class Execution:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        venues: Any,
        failpoints: Failpoints = NO_FAILPOINTS,
    ) -> None:
        self._fail = failpoints
        self.sessions = sessions
        self.clock = clock
        self.outbox = outbox
        self._venues = venues
        self._tasks: set[asyncio.Task[None]] = set()
        self.unknown_grace = timedelta(minutes=2)
        self.seen = Seen()
        self._cancel_reasons: dict[str, str] = {}
        """Why a cancel was asked, by client order id: the venue's stream may report the
        cancellation before the cancel call returns."""
        self.fill_listeners: list[Callable[[dict[str, Any], VenueFill], Awaitable[None]]] = []
        """Called after each fill commits (strategy deployments hear their fills here)."""
        self.final_listeners: list[Callable[[dict[str, Any], OrderStatus, str], Awaitable[None]]] = []
        """Called after an order becomes cancelled, rejected or expired."""

    # ---- creating and sending ------------------------------------------------------------------

    async def insert_order(self, session: AsyncSession, row: dict[str, Any], decision: RiskDecision) -> None:
        await insert_order(session, self.outbox, row, decision)

    async def send(self, order_id: uuid.UUID, venue: Venue) -> OrderRead:
        async with self.sessions() as session:
            row = await store.order_by_id(session, order_id)
        assert row is not None
        request = OrderRequest(
            client_order_id=row["client_order_id"],
            symbol=row["symbol"],
            side=row["side"],
            type=row["order_type"],
            quantity=row["quantity"],
            time_in_force=row["time_in_force"],
            limit_price=row["limit_price"],
            stop_price=row["stop_price"],
            trail_percent=row["trail_percent"],
            reduce_only=row["reduce_only"],
        )
        try:
            answer = await venue.submit(request)
        except (VenueRejected, VenueUnavailable) as exc:
            # Definitively not placed (G1): the order is rejected, its reservation released.
            what = "rejected by the venue" if isinstance(exc, VenueRejected) else "venue unavailable"
            await self.finish(row["portfolio_id"], order_id, OrderStatus.REJECTED, f"{what}: {exc}")
        except VenueAmbiguous as exc:
            await self._mark_unknown(row, str(exc))
            self.spawn(self.resolve(row["portfolio_id"], row["client_order_id"], row["symbol"], venue))
        else:
            self._fail.hit("trading.after_send")
            await self.on_venue_order(row["portfolio_id"], answer, venue=venue)
            self._fail.hit("trading.after_ack")
        async with self.sessions() as session:
            final = await store.order_by_id(session, order_id)
        return reads.order(final or row)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _mark_unknown(self, row: dict[str, Any], detail: str) -> None:
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, row["portfolio_id"])
            now = self.clock.now()
            await store.update_order(session, row["id"], venue_state=VenueState.UNKNOWN.value, updated_at=now)
            await store.record_event(
                session,
                row["id"],
                row["status"],
                row["status"],
                accepted=True,
                detail=f"unknown: {detail}",
                at=now,
            )
            await self.outbox.add(session, order_event(OrderUnknown, dict(row, reason=detail)))
        log.warning("trading.order.unknown", order_id=str(row["id"]), detail=detail)

    async def resolve(self, portfolio_id: uuid.UUID, client_order_id: str, symbol: str, venue: Venue) -> None:
        """Find out what happened to an ambiguous submission, by client order id only."""
        for delay in RESOLVE_DELAYS:
            await asyncio.sleep(delay)
            try:
                found = await venue.fetch_order(client_order_id=client_order_id, symbol=symbol)
            except VenueError as exc:
                log.info("trading.resolve.retry", client_order_id=client_order_id, error=str(exc))
                continue
            if found is not None:
                await self.on_venue_order(portfolio_id, found, venue=venue)
                return
        log.warning("trading.resolve.pending", client_order_id=client_order_id)

    async def cancel(self, row: dict[str, Any], venue: Venue, reason: str) -> OrderRead:
        if row["venue_state"] == VenueState.NONE.value:
            await self.finish(row["portfolio_id"], row["id"], OrderStatus.CANCELLED, reason)
        else:
            answer: VenueOrder | None
            self._cancel_reasons[row["client_order_id"]] = reason
            try:
                answer = await venue.cancel(client_order_id=row["client_order_id"], symbol=row["symbol"])
            except VenueRejected:
                answer = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
                if answer is None:
                    await self.finish(row["portfolio_id"], row["id"], OrderStatus.CANCELLED, reason)
            except VenueError as exc:
                self._cancel_reasons.pop(row["client_order_id"], None)
                raise TemporaryError(
                    f"{venue.name} did not confirm the cancel ({exc}); the order updates when the venue "
                    "reports, or try again"
                ) from exc
            if answer is not None:
                await self.on_venue_order(row["portfolio_id"], answer, venue=venue, reason=reason)
        async with self.sessions() as session:
            final = await store.order_by_id(session, row["id"]) or row
        self._cancel_reasons.pop(row["client_order_id"], None)
        return reads.order(final)

    # ---- applying venue reports ----------------------------------------------------------------

    async def on_venue_event(
        self, portfolio_id: uuid.UUID, event: VenueOrder | VenueFill, venue: Venue
    ) -> None:
        if isinstance(event, VenueFill):
            await self.on_fill(portfolio_id, event, venue=venue)
        else:
            await self.on_venue_order(portfolio_id, event, venue=venue)

    async def on_venue_order(
        self, portfolio_id: uuid.UUID, vo: VenueOrder, *, venue: Venue, reason: str | None = None
    ) -> None:
        if reason is None and self.seen.nothing_new(vo):
            return
        async with self.sessions() as session:
            row = await store.order_by_client_id(session, vo.client_order_id)
        if row is not None and row["portfolio_id"] == portfolio_id:
            self.seen.order(row)
        if row is None:
            if not await self.adopt(portfolio_id, vo):
                return
            async with self.sessions() as session:
                row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
        if row["portfolio_id"] != portfolio_id:
            return  # another portfolio on the same venue account: its own stream applies it
        if vo.filled_quantity > row["filled_quantity"]:
            # The venue filled more than we booked: book those fills first (they carry the
            # prices and trade ids; the answer may bring them, else they are fetched); status
            # follows from them.
            for vf in vo.fills:
                await self.on_fill(portfolio_id, vf, venue=venue)
            if vo.fills:
                async with self.sessions() as session:
                    row = await store.order_by_client_id(session, vo.client_order_id)
                assert row is not None
            if vo.filled_quantity > row["filled_quantity"]:
                await self.sync_fills(
                    portfolio_id,
                    venue,
                    symbol=vo.symbol,
                    since=row["created_at"],
                    client_order_id=vo.client_order_id,
                )
        target = OrderStatus(vo.status)
        final_news = target in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
        if row["venue_state"] == VenueState.ACKNOWLEDGED.value and (
            not final_news or OrderStatus(row["status"]).is_final
        ):
            return  # nothing new (the stream repeats what the submit answer already said)
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
            now = self.clock.now()
            if row["venue_state"] != VenueState.ACKNOWLEDGED.value:
                await store.update_order(
                    session,
                    row["id"],
                    venue_state=VenueState.ACKNOWLEDGED.value,
                    venue_order_id=vo.venue_order_id,
                    acknowledged_at=now,
                    updated_at=now,
                )
            ended = None
            if final_news:
                asked = (
                    self._cancel_reasons.pop(vo.client_order_id, None)
                    if target is OrderStatus.CANCELLED
                    else None
                )
                why = reason or asked or vo.reason or f"{target.value} by the venue"
                if await self._transition(session, row, target, why):
                    ended = (dict(row, status=target.value, reason=why), target, why)
        if ended is not None:
            await self._notify_final(*ended)

    async def finish(
        self, portfolio_id: uuid.UUID, order_id: uuid.UUID, target: OrderStatus, reason: str
    ) -> None:
        async with self.sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            row = await store.order_by_id(session, order_id)
            assert row is not None
            if target is OrderStatus.REJECTED and row["venue_state"] == VenueState.PENDING.value:
                await store.update_order(session, order_id, venue_state=VenueState.NONE.value)
            changed = await self._transition(session, row, target, reason)
        if changed:
            await self._notify_final(dict(row, status=target.value, reason=reason), target, reason)

    async def _notify_final(self, row: dict[str, Any], status: OrderStatus, reason: str) -> None:
        for listener in self.final_listeners:
            try:
                await listener(row, status, reason)
            except Exception:
                log.exception("trading.listener.failed", order_id=str(row["id"]))

    async def _transition(
        self, session: AsyncSession, row: dict[str, Any], target: OrderStatus, reason: str
    ) -> bool:
        current = OrderStatus(row["status"])
        now = self.clock.now()
        order = engine_order(row)
        try:
            order.transition(target, reason)
        except InvalidTransition as exc:
            if current != target:
                log.warning("trading.order.transition_refused", order_id=str(row["id"]), error=str(exc))
                await store.record_event(
                    session, row["id"], current.value, target.value, accepted=False, detail=str(exc), at=now
                )
            return False
        await store.update_order(session, row["id"], status=target.value, reason=reason, updated_at=now)
        await store.record_event(
            session, row["id"], current.value, target.value, accepted=True, detail=reason, at=now
        )
        if target.is_final:
            books = await Books.load(session, row["portfolio_id"])
            books.ledger.release(str(row["id"]))
            await books.save(session, now)
        new = dict(row, status=target.value, reason=reason)
        await self.outbox.add(session, order_event(STATUS_EVENTS[target], new))
        return True

    async def on_fill(self, portfolio_id: uuid.UUID, vf: VenueFill, *, venue: Venue) -> bool:
        """Apply one venue fill (``False`` if it was applied before)."""
        if (portfolio_id, vf.trade_id) in self.seen.fills:
            return False
        async with self.sessions() as session:
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
                self.seen.fill(portfolio_id, vf.trade_id)
                return False
            row = await store.order_by_client_id(session, vf.client_order_id)
        if row is not None and row["portfolio_id"] != portfolio_id:
            return False  # another portfolio's fill on a shared venue account
        if row is None:
            found = await venue.fetch_order(client_order_id=vf.client_order_id, symbol=vf.symbol)
            if found is None:
                log.error("trading.fill.orphan", trade_id=vf.trade_id, client_order_id=vf.client_order_id)
                return False
            if not await self.adopt(portfolio_id, found):
                return False
        async with self.sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            assert account is not None
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
                return False
            row = await store.order_by_client_id(session, vf.client_order_id)
            assert row is not None
            booked = await self._book(session, account, row, vf)
        self.seen.fill(portfolio_id, vf.trade_id)
        if booked is None:
            return False
        self.seen.order(booked)
        if booked["status"] == OrderStatus.PARTIAL_FILL.value:
            self._fail.hit("trading.after_partial_fill")
        for listener in self.fill_listeners:
            try:
                await listener(booked, vf)
            except Exception:
                log.exception("trading.listener.failed", trade_id=vf.trade_id)
        return True

    async def _book(
        self, session: AsyncSession, account: dict[str, Any], row: dict[str, Any], vf: VenueFill
    ) -> dict[str, Any] | None:
        return await book_fill_row(session, self.outbox, account, row, vf, self.clock.now())

    async def adopt(self, portfolio_id: uuid.UUID, vo: VenueOrder) -> bool:
        """Record an order the venue has and we do not (placed outside the platform, or lost
        between the venue's accept and our commit). ``False`` when it cannot be attributed: the
        venue account is shared by several portfolios, so the order is logged, not guessed."""
        async with self.sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            assert account is not None
            if await store.order_by_client_id(session, vo.client_order_id) is not None:
                return True
            if account["connection_id"] is not None:
                sharing = await session.execute(
                    select(store.accounts.c.portfolio_id).where(
                        store.accounts.c.connection_id == account["connection_id"]
                    )
                )
                if len(sharing.all()) > 1:
                    log.warning(
                        "trading.order.unattributed",
                        client_order_id=vo.client_order_id,
                        connection_id=str(account["connection_id"]),
                    )
                    return False
            now = self.clock.now()
            order_id = uuid.uuid4()
            row = {
                "id": order_id,
                "portfolio_id": portfolio_id,
                "owner_id": account["owner_id"],
                "client_order_id": vo.client_order_id,
                "idempotency_key": None,
                "request_hash": "external",
                "symbol": vo.symbol,
                "side": vo.side,
                "order_type": vo.type,
                "time_in_force": vo.time_in_force,
                "quantity": vo.quantity,
                "filled_quantity": ZERO,
                "average_price": None,
                "fees": ZERO,
                "limit_price": vo.limit_price,
                "stop_price": vo.stop_price,
                "trail_percent": None,
                "reduce_only": False,
                "status": OrderStatus.SUBMITTED.value,
                "venue": account["venue"],
                "venue_state": VenueState.ACKNOWLEDGED.value,
                "venue_order_id": vo.venue_order_id,
                "reason": "adopted from the venue by reconciliation",
                "risk": None,
                "reference_price": None,
                "replaces_order_id": None,
                "deployment_id": None,
                "local_id": None,
                "tag": None,
                "created_at": now,
                "updated_at": now,
                "submitted_at": now,
                "acknowledged_at": now,
                "first_fill_at": None,
            }
            await session.execute(insert(store.orders).values(**row))
            await store.record_event(
                session, order_id, None, "submitted", accepted=True, detail="adopted", at=now
            )
            await self.outbox.add(session, order_event(OrderCreated, row))
        log.warning(
            "trading.order.adopted", client_order_id=vo.client_order_id, portfolio_id=str(portfolio_id)
        )
        return True

    async def sync_fills(
        self,
        portfolio_id: uuid.UUID,
        venue: Venue,
        *,
        symbol: str | None,
        since: datetime | None,
        client_order_id: str | None = None,
    ) -> int:
        """Apply the venue's fills since ``since`` (less a margin for clock skew) that are not
        booked yet: one query finds which are, so a long history costs one round trip."""
        since_ns = int((since - timedelta(minutes=5)).timestamp() * 1e9) if since is not None else None
        found = await venue.fills(symbol=symbol, since_ns=since_ns, client_order_id=client_order_id)
        booked: set[str] = set()
        ids = [f.trade_id for f in found]
        async with self.sessions() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(
                    select(store.fills.c.trade_id).where(
                        store.fills.c.portfolio_id == portfolio_id,
                        store.fills.c.trade_id.in_(ids[start : start + 500]),
                    )
                )
                booked.update(r[0] for r in rows)
        applied = 0
        for vf in found:
            if vf.trade_id not in booked:
                applied += await self.on_fill(portfolio_id, vf, venue=venue)
        return applied

    async def reconcile(self, account: dict[str, Any], venue: Venue) -> dict[str, int]:
        from algotrendy.services.trading.reconcile import reconcile

        return await reconcile(self, account, venue)
