"""Portfolio use cases: create, read, list, update, delete (refused while the portfolio still
holds positions or open orders), the daily ``performance_metrics`` series (recorded by a loop
every ``record_seconds`` and before each performance read) and performance over a period."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.events import Bus
from algotrendy.core.ports import Mailer
from algotrendy.core.venue import QuoteSource
from algotrendy.db.outbox import Outbox
from algotrendy.services.jobs.interface import JobsApi
from algotrendy.services.portfolio import attribution, performance
from algotrendy.services.portfolio.interface import (
    AllocationRead,
    AllocationRequest,
    AttributionQuery,
    AttributionRead,
    DailyMetricsRead,
    MetricsQuery,
    PerformanceQuery,
    PerformanceRead,
    PortfolioCreate,
    PortfolioCreated,
    PortfolioDeleted,
    PortfolioRead,
    PortfolioUpdate,
    RebalanceRead,
    RebalanceRequest,
    ReportCreate,
    ReportFile,
    ReportFormat,
    ReportRead,
    TaxLotRead,
)
from algotrendy.services.portfolio.rebalancing import Rebalancer
from algotrendy.services.portfolio.reports import Reports
from algotrendy.services.portfolio.store import performance_metrics, portfolios
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import TradingApi

log = structlog.get_logger(__name__)

MAX_PER_OWNER = 100
RECORD_SECONDS = 300.0


def _read(row: Any) -> PortfolioRead:
    return PortfolioRead(
        portfolio_id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        description=row["description"],
        initial_capital=row["initial_capital"],
        currency=row["currency"],
        strategies=[uuid.UUID(s) for s in row["strategies"]],
        risk_profile=row["risk_profile"],
        venue=row["venue"],
        allow_short=row["allow_short"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PortfolioService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        trading: Callable[[], TradingApi | None],
        prices: PriceHistory | None = None,
        quotes: QuoteSource | None = None,
        record_seconds: float = RECORD_SECONDS,
        jobs: JobsApi | None = None,
        mailer: Mailer | None = None,
        reports_dir: Path | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._trading = trading
        self._prices = prices
        self._record_seconds = record_seconds
        self._recorder: asyncio.Task[None] | None = None
        self._rebalancer = Rebalancer(
            sessions=sessions, clock=clock, trading=trading, quotes=quotes, prices=prices
        )
        self._reports = Reports(
            sessions=sessions,
            clock=clock,
            portfolios=self,
            trading=trading,
            prices=prices,
            jobs=jobs,
            mailer=mailer,
            directory=reports_dir,
        )

    async def create(self, *, owner_id: uuid.UUID, data: PortfolioCreate) -> PortfolioRead:
        now = self._clock.now()
        pid = uuid.uuid4()
        try:
            async with self._sessions() as session, session.begin():
                count = len(
                    (
                        await session.execute(
                            select(portfolios.c.id).where(portfolios.c.owner_id == owner_id)
                        )
                    ).all()
                )
                if count >= MAX_PER_OWNER:
                    raise Invalid(f"at most {MAX_PER_OWNER} portfolios per user", field="name")
                await session.execute(
                    insert(portfolios).values(
                        id=pid,
                        owner_id=owner_id,
                        name=data.name,
                        name_norm=data.name.casefold(),
                        description=data.description,
                        initial_capital=data.initial_capital,
                        currency=data.currency,
                        strategies=[str(s) for s in data.strategies],
                        risk_profile=data.risk_profile.value,
                        venue=data.venue.lower(),
                        allow_short=data.allow_short,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await self._outbox.add(
                    session,
                    PortfolioCreated(portfolio_id=pid, owner_id=owner_id, name=data.name, venue=data.venue),
                )
        except IntegrityError:
            raise Conflict(f"you already have a portfolio named {data.name!r}", code="name_taken") from None
        return await self.get(owner_id=owner_id, portfolio_id=pid)

    async def get(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> PortfolioRead:
        async with self._sessions() as session:
            row = (
                (await session.execute(select(portfolios).where(portfolios.c.id == portfolio_id)))
                .mappings()
                .first()
            )
        if row is None or row["owner_id"] != owner_id:
            raise NotFound(f"portfolio {portfolio_id} not found")
        return _read(row)

    async def list(self, *, owner_id: uuid.UUID) -> builtins.list[PortfolioRead]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(portfolios).where(portfolios.c.owner_id == owner_id).order_by(portfolios.c.created_at)
            )
            return [_read(r) for r in rows.mappings()]

    async def update(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, data: PortfolioUpdate
    ) -> PortfolioRead:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        values: dict[str, Any] = {}
        if data.name is not None:
            values.update(name=data.name, name_norm=data.name.casefold())
        if data.description is not None:
            values["description"] = data.description
        if data.strategies is not None:
            values["strategies"] = [str(s) for s in data.strategies]
        if data.risk_profile is not None:
            values["risk_profile"] = data.risk_profile.value
        if values:
            values["updated_at"] = self._clock.now()
            try:
                async with self._sessions() as session, session.begin():
                    await session.execute(
                        update(portfolios).where(portfolios.c.id == portfolio_id).values(**values)
                    )
            except IntegrityError:
                raise Conflict(
                    f"you already have a portfolio named {data.name!r}", code="name_taken"
                ) from None
        return await self.get(owner_id=owner_id, portfolio_id=portfolio_id)

    async def delete(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> None:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        trading = self._trading()
        if trading is not None:
            busy = await trading.open_position_count(owner_id=owner_id, portfolio_id=portfolio_id)
            if busy:
                raise Conflict(
                    "the portfolio still has open positions or orders; close them first",
                    code="portfolio_busy",
                )
        async with self._sessions() as session, session.begin():
            await session.execute(delete(portfolios).where(portfolios.c.id == portfolio_id))
            await session.execute(
                delete(performance_metrics).where(performance_metrics.c.portfolio_id == portfolio_id)
            )
            report_ids = await self._reports.forget(session, portfolio_id)
            await self._outbox.add(session, PortfolioDeleted(portfolio_id=portfolio_id, owner_id=owner_id))
        await self._reports.remove_files(report_ids)

    async def attribution(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: AttributionQuery
    ) -> AttributionRead:
        portfolio = await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        trading = self._trading()
        if trading is None or self._prices is None:
            raise Invalid("trading is not available in this process", field="portfolio_id")
        await self.record_day(portfolio_id=portfolio_id)
        async with self._sessions() as session:
            rows = await performance.holdings_rows(session, portfolio_id)
        fills = await trading.fills(owner_id=owner_id, portfolio_id=portfolio_id)
        strategy_of = await self._strategies_of(trading, owner_id, portfolio_id)
        return await attribution.build(
            portfolio_id=portfolio_id,
            inception=performance.today_of(portfolio.created_at),
            initial_capital=portfolio.initial_capital,
            history=[attribution.day_of(d, v, h) for d, v, h in rows],
            fills=fills,
            strategy_of=strategy_of,
            query=query,
            prices=self._prices,
            today=performance.today_of(self._clock.now()),
        )

    @staticmethod
    async def _strategies_of(
        trading: TradingApi, owner_id: uuid.UUID, portfolio_id: uuid.UUID
    ) -> dict[uuid.UUID, str]:
        """Order id -> the strategy id of the deployment that placed it."""
        deployments = {
            d.deployment_id: str(d.strategy_id) for d in await trading.deployments(owner_id=owner_id)
        }
        out: dict[uuid.UUID, str] = {}
        offset = 0
        while True:
            page = await trading.list_orders(
                owner_id=owner_id, portfolio_id=portfolio_id, limit=500, offset=offset
            )
            for o in page.items:
                if o.deployment_id is not None and o.deployment_id in deployments:
                    out[o.order_id] = deployments[o.deployment_id]
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return out

    # ------------------------------------------------------------------ rebalancing

    async def rebalance(
        self,
        *,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID,
        request: RebalanceRequest,
        idempotency_key: str | None = None,
    ) -> RebalanceRead:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        return await self._rebalancer.rebalance(owner_id, portfolio_id, request, idempotency_key)

    async def rebalance_status(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RebalanceRead:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        return await self._rebalancer.status(owner_id, portfolio_id)

    async def allocation(self, *, request: AllocationRequest) -> AllocationRead:
        return await self._rebalancer.allocation(request)

    async def tax_lots(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> builtins.list[TaxLotRead]:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        return await self._rebalancer.tax_lots(owner_id, portfolio_id)

    # ------------------------------------------------------------------ performance

    async def start(self) -> None:
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_loop(), name="portfolio-recorder")

    async def stop(self) -> None:
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
            self._recorder = None

    async def _record_loop(self) -> None:
        while True:
            async with self._sessions() as session:
                ids = [pid for (pid,) in await session.execute(select(portfolios.c.id))]
            for pid in ids:
                try:
                    await self.record_day(portfolio_id=pid)
                except Exception:
                    log.exception("portfolio.record_failed", portfolio_id=str(pid))
            await asyncio.sleep(self._record_seconds)

    async def record_day(self, *, portfolio_id: uuid.UUID) -> DailyMetricsRead | None:
        trading = self._trading()
        async with self._sessions() as session:
            row = (
                (await session.execute(select(portfolios).where(portfolios.c.id == portfolio_id)))
                .mappings()
                .first()
            )
        if row is None or trading is None:
            return None
        portfolio = _read(row)
        try:
            view = await trading.account_view(owner_id=portfolio.owner_id, portfolio_id=portfolio_id)
        except NotFound:
            return None  # never traded: no account, the value is the initial capital
        async with self._sessions() as session, session.begin():
            return await performance.record(session, portfolio, view, self._clock.now())

    async def daily_metrics(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: MetricsQuery
    ) -> builtins.list[DailyMetricsRead]:
        await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        async with self._sessions() as session:
            found = await performance.rows(session, portfolio_id, query.start, query.end)
        return found[-query.limit :]

    async def performance(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: PerformanceQuery
    ) -> PerformanceRead:
        portfolio = await self.get(owner_id=owner_id, portfolio_id=portfolio_id)
        if query.benchmark is not None and self._prices is None:
            raise Invalid("no price history is available in this process", field="benchmark")
        await self.record_day(portfolio_id=portfolio_id)
        async with self._sessions() as session:
            history = await performance.rows(session, portfolio_id)
        return await performance.build(
            portfolio=portfolio,
            history=history,
            query=query,
            prices=self._prices,  # type: ignore[arg-type]
            today=performance.today_of(self._clock.now()),
        )

    # ------------------------------------------------------------------ reports

    async def subscribe(self, bus: Bus) -> None:
        """Finish reports as their jobs end (``jobs.job.finished``)."""
        await self._reports.subscribe(bus)

    async def unsubscribe(self) -> None:
        await self._reports.unsubscribe()

    async def create_report(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, request: ReportCreate
    ) -> ReportRead:
        return await self._reports.create(owner_id=owner_id, portfolio_id=portfolio_id, request=request)

    async def report(self, *, owner_id: uuid.UUID, report_id: uuid.UUID) -> ReportRead:
        return await self._reports.get(owner_id=owner_id, report_id=report_id)

    async def reports(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limit: int = 50
    ) -> builtins.list[ReportRead]:
        return await self._reports.list(owner_id=owner_id, portfolio_id=portfolio_id, limit=limit)

    async def report_file(
        self, *, owner_id: uuid.UUID, report_id: uuid.UUID, format: ReportFormat
    ) -> ReportFile:
        return await self._reports.file(owner_id=owner_id, report_id=report_id, format=format)
