"""``BacktestService``: validate a run request, stage its bars, start its job, and keep its outcome.

A request is checked completely before any job starts: the strategy (or inline template) must
validate, the parameters must fit their specs, every symbol must have bars in the date range, the
series must outlast the indicators' warm-up, and an optimization's space must not exceed
``max_combinations``. Each failure is ``Invalid``/``NotFound`` naming the field. The job's outcome
is copied onto the run row once (on ``jobs.job.finished``, or on the first read after it), with a
``backtest.run.completed`` event through the outbox.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.core.market import AssetType, Bars
from algotrendy.db.outbox import Outbox
from algotrendy.engine.backtest import BacktestConfig
from algotrendy.engine.metrics import HIGHER_IS_BETTER
from algotrendy.engine.signals import grid_size, resolve_params, signal_warmup, validate_template
from algotrendy.engine.template import ParamValue, StrategyTemplate, TemplateError
from algotrendy.services.backtest import compute, inputs, robustness, store
from algotrendy.services.backtest.interface import (
    BacktestCompleted,
    BacktestCreate,
    CompareRead,
    CompareRequest,
    MonteCarloCreate,
    OptimizeCreate,
    RunAccepted,
    RunKind,
    RunResults,
    RunSettings,
    RunStatus,
    RunStatusRead,
    RunSummary,
    StrategyBacktestCreate,
    StrategyOptimizeCreate,
    WalkForwardCreate,
)
from algotrendy.services.backtest.jobs import KINDS
from algotrendy.services.backtest.settings import BacktestSettings
from algotrendy.services.jobs.interface import JobFinished, JobRead, JobsApi, JobStatus
from algotrendy.services.marketdata.interface import MarketDataApi
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.strategies.interface import StrategiesApi

log = structlog.get_logger(__name__)

PREFIX = "/api/v1/backtest"
MAX_PAGE = 200
HEADLINE = (
    "total_return",
    "annualized_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "win_rate",
    "profit_factor",
    "number_of_trades",
    "exposure",
    "final_equity",
)
_JOB_STATUS = {
    JobStatus.QUEUED: RunStatus.QUEUED,
    JobStatus.RUNNING: RunStatus.RUNNING,
    JobStatus.SUCCEEDED: RunStatus.COMPLETED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.CANCELLED: RunStatus.CANCELLED,
}
STOCKS = (AssetType.STOCK, AssetType.ETF)


def _not_found(run_id: uuid.UUID) -> NotFound:
    return NotFound(f"backtest {run_id} not found", code="backtest_not_found")


def _instant(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _invalid(exc: TemplateError, prefix: str) -> Invalid:
    field = exc.field or prefix
    if field.startswith("params."):
        field = "parameters." + field.removeprefix("params.")
    elif not field.startswith(("parameters", "space", "constraints")):
        field = f"{prefix}.{field}" if prefix and not field.startswith(prefix) else field
    return Invalid(f"{field}: {exc}", field=field, code="invalid_template")


class _Target:
    def __init__(
        self,
        template: StrategyTemplate,
        strategy_id: uuid.UUID | None,
        version: int | None,
        name: str,
        universe: list[Any],
    ) -> None:
        self.template = template
        self.strategy_id = strategy_id
        self.version = version
        self.name = name
        self.universe = universe


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
        self._models = models
        self._db = sessions
        self._clock = clock
        self._s = settings
        self._jobs = jobs
        self._strategies = strategies
        self._md = marketdata
        self._outbox = outbox
        self._dir = inputs_dir
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
            await self._finalize(row)

    # ---- starting runs --------------------------------------------------------------------------

    async def backtest(self, *, owner: uuid.UUID, request: BacktestCreate) -> RunAccepted:
        target = await self._target(owner, request.strategy_id, request.version, request.template)
        plan, meta = await self._prepare(owner, target, request)
        return await self._start(owner, RunKind.BACKTEST, request, plan, meta, {}, name=request.name)

    async def backtest_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyBacktestCreate
    ) -> RunAccepted:
        data = request.model_dump(exclude_unset=True) | {"strategy_id": strategy_id}
        return await self.backtest(owner=owner, request=BacktestCreate.model_validate(data))

    async def optimize(self, *, owner: uuid.UUID, request: OptimizeCreate) -> RunAccepted:
        target = await self._target(owner, request.strategy_id, request.version, request.template)
        settings = self._search_settings(target.template, request)
        plan, meta = await self._prepare(owner, target, request, search=settings)
        extra = {"settings": settings, "max_combinations": self._s.max_combinations}
        return await self._start(owner, RunKind.OPTIMIZE, request, plan, meta, extra)

    async def optimize_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyOptimizeCreate
    ) -> RunAccepted:
        data = request.model_dump(exclude_unset=True) | {"strategy_id": strategy_id}
        return await self.optimize(owner=owner, request=OptimizeCreate.model_validate(data))

    async def walk_forward(self, *, owner: uuid.UUID, request: WalkForwardCreate) -> RunAccepted:
        target = await self._target(owner, request.strategy_id, request.version, request.template)
        if target.template.rotation is not None:
            raise Invalid("walk-forward analysis runs one-symbol signal templates", field="template")
        settings = self._search_settings(target.template, request)
        settings |= {
            "training_window": request.training_window,
            "testing_window": request.testing_window,
            "step_size": request.step_size or request.testing_window,
            "anchored": request.anchored,
        }
        plan, meta = await self._prepare(owner, target, request, search=settings)
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
        settings = self._mc_settings(request)
        if request.backtest_id is not None:
            async with self._db() as session:
                row = await store.get(session, owner, request.backtest_id)
            if row is None:
                raise _not_found(request.backtest_id)
            if row.kind != RunKind.BACKTEST.value:
                raise Invalid("backtest_id must name a backtest run", field="backtest_id")
            source = BacktestCreate.model_validate(row.request)
            target = await self._target(owner, source.strategy_id, source.version, source.template)
            if row.strategy_id is not None:
                target.version = row.strategy_version
            plan, meta = await self._prepare(owner, target, source)
        else:
            target = await self._target(owner, request.strategy_id, request.version, request.template)
            plan, meta = await self._prepare(owner, target, request)
        return await self._start(owner, RunKind.MONTE_CARLO, request, plan, meta, {"settings": settings})

    async def run_here(
        self,
        *,
        owner: uuid.UUID,
        request: BacktestCreate | OptimizeCreate | WalkForwardCreate | MonteCarloCreate,
        progress: compute.Progress | None = None,
    ) -> dict[str, Any]:
        """Validate like the job-starting methods, then compute in this process (a worker thread)
        and return the result without storing it: the CLI and the Python API's quick path."""
        if isinstance(request, MonteCarloCreate):
            return await self._monte_carlo_here(owner, request)
        target = await self._target(owner, request.strategy_id, request.version, request.template)
        search: dict[str, Any] | None = None
        if isinstance(request, OptimizeCreate | WalkForwardCreate):
            search = self._search_settings(target.template, request)
        if isinstance(request, WalkForwardCreate) and search is not None:
            search |= {
                "training_window": request.training_window,
                "testing_window": request.testing_window,
                "step_size": request.step_size or request.testing_window,
                "anchored": request.anchored,
            }
        plan_json, meta = await self._prepare(owner, target, request, search=search)
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

        try:
            return await asyncio.to_thread(work)
        except TemplateError as exc:
            raise _invalid(exc, "template") from None

    async def _monte_carlo_here(self, owner: uuid.UUID, request: MonteCarloCreate) -> dict[str, Any]:
        if request.backtest_id is not None:
            raise Invalid(
                "run here with strategy_id or template; backtest_id needs the API", field="backtest_id"
            )
        settings = self._mc_settings(request)
        target = await self._target(owner, request.strategy_id, request.version, request.template)
        plan_json, meta = await self._prepare(owner, target, request)
        plan = compute.Plan.from_json(plan_json)

        def work() -> dict[str, Any]:
            result = compute.simulate(plan, meta["data"])
            out = robustness.monte_carlo(plan, result, settings)
            out["backtest"] = {"metrics": compute.describe(plan, result, meta["benchmark"])["metrics"]}
            return out

        try:
            return await asyncio.to_thread(work)
        except TemplateError as exc:
            raise _invalid(exc, "template") from None

    @staticmethod
    def _mc_settings(request: MonteCarloCreate) -> dict[str, Any]:
        if request.num_simulations * (request.time_horizon or 1) > 200_000_000:
            raise Invalid(
                "num_simulations x time_horizon must be at most 200,000,000", field="num_simulations"
            )
        keep = {
            "method",
            "num_simulations",
            "time_horizon",
            "block_size",
            "confidence_level",
            "ruin_threshold",
            "seed",
        }
        return request.model_dump(include=keep)

    # ---- validation and staging -------------------------------------------------------------------

    async def _target(
        self,
        owner: uuid.UUID,
        strategy_id: uuid.UUID | None,
        version: int | None,
        template: StrategyTemplate | None,
    ) -> _Target:
        if strategy_id is not None:
            s = await self._strategies.get(owner=owner, strategy_id=strategy_id)
            t = s.template
            if version is not None and version != s.version:
                t = (
                    await self._strategies.version(owner=owner, strategy_id=strategy_id, version=version)
                ).template
            return _Target(t, s.id, version or s.version, s.name, list(s.symbols))
        assert template is not None  # the DTO requires one of the two
        try:
            validate_template(template)
        except TemplateError as exc:
            raise _invalid(exc, "template") from None
        return _Target(template, None, None, template.name, [])

    def _search_settings(
        self, template: StrategyTemplate, request: OptimizeCreate | WalkForwardCreate
    ) -> dict[str, Any]:
        settings = request.model_dump(
            include={
                "parameters",
                "space",
                "optimization_method",
                "objective",
                "n_trials",
                "top_n",
                "min_trades",
                "seed",
                "constraints",
            }
        )
        try:
            searched = compute.search_template(
                template, {k: v.model_dump() for k, v in request.space.items()}
            )
            names = list(request.parameters) or compute.default_names(searched)
            if not names:
                raise Invalid("the template has no parameter with a range to optimize", field="parameters")
            if request.optimization_method != "bayesian":
                size = grid_size(searched, names)
                limit = self._s.max_combinations
                if size > limit:
                    raise Invalid(
                        f"the parameter space has {size} combinations, more than the maximum of {limit}: "
                        "narrow the ranges, raise the steps, or use random_search / bayesian",
                        field="parameters",
                        code="too_many_combinations",
                    )
            for c in request.constraints:
                compute.constraint_check([c])(resolve_params(searched, {}))
        except TemplateError as exc:
            raise _invalid(exc, "template") from None
        settings["parameters"] = names
        settings["space"] = {k: v.model_dump() for k, v in request.space.items()}
        return settings

    async def _prepare(
        self, owner: uuid.UUID, target: _Target, req: RunSettings, *, search: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        t = target.template
        try:
            params = resolve_params(t, req.params)
        except TemplateError as exc:
            raise _invalid(exc, "parameters") from None
        first = target.universe[0] if target.universe else None
        symbols = list(req.symbols) or ([req.symbol] if req.symbol else [u.symbol for u in target.universe])
        venue = req.venue or (first.venue if first else None)
        interval = req.interval or (first.interval if first else "1d")
        if not symbols:
            raise Invalid("give symbol (or symbols): the strategy has no default universe", field="symbol")
        if t.rotation is None and len(symbols) != 1:
            raise Invalid(
                "a signal template trades one symbol; rotation templates take several", field="symbols"
            )
        if t.rotation is not None and len(symbols) < 2:
            raise Invalid("a rotation template needs at least two symbols", field="symbols")
        start, end = _instant(req.start_date), _instant(req.end_date)
        if start is not None and end is not None and end <= start:
            raise Invalid("end_date must be after start_date", field="end_date", code="bad_window")
        data: dict[str, Bars] = {}
        asset = None
        for sym in symbols:
            series = await self._md.read_bars(
                symbol=sym, venue=venue, interval=interval, start=start, end=end
            )
            asset = asset or series.asset_type
            if len(series.bars) == 0:
                raise Invalid(
                    f"no {interval} bars of {series.symbol} between {start or 'the start'} "
                    f"and {end or 'the end'}",
                    field="start_date",
                    code="no_data",
                )
            if len(series.bars) > self._s.max_bars:
                raise Invalid(
                    f"{len(series.bars)} bars of {series.symbol}; at most {self._s.max_bars} per run: "
                    "narrow the dates or use a coarser interval",
                    field="start_date",
                    code="too_many_bars",
                )
            data[series.symbol] = series.bars
        if t.models:
            data = await self._with_models(owner, t, data, interval)
        n = min(len(b) for b in data.values())
        warm = self._warmup(t, params, search)
        if warm >= n - 1:
            raise Invalid(
                f"{n} bars are too few: the indicators need {warm} bars of warm-up before the first signal",
                field="start_date",
                code="series_too_short",
            )
        bench, bench_name = await self._benchmark(req, asset, list(data), interval, start, end)
        config = BacktestConfig(
            initial_capital=req.initial_capital,
            fee_rate=req.commission,
            slippage=req.slippage,
            fee_fixed=req.fixed_fee,
            lot_size=req.lot_size,
            leverage=req.leverage,
        )
        plan = {
            "template": t.model_dump(mode="json"),
            "params": params,
            "symbols": list(data),
            "config": asdict(config),
            "engine": req.engine,
            "risk_free_rate": req.risk_free_rate,
            "curve_points": self._s.curve_points,
            "max_trades": self._s.max_trades,
            "workers": self._s.sweep_workers,
            "benchmark": bench_name,
        }
        meta = {"target": target, "data": data, "benchmark": bench, "interval": interval, "bars": n}
        return plan, meta

    async def _with_models(
        self, owner: uuid.UUID, t: StrategyTemplate, data: dict[str, Bars], interval: str
    ) -> dict[str, Bars]:
        """The bars with the P(up) series of the template's ``models`` (out of sample only)."""
        if self._models is None:
            raise Invalid(
                "this template reads ML models; the ml service must run in this process",
                field="template.models",
                code="ml_unavailable",
            )
        score = await self._models.scorer(owner=owner, models=t.models, interval=interval)
        out: dict[str, Bars] = {}
        for symbol, bars in data.items():
            out[symbol] = bars.with_series(await asyncio.to_thread(score, bars))
        return out

    def _warmup(self, t: StrategyTemplate, params: dict[str, Any], search: Mapping[str, Any] | None) -> int:
        """The warm-up of the run, or of the slowest parameter values an optimization may try."""
        try:
            warm = signal_warmup(t, params)
            if search:
                searched = compute.search_template(t, search.get("space") or {})
                worst: dict[str, ParamValue] = {}
                for n in search.get("parameters") or []:
                    spec = searched.parameters[n]
                    if spec.type != "choice" and spec.max_value is not None:
                        worst[n] = int(spec.max_value) if spec.type == "int" else spec.max_value
                warm = max(warm, signal_warmup(searched, resolve_params(searched, {**params, **worst})))
        except TemplateError as exc:
            raise _invalid(exc, "template") from None
        return warm

    async def _benchmark(
        self,
        req: RunSettings,
        asset: AssetType | None,
        symbols: list[str],
        interval: str,
        start: datetime | None,
        end: datetime | None,
    ) -> tuple[Bars | None, str | None]:
        name = req.benchmark
        if name is None and asset in STOCKS and self._s.default_benchmark not in symbols:
            name = self._s.default_benchmark
        if name is None:
            return None, None
        try:
            series = await self._md.read_bars(symbol=name, interval=interval, start=start, end=end)
        except NotFound:
            if req.benchmark is not None:
                raise Invalid(
                    f"no benchmark series {name!r}", field="benchmark", code="unknown_benchmark"
                ) from None
            return None, None
        return (series.bars, series.symbol) if len(series.bars) else (None, None)

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
        target: _Target = meta["target"]
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

    # ---- reading, finishing, comparing ---------------------------------------------------------------

    async def _row(self, owner: uuid.UUID, run_id: uuid.UUID) -> Any:
        async with self._db() as session:
            row = await store.get(session, owner, run_id)
        if row is None:
            raise _not_found(run_id)
        if row.finished_at is None and row.job_id is not None:
            job = await self._jobs.get(owner=row.owner_id, job_id=row.job_id)
            if job.status.finished:
                await self._finalize(row, job)
                async with self._db() as session:
                    row = await store.get(session, owner, run_id)
            else:
                return row, job
        return row, None

    async def _finalize(self, row: Any, job: JobRead | None = None) -> None:
        job = job or await self._jobs.get(owner=row.owner_id, job_id=row.job_id)
        if not job.status.finished:
            return
        status = _JOB_STATUS[job.status]
        result = job.result if isinstance(job.result, dict) else None
        values = {
            "status": status.value,
            "result": result,
            "metrics": _headline(row.kind, result),
            "error": job.error,
            "partial": status is not RunStatus.COMPLETED and result is not None,
            "finished_at": job.finished_at or self._clock.now(),
            "inputs": None,
        }
        async with self._db.begin() as session:
            won = await store.finish(session, row.id, values)
            if won:
                await self._outbox.add(
                    session,
                    BacktestCompleted(
                        backtest_id=row.id, owner_id=row.owner_id, kind=RunKind(row.kind), status=status
                    ),
                )
        if won:
            inputs.remove(row.inputs)
            log.info("backtest.finished", run_id=str(row.id), status=status.value)

    async def status(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        row, job = await self._row(owner, backtest_id)
        if job is not None:
            return RunStatusRead(
                backtest_id=row.id,
                kind=RunKind(row.kind),
                status=_JOB_STATUS[job.status],
                progress=job.progress,
                eta_seconds=job.eta_seconds,
                message=job.message,
                error=None,
                created_at=row.created_at,
            )
        done = row.status == RunStatus.COMPLETED.value
        return RunStatusRead(
            backtest_id=row.id,
            kind=RunKind(row.kind),
            status=RunStatus(row.status),
            progress=1.0 if done else 0.0,
            eta_seconds=None,
            message=None,
            error=row.error,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    async def results(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunResults:
        row, job = await self._row(owner, backtest_id)
        summary = _summary(row, RunStatus(row.status) if job is None else _JOB_STATUS[job.status])
        return RunResults(
            **summary.model_dump(),
            request=row.request,
            result=row.result,
            partial=row.partial,
            error=row.error,
        )

    async def list(
        self,
        *,
        owner: uuid.UUID,
        kind: RunKind | None = None,
        strategy_id: uuid.UUID | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[RunSummary]:
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must not be negative", field="offset")
        async with self._db() as session:
            rows = await store.listing(
                session, owner, kind=kind, strategy_id=strategy_id, limit=limit, offset=offset
            )
        live = await self._live_statuses(owner, rows)
        return [_summary(r, live.get(r.id, RunStatus(r.status))) for r in rows]

    async def _live_statuses(self, owner: uuid.UUID, rows: builtins.list[Any]) -> dict[uuid.UUID, RunStatus]:
        """Runs whose job is still queued or running, as the jobs service sees them: two queries
        for the page, not one per run. A run whose job has finished is finalized here."""
        pending = [r for r in rows if r.finished_at is None and r.job_id is not None]
        if not pending:
            return {}
        running = {j.id for j in await self._jobs.list(owner=owner, status=JobStatus.RUNNING, limit=200)}
        queued = {j.id for j in await self._jobs.list(owner=owner, status=JobStatus.QUEUED, limit=200)}
        out: dict[uuid.UUID, RunStatus] = {}
        for r in pending:
            if r.job_id in running:
                out[r.id] = RunStatus.RUNNING
            elif r.job_id in queued:
                out[r.id] = RunStatus.QUEUED
            else:  # finished (or beyond the first 200 of either list): ask for this one
                row, job = await self._row(owner, r.id)
                out[r.id] = _JOB_STATUS[job.status] if job is not None else RunStatus(row.status)
        return out

    async def cancel(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        row, job = await self._row(owner, backtest_id)
        if job is None:
            raise Conflict(
                f"backtest {backtest_id} has already finished ({row.status})", code="already_finished"
            )
        try:
            await self._jobs.cancel(owner=owner, job_id=row.job_id)
        except Conflict:  # it finished in between
            raise Conflict(f"backtest {backtest_id} has already finished", code="already_finished") from None
        return await self.status(owner=owner, backtest_id=backtest_id)

    async def delete(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> None:
        row, job = await self._row(owner, backtest_id)
        if job is not None:
            with contextlib.suppress(Conflict):  # finished in between
                await self._jobs.cancel(owner=owner, job_id=row.job_id)
        async with self._db.begin() as session:
            await store.remove(session, owner, backtest_id)
        inputs.remove(row.inputs)

    async def compare(self, *, owner: uuid.UUID, request: CompareRequest) -> CompareRead:
        ids = list(dict.fromkeys(request.backtest_ids))
        for run_id in ids:
            await self._row(owner, run_id)  # finalizes finished ones; NotFound for others' runs
        async with self._db() as session:
            rows = {r.id: r for r in await store.many(session, owner, ids)}
        for run_id in ids:
            row = rows[run_id]
            if row.kind != RunKind.BACKTEST.value or row.status != RunStatus.COMPLETED.value:
                raise Conflict(
                    f"backtest {run_id} is a {row.kind} run in status {row.status}; "
                    "compare completed backtests",
                    field="backtest_ids",
                    code="not_comparable",
                )
        names = request.metrics or list(HEADLINE)
        unknown = [m for m in names if m not in HIGHER_IS_BETTER and m != "final_equity"]
        if unknown:
            raise Invalid(
                f"unknown metric(s) {unknown}; known: {', '.join(HIGHER_IS_BETTER)}", field="metrics"
            )
        table: dict[str, dict[str, Any]] = {}
        best: dict[str, uuid.UUID | None] = {}
        for m in names:
            col = {str(i): (rows[i].metrics or {}).get(m) for i in ids}
            table[m] = col
            numbers = [(v, i) for i in ids if isinstance(v := col[str(i)], int | float) and math.isfinite(v)]
            higher = HIGHER_IS_BETTER.get(m, True)
            if m == "max_drawdown":
                higher = True  # drawdowns are negative: the largest is the shallowest
            best[m] = (max(numbers) if higher else min(numbers))[1] if numbers else None
        return CompareRead(
            metrics=names,
            runs=[_summary(rows[i], RunStatus(rows[i].status)) for i in ids],
            table=table,
            best=best,
        )


def _headline(kind: str, result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    if kind == RunKind.BACKTEST.value:
        m = result.get("metrics") or {}
    elif kind == RunKind.OPTIMIZE.value:
        m = ((result.get("best") or {}).get("metrics") or {}) | {
            "deflated_sharpe": result.get("deflated_sharpe")
        }
    elif kind == RunKind.WALK_FORWARD.value:
        m = (result.get("metrics") or {}) | {"efficiency": result.get("efficiency")}
    else:
        tb = result.get("trade_bootstrap") or {}
        bb = result.get("block_bootstrap") or {}
        return {"probability_of_ruin": tb.get("probability_of_ruin", bb.get("probability_of_ruin"))}
    keep = (*HEADLINE, "deflated_sharpe", "efficiency", "alpha", "beta")
    return {k: m[k] for k in keep if k in m}


def _summary(row: Any, status: RunStatus) -> RunSummary:
    return RunSummary(
        backtest_id=row.id,
        kind=RunKind(row.kind),
        status=status,
        name=row.name,
        strategy_id=row.strategy_id,
        strategy_version=row.strategy_version,
        strategy_name=row.strategy_name,
        symbols=list(row.symbols),
        interval=row.interval,
        metrics=row.metrics or {},
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
