"""Read models of the trading service: rows to DTOs, the account snapshot the risk check and the
account endpoint share, order lists and execution statistics."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid
from algotrendy.core.venue import QuoteSource
from algotrendy.engine.orders import OrderSide, OrderStatus
from algotrendy.engine.risk import AccountView as RiskView
from algotrendy.engine.risk import Holding
from algotrendy.services.trading import store
from algotrendy.services.trading.interface import (
    AccountRead,
    AccountView,
    ExecutionStats,
    FillRead,
    OrderCreate,
    OrderPage,
    OrderRead,
    PositionRead,
    RiskCheckRead,
)

ZERO = Decimal(0)
MAX_PAGE = 500


def order(row: dict[str, Any]) -> OrderRead:
    risk = row.get("risk")
    return OrderRead(
        order_id=row["id"],
        portfolio_id=row["portfolio_id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        order_type=row["order_type"],
        time_in_force=row["time_in_force"],
        quantity=row["quantity"],
        filled_quantity=row["filled_quantity"],
        remaining_quantity=row["quantity"] - row["filled_quantity"],
        average_price=row["average_price"],
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        trail_percent=row["trail_percent"],
        reduce_only=row["reduce_only"],
        status=row["status"],
        venue=row["venue"],
        venue_state=row["venue_state"],
        venue_order_id=row["venue_order_id"],
        fees=row["fees"],
        reason=row["reason"],
        risk=RiskCheckRead.model_validate(risk) if risk else None,
        replaces_order_id=row["replaces_order_id"],
        deployment_id=row["deployment_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def fill(row: dict[str, Any]) -> FillRead:
    return FillRead(
        fill_id=row["id"],
        order_id=row["order_id"],
        portfolio_id=row["portfolio_id"],
        trade_id=row["trade_id"],
        symbol=row["symbol"],
        side=row["side"],
        quantity=row["quantity"],
        price=row["price"],
        fee=row["fee"],
        fee_currency=row["fee_currency"],
        executed_at=row["executed_at"],
    )


async def fills(
    session: AsyncSession, *, order_id: uuid.UUID | None, portfolio_id: uuid.UUID | None
) -> list[FillRead]:
    q = select(store.fills).order_by(store.fills.c.executed_at, store.fills.c.created_at)
    if order_id is not None:
        q = q.where(store.fills.c.order_id == order_id)
    if portfolio_id is not None:
        q = q.where(store.fills.c.portfolio_id == portfolio_id)
    rows = await session.execute(q.limit(10_000))
    return [fill(dict(r)) for r in rows.mappings()]


async def mark(quotes: QuoteSource, symbol: str, fallback: Decimal | None) -> Decimal | None:
    quote = await quotes.last(symbol)
    return quote.price if quote is not None else fallback


async def position(row: dict[str, Any], quotes: QuoteSource) -> PositionRead:
    qty: Decimal = row["quantity"]
    price = await mark(quotes, row["symbol"], row["last_price"])
    avg = row["average_price"] if qty != ZERO else None
    return PositionRead(
        position_id=row["id"],
        portfolio_id=row["portfolio_id"],
        symbol=row["symbol"],
        side="long" if qty > 0 else "short" if qty < 0 else "flat",
        quantity=qty,
        average_price=avg,
        market_price=price,
        market_value=qty * price if price is not None else None,
        unrealized_pnl=(price - row["average_price"]) * qty if price is not None else None,
        realized_pnl=row["realized_pnl"],
        fees=row["fees"],
        opened_at=row["opened_at"] if qty != ZERO else None,
        updated_at=row["updated_at"],
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    view: RiskView[Decimal]
    read: AccountRead
    public_view: AccountView
    balances: dict[tuple[str, str], Decimal]
    """The ledger balances as read (the order path's ``Books`` reuse them in its transaction)."""
    day: date
    """The day of ``view.day_start_equity``."""


async def account_snapshot(
    session: AsyncSession,
    account: dict[str, Any],
    quotes: QuoteSource,
    clock: Clock,
    *,
    mark_day: bool = False,
    order_times: int | None = None,
    peak: bool = True,
    known_mark: tuple[date, Decimal] | None = None,
) -> Snapshot:
    """Equity, holdings (with what open orders would add) and recent order times of one account:
    the ``engine.risk.AccountView`` the pre-trade check reads, plus the account DTOs.
    ``known_mark``: a start-of-day mark the caller already knows (used if it is today's)."""
    pid: uuid.UUID = account["portfolio_id"]
    currency: str = account["currency"]
    bal = await store.balance_rows(session, pid)
    cash = bal.get(("cash", currency), ZERO)
    reserved = bal.get(("reserved", currency), ZERO)
    credit = bal.get(("credit", currency), ZERO)
    fees = bal.get(("fees", currency), ZERO)
    rows = await store.position_rows(session, pid)
    pending = await store.pending(session, pid)
    holdings: dict[str, Holding[Decimal]] = {}
    prices: dict[str, Decimal] = {}
    value = unrealized = realized = ZERO
    for r in rows:
        price = await mark(quotes, r["symbol"], r["last_price"]) or r["average_price"]
        prices[r["symbol"]] = price
        value += r["quantity"] * price
        unrealized += (price - r["average_price"]) * r["quantity"]
        realized += r["realized_pnl"]
        holdings[r["symbol"]] = Holding(r["quantity"], price, pending.pop(r["symbol"], ZERO))
    for symbol, qty in pending.items():
        price = await mark(quotes, symbol, None) or ZERO
        holdings[symbol] = Holding(ZERO, price, qty)
    equity = cash + reserved + credit + value
    now = clock.now()
    today = now.date()
    day_start = known_mark[1] if known_mark is not None and known_mark[0] == today else None
    if day_start is None:  # (a mark is stored once and never changed: a known one stays right)
        day_start = await store.day_mark(session, pid, today)
    if day_start is None:
        day_start = equity
        if mark_day:
            await store.set_day_mark(session, pid, today, equity)
    high = await store.peak_mark(session, pid) if peak else None  # not read on the order path
    peak_equity = max(equity, high or equity)
    recent = (
        await store.recent_order_times(session, pid, now - timedelta(minutes=1), order_times)
        if order_times is not None
        else []
    )
    view = RiskView(
        equity=equity,
        day_start_equity=day_start,
        holdings=holdings,
        recent_orders_ns=[int(t.timestamp() * 1_000_000_000) for t in recent],
    )
    read = AccountRead(
        portfolio_id=pid,
        venue=account["venue"],
        currency=currency,
        cash=cash,
        reserved=reserved,
        positions_value=value,
        equity=equity,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees=fees,
        halted=bool(account["halted_reason"]),
        halted_reason=account["halted_reason"],
        reconciled_at=account["reconciled_at"],
        day_start_equity=day_start,
        peak_equity=peak_equity,
    )
    public = AccountView(
        portfolio_id=pid,
        currency=currency,
        cash=cash + reserved,
        equity=equity,
        positions={r["symbol"]: r["quantity"] for r in rows if r["quantity"] != ZERO},
        prices=prices,
        day_start_equity=day_start,
        peak_equity=peak_equity,
    )
    return Snapshot(view=view, read=read, public_view=public, balances=bal, day=today)


async def with_order(
    snapshot: Snapshot, quotes: QuoteSource, request: OrderCreate, at: datetime, *, placed: bool
) -> Snapshot:
    """The snapshot as the next order of the same transaction sees it: this order's time for the
    rate throttle, and (``placed``: not denied) its open quantity, as ``account_snapshot`` would
    read them back. Equity and balances do not change (the reservation stays the account's)."""
    view = snapshot.view
    holdings = dict(view.holdings)
    if placed:
        signed = request.quantity if request.side is OrderSide.BUY else -request.quantity
        held = holdings.get(request.symbol)
        if held is None:
            price = await mark(quotes, request.symbol, None) or ZERO
            holdings[request.symbol] = Holding(ZERO, price, signed)
        else:
            holdings[request.symbol] = Holding(held.quantity, held.price, held.pending + signed)
    recent = [*view.recent_orders_ns, int(at.timestamp() * 1_000_000_000)]
    risk = RiskView(
        equity=view.equity, day_start_equity=view.day_start_equity, holdings=holdings, recent_orders_ns=recent
    )
    return replace(snapshot, view=risk)


async def list_orders(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    portfolio_id: uuid.UUID | None = None,
    status: list[OrderStatus] | None = None,
    symbol: str | None = None,
    side: OrderSide | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> OrderPage:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if offset < 0:
        raise Invalid("offset must not be negative", field="offset")
    o = store.orders.c
    where = [o.owner_id == owner_id]
    if portfolio_id is not None:
        where.append(o.portfolio_id == portfolio_id)
    if status:
        where.append(o.status.in_([s.value for s in status]))
    if symbol is not None:
        where.append(o.symbol == symbol)
    if side is not None:
        where.append(o.side == side.value)
    if since is not None:
        where.append(o.created_at >= since)
    if until is not None:
        where.append(o.created_at < until)
    total = (await session.execute(select(func.count()).select_from(store.orders).where(*where))).scalar_one()
    rows = await session.execute(
        select(store.orders).where(*where).order_by(o.created_at.desc(), o.id).limit(limit).offset(offset)
    )
    return OrderPage(items=[order(dict(r)) for r in rows.mappings()], total=total, limit=limit, offset=offset)


async def execution_stats(
    session: AsyncSession, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None, period: str, now: datetime
) -> ExecutionStats:
    from algotrendy.services.trading.service import since_for

    since = since_for(period, now)
    o = store.orders.c
    where = [o.owner_id == owner_id, o.created_at >= since]
    if portfolio_id is not None:
        where.append(o.portfolio_id == portfolio_id)
    rows = [dict(r) for r in (await session.execute(select(store.orders).where(*where))).mappings()]
    counts = {s: 0 for s in OrderStatus}
    for r in rows:
        counts[OrderStatus(r["status"])] += 1
    ids = [r["id"] for r in rows]
    fill_rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        fill_rows += [
            dict(r)
            for r in (
                await session.execute(select(store.fills).where(store.fills.c.order_id.in_(chunk)))
            ).mappings()
        ]
    by_id = {r["id"]: r for r in rows}
    latencies = [
        (r["first_fill_at"] - r["created_at"]).total_seconds() * 1000
        for r in rows
        if r["first_fill_at"] is not None
    ]
    slips: list[float] = []
    notional = fees = ZERO
    for f in fill_rows:
        notional += f["quantity"] * f["price"]
        fees += f["fee"]
        ref = by_id[f["order_id"]]["reference_price"]
        if ref:
            sign = 1 if f["side"] == "BUY" else -1
            slips.append(float((f["price"] - ref) / ref) * 1e4 * sign)
    sent = len(rows) - counts[OrderStatus.REJECTED]
    done = counts[OrderStatus.FILLED]
    return ExecutionStats(
        portfolio_id=portfolio_id,
        period=period,
        orders=len(rows),
        filled=done,
        partially_filled=counts[OrderStatus.PARTIAL_FILL],
        cancelled=counts[OrderStatus.CANCELLED],
        rejected=counts[OrderStatus.REJECTED],
        expired=counts[OrderStatus.EXPIRED],
        open=sum(counts[s] for s in OrderStatus if s.is_open),
        fill_rate=done / sent if sent else None,
        fills=len(fill_rows),
        traded_notional=notional,
        fees=fees,
        latency_ms_p50=statistics.median(latencies) if latencies else None,
        latency_ms_p95=statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else None,
        slippage_bps_mean=statistics.fmean(slips) if slips else None,
    )
