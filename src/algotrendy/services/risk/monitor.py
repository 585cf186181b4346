"""The risk monitor: watches every portfolio that has an alert limit set, as prices move.

For each watched portfolio it keeps an ``Exposure`` (holdings, prices, the returns' moments) and
reprices it on every price update of a held symbol, from the same shared quote stream the paper
broker matches against. When a figure crosses its limit it raises an alert (``risk_alerts`` row
and ``risk.threshold.breached`` through the outbox, in one transaction); when the figure comes
back within the limit the alert is marked resolved. One unresolved alert per portfolio and kind
(a partial unique index makes it so even with several processes watching).

The exposure is rebuilt from the trading service when holdings may have changed (a
``trading.*`` event of the portfolio), when limits change (``risk.limits.updated``) and on a
periodic sweep (a new day's start equity, cash moves); prices alone never touch the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import numpy as np
import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import NotFound
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.core.venue import QuoteSource
from algotrendy.db.outbox import Outbox
from algotrendy.services.risk import analytics
from algotrendy.services.risk.exposure import Exposure, breaches, watched
from algotrendy.services.risk.interface import (
    AlertKind,
    PriceHistory,
    RiskLimitsChanged,
    RiskLimitsRead,
    RiskQuery,
    RiskThresholdBreached,
)
from algotrendy.services.risk.store import alerts as alerts_table
from algotrendy.services.risk.store import limits as limits_table
from algotrendy.services.trading.interface import TradingApi

log = structlog.get_logger(__name__)

LOOKBACK_DAYS = 250
SWEEP_SECONDS = 60.0
RETRY_SECONDS = 5.0


class RiskMonitor:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        trading: Callable[[], TradingApi],
        prices: PriceHistory,
        quotes: QuoteSource | None,
        limits_for: Callable[[uuid.UUID], Awaitable[RiskLimitsRead]],
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._trading = trading
        self._prices = prices
        self._quotes = quotes
        self._limits_for = limits_for
        self._sweep_seconds = sweep_seconds
        self._exposures: dict[uuid.UUID, Exposure] = {}
        self._limits: dict[uuid.UUID, RiskLimitsRead] = {}
        self._open: dict[uuid.UUID, dict[AlertKind, uuid.UUID]] = {}
        self._holders: dict[str, set[uuid.UUID]] = {}
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._writing = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, bus: Bus) -> None:
        group = f"risk-monitor-{uuid.uuid4().hex[:12]}"  # every process sees every event
        self._subs.append(await bus.subscribe("trading.>", group=group, handler=self._on_event))
        self._subs.append(await bus.subscribe("risk.limits.updated", group=group, handler=self._on_event))
        async with self._sessions() as session:
            rows = await session.execute(select(limits_table.c.portfolio_id))
            self._mark([pid for (pid,) in rows])
        self._tasks = [
            asyncio.create_task(self._refresher(), name="risk-monitor-refresh"),
            asyncio.create_task(self._sweeper(), name="risk-monitor-sweep"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()
        tasks = [*self._tasks, *self._streams.values()]
        self._tasks.clear()
        self._streams.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def watching(self, portfolio_id: uuid.UUID) -> Exposure | None:
        return self._exposures.get(portfolio_id)

    async def settle(self) -> None:
        """Wait until every pending rebuild is done (tests, the CLI)."""
        await self._idle.wait()
        async with self._writing:
            pass

    def _mark(self, portfolio_ids: list[uuid.UUID]) -> None:
        self._dirty.update(portfolio_ids)
        if self._dirty:
            self._idle.clear()
            self._wake.set()

    # ------------------------------------------------------------------ holdings

    async def _on_event(self, envelope: Envelope) -> None:
        """A watched portfolio's trading event, or any portfolio's limits change, asks for a
        rebuild; other portfolios' orders cost nothing here (no read on their order path)."""
        raw = envelope.data.get("portfolio_id")
        if raw is None:
            return
        pid = uuid.UUID(str(raw))
        if envelope.event_type == RiskLimitsChanged.topic or pid in self._exposures:
            self._mark([pid])

    async def _refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                pid = self._dirty.pop()
                try:
                    await self.refresh(pid)
                except Exception:
                    log.exception("risk.monitor.refresh_failed", portfolio_id=str(pid))
                    self._dirty.add(pid)
                    await asyncio.sleep(RETRY_SECONDS)
            self._idle.set()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            self._mark(list(self._exposures))

    async def refresh(self, portfolio_id: uuid.UUID) -> None:
        """Rebuild the portfolio's exposure from its account and limits, then evaluate it."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(limits_table.c.owner_id).where(limits_table.c.portfolio_id == portfolio_id)
                )
            ).first()
        limits = await self._limits_for(portfolio_id) if row is not None else None
        if row is None or limits is None or not watched(limits):
            self._drop(portfolio_id)
            return
        owner_id: uuid.UUID = row[0]
        try:
            view = await self._trading().account_view(owner_id=owner_id, portfolio_id=portfolio_id)
        except NotFound:
            self._drop(portfolio_id)  # no account yet (never traded) or the portfolio is gone
            return
        symbols = sorted(view.positions)
        qty = np.array([float(view.positions[s]) for s in symbols])
        px = np.array([float(view.prices.get(s, 0)) for s in symbols])
        exposure = Exposure(
            portfolio_id=portfolio_id,
            owner_id=owner_id,
            symbols=symbols,
            quantities=qty,
            prices=px,
            other=float(view.equity) - float(qty @ px),
            day_start=float(view.day_start_equity),
            peak=float(view.peak_equity),
        )
        if symbols:
            query = RiskQuery(lookback_days=LOOKBACK_DAYS, benchmark=None)
            data, unmodelled = await analytics.gather(self._prices, symbols, query)
            if data.symbols and len(data.returns) > 1:
                exposure.modelled = np.array([exposure.index[s] for s in data.symbols])
                exposure.mean = data.returns.mean(axis=0)
                exposure.cov = np.atleast_2d(np.cov(data.returns, rowvar=False, ddof=1))
            exposure.unmodelled = unmodelled
        self._limits[portfolio_id] = limits
        self._open[portfolio_id] = await self._unresolved(portfolio_id)
        self._drop_holdings(portfolio_id)
        self._exposures[portfolio_id] = exposure
        for symbol in symbols:
            self._holders.setdefault(symbol, set()).add(portfolio_id)
            if self._quotes is not None and symbol not in self._streams:
                self._streams[symbol] = asyncio.create_task(self._watch(symbol), name=f"risk-{symbol}")
        await self._evaluate(portfolio_id)

    def _drop_holdings(self, portfolio_id: uuid.UUID) -> None:
        for symbol in list(self._holders):
            holders = self._holders[symbol]
            holders.discard(portfolio_id)
            if not holders:
                del self._holders[symbol]
                task = self._streams.pop(symbol, None)
                if task is not None:
                    task.cancel()

    def _drop(self, portfolio_id: uuid.UUID) -> None:
        self._exposures.pop(portfolio_id, None)
        self._limits.pop(portfolio_id, None)
        self._open.pop(portfolio_id, None)
        self._drop_holdings(portfolio_id)

    # ------------------------------------------------------------------ prices

    async def on_price(self, symbol: str, price: float) -> None:
        """Reprice every watched portfolio holding ``symbol`` and raise or resolve its alerts."""
        for pid in list(self._holders.get(symbol, ())):
            exposure = self._exposures.get(pid)
            if exposure is not None and exposure.reprice(symbol, price):
                await self._evaluate(pid)

    async def _watch(self, symbol: str) -> None:
        assert self._quotes is not None
        while True:
            try:
                async for update in self._quotes.stream(symbol):
                    await self.on_price(symbol, update.close)
            except Exception:
                log.exception("risk.monitor.stream_failed", symbol=symbol)
            await asyncio.sleep(RETRY_SECONDS)

    # ------------------------------------------------------------------ alerts

    async def _evaluate(self, portfolio_id: uuid.UUID) -> None:
        exposure = self._exposures.get(portfolio_id)
        limits = self._limits.get(portfolio_id)
        if exposure is None or limits is None:
            return
        found = breaches(exposure.figures(), limits)
        raised = self._open.get(portfolio_id, {})
        if found.keys() == raised.keys():
            return  # the usual case on a tick: nothing changed state
        async with self._writing:
            now = self._clock.now()
            for kind, (value, cap, message) in found.items():
                if kind not in raised:
                    await self._raise(exposure, kind, value, cap, message, now)
            for kind in [k for k in raised if k not in found]:
                await self._resolve(raised.pop(kind), now)

    async def _raise(
        self, exposure: Exposure, kind: AlertKind, value: float, cap: float, message: str, now: datetime
    ) -> None:
        alert_id = uuid.uuid4()
        pid = exposure.portfolio_id
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(alerts_table).values(
                        id=alert_id,
                        portfolio_id=pid,
                        owner_id=exposure.owner_id,
                        kind=kind,
                        value=value,
                        limit=cap,
                        message=message,
                        created_at=now,
                    )
                )
                await self._outbox.add(
                    session,
                    RiskThresholdBreached(
                        alert_id=alert_id,
                        portfolio_id=pid,
                        owner_id=exposure.owner_id,
                        kind=kind,
                        value=value,
                        limit=cap,
                        message=message,
                    ),
                )
        except IntegrityError:  # another process raised it first
            self._open[pid] = await self._unresolved(pid)
            return
        self._open.setdefault(pid, {})[kind] = alert_id
        log.warning("risk.threshold.breached", portfolio_id=str(pid), kind=kind, value=value, limit=cap)

    async def _resolve(self, alert_id: uuid.UUID, now: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(alerts_table)
                .where(alerts_table.c.id == alert_id, alerts_table.c.resolved_at.is_(None))
                .values(resolved_at=now)
            )

    async def _unresolved(self, portfolio_id: uuid.UUID) -> dict[AlertKind, uuid.UUID]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(alerts_table.c.kind, alerts_table.c.id).where(
                    alerts_table.c.portfolio_id == portfolio_id, alerts_table.c.resolved_at.is_(None)
                )
            )
            return {kind: aid for kind, aid in rows}
