"""The paper exchange's own records: accounts, orders and fills, and their queries.

The paper broker is a venue, so it keeps its book the way an exchange would: an order it
acknowledged is a committed row before ``submit`` returns, and a fill is a committed row before it
is published (``adapters.brokers.paper``). Three tables on the shared metadata (the trading
service's embedded venue, hence the ``trading_`` prefix):

- ``trading_paper_accounts``: one row per account: its currency and initial cash.
- ``trading_paper_orders``: one row per acknowledged order, updated in place as it works. Besides
  the public fields it keeps the matching state the engine's ``Order`` carries between bars
  (``triggered``: a stop-limit armed or a stop turned market, ``best_price``: a trailing stop's
  best price, ``first_day``: a DAY order's UTC day) and ``active_ns`` (when simulated latency lets
  the order reach the book), so a restarted exchange resumes exactly where it stopped.
- ``trading_paper_fills``: executions, append only. ``id`` orders them; ``trade_id`` is the public,
  stable key (``paper-<uuid>``).

``PaperOrder`` is the in-memory record of one order (the engine ``Order`` plus the venue's
fields); ``build_order`` turns an ``OrderRequest`` into one, or refuses it with the reason;
``PaperAccount`` is an account's cash and positions (engine ``Position``) as the sum of its fills.

Cash and positions are not stored: they are the sum of the fills, recomputed when the exchange
starts (RELIABILITY.md G3/G4). Decimals are ``DecimalString`` (exact text on SQLite and
PostgreSQL); times are epoch nanoseconds (the venue vocabulary) plus a UTC ``*_at`` for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.venue import OrderRequest, VenueFill, VenueOrder, VenueRejected
from algotrendy.db.base import metadata
from algotrendy.db.types import DecimalString, UTCDateTime
from algotrendy.engine.execution import Costs, trailing_level
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from algotrendy.engine.positions import Position

_Id = BigInteger().with_variant(Integer(), "sqlite")
_STATUSES = ", ".join(f"'{s.value}'" for s in OrderStatus)
OPEN_STATUSES = tuple(s.value for s in OrderStatus if s.is_open)
_IMMEDIATE = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.TAKE_PROFIT})
_WORKING = ("type", "status", "filled_quantity", "average_price", "fees", "reason", "triggered", "best_price")

accounts = Table(
    "trading_paper_accounts",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("currency", String(16), nullable=False),
    Column("initial_cash", DecimalString, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

orders = Table(
    "trading_paper_orders",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("venue_order_id", String(64), nullable=False, unique=True),
    Column(
        "account_id",
        String(100),
        ForeignKey("trading_paper_accounts.account_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("client_order_id", String(64), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    Column("time_in_force", String(3), nullable=False),
    Column("quantity", DecimalString, nullable=False),
    Column("limit_price", DecimalString, nullable=True),
    Column("stop_price", DecimalString, nullable=True),
    Column("trail", DecimalString, nullable=True),
    Column("reduce_only", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("filled_quantity", DecimalString, nullable=False),
    Column("average_price", DecimalString, nullable=True),
    Column("fees", DecimalString, nullable=False),
    Column("reason", String(200), nullable=True),
    Column("triggered", Boolean, nullable=False),
    Column("best_price", DecimalString, nullable=True),
    Column("first_day", Integer, nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("active_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "client_order_id", name="uq_trading_paper_orders_client"),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    CheckConstraint("side IN ('BUY', 'SELL')", name="side"),
    Index("ix_trading_paper_orders_status", "status"),
)

fills = Table(
    "trading_paper_fills",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("trade_id", String(64), nullable=False, unique=True),
    Column(
        "account_id",
        String(100),
        ForeignKey("trading_paper_accounts.account_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("venue_order_id", String(64), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", DecimalString, nullable=False),
    Column("price", DecimalString, nullable=False),
    Column("fee", DecimalString, nullable=False),
    Column("fee_currency", String(16), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_trading_paper_fills_account_ts", "account_id", "ts_ns"),
)


@dataclass(slots=True, eq=False)
class PaperOrder:
    """One order on the paper book: the engine ``Order`` plus what the venue knows about it.

    ``type`` is the type as submitted: a triggered STOP or TRAILING_STOP works on as a MARKET
    order (the engine order's ``type`` becomes MARKET), but is still reported as what it was."""

    seq: int
    account_id: str
    client_order_id: str
    type: OrderType
    order: Order[Decimal]
    created_ns: int
    active_ns: int
    updated_ns: int
    first_day: int | None = None

    def view(self) -> VenueOrder:
        o = self.order
        filled = o.filled_quantity
        assert filled is not None  # set by Order.__post_init__
        stop = trailing_level(o) if self.type is OrderType.TRAILING_STOP else o.stop_price
        return VenueOrder(
            client_order_id=self.client_order_id,
            venue_order_id=o.id,
            symbol=o.symbol,
            side=o.side.value,
            type=self.type.value,
            quantity=o.quantity,
            filled_quantity=filled,
            status=o.status.value,
            average_price=o.average_price,
            limit_price=o.limit_price,
            stop_price=stop,
            time_in_force=o.time_in_force.value,
            reason=o.reason,
            updated_ns=self.updated_ns,
        )

    def saved(self) -> tuple[Any, ...]:
        """Everything matching may change, to ``restore`` when a commit fails; the last item is
        ``updated_ns``."""
        o = self.order
        return (*(getattr(o, f) for f in _WORKING), frozenset(o.fill_ids), self.updated_ns)

    def restore(self, saved: tuple[Any, ...]) -> None:
        for name, value in zip(_WORKING, saved, strict=False):
            setattr(self.order, name, value)
        self.order.fill_ids = set(saved[-2])
        self.updated_ns = saved[-1]

    def same_as(self, r: OrderRequest) -> bool:
        """Whether ``r`` asks for this very order (a retry of the same submission)."""
        o = self.order
        have = (o.symbol, o.side.value, self.type.value, o.quantity, o.time_in_force.value)
        prices = (o.limit_price, o.stop_price, o.trail, o.reduce_only)
        asked = (r.symbol, r.side, r.type, r.quantity, r.time_in_force)
        return have == asked and prices == (r.limit_price, r.stop_price, r.trail_percent, bool(r.reduce_only))

    def cost(self, costs: Costs[Decimal], last: Decimal) -> Decimal:
        """What the rest of this buy order would cost: at its limit, or (market, stops) at the
        ``last`` price (no better than its stop) with slippage; plus commission."""
        o = self.order
        price = o.limit_price
        if price is None:
            price = costs.taker_price(OrderSide.BUY, max(last, o.stop_price or last))
        return costs.fee(o.remaining, price) + o.remaining * price

    def fill_view(self, f: Fill[Decimal], currency: str) -> VenueFill:
        return VenueFill(
            trade_id=f.fill_id,
            client_order_id=self.client_order_id,
            venue_order_id=f.order_id,
            symbol=f.symbol,
            side=f.side.value,
            quantity=f.quantity,
            price=f.price,
            fee=f.fee,
            fee_currency=currency,
            ts_ns=f.ts,
        )

    def state(self) -> dict[str, Any]:
        """The columns that change while the order works."""
        o = self.order
        return {
            "status": o.status.value,
            "filled_quantity": o.filled_quantity,
            "average_price": o.average_price,
            "fees": o.fees,
            "reason": None if o.reason is None else o.reason[:200],
            "triggered": o.triggered,
            "best_price": o.best_price,
            "updated_ns": self.updated_ns,
        }


@dataclass(slots=True, eq=False)
class PaperAccount:
    """An account's cash and positions, the running sum of its fills (``book`` each fill once)."""

    account_id: str
    currency: str
    initial_cash: Decimal
    cash: Decimal
    positions: dict[str, Position[Decimal]] = field(default_factory=dict)

    def book(self, fill: Fill[Decimal]) -> None:
        notional = fill.quantity * fill.price
        self.cash += (-notional if fill.side is OrderSide.BUY else notional) - fill.fee
        self.positions.setdefault(fill.symbol, Position.flat(fill.symbol, Decimal(0))).apply(fill)

    def held(self, symbol: str) -> Decimal:
        pos = self.positions.get(symbol)
        return Decimal(0) if pos is None else pos.quantity


def _invalid(message: str) -> VenueRejected:
    return VenueRejected(message, code="invalid_order")


def _positive(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise _invalid(f"{what} must be a Decimal")
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        raise _invalid(f"{what} must be a positive number")
    return number


def build_order(r: OrderRequest, order_id: str) -> Order[Decimal]:
    """The engine order for request ``r``, or ``VenueRejected`` saying what is wrong with it."""
    if not r.client_order_id or len(r.client_order_id) > 64:
        raise _invalid("client_order_id must be 1 to 64 characters")
    if not r.symbol or len(r.symbol) > 40:
        raise _invalid("symbol must be 1 to 40 characters")
    try:
        side, kind, tif = OrderSide(r.side), OrderType(r.type), TimeInForce(r.time_in_force)
    except ValueError as exc:
        raise _invalid(f"unsupported side, order type or time in force: {exc}") from exc
    quantity = _positive(r.quantity, "quantity")
    limit = None if r.limit_price is None else _positive(r.limit_price, "limit price")
    stop = None if r.stop_price is None else _positive(r.stop_price, "stop price")
    trail = None if r.trail_percent is None else _positive(r.trail_percent, "trail percent")
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT)
    if needs_limit != (limit is not None):
        raise _invalid(f"a {kind.value} order {'needs a' if needs_limit else 'takes no'} limit price")
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and stop is None:
        raise _invalid(f"a {kind.value} order needs a stop price")
    if stop is not None and kind not in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP):
        raise _invalid(f"a {kind.value} order takes no stop price")
    if (kind is OrderType.TRAILING_STOP) != (trail is not None):
        raise _invalid("a TRAILING_STOP order needs trail_percent; other orders take none")
    if trail is not None and trail >= 1:
        raise _invalid("trail_percent is a fraction below 1 (0.02 = 2 %)")
    if tif in (TimeInForce.IOC, TimeInForce.FOK) and kind not in _IMMEDIATE:
        raise _invalid(f"{tif.value} applies to MARKET and LIMIT orders, not {kind.value}")
    return Order[Decimal](
        id=order_id,
        symbol=r.symbol,
        side=side,
        type=kind,
        quantity=quantity,
        limit_price=limit,
        stop_price=stop,
        trail=trail,
        time_in_force=tif,
        reduce_only=bool(r.reduce_only),
        tag="paper",
    )


def engine_fill(f: VenueFill) -> Fill[Decimal]:
    return Fill(
        f.trade_id, f.venue_order_id, f.symbol, OrderSide(f.side), f.quantity, f.price, f.fee, ts=f.ts_ns
    )


def _order_from(m: Mapping[str, Any]) -> PaperOrder:
    submitted = OrderType(m["type"])
    triggered = bool(m["triggered"])
    # a triggered stop (or trailing stop) that is still open works as a market order
    working = (
        OrderType.MARKET
        if triggered and submitted in (OrderType.STOP, OrderType.TRAILING_STOP)
        else submitted
    )
    order = Order[Decimal](
        id=m["venue_order_id"],
        symbol=m["symbol"],
        side=OrderSide(m["side"]),
        type=working,
        quantity=m["quantity"],
        limit_price=m["limit_price"],
        stop_price=m["stop_price"],
        trail=m["trail"],
        time_in_force=TimeInForce(m["time_in_force"]),
        reduce_only=bool(m["reduce_only"]),
        status=OrderStatus(m["status"]),
        filled_quantity=m["filled_quantity"],
        average_price=m["average_price"],
        fees=m["fees"],
        reason=m["reason"],
        triggered=triggered,
        best_price=m["best_price"],
    )
    return PaperOrder(
        seq=m["id"],
        account_id=m["account_id"],
        client_order_id=m["client_order_id"],
        type=submitted,
        order=order,
        created_ns=m["created_ns"],
        active_ns=m["active_ns"],
        updated_ns=m["updated_ns"],
        first_day=m["first_day"],
    )


def _fill_from(m: Mapping[str, Any]) -> VenueFill:
    return VenueFill(
        trade_id=m["trade_id"],
        client_order_id=m["client_order_id"],
        venue_order_id=m["venue_order_id"],
        symbol=m["symbol"],
        side=m["side"],
        quantity=m["quantity"],
        price=m["price"],
        fee=m["fee"],
        fee_currency=m["fee_currency"],
        ts_ns=m["ts_ns"],
        liquidity=m["liquidity"],
    )


async def insert_account(
    session: AsyncSession, *, account_id: str, currency: str, initial_cash: Decimal, at: datetime
) -> None:
    await session.execute(
        accounts.insert().values(
            account_id=account_id, currency=currency, initial_cash=initial_cash, created_at=at
        )
    )


async def load_accounts(session: AsyncSession) -> list[tuple[str, str, Decimal]]:
    """Every account as ``(account_id, currency, initial_cash)``."""
    stmt = select(accounts.c.account_id, accounts.c.currency, accounts.c.initial_cash)
    return [(a, c, i) for a, c, i in (await session.execute(stmt)).all()]


# The order path's statements, built once: each call passes its values as parameters, so it
# builds no statement (``.values(...)`` per call cost about 80 coercions per paper order).
_INSERT_ORDER = orders.insert()
_UPDATE_ORDER = orders.update().where(orders.c.venue_order_id == bindparam("_venue_order_id"))
_INSERT_FILL = fills.insert()


async def insert_order(session: AsyncSession, po: PaperOrder, *, at: datetime) -> int:
    """Write a new order; returns its sequence number (the row id)."""
    o = po.order
    values = {
        "venue_order_id": o.id,
        "account_id": po.account_id,
        "client_order_id": po.client_order_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": po.type.value,
        "time_in_force": o.time_in_force.value,
        "quantity": o.quantity,
        "limit_price": o.limit_price,
        "stop_price": o.stop_price,
        "trail": o.trail,
        "reduce_only": o.reduce_only,
        "first_day": po.first_day,
        "created_ns": po.created_ns,
        "active_ns": po.active_ns,
        "created_at": at,
        **po.state(),
    }
    result = cast(CursorResult[Any], await session.execute(_INSERT_ORDER, values))
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for the new paper order")
    return int(key[0])


async def update_order(session: AsyncSession, po: PaperOrder) -> None:
    await session.execute(_UPDATE_ORDER, {**po.state(), "_venue_order_id": po.order.id})


async def find_order(session: AsyncSession, *, account_id: str, client_order_id: str) -> PaperOrder | None:
    stmt = select(orders).where(
        orders.c.account_id == account_id, orders.c.client_order_id == client_order_id
    )
    row = (await session.execute(stmt)).first()
    return None if row is None else _order_from(dict(row._mapping))


async def load_open_orders(session: AsyncSession) -> list[PaperOrder]:
    """Every open order of every account, in submission order."""
    stmt = select(orders).where(orders.c.status.in_(OPEN_STATUSES)).order_by(orders.c.id)
    return [_order_from(dict(row._mapping)) for row in (await session.execute(stmt)).all()]


async def insert_fill(session: AsyncSession, fill: VenueFill, *, account_id: str, at: datetime) -> None:
    await session.execute(
        _INSERT_FILL,
        {
            "trade_id": fill.trade_id,
            "account_id": account_id,
            "venue_order_id": fill.venue_order_id,
            "client_order_id": fill.client_order_id,
            "symbol": fill.symbol,
            "side": fill.side,
            "quantity": fill.quantity,
            "price": fill.price,
            "fee": fill.fee,
            "fee_currency": fill.fee_currency,
            "liquidity": fill.liquidity,
            "ts_ns": fill.ts_ns,
            "created_at": at,
        },
    )


async def load_fills(
    session: AsyncSession,
    *,
    account_id: str,
    symbol: str | None = None,
    since_ns: int | None = None,
    client_order_id: str | None = None,
) -> list[VenueFill]:
    """The fills of an account, oldest first (``since_ns`` inclusive), or of one of its orders."""
    stmt = select(fills).where(fills.c.account_id == account_id)
    if client_order_id is not None:
        stmt = stmt.where(fills.c.client_order_id == client_order_id)
    if symbol is not None:
        stmt = stmt.where(fills.c.symbol == symbol)
    if since_ns is not None:
        stmt = stmt.where(fills.c.ts_ns >= since_ns)
    stmt = stmt.order_by(fills.c.id)
    return [_fill_from(dict(row._mapping)) for row in (await session.execute(stmt)).all()]
