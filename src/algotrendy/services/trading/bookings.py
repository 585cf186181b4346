"""Writing the order path's rows: a new order's intent (row, state steps, events) and a venue
fill booked into the order, the position, the ledger and the outbox, in the caller's
transaction (under ``store.lock_account``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.events import Event
from algotrendy.core.venue import VenueFill, VenueOrder
from algotrendy.db.outbox import Outbox
from algotrendy.engine.orders import Fill, Order, OrderError, OrderSide, OrderStatus, OrderType
from algotrendy.engine.risk import RiskDecision
from algotrendy.services.trading import store
from algotrendy.services.trading.accounts import Books, book_fill, position_from_row, save_position
from algotrendy.services.trading.interface import (
    STATUS_EVENTS,
    FillExecuted,
    OrderCreate,
    OrderCreated,
    OrderDenied,
    PositionClosed,
    PositionOpened,
    PositionUpdated,
    VenueState,
)

log = structlog.get_logger(__name__)
ZERO = Decimal(0)
_POSITION_EVENTS = {"opened": PositionOpened, "updated": PositionUpdated, "closed": PositionClosed}


def order_event(cls: type, row: dict[str, Any], **extra: Any) -> Any:
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


def new_order_row(
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


def external_order_row(
    order_id: uuid.UUID, account: dict[str, Any], vo: VenueOrder, now: datetime
) -> dict[str, Any]:
    """The row of an order the venue has and we did not place (adopted by reconciliation)."""
    return {
        "id": order_id,
        "portfolio_id": account["portfolio_id"],
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


async def insert_orders(
    session: AsyncSession, outbox: Outbox, placed: Sequence[tuple[RiskDecision, dict[str, Any]]]
) -> None:
    """New orders (as decided, in order) with their steps and their events, a statement per table."""
    steps: list[dict[str, Any]] = []
    events: list[Event] = []
    for decision, row in placed:
        at = row["created_at"]
        events.append(order_event(OrderCreated, dict(row, status="created")))
        if decision.allowed:
            path = [(None, "created", None), ("created", "validated", None), ("validated", "submitted", None)]
        else:
            path = [(None, "created", None), ("created", "rejected", row["reason"])]
            reasons = [{"code": d.code, "message": d.message} for d in decision.denials]
            events.append(order_event(OrderDenied, row, reasons=reasons))
            events.append(order_event(STATUS_EVENTS[OrderStatus.REJECTED], row))
        steps.extend(
            {"order_id": row["id"], "from_status": a, "to_status": b, "accepted": True, "detail": d, "at": at}
            for a, b, d in path
        )
    await session.execute(store.INSERT_ORDER, [row for _, row in placed])
    await session.execute(store.INSERT_ORDER_EVENTS, steps)
    await outbox.add_many(session, events)


async def book_fill_row(
    session: AsyncSession,
    outbox: Outbox,
    account: dict[str, Any],
    row: dict[str, Any],
    vf: VenueFill,
    now: datetime,
) -> dict[str, Any] | None:
    """Book one new fill; the order row as it now stands (every column), ``None`` if the fill
    was refused."""
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
        store.INSERT_FILL,
        {
            "id": fill_row_id,
            "portfolio_id": row["portfolio_id"],
            "order_id": row["id"],
            "venue": row["venue"],
            "trade_id": vf.trade_id,
            "symbol": row["symbol"],
            "side": row["side"],
            "quantity": vf.quantity,
            "price": vf.price,
            "fee": vf.fee,
            "fee_currency": vf.fee_currency or account["currency"],
            "executed_at": executed,
            "created_at": now,
        },
    )
    prow_d = await store.position_row(session, row["portfolio_id"], row["symbol"])
    position = position_from_row(prow_d, row["symbol"])
    books = await Books.load(session, row["portfolio_id"], order_id=row["id"])
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
    changes = {
        "filled_quantity": order.filled_quantity,
        "average_price": order.average_price,
        "fees": order.fees,
        "status": status.value,
        "updated_at": now,
        "first_fill_at": row["first_fill_at"] or now,
        # A fill proves the venue has the order: it is acknowledged (and no longer unknown).
        "venue_state": VenueState.ACKNOWLEDGED.value,
        "venue_order_id": row["venue_order_id"] or vf.venue_order_id,
        "acknowledged_at": row["acknowledged_at"] or now,
    }
    await store.update_order(session, row["id"], **changes)
    detail = f"fill {vf.trade_id}: {vf.quantity} @ {vf.price}" + (" (late fill)" if late else "")
    await store.record_event(
        session, row["id"], before.value, status.value, accepted=True, detail=detail, at=now
    )
    new = dict(row, **changes)
    events: list[Event] = [
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
        )
    ]
    if status is not before or status is OrderStatus.PARTIAL_FILL:
        events.append(order_event(STATUS_EVENTS[status], new))
    events.append(
        _POSITION_EVENTS[kind](
            position_id=position_id,
            portfolio_id=row["portfolio_id"],
            owner_id=row["owner_id"],
            symbol=row["symbol"],
            quantity=str(position.quantity),
            average_price=str(position.average_price) if position.quantity != ZERO else None,
            realized_pnl=str(position.realized_pnl),
        )
    )
    await outbox.add_many(session, events)
    return new
