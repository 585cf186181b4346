"""Portfolio use cases: create, read, list, update, delete (refused while the portfolio still
holds positions or open orders). Holdings, performance and reports build on these (issue 6)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.db.outbox import Outbox
from algotrendy.services.portfolio.interface import (
    PortfolioCreate,
    PortfolioCreated,
    PortfolioDeleted,
    PortfolioRead,
    PortfolioUpdate,
)
from algotrendy.services.portfolio.store import portfolios
from algotrendy.services.trading.interface import TradingApi

MAX_PER_OWNER = 100


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
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._trading = trading

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
            await self._outbox.add(session, PortfolioDeleted(portfolio_id=portfolio_id, owner_id=owner_id))
