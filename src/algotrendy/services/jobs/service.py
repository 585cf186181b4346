"""``JobsService``: the ``JobsApi`` use cases over the ``jobs_jobs`` table.

Submitting stores a queued row and wakes the runner (``runner.py``), which does the running:
claiming, progress, ETA, cancel hand-off, outcome, recovery. ``start``/``stop`` start and stop
that runner and the executor it owns.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import math
import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.ids import new_id
from algotrendy.db.engine import begin_serialized
from algotrendy.db.outbox import Outbox
from algotrendy.db.waits import wait_event
from algotrendy.services.jobs import store
from algotrendy.services.jobs.interface import Executor, JobRead, JobStatus
from algotrendy.services.jobs.registry import JobRegistry
from algotrendy.services.jobs.runner import JobRunner
from algotrendy.services.jobs.settings import JobsSettings

log = structlog.get_logger(__name__)

MAX_PAGE = 200


class JobsService:
    """``JobsApi`` in this process. ``poll_interval``: how often the runner looks for jobs queued
    by other processes; ``wait_poll``: how often ``wait`` re-reads a job another process runs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        executor: Executor,
        registry: JobRegistry,
        clock: Clock,
        settings: JobsSettings,
        outbox: Outbox | None = None,
        *,
        poll_interval: float = 1.0,
        wait_poll: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._registry = registry
        self._clock = clock
        self._wait_poll = wait_poll
        self._runner = JobRunner(
            sessions, executor, registry, clock, settings, outbox, poll_interval=poll_interval
        )

    # --- JobsApi ---------------------------------------------------------------------------------

    async def submit(self, *, owner: uuid.UUID, kind: str, params: dict[str, Any]) -> JobRead:
        if kind not in self._registry:
            raise Invalid(f"unknown job kind '{kind}'", field="kind", code="unknown_job_kind")
        if not isinstance(params, dict):
            raise Invalid("params must be a JSON object", field="params")
        try:
            plain = json.loads(json.dumps(params, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise Invalid(f"params must be JSON: {exc}", field="params") from None
        values: dict[str, Any] = {
            "id": new_id(),
            "owner_id": owner,
            "kind": kind,
            "status": JobStatus.QUEUED.value,
            "params": plain,
            "progress": 0.0,
            "eta_seconds": None,
            "message": None,
            "result": None,
            "error": None,
            "attempts": 0,
            "cancel_requested": False,
            "runner_id": None,
            "created_at": self._clock.now(),
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
        }
        async with self._sessions() as session, session.begin():
            await store.insert_job(session, values)
        self._runner.wake()
        log.info("jobs.submitted", job_id=str(values["id"]), kind=kind)
        return store.to_read(values)

    async def get(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        async with self._sessions() as session:
            row = await store.fetch(session, job_id, owner=owner)
        if row is None:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        return store.to_read(row)

    async def list(
        self,
        *,
        owner: uuid.UUID,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[JobRead]:
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must not be negative", field="offset")
        async with self._sessions() as session:
            rows = await store.list_for_owner(
                session,
                owner=owner,
                status=JobStatus(status) if status is not None else None,
                kind=kind,
                limit=limit,
                offset=offset,
            )
        return [store.to_read(r) for r in rows]

    async def cancel(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        cancelled_now = False
        async with begin_serialized(self._sessions) as session:
            row = await store.fetch(session, job_id, owner=owner, lock=True)
            if row is None:
                raise NotFound(f"job {job_id} not found", code="job_not_found")
            status = JobStatus(row.status)
            if status.finished:
                raise Conflict(f"job {job_id} has already finished ({status.value})", code="job_finished")
            if status is JobStatus.QUEUED:
                values = {
                    "status": JobStatus.CANCELLED.value,
                    "cancel_requested": True,
                    "finished_at": self._clock.now(),
                }
                if await store.transition(session, job_id, expect=JobStatus.QUEUED, values=values):
                    await self._runner.emit_finished(
                        session, row.id, row.owner_id, row.kind, JobStatus.CANCELLED
                    )
                    cancelled_now = True
            else:
                await store.transition(session, job_id, expect=status, values={"cancel_requested": True})
            row = await store.fetch(session, job_id)
        if row is None:  # pragma: no cover - the row is ours inside the transaction above
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        await self._runner.signal_cancel(job_id)
        if cancelled_now:
            log.info("jobs.finished", job_id=str(job_id), kind=row.kind, status="cancelled")
            self._runner.notify_finished()
        return store.to_read(row)

    async def wait(
        self,
        *,
        owner: uuid.UUID,
        job_id: uuid.UUID,
        timeout: float,  # noqa: ASYNC109 - JobsApi contract
    ) -> JobRead:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout >= 0):
            raise Invalid("timeout must be a number of seconds >= 0", field="timeout")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = (
                self._runner.finished_signal
            )  # taken before reading, so a finish in between is not missed
            job = await self.get(owner=owner, job_id=job_id)
            left = deadline - loop.time()
            if job.status.finished or left <= 0:
                return job
            await wait_event(signal, min(left, self._wait_poll))

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def runner_id(self) -> uuid.UUID:
        return self._runner.runner_id

    @property
    def running(self) -> frozenset[uuid.UUID]:
        """Ids of the jobs this process is running now."""
        return self._runner.running

    async def start(self) -> None:
        """Start the executor, recover jobs orphaned by dead processes, start the runner loop."""
        await self._runner.start()

    async def stop(self) -> None:
        """Stop claiming, kill the workers, and re-queue what they were running."""
        await self._runner.stop()
