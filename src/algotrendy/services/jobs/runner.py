"""The runner: claims queued jobs, runs them on the executor, supervises and records them.

It claims queued jobs of the kinds this process registered, up to ``settings.workers`` at once,
and hands each to the ``Executor``. A supervisor task per job copies progress to the row every
``progress_interval`` seconds (with an ETA from elapsed time and progress), passes a requested
cancel on to the worker, and writes the outcome with a ``JobFinished`` outbox row in the same
transaction.

Crash recovery: the runner heartbeats the rows it runs; a ``running`` row whose heartbeat is
older than ``stale_after`` belongs to a dead process and is re-queued, or failed with error
``"interrupted"`` once it has been started ``max_attempts`` times (checked at start and then
every quarter of ``stale_after``). ``stop`` kills the workers and re-queues their jobs at once.
Several runners may share one database: every transition is a guarded UPDATE, so a job runs
at least once and, barring a crash, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.ids import new_id
from algotrendy.db.outbox import Outbox
from algotrendy.db.waits import wait_event
from algotrendy.services.jobs import store
from algotrendy.services.jobs.interface import Executor, JobFinished, JobHandle, JobStatus
from algotrendy.services.jobs.registry import JobRegistry, describe_error, estimate_eta, execute_job
from algotrendy.services.jobs.settings import JobsSettings

log = structlog.get_logger(__name__)

_FINISH_RETRIES = 8


@dataclass
class _Run:
    job_id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    handle: JobHandle
    started: float  # clock.monotonic() at launch
    cancel_sent: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class JobRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        executor: Executor,
        registry: JobRegistry,
        clock: Clock,
        settings: JobsSettings,
        outbox: Outbox | None,
        *,
        poll_interval: float,
    ) -> None:
        self._sessions = sessions
        self._executor = executor
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._outbox = outbox
        self._poll = poll_interval
        self.runner_id = new_id()
        self._runs: dict[uuid.UUID, _Run] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._finished = asyncio.Event()

    def wake(self) -> None:
        """Look for queued jobs now (called after a submit)."""
        self._wakeup.set()

    @property
    def finished_signal(self) -> asyncio.Event:
        """Set (and replaced) whenever a job finishes in this process."""
        return self._finished

    async def signal_cancel(self, job_id: uuid.UUID) -> None:
        """Pass a cancel on to the worker if this process runs the job."""
        run = self._runs.get(job_id)
        if run is not None:
            await self._signal_cancel(run)

    @property
    def running(self) -> frozenset[uuid.UUID]:
        """Ids of the jobs this process is running now."""
        return frozenset(self._runs)

    async def start(self) -> None:
        """Start the executor, recover jobs orphaned by dead processes, start the runner loop."""
        if self._loop_task is not None:
            return
        await self._executor.start()
        try:
            await self._recover_stale()
        except Exception as exc:
            log.error("jobs.recovery_failed", error=describe_error(exc))
        self._loop_task = asyncio.get_running_loop().create_task(self._run_loop(), name="jobs:runner")
        log.info("jobs.runner_started", runner_id=str(self.runner_id), kinds=sorted(self._registry.kinds()))

    async def stop(self) -> None:
        """Stop claiming, kill the workers, and re-queue what they were running."""
        task, self._loop_task = self._loop_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runs = list(self._runs.values())
        for run in runs:
            if run.task is not None:
                run.task.cancel()
        await asyncio.gather(*(r.task for r in runs if r.task is not None), return_exceptions=True)
        self._runs.clear()
        try:
            await self._executor.close()
        except Exception as exc:
            log.error("jobs.executor_close_failed", error=describe_error(exc))
        try:
            async with self._sessions() as session:
                rows = await store.running_rows(session, runner_id=self.runner_id)
            await self._release(rows, reason="stopped")
        except Exception as exc:
            log.error("jobs.release_failed", error=describe_error(exc))
        log.info("jobs.runner_stopped", runner_id=str(self.runner_id), released=len(runs))

    # --- runner ----------------------------------------------------------------------------------

    async def _run_loop(self) -> None:
        loop = asyncio.get_running_loop()
        every = self._settings.stale_after / 4
        next_maintenance = loop.time() + every
        while True:
            try:
                if loop.time() >= next_maintenance:
                    next_maintenance = loop.time() + every
                    await self._maintain()
                await self._fill()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("jobs.runner_error", error=describe_error(exc))
            timeout = max(0.0, min(self._poll, next_maintenance - loop.time()))
            await wait_event(self._wakeup, timeout)  # a stop's cancel is never lost (``db.waits``)
            self._wakeup.clear()

    async def _maintain(self) -> None:
        if self._runs:
            async with self._sessions() as session, session.begin():
                ids = list(self._runs)
                await store.heartbeat(session, job_ids=ids, runner_id=self.runner_id, now=self._clock.now())
        await self._recover_stale()

    async def _recover_stale(self) -> None:
        cutoff = self._clock.now() - timedelta(seconds=self._settings.stale_after)
        async with self._sessions() as session:
            rows = await store.running_rows(session, stale_before=cutoff)
        await self._release([r for r in rows if r.id not in self._runs], reason="stale")

    async def _release(self, rows: Sequence[store.JobRow], *, reason: str) -> None:
        """Give running rows back: cancelled if asked, failed after ``max_attempts``, else queued."""
        requeued = False
        for row in rows:
            status = JobStatus.QUEUED
            values: dict[str, Any]
            if row.cancel_requested:
                status = JobStatus.CANCELLED
                values = {"status": status.value, "finished_at": self._clock.now(), "eta_seconds": None}
            elif row.attempts >= self._settings.max_attempts:
                status = JobStatus.FAILED
                values = {
                    "status": status.value,
                    "error": "interrupted",
                    "finished_at": self._clock.now(),
                    "eta_seconds": None,
                }
            else:
                values = {
                    "status": status.value,
                    "runner_id": None,
                    "heartbeat_at": None,
                    "started_at": None,
                    "progress": 0.0,
                    "eta_seconds": None,
                    "message": None,
                }
            async with self._sessions() as session, session.begin():
                won = await store.transition(
                    session, row.id, expect=JobStatus.RUNNING, held_by=row.runner_id, values=values
                )
                if won and status.finished:
                    await self.emit_finished(session, row.id, row.owner_id, row.kind, status)
            if not won:
                continue
            log.warning(
                "jobs.released",
                job_id=str(row.id),
                reason=reason,
                outcome=status.value,
                attempts=row.attempts,
            )
            if status.finished:
                self.notify_finished()
            else:
                requeued = True
        if requeued:
            self._wakeup.set()

    async def _fill(self) -> None:
        free = self._settings.workers - len(self._runs)
        kinds = self._registry.kinds()
        if free <= 0 or not kinds or self._loop_task is None:
            return
        async with self._sessions() as session:
            candidates = await store.next_queued(session, kinds=kinds, limit=free)
        for candidate in candidates:
            async with self._sessions() as session, session.begin():
                now = self._clock.now()
                won = await store.claim(session, candidate.id, runner_id=self.runner_id, now=now)
            if won:
                await self._launch(candidate)

    async def _launch(self, row: store.JobRow) -> None:
        try:
            fn = self._registry.get(row.kind)
            task = functools.partial(execute_job, fn, row.params)
            started = self._clock.monotonic()
            handle = await self._executor.submit(job_id=row.id, task=task)
        except Exception as exc:  # claimed but cannot run: fail it rather than leave it running
            error = describe_error(exc)
            log.error("jobs.submit_failed", job_id=str(row.id), error=error)
            await self._finish(row.id, row.owner_id, row.kind, {"status": "failed", "error": error})
            return
        run = _Run(job_id=row.id, owner_id=row.owner_id, kind=row.kind, handle=handle, started=started)
        self._runs[row.id] = run
        run.task = asyncio.get_running_loop().create_task(self._supervise(run), name=f"jobs:{row.id}")
        log.info("jobs.started", job_id=str(row.id), kind=row.kind)

    async def _supervise(self, run: _Run) -> None:
        waiter = asyncio.ensure_future(run.handle.wait())
        last: tuple[float, str | None] | None = None
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=self._settings.progress_interval)
                if done:
                    break
                try:
                    last = await self._sync_progress(run, last)
                except Exception as exc:
                    log.warning("jobs.progress_failed", job_id=str(run.job_id), error=describe_error(exc))
            try:
                outcome: Any = waiter.result()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # the worker was lost: the job failed, the runner goes on
                outcome = {"status": "failed", "error": describe_error(exc)}
            await self._finish(run.job_id, run.owner_id, run.kind, outcome, started=run.started)
        finally:
            if not waiter.done():
                waiter.cancel()
            self._runs.pop(run.job_id, None)
            self._wakeup.set()

    async def _sync_progress(
        self, run: _Run, last: tuple[float, str | None] | None
    ) -> tuple[float, str | None] | None:
        latest = await run.handle.progress()
        async with self._sessions() as session, session.begin():
            if latest is not None and latest != last:
                fraction, message = latest
                eta = estimate_eta(self._clock.monotonic() - run.started, fraction)
                values = {"progress": fraction, "message": message, "eta_seconds": eta}
                await store.transition(
                    session, run.job_id, expect=JobStatus.RUNNING, held_by=self.runner_id, values=values
                )
                last = latest
            wants_cancel = await store.cancel_flag(session, run.job_id)
        if wants_cancel:
            await self._signal_cancel(run)
        return last

    async def _signal_cancel(self, run: _Run) -> None:
        if run.cancel_sent:
            return
        run.cancel_sent = True
        try:
            await run.handle.cancel()
        except Exception as exc:
            log.warning("jobs.cancel_signal_failed", job_id=str(run.job_id), error=describe_error(exc))

    async def _finish(
        self, job_id: uuid.UUID, owner_id: uuid.UUID, kind: str, outcome: Any, *, started: float | None = None
    ) -> None:
        status, values = _final_values(outcome)
        values.update(status=status.value, finished_at=self._clock.now(), eta_seconds=None)
        for attempt in range(_FINISH_RETRIES):
            try:
                async with self._sessions() as session, session.begin():
                    won = await store.transition(
                        session, job_id, expect=JobStatus.RUNNING, held_by=self.runner_id, values=values
                    )
                    if won:
                        await self.emit_finished(session, job_id, owner_id, kind, status)
                break
            except Exception as exc:  # the database hiccuped: retry, the outcome is only here
                error = describe_error(exc)
                log.warning("jobs.finish_retry", job_id=str(job_id), attempt=attempt, error=error)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        else:
            log.error("jobs.finish_failed", job_id=str(job_id))  # heartbeat stops: recovery re-queues it
            return
        if not won:
            log.warning("jobs.finish_lost", job_id=str(job_id), status=status.value)
            return
        seconds = None if started is None else round(self._clock.monotonic() - started, 3)
        log.info("jobs.finished", job_id=str(job_id), kind=kind, status=status.value, seconds=seconds)
        self.notify_finished()

    async def emit_finished(
        self, session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID, kind: str, status: JobStatus
    ) -> None:
        if self._outbox is not None:
            event = JobFinished(job_id=job_id, owner_id=owner_id, kind=kind, status=status)
            await self._outbox.add(session, event)

    def notify_finished(self) -> None:
        signal, self._finished = self._finished, asyncio.Event()
        signal.set()


def _final_values(outcome: Any) -> tuple[JobStatus, dict[str, Any]]:
    """Row values for an executor outcome (see ``registry.execute_job``; ``None``: never started)."""
    if outcome is None:
        return JobStatus.CANCELLED, {}
    kind = outcome.get("status") if isinstance(outcome, dict) else None
    if kind == "succeeded":
        return JobStatus.SUCCEEDED, {"result": outcome.get("result"), "progress": 1.0}
    partial = {"result": outcome["result"]} if isinstance(outcome, dict) and "result" in outcome else {}
    if kind == "cancelled":
        return JobStatus.CANCELLED, partial
    if kind == "failed":
        return JobStatus.FAILED, {"error": str(outcome.get("error") or "failed"), **partial}
    return JobStatus.FAILED, {"error": f"BadOutcome: executor returned {type(outcome).__name__}"}
