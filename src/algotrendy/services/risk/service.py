"""Risk use cases: limits and kill switch per portfolio, the pre-trade check endpoint, and the
risk figures of a portfolio's holdings (``analytics``).

Limits are read on every order, so they are cached in process; a change here clears the cache
(all-in-one) and publishes ``risk.limits.updated`` (other processes drop their copy on it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import desc, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, NotFound
from algotrendy.db.outbox import Outbox
from algotrendy.engine.risk import TradingState
from algotrendy.services.portfolio.interface import PortfolioApi
from algotrendy.services.risk import analytics, stress
from algotrendy.services.risk.interface import (
    AlertQuery,
    PortfolioRiskRead,
    PositionRiskRead,
    PriceHistory,
    RiskAlertRead,
    RiskLimitsChanged,
    RiskLimitsRead,
    RiskLimitsUpdate,
    RiskQuery,
    StressTestRead,
    StressTestRequest,
)
from algotrendy.services.risk.store import alerts as alerts_table
from algotrendy.services.risk.store import limits as limits_table
from algotrendy.services.trading.interface import OrderCreate, RiskCheckRead, TradingApi

_FIELDS = (
    "max_order_notional",
    "max_position_quantity",
    "max_position_notional",
    "max_concentration",
    "max_leverage",
    "daily_loss_limit",
)


def _alert(row: Any) -> RiskAlertRead:
    status = "resolved" if row["resolved_at"] else "acknowledged" if row["acknowledged_at"] else "open"
    return RiskAlertRead(
        alert_id=row["id"],
        portfolio_id=row["portfolio_id"],
        kind=row["kind"],
        status=status,
        value=row["value"],
        limit=row["limit"],
        message=row["message"],
        created_at=row["created_at"],
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
    )


def _read(portfolio_id: uuid.UUID, row: Any | None) -> RiskLimitsRead:
    if row is None:
        return RiskLimitsRead(
            portfolio_id=portfolio_id,
            trading_state=TradingState.ACTIVE,
            max_order_notional=None,
            max_position_quantity=None,
            max_position_notional=None,
            max_concentration=None,
            max_leverage=None,
            daily_loss_limit=None,
            max_orders_per_minute=None,
            symbol_quantity={},
            updated_at=None,
        )
    data = dict(row["limits"])
    return RiskLimitsRead.model_validate(
        {
            "portfolio_id": portfolio_id,
            "trading_state": row["trading_state"],
            "updated_at": row["updated_at"],
            **data,
        }
    )


class RiskService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        portfolios: PortfolioApi,
        trading: Callable[[], TradingApi],
        prices: PriceHistory,
    ) -> None:
        self._prices = prices
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._portfolios = portfolios
        self._trading = trading
        self._cache: dict[uuid.UUID, RiskLimitsRead] = {}

    def forget(self, portfolio_id: uuid.UUID) -> None:
        self._cache.pop(portfolio_id, None)

    async def limits_for(self, *, portfolio_id: uuid.UUID) -> RiskLimitsRead:
        hit = self._cache.get(portfolio_id)
        if hit is not None:
            return hit
        async with self._sessions() as session:
            row = (
                (
                    await session.execute(
                        select(limits_table).where(limits_table.c.portfolio_id == portfolio_id)
                    )
                )
                .mappings()
                .first()
            )
        read = _read(portfolio_id, row)
        self._cache[portfolio_id] = read
        return read

    async def get_limits(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RiskLimitsRead:
        await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        return await self.limits_for(portfolio_id=portfolio_id)

    async def put_limits(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limits: RiskLimitsUpdate
    ) -> RiskLimitsRead:
        await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        data = limits.model_dump(mode="json", exclude={"trading_state"})
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            exists = (
                await session.execute(
                    select(limits_table.c.portfolio_id).where(limits_table.c.portfolio_id == portfolio_id)
                )
            ).first()
            values = {"trading_state": limits.trading_state.value, "limits": data, "updated_at": now}
            if exists is None:
                await session.execute(
                    insert(limits_table).values(portfolio_id=portfolio_id, owner_id=owner_id, **values)
                )
            else:
                await session.execute(
                    update(limits_table).where(limits_table.c.portfolio_id == portfolio_id).values(**values)
                )
            await self._outbox.add(
                session,
                RiskLimitsChanged(
                    portfolio_id=portfolio_id, owner_id=owner_id, trading_state=limits.trading_state.value
                ),
            )
        self.forget(portfolio_id)
        return await self.limits_for(portfolio_id=portfolio_id)

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead:
        return await self._trading().pre_trade_check(owner_id=owner_id, request=request)

    async def portfolio_risk(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: RiskQuery
    ) -> PortfolioRiskRead:
        trading = self._trading()
        account = await trading.account(owner_id=owner_id, portfolio_id=portfolio_id)  # 404 unless yours
        positions = await trading.positions(owner_id=owner_id, portfolio_id=portfolio_id)
        held = sorted({p.symbol for p in positions if p.quantity != 0})
        data, unmodelled = await analytics.gather(self._prices, held, query)
        return analytics.portfolio_risk(
            portfolio_id=portfolio_id,
            account=account,
            positions=positions,
            data=data,
            unmodelled=unmodelled,
            query=query,
            clock=self._clock,
        )

    async def position_risk(
        self, *, owner_id: uuid.UUID, position_id: uuid.UUID, query: RiskQuery
    ) -> PositionRiskRead:
        position = await self._trading().position(owner_id=owner_id, position_id=position_id)
        if position.quantity == 0:
            raise Conflict(f"position {position_id} is flat: it carries no risk", code="position_flat")
        portfolio = await self.portfolio_risk(
            owner_id=owner_id, portfolio_id=position.portfolio_id, query=query
        )
        [mine] = [p for p in portfolio.positions if p.position_id == position_id]
        return PositionRiskRead(portfolio=portfolio, position=mine)

    async def stress_test(self, *, owner_id: uuid.UUID, request: StressTestRequest) -> StressTestRead:
        trading = self._trading()
        pid = request.portfolio_id
        account = await trading.account(owner_id=owner_id, portfolio_id=pid)  # 404 unless yours
        positions = await trading.positions(owner_id=owner_id, portfolio_id=pid)
        results = await stress.run(
            prices=self._prices, request=request, equity=account.equity, positions=positions
        )
        return StressTestRead(
            portfolio_id=pid,
            as_of=self._clock.now(),
            currency=account.currency,
            equity=account.equity,
            benchmark=request.benchmark,
            scenarios=results,
            worst=min(results, key=lambda r: r.pnl).name,
        )

    async def alerts(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: AlertQuery
    ) -> list[RiskAlertRead]:
        await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        t = alerts_table.c
        stmt = select(alerts_table).where(t.portfolio_id == portfolio_id, t.owner_id == owner_id)
        if query.status == "open":
            stmt = stmt.where(t.resolved_at.is_(None), t.acknowledged_at.is_(None))
        elif query.status == "acknowledged":
            stmt = stmt.where(t.resolved_at.is_(None), t.acknowledged_at.is_not(None))
        elif query.status == "active":
            stmt = stmt.where(t.resolved_at.is_(None))
        elif query.status == "resolved":
            stmt = stmt.where(t.resolved_at.is_not(None))
        stmt = stmt.order_by(desc(t.created_at), desc(t.id)).limit(query.limit)
        async with self._sessions() as session:
            return [_alert(r) for r in (await session.execute(stmt)).mappings()]

    async def acknowledge_alert(self, *, owner_id: uuid.UUID, alert_id: uuid.UUID) -> RiskAlertRead:
        """Mark it seen (idempotent: acknowledging again keeps the first time)."""
        t = alerts_table.c
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(alerts_table).where(t.id == alert_id))).mappings().first()
            if row is None or row["owner_id"] != owner_id:
                raise NotFound(f"alert {alert_id} not found")
            if row["acknowledged_at"] is None:
                await session.execute(
                    update(alerts_table).where(t.id == alert_id).values(acknowledged_at=self._clock.now())
                )
            row = (await session.execute(select(alerts_table).where(t.id == alert_id))).mappings().one()
        return _alert(row)
