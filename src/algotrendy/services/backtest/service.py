"""``BacktestService``: validate a run request, stage its bars, start its job, and keep its outcome.

A request is checked completely before any job starts: the strategy (or inline template) must
validate, the parameters must fit their specs, every symbol must have bars in the date range, the
series must outlast the indicators' warm-up, and an optimization's space must not exceed
``max_combinations``. Each failure is ``Invalid``/``NotFound`` naming the field. The job's outcome
is copied onto the run row once (on ``jobs.job.finished``, or on the first read after it), with a
``backtest.run.completed`` event through the outbox.

This class is the ``BacktestApi`` the router and client call; it delegates to the parts next to
it: ``planning.Planner`` (checking a request, building its plan), ``submission.Submission``
(starting runs as jobs, or computing them here) and ``results.Results`` (finishing, reading,
cancelling, deleting and comparing runs).
"""

from __future__ import annotations

import builtins
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.db.outbox import Outbox
from algotrendy.services.backtest import compute, store
from algotrendy.services.backtest.interface import (
    BacktestCreate,
    CompareRead,
    CompareRequest,
    MonteCarloCreate,
    OptimizeCreate,
    RunAccepted,
    RunKind,
    RunResults,
    RunStatusRead,
    RunSummary,
    StrategyBacktestCreate,
    StrategyOptimizeCreate,
    WalkForwardCreate,
)
from algotrendy.services.backtest.planning import Planner
from algotrendy.services.backtest.results import Results
from algotrendy.services.backtest.settings import BacktestSettings
from algotrendy.services.backtest.submission import Submission
from algotrendy.services.jobs.interface import JobFinished, JobsApi
from algotrendy.services.marketdata.interface import MarketDataApi
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.strategies.interface import StrategiesApi


class BacktestService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: BacktestSettings,
        jobs: JobsApi,
        strategies: StrategiesApi,
        marketdata: MarketDataApi,
        outbox: Outbox,
        inputs_dir: Path,
        models: ModelScores | None = None,
    ) -> None:
        self._db = sessions
        planner = Planner(settings=settings, strategies=strategies, marketdata=marketdata, models=models)
        self._submission = Submission(
            sessions=sessions,
            clock=clock,
            settings=settings,
            jobs=jobs,
            planner=planner,
            inputs_dir=inputs_dir,
        )
        self._results = Results(sessions=sessions, clock=clock, jobs=jobs, outbox=outbox)
        self._subs: list[Subscription] = []

    async def subscribe(self, bus: Bus) -> None:
        self._subs.append(
            await bus.subscribe(JobFinished.topic, group="backtest.finalize", handler=self._on_job)
        )

    async def unsubscribe(self) -> None:
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()

    async def _on_job(self, envelope: Envelope) -> None:
        event = JobFinished.model_validate(envelope.data)
        if not event.kind.startswith("backtest."):
            return
        async with self._db() as session:
            row = await store.by_job(session, event.job_id)
        if row is not None and row.finished_at is None:
            await self._results.finalize(row)

    # ---- starting runs --------------------------------------------------------------------------

    async def backtest(self, *, owner: uuid.UUID, request: BacktestCreate) -> RunAccepted:
        return await self._submission.backtest(owner=owner, request=request)

    async def backtest_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyBacktestCreate
    ) -> RunAccepted:
        data = request.model_dump(exclude_unset=True) | {"strategy_id": strategy_id}
        return await self.backtest(owner=owner, request=BacktestCreate.model_validate(data))

    async def optimize(self, *, owner: uuid.UUID, request: OptimizeCreate) -> RunAccepted:
        return await self._submission.optimize(owner=owner, request=request)

    async def optimize_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyOptimizeCreate
    ) -> RunAccepted:
        data = request.model_dump(exclude_unset=True) | {"strategy_id": strategy_id}
        return await self.optimize(owner=owner, request=OptimizeCreate.model_validate(data))

    async def walk_forward(self, *, owner: uuid.UUID, request: WalkForwardCreate) -> RunAccepted:
        return await self._submission.walk_forward(owner=owner, request=request)

    async def monte_carlo(self, *, owner: uuid.UUID, request: MonteCarloCreate) -> RunAccepted:
        return await self._submission.monte_carlo(owner=owner, request=request)

    async def run_here(
        self,
        *,
        owner: uuid.UUID,
        request: BacktestCreate | OptimizeCreate | WalkForwardCreate | MonteCarloCreate,
        progress: compute.Progress | None = None,
    ) -> dict[str, Any]:
        """Validate like the job-starting methods, then compute in this process (a worker thread)
        and return the result without storing it: the CLI and the Python API's quick path."""
        return await self._submission.run_here(owner=owner, request=request, progress=progress)

    # ---- reading, finishing, comparing ---------------------------------------------------------------

    async def status(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        return await self._results.status(owner=owner, backtest_id=backtest_id)

    async def results(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunResults:
        return await self._results.results(owner=owner, backtest_id=backtest_id)

    async def list(
        self,
        *,
        owner: uuid.UUID,
        kind: RunKind | None = None,
        strategy_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[RunSummary]:
        return await self._results.list(
            owner=owner, kind=kind, strategy_id=strategy_id, limit=limit, offset=offset
        )

    async def cancel(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        return await self._results.cancel(owner=owner, backtest_id=backtest_id)

    async def delete(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> None:
        await self._results.delete(owner=owner, backtest_id=backtest_id)

    async def compare(self, *, owner: uuid.UUID, request: CompareRequest) -> CompareRead:
        return await self._results.compare(owner=owner, request=request)
