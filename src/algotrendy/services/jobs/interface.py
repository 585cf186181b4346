"""Jobs API, DTOs, events, and the two contracts around a running job.

What other services use: ``JobsApi`` (submit, read, cancel, wait), ``JobRead``, ``JobFinished``,
and, to write a job kind, ``JobContext`` / ``JobCancelled`` / ``JobRegistrar``::

    def run_backtest(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        for i, chunk in enumerate(chunks):
            ctx.progress(i / len(chunks), f"chunk {i}")   # raises JobCancelled once cancelled
            ...
        return {"sharpe": 1.3}

    registrar.register("backtest.run", run_backtest)      # at startup

A job function is a top-level function (spawn workers and Ray pickle it by reference); its
params and result are JSON. It may run more than once (a restart re-queues a job that was
running), so it should be idempotent.

What executors implement (``adapters/jobs``): ``Executor`` runs a picklable ``task(channel)`` in
another process and returns a ``JobHandle``. The ``ProgressChannel`` is the executor's way to carry
progress out of, and the cancel flag into, the worker; ``JobContext`` wraps it for job code.
Adapters cannot import this module (layers), so they match these Protocols structurally.
"""

from __future__ import annotations

import builtins
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field, JsonValue

from algotrendy.core.events import Event

MAX_MESSAGE_LENGTH = 500


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobRead(BaseModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    progress: float = Field(ge=0, le=1, description="Fraction done, 0..1")
    eta_seconds: float | None = Field(None, ge=0, description="Estimated seconds left while running")
    message: str | None = None
    result: JsonValue | None = None
    error: str | None = Field(None, description="'ExceptionType: message' when failed")
    attempts: int = Field(ge=0, description="Times the job has been started")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False


class JobFinished(Event):
    """A job reached succeeded, failed or cancelled."""

    topic: ClassVar[str] = "jobs.job.finished"
    job_id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    status: JobStatus


class JobsApi(Protocol):
    async def submit(self, *, owner: uuid.UUID, kind: str, params: dict[str, Any]) -> JobRead:
        """Queue a job of a registered ``kind``; ``Invalid`` (field ``kind``) for an unknown one."""
        ...

    async def get(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        """``NotFound`` also for another owner's job."""
        ...

    async def list(
        self,
        *,
        owner: uuid.UUID,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[JobRead]:
        """The owner's jobs, newest first."""
        ...

    async def cancel(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        """A queued job is cancelled at once; a running one gets ``cancel_requested`` and stops at
        its next ``ctx.progress``. ``Conflict`` if the job has already finished."""
        ...

    async def wait(
        self,
        *,
        owner: uuid.UUID,
        job_id: uuid.UUID,
        timeout: float,  # noqa: ASYNC109 - JobsApi contract
    ) -> JobRead:
        """The job once finished, or as it is after ``timeout`` seconds."""
        ...


# --- writing a job kind --------------------------------------------------------------------------


class JobCancelled(BaseException):
    """Raised by ``JobContext.progress`` once cancellation was requested.

    A ``BaseException`` (like ``asyncio.CancelledError``) so that ``except Exception`` in job code
    does not swallow it; use ``try/finally`` for clean-up and let it propagate. Job code may
    re-raise it as ``JobCancelled(partial=...)`` to keep what it computed so far (stored as the
    cancelled job's result).
    """

    def __init__(self, *, partial: Any = None) -> None:
        super().__init__()
        self.partial = partial


class JobFailed(Exception):
    """Raise to fail a job yet keep its partial results: ``partial`` (JSON) becomes its result and
    ``message`` its error."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class ProgressChannel(Protocol):
    """Executor-provided, lives in the worker: carries progress out and the cancel flag in."""

    def report(self, fraction: float, message: str | None) -> None: ...

    def cancel_requested(self) -> bool: ...


class JobContext:
    """What a job function gets besides its params."""

    def __init__(self, channel: ProgressChannel) -> None:
        self._channel = channel

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report ``fraction`` done (clamped to 0..1) and an optional message.

        Raises ``JobCancelled`` if the job was asked to stop; call it often (it is cheap: the
        executor throttles what crosses the process boundary).
        """
        self.check_cancelled()
        value = float(fraction)
        if not math.isfinite(value):
            raise ValueError(f"progress must be a finite number, got {fraction!r}")
        value = min(1.0, max(0.0, value))
        text = None if message is None else str(message)[:MAX_MESSAGE_LENGTH]
        self._channel.report(value, text)

    @property
    def cancelled(self) -> bool:
        return self._channel.cancel_requested()

    def check_cancelled(self) -> None:
        if self._channel.cancel_requested():
            raise JobCancelled()


JobFunction = Callable[[dict[str, Any], JobContext], Any]
"""``fn(params, ctx) -> JSON-able result``; a top-level (importable) function."""


class JobRegistrar(Protocol):
    """What a service gets at startup to declare the job kinds it runs."""

    def register(self, kind: str, fn: JobFunction) -> None: ...


# --- executors (implemented in adapters/jobs) ----------------------------------------------------

Task = Callable[[ProgressChannel], Any]
"""A picklable callable the executor runs in a worker as ``task(channel)``."""


class JobHandle(Protocol):
    """The parent-side view of one submitted task."""

    async def progress(self) -> tuple[float, str | None] | None:
        """The latest ``(fraction, message)`` the task reported, or ``None`` before the first."""
        ...

    async def cancel(self) -> None:
        """Set the cooperative cancel flag; a task that has not started yet never starts."""
        ...

    async def wait(self) -> Any:
        """The task's return value, or ``None`` if it was cancelled before it started.

        Raises if the worker was lost (process killed, Ray node gone).
        """
        ...


class Executor(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop every worker, running tasks included (the service re-queues them)."""
        ...

    async def submit(self, *, job_id: uuid.UUID, task: Task) -> JobHandle: ...
