"""Tables of the trading service and their queries.

- ``trading_accounts``: one per portfolio that trades (its venue, currency, halt state);
- ``trading_orders``: every order, its intent (committed before the venue is asked) and state;
  ``client_order_id`` is unique, and so is ``(owner_id, idempotency_key)``;
- ``trading_order_events``: each state change of an order, and each refused one (audit);
- ``trading_fills``: unique per ``(portfolio_id, trade_id)``, so a fill a venue reports twice
  is stored once (RELIABILITY G3);
- ``trading_positions``: one row per (portfolio, symbol), the fold of its fills;
- ``trading_ledger`` and ``trading_balances``: the double-entry journal and its running
  balances per (portfolio, ledger account, currency); ``trading_reservations``: cash held for
  open buy orders;
- ``trading_deployments``: strategies running live, with the template they run (a snapshot) and
  where their local order ids stand; their orders carry ``deployment_id`` and ``local_id``;
- ``trading_day_marks``: equity at the start of each UTC day (daily loss limit);
- ``trading_connections``: exchange and broker API keys, encrypted at rest; ``fingerprint`` (a
  hash of venue, address and key id) is unique: one venue account, one connection.

Amounts are ``DecimalString`` (exact text on both databases).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.db.base import metadata
from algotrendy.db.types import DecimalString, UTCDateTime

_Id = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "trading_accounts",
    metadata,
    Column("portfolio_id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("venue", String(40), nullable=False),
    Column("connection_id", Uuid, nullable=True),
    Column("currency", String(10), nullable=False),
    Column("allow_short", Boolean, nullable=False, default=False),
    Column("halted_reason", String(500), nullable=True),
    Column("reconciled_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lock_seq", Integer, nullable=False, default=0),
)

orders = Table(
    "trading_orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("owner_id", Uuid, nullable=False),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("idempotency_key", String(128), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", String(4), nullable=False),
    Column("order_type", String(20), nullable=False),
    Column("time_in_force", String(4), nullable=False),
    Column("quantity", DecimalString, nullable=False),
    Column("filled_quantity", DecimalString, nullable=False),
    Column("average_price", DecimalString, nullable=True),
    Column("fees", DecimalString, nullable=False),
    Column("limit_price", DecimalString, nullable=True),
    Column("stop_price", DecimalString, nullable=True),
    Column("trail_percent", DecimalString, nullable=True),
    Column("reduce_only", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("venue", String(40), nullable=False),
    Column("venue_state", String(20), nullable=False),
    Column("venue_order_id", String(100), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("risk", JSON, nullable=True),
    Column("reference_price", DecimalString, nullable=True),
    Column("replaces_order_id", Uuid, nullable=True),
    Column("deployment_id", Uuid, nullable=True),
    Column("local_id", String(20), nullable=True),
    Column("tag", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime, nullable=True),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("first_fill_at", UTCDateTime, nullable=True),
    UniqueConstraint("owner_id", "idempotency_key", name="uq_trading_orders_owner_key"),
    Index("ix_trading_orders_portfolio_status", "portfolio_id", "status"),
    Index("ix_trading_orders_portfolio_created", "portfolio_id", "created_at"),  # the rate throttle
    Index("ix_trading_orders_owner_created", "owner_id", "created_at"),
    Index("ix_trading_orders_venue_state", "venue_state"),
    Index("ix_trading_orders_deployment", "deployment_id", "local_id"),
)

deployments = Table(
    "trading_deployments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("strategy_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("template", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("symbols", JSON, nullable=False),
    Column("interval", String(10), nullable=False),
    Column("allocation", DecimalString, nullable=False),
    Column("warmup_bars", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("next_id", Integer, nullable=False),
    Column("bars_seen", Integer, nullable=False),
    Column("last_bar_ts", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

order_events = Table(
    "trading_order_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("order_id", Uuid, nullable=False, index=True),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("detail", String(500), nullable=True),
    Column("at", UTCDateTime, nullable=False),
)

fills = Table(
    "trading_fills",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("order_id", Uuid, nullable=False, index=True),
    Column("venue", String(40), nullable=False),
    Column("trade_id", String(100), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", DecimalString, nullable=False),
    Column("price", DecimalString, nullable=False),
    Column("fee", DecimalString, nullable=False),
    Column("fee_currency", String(10), nullable=False),
    Column("executed_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("portfolio_id", "trade_id", name="uq_trading_fills_portfolio_trade"),
)

positions = Table(
    "trading_positions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("owner_id", Uuid, nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("quantity", DecimalString, nullable=False),
    Column("average_price", DecimalString, nullable=False),
    Column("realized_pnl", DecimalString, nullable=False),
    Column("fees", DecimalString, nullable=False),
    Column("entry_fees", DecimalString, nullable=False),
    Column("last_price", DecimalString, nullable=True),
    Column("opened_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("portfolio_id", "symbol", name="uq_trading_positions_portfolio_symbol"),
)

ledger = Table(
    "trading_ledger",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("txn_id", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("account", String(60), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", DecimalString, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("portfolio_id", "txn_id", "account", name="uq_trading_ledger_txn_account"),
)

balances = Table(
    "trading_balances",
    metadata,
    Column("portfolio_id", Uuid, nullable=False),
    Column("account", String(60), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("amount", DecimalString, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "account", "currency"),
)

reservations = Table(
    "trading_reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False, index=True),
    Column("currency", String(10), nullable=False),
    Column("amount", DecimalString, nullable=False),
)

day_marks = Table(
    "trading_day_marks",
    metadata,
    Column("portfolio_id", Uuid, nullable=False),
    Column("day", Date, nullable=False),
    Column("equity", DecimalString, nullable=False),
    PrimaryKeyConstraint("portfolio_id", "day"),
)

connections = Table(
    "trading_connections",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("venue", String(40), nullable=False),
    Column("label", String(100), nullable=False),
    Column("sandbox", Boolean, nullable=False),
    Column("api_key", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("password", Text, nullable=True),
    Column("base_url", String(300), nullable=True),
    Column("permissions", String(300), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)


# The order path's statements, built once: a statement built per call costs more Python than
# running it (SQLAlchemy memoizes the cache key of a statement object, not of a rebuilt one).
_ACCOUNT = select(accounts).where(accounts.c.portfolio_id == bindparam("pid"))
_ACCOUNT_FOR_UPDATE = _ACCOUNT.with_for_update()
_ORDER_BY_ID = select(orders).where(orders.c.id == bindparam("oid"))
_ORDER_BY_CLIENT_ID = select(orders).where(orders.c.client_order_id == bindparam("coid"))
_FILL_EXISTS = select(fills.c.id).where(
    fills.c.portfolio_id == bindparam("pid"), fills.c.trade_id == bindparam("trade")
)
_BALANCES = select(balances.c.account, balances.c.currency, balances.c.amount).where(
    balances.c.portfolio_id == bindparam("pid")
)
_RESERVATIONS = select(reservations.c.order_id, reservations.c.currency, reservations.c.amount).where(
    reservations.c.portfolio_id == bindparam("pid")
)
_RESERVATION = select(reservations.c.order_id, reservations.c.currency, reservations.c.amount).where(
    reservations.c.order_id == bindparam("oid")
)
_POSITION = select(positions).where(
    positions.c.portfolio_id == bindparam("pid"), positions.c.symbol == bindparam("symbol")
)
_POSITIONS = (
    select(positions).where(positions.c.portfolio_id == bindparam("pid")).order_by(positions.c.symbol)
)
OPEN_STATUSES = ("created", "validated", "submitted", "partial_fill")
"""The order statuses that may still fill (``engine.orders.OrderStatus.is_open``)."""
_OPEN_ORDERS = (
    select(orders)
    .where(orders.c.portfolio_id == bindparam("pid"), orders.c.status.in_(OPEN_STATUSES))
    .order_by(orders.c.created_at)
)
_RECENT_ORDERS = (
    select(orders.c.created_at)
    .where(orders.c.portfolio_id == bindparam("pid"), orders.c.created_at > bindparam("since"))
    .order_by(orders.c.created_at.desc())
    .limit(bindparam("n"))
)
_ZERO = Decimal(0)
_PENDING = select(orders.c.symbol, orders.c.side, orders.c.quantity, orders.c.filled_quantity).where(
    orders.c.portfolio_id == bindparam("pid"), orders.c.status.in_(OPEN_STATUSES)
)
_DAY_MARK = select(day_marks.c.equity).where(
    day_marks.c.portfolio_id == bindparam("pid"), day_marks.c.day == bindparam("day")
)
_RECORD_EVENT = insert(order_events)
_UPDATE_ORDER = update(orders).where(orders.c.id == bindparam("o_id"))
INSERT_ORDER = insert(orders)
INSERT_FILL = insert(fills)
INSERT_ORDER_EVENTS = insert(order_events)
INSERT_POSITION = insert(positions)
UPDATE_POSITION = update(positions).where(positions.c.id == bindparam("p_id"))
INSERT_LEDGER = insert(ledger)
INSERT_BALANCE = insert(balances)
UPDATE_BALANCE = (
    update(balances)
    .where(
        balances.c.portfolio_id == bindparam("b_pid"),
        balances.c.account == bindparam("b_account"),
        balances.c.currency == bindparam("b_currency"),
    )
    .values(amount=bindparam("b_amount"))
)
INSERT_RESERVATION = insert(reservations)
UPDATE_RESERVATION = (
    update(reservations)
    .where(reservations.c.order_id == bindparam("r_id"))
    .values(amount=bindparam("r_amount"))
)
DELETE_RESERVATION = reservations.delete().where(reservations.c.order_id == bindparam("r_id"))


def _locks_rows(session: AsyncSession) -> bool:
    """Whether the session's database needs ``FOR UPDATE`` (PostgreSQL; SQLite locks the file)."""
    return session.get_bind().dialect.name != "sqlite"


async def lock_account(session: AsyncSession, portfolio_id: uuid.UUID) -> dict[str, Any] | None:
    """The account row, locked for the rest of the transaction (G6).

    SQLite transactions already begin ``IMMEDIATE`` (one writer at a time); PostgreSQL takes a
    row lock with ``SELECT ... FOR UPDATE``, so two processes serialize on the same account."""
    stmt = _ACCOUNT_FOR_UPDATE if _locks_rows(session) else _ACCOUNT
    row = (await session.execute(stmt, {"pid": portfolio_id})).mappings().first()
    return dict(row) if row is not None else None


async def get_account(session: AsyncSession, portfolio_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(_ACCOUNT, {"pid": portfolio_id})).mappings().first()
    return dict(row) if row is not None else None


async def order_by_id(session: AsyncSession, order_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(_ORDER_BY_ID, {"oid": order_id})).mappings().first()
    return dict(row) if row is not None else None


async def order_by_client_id(session: AsyncSession, client_order_id: str) -> dict[str, Any] | None:
    row = (await session.execute(_ORDER_BY_CLIENT_ID, {"coid": client_order_id})).mappings().first()
    return dict(row) if row is not None else None


async def order_by_key(session: AsyncSession, owner_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    row = (
        (
            await session.execute(
                select(orders).where(orders.c.owner_id == owner_id, orders.c.idempotency_key == key)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def open_orders(session: AsyncSession, portfolio_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(_OPEN_ORDERS, {"pid": portfolio_id})
    return [dict(r) for r in rows.mappings()]


async def pending(session: AsyncSession, portfolio_id: uuid.UUID) -> dict[str, Decimal]:
    """What the account's open orders would still add, per symbol (buys positive): the four
    columns it needs, not the orders (an account may rest thousands of orders)."""
    out: dict[str, Decimal] = {}
    for symbol, side, quantity, filled in await session.execute(_PENDING, {"pid": portfolio_id}):
        left = quantity - filled
        out[symbol] = out.get(symbol, _ZERO) + (left if side == "BUY" else -left)
    return out


async def recent_order_times(
    session: AsyncSession, portfolio_id: uuid.UUID, since: datetime, limit: int
) -> list[datetime]:
    """The times of the portfolio's latest ``limit`` orders after ``since``: a rate throttle of
    ``limit`` orders needs no more to decide (an index on portfolio and time serves it)."""
    rows = await session.execute(_RECENT_ORDERS, {"pid": portfolio_id, "since": since, "n": limit})
    return [r[0] for r in rows]


async def position_rows(session: AsyncSession, portfolio_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(_POSITIONS, {"pid": portfolio_id})
    return [dict(r) for r in rows.mappings()]


async def position_by_id(session: AsyncSession, position_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(select(positions).where(positions.c.id == position_id))).mappings().first()
    return dict(row) if row is not None else None


async def balance_rows(session: AsyncSession, portfolio_id: uuid.UUID) -> dict[tuple[str, str], Decimal]:
    rows = await session.execute(_BALANCES, {"pid": portfolio_id})
    return {(a, c): amount for a, c, amount in rows}


async def reservation_rows(
    session: AsyncSession, portfolio_id: uuid.UUID, order_id: uuid.UUID | None = None
) -> dict[str, tuple[str, Decimal]]:
    """The account's reservations (only ``order_id``'s when given)."""
    if order_id is None:
        rows = await session.execute(_RESERVATIONS, {"pid": portfolio_id})
    else:
        rows = await session.execute(_RESERVATION, {"oid": order_id})
    return {str(o): (c, a) for o, c, a in rows}


async def position_row(session: AsyncSession, portfolio_id: uuid.UUID, symbol: str) -> dict[str, Any] | None:
    row = (await session.execute(_POSITION, {"pid": portfolio_id, "symbol": symbol})).mappings().first()
    return dict(row) if row is not None else None


async def fill_exists(session: AsyncSession, portfolio_id: uuid.UUID, trade_id: str) -> bool:
    row = await session.execute(_FILL_EXISTS, {"pid": portfolio_id, "trade": trade_id})
    return row.first() is not None


async def day_mark(session: AsyncSession, portfolio_id: uuid.UUID, day: date) -> Decimal | None:
    row = await session.execute(_DAY_MARK, {"pid": portfolio_id, "day": day})
    value = row.scalar_one_or_none()
    return Decimal(value) if value is not None else None


async def peak_mark(session: AsyncSession, portfolio_id: uuid.UUID) -> Decimal | None:
    """The highest start-of-day equity recorded for the portfolio (the drawdown's high-water mark)."""
    rows = await session.execute(select(day_marks.c.equity).where(day_marks.c.portfolio_id == portfolio_id))
    marks = [Decimal(v) for (v,) in rows]
    return max(marks) if marks else None


async def set_day_mark(session: AsyncSession, portfolio_id: uuid.UUID, day: date, equity: Decimal) -> None:
    await session.execute(insert(day_marks).values(portfolio_id=portfolio_id, day=day, equity=equity))


async def record_event(
    session: AsyncSession,
    order_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    *,
    accepted: bool,
    detail: str | None,
    at: datetime,
) -> None:
    await session.execute(
        _RECORD_EVENT,
        {
            "order_id": order_id,
            "from_status": from_status,
            "to_status": to_status,
            "accepted": accepted,
            "detail": (detail or "")[:500] or None,
            "at": at,
        },
    )


async def update_order(session: AsyncSession, order_id: uuid.UUID, **values: Any) -> None:
    await session.execute(_UPDATE_ORDER, {**values, "o_id": order_id})


def as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as reading it back would give it: decimals in the canonical form ``DecimalString``
    stores, times in UTC (for answering with a row just written instead of reading it again)."""
    out = dict(row)
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = Decimal(format(value, "f"))
        elif isinstance(value, datetime):
            out[key] = value.astimezone(UTC)
    return out


def pending_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["venue_state"] in ("pending", "unknown")]
