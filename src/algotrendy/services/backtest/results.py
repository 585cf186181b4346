"""Reading and finishing runs: a finished job's outcome is copied onto its run row once (on
``jobs.job.finished``, or on the first read after it) with ``backtest.run.completed`` through the
outbox; status, results, the owner's list (live statuses of unfinished runs), cancel, delete,
and comparing completed backtests metric by metric."""

from __future__ import annotations

import builtins
import contextlib
import math
import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid
from algotrendy.db.outbox import Outbox
from algotrendy.engine.metrics import HIGHER_IS_BETTER
from algotrendy.services.backtest import inputs, store
from algotrendy.services.backtest.interface import (
    BacktestCompleted,
    CompareRead,
    CompareRequest,
    RunKind,
    RunResults,
    RunStatus,
    RunStatusRead,
    RunSummary,
)
from algotrendy.services.backtest.views import HEADLINE, JOB_STATUS, headline, not_found, summary
from algotrendy.services.jobs.interface import JobRead, JobsApi, JobStatus

log = structlog.get_logger(__name__)

MAX_PAGE = 200


class Results:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        jobs: JobsApi,
        outbox: Outbox,
    ) -> None:
        self._db = sessions
        self._clock = clock
        self._jobs = jobs
        self._outbox = outbox

    async def row(self, owner: uuid.UUID, run_id: uuid.UUID) -> Any:
        """The run's row (finalized first when its job has finished) and, while running, its job."""
        async with self._db() as session:
            row = await store.get(session, owner, run_id)
        if row is None:
            raise not_found(run_id)
        if row.finished_at is None and row.job_id is not None:
            job = await self._jobs.get(owner=row.owner_id, job_id=row.job_id)
            if job.status.finished:
                await self.finalize(row, job)
                async with self._db() as session:
                    row = await store.get(session, owner, run_id)
            else:
                return row, job
        return row, None

    async def finalize(self, row: Any, job: JobRead | None = None) -> None:
        job = job or await self._jobs.get(owner=row.owner_id, job_id=row.job_id)
        if not job.status.finished:
            return
        status = JOB_STATUS[job.status]
        result = job.result if isinstance(job.result, dict) else None
        values = {
            "status": status.value,
            "result": result,
            "metrics": headline(row.kind, result),
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
        row, job = await self.row(owner, backtest_id)
        if job is not None:
            return RunStatusRead(
                backtest_id=row.id,
                kind=RunKind(row.kind),
                status=JOB_STATUS[job.status],
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
        row, job = await self.row(owner, backtest_id)
        s = summary(row, RunStatus(row.status) if job is None else JOB_STATUS[job.status])
        return RunResults(
            **s.model_dump(),
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
        return [summary(r, live.get(r.id, RunStatus(r.status))) for r in rows]

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
                row, job = await self.row(owner, r.id)
                out[r.id] = JOB_STATUS[job.status] if job is not None else RunStatus(row.status)
        return out

    async def cancel(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead:
        row, job = await self.row(owner, backtest_id)
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
        row, job = await self.row(owner, backtest_id)
        if job is not None:
            with contextlib.suppress(Conflict):  # finished in between
                await self._jobs.cancel(owner=owner, job_id=row.job_id)
        async with self._db.begin() as session:
            await store.remove(session, owner, backtest_id)
        inputs.remove(row.inputs)

    async def compare(self, *, owner: uuid.UUID, request: CompareRequest) -> CompareRead:
        ids = list(dict.fromkeys(request.backtest_ids))
        for run_id in ids:
            await self.row(owner, run_id)  # finalizes finished ones; NotFound for others' runs
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
            runs=[summary(rows[i], RunStatus(rows[i].status)) for i in ids],
            table=table,
            best=best,
        )
