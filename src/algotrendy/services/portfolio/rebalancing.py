"""Rebalancing a portfolio to target weights, allocation helpers and tax lots.

The plan is ``engine.rebalance.plan`` on the account as it is now: the positions and their
marks, the cash not reserved by open orders, and the last price of each symbol to buy. Sells
relieve tax lots chosen by ``engine.taxlots`` from the portfolio's fills (lots relieved by earlier
rebalances' choices, FIFO otherwise), and planned buys that would turn a recent loss sale into a
wash sale are warned about.

Unless it is a dry run, the plan is recorded first, then each order goes through the trading
engine (its pre-trade risk checks apply), sells before buys, each with an idempotency key made
of the rebalance id and the trade's position in the plan: a crash mid-way and a retry with the
same ``Idempotency-Key`` never send an order twice. The record is updated with each order's id
and state; ``rebalance_status`` reads the orders' current states back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import desc, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import AlgoTrendyError, Invalid, NotFound
from algotrendy.core.venue import QuoteSource
from algotrendy.engine import allocation as alloc
from algotrendy.engine import rebalance as rb
from algotrendy.engine import taxlots
from algotrendy.engine.orders import OrderSide
from algotrendy.services.portfolio.interface import (
    CASH,
    AllocationRead,
    AllocationRequest,
    LotPickRead,
    RebalanceRead,
    RebalanceRequest,
    RebalanceTrade,
    TaxLotRead,
)
from algotrendy.services.portfolio.store import rebalances
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import FillRead, OrderCreate, TradingApi

ZERO = Decimal(0)
NS_PER_DAY = 86_400 * 1_000_000_000
DONE = {"filled"}
FAILED = {"rejected", "cancelled", "expired", "denied"}


def _field(error: ValueError, default: str) -> str:
    """The field a ``ValueError`` of the engine names (``targets['X']`` -> ``targets``)."""
    found = re.match(r"^\s*([a-z_]+)", str(error))
    return found.group(1) if found else default


async def _returns(prices: PriceHistory, symbols: list[str], lookback: int) -> pd.DataFrame:
    """Daily returns over the last ``lookback`` days all ``symbols`` have (the window ends on the
    last day they all have prices for: series end on different days)."""
    span = int(lookback * 1.6) + 10
    last: dict[str, int] = {}
    for symbol in symbols:
        found = await prices.daily_closes(symbol, days=2)
        if found is None or len(found[0]) == 0:
            raise Invalid(f"no daily prices are stored for {symbol}", field="symbols")
        last[symbol] = int(found[0][-1])
    until = min(last.values())
    columns: dict[str, pd.Series] = {}
    for symbol in symbols:
        found = await prices.daily_closes(symbol, days=span, until_ns=until)
        if found is None or len(found[0]) < 3:
            raise Invalid(f"too few daily prices are stored for {symbol}", field="symbols")
        ts, close = found
        columns[symbol] = pd.Series(close, index=ts)
    joined = pd.concat(columns, axis=1, join="inner").iloc[-(lookback + 1) :]
    if len(joined) < 3:
        raise Invalid("the symbols have too few days of prices in common", field="symbols")
    return joined.pct_change().iloc[1:]


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).date()


async def allocate(prices: PriceHistory, request: AllocationRequest) -> AllocationRead:
    symbols = list(dict.fromkeys(request.symbols))
    returns = await _returns(prices, symbols, request.lookback_days)
    try:
        weights = alloc.allocate(
            request.method, returns, max_weight=request.max_weight, risk_free_rate=request.risk_free_rate
        )
    except ValueError as e:
        raise Invalid(str(e), field=_field(e, "symbols")) from None
    days = returns.index.to_numpy(dtype=np.int64)
    return AllocationRead(
        method=request.method,
        weights=weights,
        observations=len(returns),
        start=_day(int(days[0])),
        end=_day(int(days[-1])),
    )


def _engine_fills(fills: list[FillRead]) -> list[taxlots.Fill]:
    return [
        taxlots.Fill(
            at=f.executed_at,
            symbol=f.symbol,
            side="buy" if f.side is OrderSide.BUY else "sell",
            quantity=f.quantity,
            price=f.price,
            fee=f.fee,
            fill_id=str(f.fill_id),
        )
        for f in sorted(fills, key=lambda f: (f.executed_at, str(f.fill_id)))
    ]


def _relief(
    fills: list[FillRead], picks: dict[str, list[tuple[str, Decimal]]]
) -> dict[str, list[tuple[str, Decimal]]]:
    """Earlier rebalances' lot choices (by order) spread over that order's sell fills in time order."""
    out: dict[str, list[tuple[str, Decimal]]] = {}
    for order_id, chosen in picks.items():
        lot_ids = [lot for lot, _ in chosen]
        left = [qty for _, qty in chosen]
        mine = sorted(
            (f for f in fills if str(f.order_id) == order_id), key=lambda f: (f.executed_at, str(f.fill_id))
        )
        for f in mine:
            need, take = f.quantity, []
            for i, lot in enumerate(lot_ids):
                q = min(need, left[i])
                if q > 0:
                    take.append((lot, q))
                    left[i] -= q
                    need -= q
            if take:
                out[str(f.fill_id)] = take
    return out


class Rebalancer:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        trading: Callable[[], TradingApi | None],
        quotes: QuoteSource | None,
        prices: PriceHistory | None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._trading = trading
        self._quotes = quotes
        self._prices = prices

    def _api(self) -> TradingApi:
        api = self._trading()
        if api is None:
            raise Invalid("trading is not available in this process", field="portfolio_id")
        return api

    def _history(self) -> PriceHistory:
        if self._prices is None:
            raise Invalid("no price history is available in this process", field="allocation")
        return self._prices

    async def allocation(self, request: AllocationRequest) -> AllocationRead:
        return await allocate(self._history(), request)

    async def _lot_state(
        self, owner_id: uuid.UUID, portfolio_id: uuid.UUID
    ) -> tuple[list[taxlots.Fill], dict[str, list[tuple[str, Decimal]]]]:
        fills = await self._api().fills(owner_id=owner_id, portfolio_id=portfolio_id)
        async with self._sessions() as session:
            bodies = [
                b
                for (b,) in await session.execute(
                    select(rebalances.c.body).where(rebalances.c.portfolio_id == portfolio_id)
                )
            ]
        picks: dict[str, list[tuple[str, Decimal]]] = {}
        for body in bodies:
            for t in body["trades"]:
                if t["side"] == "sell" and t.get("order_id") and t.get("lots"):
                    picks[t["order_id"]] = [(p["lot_id"], Decimal(p["quantity"])) for p in t["lots"]]
        return _engine_fills(fills), _relief(fills, picks)

    async def tax_lots(self, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> list[TaxLotRead]:
        fills, relief = await self._lot_state(owner_id, portfolio_id)
        try:
            lots = taxlots.open_lots(fills, relief)
        except ValueError as e:  # a short sale: lots are tracked for long holdings only
            raise Invalid(f"tax lots cannot be built: {e}", field="portfolio_id") from None
        now = self._clock.now()
        out = []
        for lot in lots:
            quote = await self._quotes.last(lot.symbol) if self._quotes is not None else None
            price = quote.price if quote is not None else None
            out.append(
                TaxLotRead(
                    lot_id=lot.lot_id,
                    symbol=lot.symbol,
                    quantity=lot.quantity,
                    cost_per_unit=lot.cost_per_unit,
                    acquired_at=lot.acquired_at,
                    market_price=price,
                    unrealized_gain=None if price is None else (price - lot.cost_per_unit) * lot.quantity,
                    long_term=(now - lot.acquired_at).days > 365,
                )
            )
        return out

    async def _targets(self, request: RebalanceRequest) -> dict[str, Decimal]:
        if (request.targets is None) == (request.allocation is None):
            raise Invalid("give either targets or an allocation", field="targets")
        if request.allocation is not None:
            weights = (await self.allocation(request.allocation)).weights
        else:
            assert request.targets is not None
            weights = {s: w for s, w in request.targets.items() if s.upper() != CASH}
        return {s: Decimal(repr(w)) for s, w in weights.items()}

    async def _price(self, symbol: str) -> Decimal:
        quote = await self._quotes.last(symbol) if self._quotes is not None else None
        if quote is None or quote.price <= 0:
            raise Invalid(f"no price is known for {symbol}", field="targets")
        return quote.price

    async def rebalance(
        self,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID,
        request: RebalanceRequest,
        idempotency_key: str | None,
    ) -> RebalanceRead:
        if idempotency_key is not None:
            earlier = await self._by_key(owner_id, idempotency_key)
            if earlier is not None:
                return earlier
        api = self._api()
        account = await api.account(owner_id=owner_id, portfolio_id=portfolio_id)  # 404 unless yours
        view = await api.account_view(owner_id=owner_id, portfolio_id=portfolio_id)
        targets = await self._targets(request)
        prices = dict(view.prices)
        for symbol in targets:
            if symbol not in prices:
                prices[symbol] = await self._price(symbol)
        lots = {s: request.default_lot_size for s in {*targets, *view.positions} if request.default_lot_size}
        lots.update(request.lot_sizes)
        try:
            plan = rb.plan(
                view.positions,
                prices,
                account.cash,
                targets,
                drift_threshold=request.drift_threshold,
                min_trade_value=request.min_trade_value,
                cash_buffer=request.cash_buffer,
                lot_sizes=lots,
            )
        except ValueError as e:
            raise Invalid(str(e), field=_field(e, "targets")) from None
        now = self._clock.now()
        trades, warnings, realized = await self._with_lots(owner_id, portfolio_id, plan, request, now)
        rid = uuid.uuid4()
        equity = plan.equity or ZERO
        read = RebalanceRead(
            rebalance_id=rid,
            portfolio_id=portfolio_id,
            status="preview" if request.dry_run else "submitted",
            dry_run=request.dry_run,
            created_at=now,
            equity=plan.equity,
            cash_before=account.cash,
            cash_after=plan.cash_after,
            targets={s: float(w) for s, w in targets.items()},
            weights_before={
                s: float(q * prices[s] / equity) if equity else 0.0 for s, q in view.positions.items()
            },
            weights_after={s: float(w) for s, w in plan.weights_after.items()},
            trades=trades,
            skipped=plan.skipped,
            warnings=warnings,
            realized_gain=realized,
        )
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(rebalances).values(
                        id=rid,
                        portfolio_id=portfolio_id,
                        owner_id=owner_id,
                        idempotency_key=idempotency_key,
                        status=read.status,
                        dry_run=request.dry_run,
                        body=read.model_dump(mode="json"),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # the same key, concurrently: the first one answers
            earlier = await self._by_key(owner_id, idempotency_key or "")
            if earlier is None:
                raise
            return earlier
        if request.dry_run:
            return read
        return await self._execute(owner_id, read)

    async def _with_lots(
        self,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID,
        plan: rb.RebalancePlan,
        request: RebalanceRequest,
        now: datetime,
    ) -> tuple[list[RebalanceTrade], list[str], Decimal]:
        fills, relief = await self._lot_state(owner_id, portfolio_id)
        warnings: list[str] = []
        lots: list[taxlots.Lot] = []
        try:
            lots = taxlots.open_lots(fills, relief)
        except ValueError as e:
            warnings.append(f"tax lots are not tracked for this portfolio: {e}")
        tax = request.tax_optimization
        method = tax.method if tax is not None else "fifo"
        realized = ZERO
        out: list[RebalanceTrade] = []
        for t in plan.trades:
            picks: list[LotPickRead] = []
            if t.side == "sell" and lots:
                mine = [lot for lot in lots if lot.symbol == t.symbol]
                if sum((lot.quantity for lot in mine), ZERO) >= t.quantity:
                    chosen = taxlots.select_lots(
                        mine,
                        t.quantity,
                        t.price,
                        now,
                        method,
                        buys_nearby=taxlots.buy_times(fills, t.symbol),
                        avoid_wash_sales=tax.avoid_wash_sales if tax is not None else False,
                    )
                    picks = [
                        LotPickRead(
                            lot_id=p.lot_id,
                            quantity=p.quantity,
                            cost_per_unit=p.cost_per_unit,
                            proceeds=p.proceeds,
                            gain=p.gain,
                            long_term=p.long_term,
                            wash_sale=p.wash_sale,
                        )
                        for p in chosen
                    ]
                    realized += sum((p.gain for p in chosen), ZERO)
                    if any(p.wash_sale for p in chosen):
                        warnings.append(
                            f"selling {t.symbol} realizes a loss within 30 days of a purchase (wash sale)"
                        )
            if t.side == "buy" and fills:
                recent = taxlots.wash_sale_window(fills, t.symbol, now, relief)
                if recent:
                    warnings.append(
                        f"buying {t.symbol} within 30 days of selling it at a loss makes that loss "
                        "a wash sale"
                    )
            out.append(
                RebalanceTrade(
                    symbol=t.symbol,
                    side=t.side,
                    quantity=t.quantity,
                    price=t.price,
                    value=t.value,
                    current_weight=float(t.current_weight),
                    target_weight=float(t.target_weight),
                    drift=float(t.drift),
                    lots=picks,
                )
            )
        return out, warnings, realized

    async def _execute(self, owner_id: uuid.UUID, read: RebalanceRead) -> RebalanceRead:
        api = self._api()
        for i, trade in enumerate(read.trades):
            order = OrderCreate(
                portfolio_id=read.portfolio_id,
                symbol=trade.symbol,
                side=OrderSide.BUY if trade.side == "buy" else OrderSide.SELL,
                quantity=trade.quantity,
            )
            try:
                placed, _new = await api.submit_order(
                    owner_id=owner_id,
                    request=order,
                    idempotency_key=f"rebalance-{read.rebalance_id}-{i}",
                    tag="rebalance",
                )
            except AlgoTrendyError as e:
                trade.reason = str(e)
            else:
                trade.order_id = placed.order_id
                trade.order_status = placed.status.value
                trade.reason = placed.reason
            await self._save(read)
        read.status = _status(read.trades)
        await self._save(read)
        return read

    async def _save(self, read: RebalanceRead) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(rebalances)
                .where(rebalances.c.id == read.rebalance_id)
                .values(status=read.status, body=read.model_dump(mode="json"), updated_at=self._clock.now())
            )

    async def _by_key(self, owner_id: uuid.UUID, key: str) -> RebalanceRead | None:
        async with self._sessions() as session:
            body = (
                await session.execute(
                    select(rebalances.c.body).where(
                        rebalances.c.owner_id == owner_id, rebalances.c.idempotency_key == key
                    )
                )
            ).scalar_one_or_none()
        return None if body is None else RebalanceRead.model_validate(body)

    async def status(self, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RebalanceRead:
        async with self._sessions() as session:
            body = (
                await session.execute(
                    select(rebalances.c.body)
                    .where(rebalances.c.portfolio_id == portfolio_id, rebalances.c.owner_id == owner_id)
                    .order_by(desc(rebalances.c.created_at))
                    .limit(1)
                )
            ).scalar_one_or_none()
        if body is None:
            raise NotFound(f"portfolio {portfolio_id} has not been rebalanced")
        read = RebalanceRead.model_validate(body)
        if read.dry_run:
            return read
        api = self._api()
        for trade in read.trades:
            if trade.order_id is not None and trade.order_status not in DONE | FAILED:
                order = await api.get_order(owner_id=owner_id, order_id=trade.order_id)
                trade.order_status, trade.reason = order.status.value, order.reason
        status = _status(read.trades)
        if status != read.status:
            read.status = status
            await self._save(read)
        return read


def _status(trades: list[RebalanceTrade]) -> Any:
    states = [t.order_status for t in trades]
    if not trades or all(s in DONE for s in states):
        return "completed"
    if all(s is None or s in FAILED for s in states):
        return "failed"
    if any(s is None or s in FAILED for s in states):
        return "partial"
    return "submitted"
