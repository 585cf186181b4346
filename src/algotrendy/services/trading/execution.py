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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
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
    Fill,
    InvalidTransition,
    Order,
    OrderError,
    OrderSide,
    OrderStatus,
    OrderType,
)
from algotrendy.engine.risk import RiskDecision
from algotrendy.services.trading import store
from algotrendy.services.trading import views as reads
from algotrendy.services.trading.accounts import Books, book_fill, position_from_row, save_position
from algotrendy.services.trading.interface import (
    STATUS_EVENTS,
    AccountHalted,
    FillExecuted,
    OrderCreate,
    OrderCreated,
    OrderDenied,
    OrderRead,
    OrderUnknown,
    PositionClosed,
    PositionOpened,
    PositionUpdated,
    ReconciliationCompleted,
    VenueState,
)

log = structlog.get_logger(__name__)
ZERO = Decimal(0)
RESOLVE_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_POSITION_EVENTS = {"opened": PositionOpened, "updated": PositionUpdated, "closed": PositionClosed}


def _order_event(cls: type, row: dict[str, Any], **extra: Any) -> Any:
    return cls(
        order_id=row["id"],
        portfolio_id=row["portfolio_id"],
        owner_id=row["owner_id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        order_type=row["order_type"],
        quantity=str(row["quantity"]),
        filled_quantity=str(row["filled_quantity"]),
        average_price=None if row["average_price"] is None else str(row["average_price"]),
        status=row["status"],
        reason=row["reason"],
        **extra,
    )


def engine_order(row: dict[str, Any]) -> Order[Decimal]:
    return Order(
        id=str(row["id"]),
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        type=OrderType(row["order_type"]),
        quantity=row["quantity"],
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        trail=row["trail_percent"],
        status=OrderStatus(row["status"]),
        filled_quantity=row["filled_quantity"],
        average_price=row["average_price"],
        fees=row["fees"],
    )


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
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._venues = venues
        self._tasks: set[asyncio.Task[None]] = set()
        self.unknown_grace = timedelta(minutes=2)
        self.fill_listeners: list[Callable[[dict[str, Any], VenueFill], Awaitable[None]]] = []
        """Called after each fill commits (strategy deployments hear their fills here)."""
        self.final_listeners: list[Callable[[dict[str, Any], OrderStatus, str], Awaitable[None]]] = []
        """Called after an order becomes cancelled, rejected or expired."""

    # ---- creating and sending ------------------------------------------------------------------

    def new_order_row(
        self,
        *,
        order_id: uuid.UUID,
        owner_id: uuid.UUID,
        request: OrderCreate,
        client_order_id: str,
        idempotency_key: str | None,
        digest: str,
        venue: str,
        reference: Decimal,
        decision: RiskDecision,
        deployment_id: uuid.UUID | None,
        now: datetime,
        local_id: str | None = None,
        tag: str | None = None,
    ) -> dict[str, Any]:
        allowed = decision.allowed
        return {
            "id": order_id,
            "portfolio_id": request.portfolio_id,
            "owner_id": owner_id,
            "client_order_id": client_order_id,
            "idempotency_key": idempotency_key,
            "request_hash": digest,
            "symbol": request.symbol,
            "side": request.side.value,
            "order_type": request.order_type.value,
            "time_in_force": request.time_in_force.value,
            "quantity": request.quantity,
            "filled_quantity": ZERO,
            "average_price": None,
            "fees": ZERO,
            "limit_price": request.limit_price,
            "stop_price": request.stop_price,
            "trail_percent": request.trail_percent,
            "reduce_only": request.reduce_only,
            "status": (OrderStatus.SUBMITTED if allowed else OrderStatus.REJECTED).value,
            "venue": venue,
            "venue_state": (VenueState.PENDING if allowed else VenueState.NONE).value,
            "venue_order_id": None,
            "reason": None if allowed else f"risk: {decision.reason}",
            "risk": {
                "allowed": allowed,
                "reasons": [{"code": d.code, "message": d.message} for d in decision.denials],
            },
            "reference_price": reference,
            "replaces_order_id": None,
            "deployment_id": deployment_id,
            "local_id": local_id,
            "tag": tag,
            "created_at": now,
            "updated_at": now,
            "submitted_at": now if allowed else None,
            "acknowledged_at": None,
            "first_fill_at": None,
        }

    async def insert_order(self, session: AsyncSession, row: dict[str, Any], decision: RiskDecision) -> None:
        await session.execute(insert(store.orders).values(**row))
        at = row["created_at"]
        created = dict(row, status="created")
        await self._outbox.add(session, _order_event(OrderCreated, created))
        if decision.allowed:
            steps = ((None, "created"), ("created", "validated"), ("validated", "submitted"))
            await session.execute(
                insert(store.order_events),
                [
                    {
                        "order_id": row["id"],
                        "from_status": a,
                        "to_status": b,
                        "accepted": True,
                        "detail": None,
                        "at": at,
                    }
                    for a, b in steps
                ],
            )
            return
        await store.record_event(session, row["id"], None, "created", accepted=True, detail=None, at=at)
        await store.record_event(
            session, row["id"], "created", "rejected", accepted=True, detail=row["reason"], at=at
        )
        reasons = [{"code": d.code, "message": d.message} for d in decision.denials]
        await self._outbox.add(session, _order_event(OrderDenied, row, reasons=reasons))
        await self._outbox.add(session, _order_event(STATUS_EVENTS[OrderStatus.REJECTED], row))

    async def send(self, order_id: uuid.UUID, venue: Venue) -> OrderRead:
        async with self._sessions() as session:
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
        async with self._sessions() as session:
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
        async with self._sessions() as session, session.begin():
            await store.lock_account(session, row["portfolio_id"])
            now = self._clock.now()
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
            await self._outbox.add(session, _order_event(OrderUnknown, dict(row, reason=detail)))
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
            try:
                answer = await venue.cancel(client_order_id=row["client_order_id"], symbol=row["symbol"])
            except VenueRejected:
                answer = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
                if answer is None:
                    await self.finish(row["portfolio_id"], row["id"], OrderStatus.CANCELLED, reason)
            if answer is not None:
                await self.on_venue_order(row["portfolio_id"], answer, venue=venue, reason=reason)
        async with self._sessions() as session:
            return reads.order(await store.order_by_id(session, row["id"]) or row)

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
        async with self._sessions() as session:
            row = await store.order_by_client_id(session, vo.client_order_id)
        if row is None:
            if not await self.adopt(portfolio_id, vo):
                return
            async with self._sessions() as session:
                row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
        if row["portfolio_id"] != portfolio_id:
            return  # another portfolio on the same venue account: its own stream applies it
        if vo.filled_quantity > row["filled_quantity"]:
            # The venue filled more than we booked: fetch those fills first (they carry the
            # prices and trade ids); status follows from them.
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
        async with self._sessions() as session, session.begin():
            await store.lock_account(session, portfolio_id)
            row = await store.order_by_client_id(session, vo.client_order_id)
            assert row is not None
            now = self._clock.now()
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
                why = vo.reason or reason or f"{target.value} by the venue"
                if await self._transition(session, row, target, why):
                    ended = (dict(row, status=target.value, reason=why), target, why)
        if ended is not None:
            await self._notify_final(*ended)

    async def finish(
        self, portfolio_id: uuid.UUID, order_id: uuid.UUID, target: OrderStatus, reason: str
    ) -> None:
        async with self._sessions() as session, session.begin():
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
        now = self._clock.now()
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
        await self._outbox.add(session, _order_event(STATUS_EVENTS[target], new))
        return True

    async def on_fill(self, portfolio_id: uuid.UUID, vf: VenueFill, *, venue: Venue) -> bool:
        """Apply one venue fill (``False`` if it was applied before)."""
        async with self._sessions() as session:
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
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
        async with self._sessions() as session, session.begin():
            account = await store.lock_account(session, portfolio_id)
            assert account is not None
            if await store.fill_exists(session, portfolio_id, vf.trade_id):
                return False
            row = await store.order_by_client_id(session, vf.client_order_id)
            assert row is not None
            booked = await self._book(session, account, row, vf)
        if booked is None:
            return False
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
        """Book one new fill; the order row as it now stands, ``None`` if the fill was refused."""
        now = self._clock.now()
        fill = Fill(
            fill_id=vf.trade_id,
            order_id=str(row["id"]),
            symbol=row["symbol"],
            side=OrderSide(row["side"]),
            quantity=vf.quantity,
            price=vf.price,
            fee=vf.fee,
            ts=vf.ts_ns,
        )
        order = engine_order(row)
        before = OrderStatus(row["status"])
        late = before.is_final
        if late:
            if vf.quantity > order.remaining:
                log.error("trading.fill.exceeds_order", trade_id=vf.trade_id, order_id=str(row["id"]))
                return None
            filled = row["filled_quantity"] + vf.quantity
            avg = (
                vf.price
                if row["average_price"] is None
                else (row["average_price"] * row["filled_quantity"] + vf.price * vf.quantity) / filled
            )
            order.filled_quantity, order.average_price, order.fees = filled, avg, row["fees"] + vf.fee
        else:
            try:
                order.apply_fill(fill)
            except OrderError as exc:
                log.error("trading.fill.refused", trade_id=vf.trade_id, error=str(exc))
                await store.record_event(
                    session, row["id"], before.value, before.value, accepted=False, detail=str(exc), at=now
                )
                return None
        executed = datetime.fromtimestamp(vf.ts_ns / 1e9, UTC) if vf.ts_ns else now
        fill_row_id = uuid.uuid4()
        await session.execute(
            insert(store.fills).values(
                id=fill_row_id,
                portfolio_id=row["portfolio_id"],
                order_id=row["id"],
                venue=row["venue"],
                trade_id=vf.trade_id,
                symbol=row["symbol"],
                side=row["side"],
                quantity=vf.quantity,
                price=vf.price,
                fee=vf.fee,
                fee_currency=vf.fee_currency or account["currency"],
                executed_at=executed,
                created_at=now,
            )
        )
        prow = (
            (
                await session.execute(
                    select(store.positions).where(
                        store.positions.c.portfolio_id == row["portfolio_id"],
                        store.positions.c.symbol == row["symbol"],
                    )
                )
            )
            .mappings()
            .first()
        )
        prow_d = dict(prow) if prow is not None else None
        position = position_from_row(prow_d, row["symbol"])
        books = await Books.load(session, row["portfolio_id"])
        book_fill(books, position, fill, account["currency"])
        status = order.status
        if status is OrderStatus.FILLED:
            books.ledger.release(str(row["id"]))
        await books.save(session, now)
        position_id, kind = await save_position(
            session,
            row=prow_d,
            position=position,
            portfolio_id=row["portfolio_id"],
            owner_id=row["owner_id"],
            price=vf.price,
            now=now,
        )
        await store.update_order(
            session,
            row["id"],
            filled_quantity=order.filled_quantity,
            average_price=order.average_price,
            fees=order.fees,
            status=status.value,
            updated_at=now,
            first_fill_at=row["first_fill_at"] or now,
            # A fill proves the venue has the order: it is acknowledged (and no longer unknown).
            venue_state=VenueState.ACKNOWLEDGED.value,
            venue_order_id=row["venue_order_id"] or vf.venue_order_id,
            acknowledged_at=row["acknowledged_at"] or now,
        )
        detail = f"fill {vf.trade_id}: {vf.quantity} @ {vf.price}" + (" (late fill)" if late else "")
        await store.record_event(
            session, row["id"], before.value, status.value, accepted=True, detail=detail, at=now
        )
        new = dict(
            row,
            status=status.value,
            filled_quantity=order.filled_quantity,
            average_price=order.average_price,
            venue_state=VenueState.ACKNOWLEDGED.value,
        )
        await self._outbox.add(
            session,
            FillExecuted(
                fill_id=fill_row_id,
                order_id=row["id"],
                portfolio_id=row["portfolio_id"],
                owner_id=row["owner_id"],
                trade_id=vf.trade_id,
                symbol=row["symbol"],
                side=row["side"],
                quantity=str(vf.quantity),
                price=str(vf.price),
                fee=str(vf.fee),
            ),
        )
        if status is not before or status is OrderStatus.PARTIAL_FILL:
            await self._outbox.add(session, _order_event(STATUS_EVENTS[status], new))
        await self._outbox.add(
            session,
            _POSITION_EVENTS[kind](
                position_id=position_id,
                portfolio_id=row["portfolio_id"],
                owner_id=row["owner_id"],
                symbol=row["symbol"],
                quantity=str(position.quantity),
                average_price=str(position.average_price) if position.quantity != ZERO else None,
                realized_pnl=str(position.realized_pnl),
            ),
        )
        return new

    async def adopt(self, portfolio_id: uuid.UUID, vo: VenueOrder) -> bool:
        """Record an order the venue has and we do not (placed outside the platform, or lost
        between the venue's accept and our commit). ``False`` when it cannot be attributed: the
        venue account is shared by several portfolios, so the order is logged, not guessed."""
        async with self._sessions() as session, session.begin():
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
            now = self._clock.now()
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
            await self._outbox.add(session, _order_event(OrderCreated, row))
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
        async with self._sessions() as session:
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

    # ---- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, account: dict[str, Any], venue: Venue) -> dict[str, int]:
        pid: uuid.UUID = account["portfolio_id"]
        resolved = adopted = 0
        async with self._sessions() as session:
            local_open = await store.open_orders(session, pid)
        for row in local_open:
            if row["venue_state"] == VenueState.ACKNOWLEDGED.value:
                continue
            found = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
            if found is not None:
                await self.on_venue_order(pid, found, venue=venue)
                resolved += 1
            elif self._clock.now() - row["created_at"] > self.unknown_grace:
                await self.finish(
                    pid, row["id"], OrderStatus.REJECTED, "not placed: the venue has no such order"
                )
                resolved += 1
        venue_open = {o.client_order_id: o for o in await venue.open_orders()}
        async with self._sessions() as session:
            local_open = await store.open_orders(session, pid)
        known = {r["client_order_id"] for r in local_open}
        for cid, vo in venue_open.items():
            if cid not in known:
                async with self._sessions() as session:
                    exists = await store.order_by_client_id(session, cid)
                await self.on_venue_order(pid, vo, venue=venue)
                if exists is None:
                    async with self._sessions() as session:
                        now_row = await store.order_by_client_id(session, cid)
                    adopted += now_row is not None and now_row["portfolio_id"] == pid
        for row in local_open:
            if (
                row["venue_state"] == VenueState.ACKNOWLEDGED.value
                and row["client_order_id"] not in venue_open
            ):
                found = await venue.fetch_order(client_order_id=row["client_order_id"], symbol=row["symbol"])
                if found is not None:
                    await self.on_venue_order(pid, found, venue=venue)
        async with self._sessions() as session:
            last = (
                await session.execute(
                    select(store.fills.c.executed_at)
                    .where(store.fills.c.portfolio_id == pid)
                    .order_by(store.fills.c.executed_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        fills_applied = await self.sync_fills(pid, venue, symbol=None, since=last)
        halted = await self._compare_positions(account, venue)
        async with self._sessions() as session, session.begin():
            await store.lock_account(session, pid)
            await session.execute(
                store.accounts.update()
                .where(store.accounts.c.portfolio_id == pid)
                .values(reconciled_at=self._clock.now())
            )
            await self._outbox.add(
                session,
                ReconciliationCompleted(
                    portfolio_id=pid,
                    owner_id=account["owner_id"],
                    fills_applied=fills_applied,
                    orders_adopted=adopted,
                    orders_resolved=resolved,
                    halted=halted,
                ),
            )
        return {
            "fills_applied": fills_applied,
            "orders_adopted": adopted,
            "orders_resolved": resolved,
            "halted": int(halted),
        }

    async def _compare_positions(self, account: dict[str, Any], venue: Venue) -> bool:
        pid = account["portfolio_id"]
        if not venue.reports_positions:
            return False  # a spot exchange: fills are the only record to reconcile
        theirs = {p.symbol: p.quantity for p in await venue.positions() if p.quantity != ZERO}
        async with self._sessions() as session:
            ours = {
                r["symbol"]: r["quantity"]
                for r in await store.position_rows(session, pid)
                if r["quantity"] != ZERO
            }
        diffs = {s: (ours.get(s, ZERO), theirs.get(s, ZERO)) for s in set(ours) | set(theirs)}
        diffs = {s: d for s, d in diffs.items() if d[0] != d[1]}
        if not diffs:
            return False
        detail = ", ".join(f"{s}: ours {a}, venue {b}" for s, (a, b) in sorted(diffs.items()))
        reason = f"reconciliation: positions differ from the venue ({detail})"
        async with self._sessions() as session, session.begin():
            await store.lock_account(session, pid)
            await session.execute(
                store.accounts.update()
                .where(store.accounts.c.portfolio_id == pid)
                .values(halted_reason=reason[:500])
            )
            await self._outbox.add(
                session, AccountHalted(portfolio_id=pid, owner_id=account["owner_id"], reason=reason)
            )
        log.error("trading.account.halted", portfolio_id=str(pid), reason=reason)
        return True
