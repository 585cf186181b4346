"""Starting runs: backtest, optimization, walk-forward and Monte Carlo requests are planned
(``planning.Planner``), their bars staged for the job (workers open no database), the run row
stored and the job submitted; a failed submission removes the row and the staged inputs.
``run_here`` plans the same way and computes in this process instead, storing nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid
from algotrendy.engine.template import TemplateError
from algotrendy.services.backtest import compute, inputs, robustness, store
from algotrendy.services.backtest.interface import (
    BacktestCreate,
    MonteCarloCreate,
    OptimizeCreate,
    RunAccepted,
    RunKind,
    RunStatus,
    WalkForwardCreate,
)
from algotrendy.services.backtest.jobs import KINDS
from algotrendy.services.backtest.planning import Planner, RunTarget, invalid, mc_settings
from algotrendy.services.backtest.settings import BacktestSettings
from algotrendy.services.backtest.views import not_found
from algotrendy.services.jobs.interface import JobsApi

log = structlog.get_logger(__name__)

PREFIX = "/api/v1/backtest"


class Submission:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: BacktestSettings,
        jobs: JobsApi,
        planner: Planner,
        inputs_dir: Path,
    ) -> None:
        self._db = sessions
        self._clock = clock
        self._s = settings
        self._jobs = jobs
        self._plan = planner
        self._dir = inputs_dir

    async def backtest(self, *, owner: uuid.UUID, request: BacktestCreate) -> RunAccepted:
        target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
        plan, meta = await self._plan.prepare(owner, target, request)
        return await self._start(owner, RunKind.BACKTEST, request, plan, meta, {}, name=request.name)

    async def optimize(self, *, owner: uuid.UUID, request: OptimizeCreate) -> RunAccepted:
        target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
        settings = self._plan.search_settings(target.template, request)
        plan, meta = await self._plan.prepare(owner, target, request, search=settings)
        extra = {"settings": settings, "max_combinations": self._s.max_combinations}
        return await self._start(owner, RunKind.OPTIMIZE, request, plan, meta, extra)

    async def walk_forward(self, *, owner: uuid.UUID, request: WalkForwardCreate) -> RunAccepted:
        target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
        if target.template.rotation is not None:
            raise Invalid("walk-forward analysis runs one-symbol signal templates", field="template")
        settings = self._plan.walk_forward_settings(target.template, request)
        plan, meta = await self._plan.prepare(owner, target, request, search=settings)
        n = meta["bars"]
        if request.training_window + request.testing_window > n:
            raise Invalid(
                f"{n} bars are too few for one window of {request.training_window} training + "
                f"{request.testing_window} testing bars",
                field="training_window",
                code="series_too_short",
            )
        extra = {"settings": settings, "max_combinations": self._s.max_combinations}
        return await self._start(owner, RunKind.WALK_FORWARD, request, plan, meta, extra)

    async def monte_carlo(self, *, owner: uuid.UUID, request: MonteCarloCreate) -> RunAccepted:
        settings = mc_settings(request)
        if request.backtest_id is not None:
            async with self._db() as session:
                row = await store.get(session, owner, request.backtest_id)
            if row is None:
                raise not_found(request.backtest_id)
            if row.kind != RunKind.BACKTEST.value:
                raise Invalid("backtest_id must name a backtest run", field="backtest_id")
            source = BacktestCreate.model_validate(row.request)
            target = await self._plan.target(owner, source.strategy_id, source.version, source.template)
            if row.strategy_id is not None:
                target.version = row.strategy_version
            plan, meta = await self._plan.prepare(owner, target, source)
        else:
            target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
            plan, meta = await self._plan.prepare(owner, target, request)
        return await self._start(owner, RunKind.MONTE_CARLO, request, plan, meta, {"settings": settings})

    # ---- in this process ------------------------------------------------------------------------

    async def run_here(
        self,
        *,
        owner: uuid.UUID,
        request: BacktestCreate | OptimizeCreate | WalkForwardCreate | MonteCarloCreate,
        progress: compute.Progress | None = None,
    ) -> dict[str, Any]:
        """Plan as ``monte_carlo``/``optimize``/... do, compute in a worker thread, store nothing."""
        if isinstance(request, MonteCarloCreate):
            return await self._monte_carlo_here(owner, request)
        target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
        search: dict[str, Any] | None = None
        if isinstance(request, WalkForwardCreate):
            search = self._plan.walk_forward_settings(target.template, request)
        elif isinstance(request, OptimizeCreate):
            search = self._plan.search_settings(target.template, request)
        plan_json, meta = await self._plan.prepare(owner, target, request, search=search)
        plan = compute.Plan.from_json(plan_json)
        data, bench = meta["data"], meta["benchmark"]
        report = progress or (lambda _f, _m: None)
        limit = self._s.max_combinations

        def work() -> dict[str, Any]:
            if isinstance(request, WalkForwardCreate):
                assert search is not None
                return robustness.walk_forward(plan, data, search, report, max_combinations=limit)
            if isinstance(request, OptimizeCreate):
                assert search is not None
                return compute.optimize(plan, data, bench, search, report, max_combinations=limit)
            return compute.backtest(plan, data, bench, report)

        return await _in_thread(work)

    async def _monte_carlo_here(self, owner: uuid.UUID, request: MonteCarloCreate) -> dict[str, Any]:
        if request.backtest_id is not None:
            raise Invalid(
                "run here with strategy_id or template; backtest_id needs the API", field="backtest_id"
            )
        settings = mc_settings(request)
        target = await self._plan.target(owner, request.strategy_id, request.version, request.template)
        plan_json, meta = await self._plan.prepare(owner, target, request)
        plan = compute.Plan.from_json(plan_json)

        def work() -> dict[str, Any]:
            result = compute.simulate(plan, meta["data"])
            out = robustness.monte_carlo(plan, result, settings)
            out["backtest"] = {"metrics": compute.describe(plan, result, meta["benchmark"])["metrics"]}
            return out

        return await _in_thread(work)

    # ---- the run row and its job ----------------------------------------------------------------

    async def _start(
        self,
        owner: uuid.UUID,
        kind: RunKind,
        request: Any,
        plan: dict[str, Any],
        meta: dict[str, Any],
        extra: dict[str, Any],
        *,
        name: str | None = None,
    ) -> RunAccepted:
        run_id = uuid.uuid4()
        target: RunTarget = meta["target"]
        path = inputs.save(self._dir, run_id, meta["data"], meta["benchmark"])
        now = self._clock.now()
        async with self._db.begin() as session:
            await store.add(
                session,
                {
                    "id": run_id,
                    "owner_id": owner,
                    "kind": kind.value,
                    "name": name,
                    "strategy_id": target.strategy_id,
                    "strategy_version": target.version,
                    "strategy_name": target.name[:100],
                    "symbols": plan["symbols"],
                    "interval": meta["interval"],
                    "job_id": None,
                    "status": RunStatus.QUEUED.value,
                    "request": request.model_dump(mode="json"),
                    "plan": plan,
                    "inputs": str(path),
                    "partial": False,
                    "created_at": now,
                },
            )
        try:
            job = await self._jobs.submit(
                owner=owner,
                kind=KINDS[kind.value],
                params={"run_id": str(run_id), "plan": plan, "inputs": str(path), **extra},
            )
        except Exception:
            async with self._db.begin() as session:
                await store.remove(session, owner, run_id)
            inputs.remove(path)
            raise
        async with self._db.begin() as session:
            await store.set_job(session, run_id, job.id)
        log.info(
            "backtest.started", run_id=str(run_id), kind=kind.value, job_id=str(job.id), bars=meta["bars"]
        )
        return RunAccepted(
            backtest_id=run_id,
            kind=kind,
            status=RunStatus.QUEUED,
            job_id=job.id,
            status_url=f"{PREFIX}/{run_id}/status",
            results_url=f"{PREFIX}/{run_id}/results",
        )


async def _in_thread(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` in a worker thread; a template error it raises is ``Invalid`` naming the field."""
    try:
        return await asyncio.to_thread(work)
    except TemplateError as exc:
        raise invalid(exc, "template") from None
