"""Strategy deployment: a strategy from the strategy engine trading live, on the paper broker or a
connected venue, through the same order path as a manual order (risk checks, reservations,
idempotency, reconciliation).

The strategy object is the one the backtester runs (``engine.templated``), driven by
``engine.live.LiveShell``, the backtester's decision path bar by bar (parity is tested in
``tests/unit/engine/test_live_parity.py``). This module is its I/O shell:

- it starts only after the trading service has reconciled every account (``reconciled``), and
  resumes ``running`` deployments after a restart;
- it reads closed bars of the deployment's interval from the bar feed; the warm-up history is
  the stored bars *before* the first live bar, so no bar is seen twice;
- a ``Submit`` becomes an order with ``client_order_id = dp<deployment>-<local id>``: the local
  ids are deterministic and persisted (``next_id``), so a step replayed after a crash maps to
  the same client order id and the order path answers the existing order instead of placing a
  second one. ``fraction`` orders are sized on the allocation's equity at the last close and
  rounded down to the venue's quantity step;
- fills and rejections of its orders come back from the execution layer and go to the strategy
  (``on_fill`` places its protective brackets, as in the backtest);
- a failure stops the deployment with the reason (``failed``), never silently.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import ConfigurationError, Invalid, NotFound
from algotrendy.core.market import Timeframe
from algotrendy.db.outbox import Outbox
from algotrendy.engine.signals import resolve_params
from algotrendy.engine.template import TemplateError
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.strategies.interface import StrategiesApi
from algotrendy.services.trading import store
from algotrendy.services.trading.deploy_runner import (
    BarFeed,
    DeploymentRunner,
    _Runner,
    build_strategy,
    model_enrich,
)
from algotrendy.services.trading.interface import (
    DeploymentCreate,
    DeploymentRead,
    DeploymentStatus,
    TradingApi,
)


def _read(row: dict[str, Any], orders: int) -> DeploymentRead:
    return DeploymentRead(
        deployment_id=row["id"],
        strategy_id=row["strategy_id"],
        version=row["version"],
        portfolio_id=row["portfolio_id"],
        symbols=list(row["symbols"]),
        interval=row["interval"],
        allocation=row["allocation"],
        parameters=dict(row["parameters"]),
        status=row["status"],
        reason=row["reason"],
        bars_seen=row["bars_seen"],
        orders_placed=orders,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class Deployments(DeploymentRunner):
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        trading: TradingApi,
        strategies: Callable[[], StrategiesApi | None],
        feed: BarFeed | None,
        reconciled: asyncio.Event,
        buy_haircut: float = 1.0,
        models: Callable[[], ModelScores | None] = lambda: None,
    ) -> None:
        self._models = models
        self._sessions = sessions
        self._clock = clock
        self._outbox = outbox
        self._trading = trading
        self._strategies = strategies
        self._feed = feed
        self._reconciled = reconciled
        self._runners: dict[uuid.UUID, _Runner] = {}
        self._haircut = buy_haircut
        """A fraction-sized buy is divided by this (the cash the order path sets aside per unit of
        notional), so "100 % of equity" is affordable: the backtest sizes at the fill price, live
        must size before it."""

    # ---- API -----------------------------------------------------------------------------------

    async def deploy(
        self, *, owner_id: uuid.UUID, strategy_id: uuid.UUID, request: DeploymentCreate
    ) -> DeploymentRead:
        strategies = self._strategies()
        if strategies is None or self._feed is None:
            raise ConfigurationError(
                "deployments need the strategies and marketdata services in this process"
            )
        await self._trading.account(owner_id=owner_id, portfolio_id=request.portfolio_id)  # 404 unless yours
        strategy = await strategies.get(owner=owner_id, strategy_id=strategy_id)
        symbols = request.symbols or [u.symbol for u in strategy.symbols]
        if not symbols:
            raise Invalid("the strategy has no default symbols: give symbols", field="symbols")
        interval = request.interval or (strategy.symbols[0].interval if strategy.symbols else "1d")
        try:
            params = resolve_params(strategy.template, request.parameters)
        except TemplateError as exc:
            raise Invalid(
                str(exc), field=(exc.field or "parameters").replace("params.", "parameters.")
            ) from exc
        seconds = Timeframe.parse(interval).seconds
        build_strategy(strategy.template, params, symbols, seconds)  # refuses what cannot run
        await model_enrich(self._models(), owner_id, strategy.template, interval)  # and unknown models
        for symbol in symbols:
            if not await self._feed.has(symbol, interval):
                raise Invalid(f"no {interval} bars are stored or streamed for {symbol}", field="symbols")
        now = self._clock.now()
        row = {
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "portfolio_id": request.portfolio_id,
            "strategy_id": strategy_id,
            "version": strategy.version,
            "template": strategy.template.model_dump(mode="json"),
            "parameters": params,
            "symbols": symbols,
            "interval": interval,
            "allocation": request.allocation,
            "warmup_bars": request.warmup_bars,
            "status": DeploymentStatus.STARTING.value,
            "reason": None,
            "next_id": 1,
            "bars_seen": 0,
            "last_bar_ts": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._sessions() as session, session.begin():
            await session.execute(insert(store.deployments).values(**row))
            await self._event(session, row)
        self._launch(row)
        return _read(row, 0)

    async def list(self, *, owner_id: uuid.UUID) -> builtins.list[DeploymentRead]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(store.deployments)
                .where(store.deployments.c.owner_id == owner_id)
                .order_by(store.deployments.c.created_at)
            )
            out = []
            for r in rows.mappings():
                out.append(_read(dict(r), await self._order_count(session, r["id"])))
            return out

    async def get(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        async with self._sessions() as session:
            row = await self._row(session, deployment_id)
            if row is None or row["owner_id"] != owner_id:
                raise NotFound(f"deployment {deployment_id} not found")
            runner = self._runners.get(deployment_id)
            if runner is not None:  # progress not yet saved
                row = dict(row, bars_seen=runner.bars_seen, last_bar_ts=runner.last_bar_ts)
            return _read(row, await self._order_count(session, deployment_id))

    async def stop(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead:
        """Stop placing orders (open orders stay; cancel or close them as you see fit)."""
        await self.get(owner_id=owner_id, deployment_id=deployment_id)
        runner = self._runners.pop(deployment_id, None)
        if runner is not None and runner.task is not None:
            runner.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner.task
            if runner.shell is not None:
                await self._save(runner)
        await self._set(deployment_id, DeploymentStatus.STOPPED, "stopped by user")
        return await self.get(owner_id=owner_id, deployment_id=deployment_id)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what was running before a restart (each waits for reconciliation)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(store.deployments).where(
                    store.deployments.c.status.in_(
                        (DeploymentStatus.STARTING.value, DeploymentStatus.RUNNING.value)
                    )
                )
            )
            for r in rows.mappings():
                self._launch(dict(r))

    async def close(self) -> None:
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            if runner.task is not None:
                runner.task.cancel()
        for runner in runners:
            if runner.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner.task
            if runner.shell is not None:
                with contextlib.suppress(Exception):
                    await self._save(runner)

    def _launch(self, row: dict[str, Any]) -> None:
        runner = _Runner(self, row)
        self._runners[runner.id] = runner
        runner.task = asyncio.get_running_loop().create_task(self._run(runner))

    # ---- rows ----------------------------------------------------------------------------------

    async def _order_count(self, session: AsyncSession, deployment_id: uuid.UUID) -> int:
        rows = await session.execute(
            select(store.orders.c.id).where(store.orders.c.deployment_id == deployment_id)
        )
        return len(rows.all())


__all__ = ["BarFeed", "Deployments", "build_strategy"]
