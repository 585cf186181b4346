"""Cluster job executor: each job is one Ray task (``import ray`` happens in ``start``).

A small Ray actor (``_Board``) is the meeting point between the service and the tasks: tasks
post progress to it and read their cancel flag from it, the service reads progress and sets the
flag. It also arbitrates the start: a task asks the board before running (``begin``), a cancel
asks whether the task has begun; exactly one of them wins, so a task that has not started is
dropped (``ray.cancel`` frees its slot) and one that has started stops cooperatively at its next
``ctx.progress``; a running task is never interrupted mid-way.

``address="local"`` starts Ray inside this process (``ray.init()``, for tests and single
machines); anything else joins a cluster (``ray.init(address=...)``: ``"auto"``, ``"host:6379"``
or ``"ray://host:10001"``). If Ray is already initialised the executor uses it and leaves it
running on ``close``. Workers must be able to import ``algotrendy`` and the job functions: on a
cluster, install the package in the image or pass ``runtime_env``.

When the driver runs under ``uv run``, Ray by default rebuilds the uv project environment on each
worker, which lacks optional extras such as ``ray`` itself; unless ``uv_runtime_env=True`` the
executor turns that off (``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0``, set before Ray is imported) so
workers use this interpreter.

Implements the ``Executor`` Protocol of ``services/jobs/interface.py`` structurally.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class _Board:
    """Progress, cancel flags and start arbitration for every job of one executor (a Ray actor)."""

    def __init__(self) -> None:
        self._progress: dict[str, tuple[float, str | None]] = {}
        self._cancelled: set[str] = set()
        self._started: set[str] = set()

    def begin(self, key: str) -> bool:
        if key in self._cancelled:
            return False
        self._started.add(key)
        return True

    def cancel(self, key: str) -> bool:
        """Flag the job; True if it had not begun (and now never will)."""
        self._cancelled.add(key)
        return key not in self._started

    def is_cancelled(self, key: str) -> bool:
        return key in self._cancelled

    def report(self, key: str, fraction: float, message: str | None) -> None:
        self._progress[key] = (fraction, message)

    def progress(self, key: str) -> tuple[float, str | None] | None:
        return self._progress.get(key)

    def forget(self, key: str) -> None:
        self._progress.pop(key, None)
        self._cancelled.discard(key)
        self._started.discard(key)


class _RayChannel:
    """The task's end of one job (serialised into the task with its actor handle)."""

    def __init__(self, key: str, board: Any, *, report_interval: float, cancel_poll: float) -> None:
        self._key = key
        self._board = board
        self._report_interval = report_interval
        self._cancel_poll = cancel_poll
        self._last_report = float("-inf")
        self._last_poll = float("-inf")
        self._cancelled = False

    def begin(self) -> bool:
        import ray

        return bool(ray.get(self._board.begin.remote(self._key)))

    def report(self, fraction: float, message: str | None) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < self._report_interval:
            return
        self._last_report = now
        self._board.report.remote(self._key, fraction, message)  # fire and forget

    def cancel_requested(self) -> bool:
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_poll >= self._cancel_poll:
            import ray

            self._last_poll = now
            self._cancelled = bool(ray.get(self._board.is_cancelled.remote(self._key)))
        return self._cancelled


def _ray_run(task: Callable[[Any], Any], channel: _RayChannel) -> Any:
    """Task entry point: ``None`` means cancelled before it started."""
    if not channel.begin():
        return None
    return task(channel)


class _RayHandle:
    def __init__(self, key: str, ref: Any, board: Any, executor: RayJobExecutor) -> None:
        self._key = key
        self.ref = ref
        self._board = board
        self._executor = executor

    async def progress(self) -> tuple[float, str | None] | None:
        value = await self._board.progress.remote(self._key)
        if value is None:
            return None
        fraction, message = value
        return float(fraction), message

    async def cancel(self) -> None:
        import ray

        if await self._board.cancel.remote(self._key):
            ray.cancel(self.ref)  # not begun: drop it from the queue (it would return None anyway)

    async def wait(self) -> Any:
        from ray.exceptions import TaskCancelledError

        try:
            return await self.ref
        except TaskCancelledError:
            return None
        finally:
            self._executor.forget(self)
            self._board.forget.remote(self._key)


class RayJobExecutor:
    """``Executor`` on a Ray cluster (or a local Ray started in-process)."""

    def __init__(
        self,
        *,
        address: str = "local",
        num_cpus: int | None = None,
        cpus_per_job: float = 1.0,
        runtime_env: dict[str, Any] | None = None,
        namespace: str | None = "algotrendy",
        report_interval: float = 0.2,
        cancel_poll: float = 0.2,
        uv_runtime_env: bool = False,
    ) -> None:
        self._address = address
        self._num_cpus = num_cpus
        self._cpus_per_job = cpus_per_job
        self._runtime_env = runtime_env
        self._namespace = namespace
        self._report_interval = report_interval
        self._cancel_poll = cancel_poll
        self._uv_runtime_env = uv_runtime_env
        self._owns_ray = False
        self._board: Any = None
        self._remote: Any = None
        self._handles: set[_RayHandle] = set()

    async def start(self) -> None:
        """Connect (or start a local Ray); blocks the loop for the seconds Ray takes, once."""
        if self._board is not None:
            return
        if not self._uv_runtime_env:
            os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        import ray

        if not self._uv_runtime_env:
            # Ray reads the variable once, at import: if something imported Ray before us, its
            # constant is already set, so turn it off there too (private, hence the guard).
            with contextlib.suppress(Exception):
                from ray._private import ray_constants

                ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "namespace": self._namespace}
            if self._runtime_env is not None:
                options["runtime_env"] = self._runtime_env
            if self._address == "local":
                ray.init(num_cpus=self._num_cpus, **options)
            else:
                ray.init(address=self._address, **options)
            self._owns_ray = True
        self._board = ray.remote(num_cpus=0)(_Board).remote()
        self._remote = ray.remote(_ray_run).options(num_cpus=self._cpus_per_job, max_retries=0)
        log.info("jobs.ray_started", address=self._address, owns_ray=self._owns_ray)

    async def submit(self, *, job_id: uuid.UUID, task: Callable[[Any], Any]) -> _RayHandle:
        if self._board is None:
            raise RuntimeError("RayJobExecutor.submit before start()")
        key = str(job_id)
        channel = _RayChannel(
            key, self._board, report_interval=self._report_interval, cancel_poll=self._cancel_poll
        )
        ref = self._remote.remote(task, channel)
        handle = _RayHandle(key, ref, self._board, self)
        self._handles.add(handle)
        return handle

    async def close(self) -> None:
        if self._board is None:
            return
        import ray

        for handle in list(self._handles):  # stop what still runs: the service re-queues it
            try:
                ray.cancel(handle.ref, force=True)
            except Exception as exc:
                log.warning("jobs.ray_cancel_failed", error=f"{type(exc).__name__}: {exc}")
        self._handles.clear()
        try:
            ray.kill(self._board)
        except Exception as exc:
            log.warning("jobs.ray_board_kill_failed", error=f"{type(exc).__name__}: {exc}")
        self._board = self._remote = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def forget(self, handle: _RayHandle) -> None:
        self._handles.discard(handle)
