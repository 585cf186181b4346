"""Local job executor: a ``ProcessPoolExecutor`` on the *spawn* start method.

Spawn (not fork) because the parent runs an asyncio loop, threads and database connections that
a forked child would inherit half-alive. A ``multiprocessing`` Manager holds two dicts shared
with the workers: the latest ``(fraction, message)`` per job, and the cancel flags. The worker
side (``_PoolChannel``) throttles both, so a job may call ``ctx.progress`` in a tight loop.

Cancel is cooperative: a task still waiting in the pool is dropped, a running one sees the flag
at its next ``ctx.progress``. ``close`` terminates the workers, running tasks included. If a worker
dies (killed, segfault, out of memory) Python's pool breaks and every task it was running fails
with ``BrokenProcessPool``; the next ``submit`` builds a fresh pool.

Implements the ``Executor`` Protocol of ``services/jobs/interface.py`` (structurally: adapters do
not import services). Tasks and their functions must be picklable by reference (top level).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import SyncManager
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class _PoolChannel:
    """The worker's end of one job (pickled into the worker with the task)."""

    def __init__(
        self, key: str, board: Any, cancels: Any, *, report_interval: float, cancel_poll: float
    ) -> None:
        self._key = key
        self._board = board  # DictProxy: key -> (fraction, message)
        self._cancels = cancels  # DictProxy: key -> True
        self._report_interval = report_interval
        self._cancel_poll = cancel_poll
        self._last_report = float("-inf")
        self._last_poll = float("-inf")
        self._cancelled = False

    def report(self, fraction: float, message: str | None) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < self._report_interval:
            return
        self._last_report = now
        self._board[self._key] = (fraction, message)

    def cancel_requested(self) -> bool:
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._last_poll >= self._cancel_poll:
            self._last_poll = now
            self._cancelled = bool(self._cancels.get(self._key, False))
        return self._cancelled


def _run(task: Callable[[Any], Any], channel: _PoolChannel) -> Any:
    """Worker entry point: ``None`` means cancelled before it started."""
    if channel.cancel_requested():
        return None
    return task(channel)


class _PoolHandle:
    def __init__(self, key: str, future: Future[Any], executor: ProcessPoolJobExecutor) -> None:
        self._key = key
        self._future = future
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Any] = self._loop.create_future()
        future.add_done_callback(self._settle_threadsafe)

    def _settle_threadsafe(self, future: Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._settle, future)

    def _settle(self, future: Future[Any]) -> None:
        if self.done.done():
            return
        if future.cancelled():
            self.done.set_result(None)
            return
        exc = future.exception()
        if exc is not None:
            self.done.set_exception(exc)
        else:
            self.done.set_result(future.result())

    async def progress(self) -> tuple[float, str | None] | None:
        value = await asyncio.to_thread(self._executor.board_get, self._key)
        if value is None:
            return None
        fraction, message = value
        return float(fraction), message

    async def cancel(self) -> None:
        if self._future.cancel():  # still waiting for a worker: it will never start
            return
        await asyncio.to_thread(self._executor.set_cancel, self._key)

    async def wait(self) -> Any:
        try:
            return await asyncio.shield(self.done)
        finally:
            if self.done.done():
                self._executor.forget(self)
                await asyncio.to_thread(self._executor.clear_keys, self._key)


class ProcessPoolJobExecutor:
    """``Executor`` on local processes: ``workers`` at once."""

    def __init__(
        self,
        *,
        workers: int = 2,
        report_interval: float = 0.1,
        cancel_poll: float = 0.1,
        close_timeout: float = 5.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._workers = workers
        self._report_interval = report_interval
        self._cancel_poll = cancel_poll
        self._close_timeout = close_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._manager: SyncManager | None = None
        self._board: Any = None
        self._cancels: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self._handles: set[_PoolHandle] = set()

    async def start(self) -> None:
        if self._pool is not None:
            return
        self._manager = await asyncio.to_thread(self._start_manager)
        self._board = self._manager.dict()
        self._cancels = self._manager.dict()
        self._pool = self._new_pool()
        log.info("jobs.pool_started", workers=self._workers)

    def _start_manager(self) -> SyncManager:
        manager = self._ctx.Manager()
        return manager

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=self._ctx)

    async def submit(self, *, job_id: uuid.UUID, task: Callable[[Any], Any]) -> _PoolHandle:
        if self._pool is None:
            raise RuntimeError("ProcessPoolJobExecutor.submit before start()")
        key = str(job_id)
        channel = _PoolChannel(
            key,
            self._board,
            self._cancels,
            report_interval=self._report_interval,
            cancel_poll=self._cancel_poll,
        )
        try:
            future = self._pool.submit(_run, task, channel)
        except BrokenProcessPool:
            log.warning("jobs.pool_rebuilt", reason="a worker died")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(_run, task, channel)
        handle = _PoolHandle(key, future, self)
        self._handles.add(handle)
        return handle

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        for handle in self._handles:
            handle.done.cancel()  # nobody awaits these any more: no "exception never retrieved"
        self._handles.clear()
        if pool is not None:
            # Python < 3.14 has no public way to stop running tasks: terminate the workers.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            await asyncio.to_thread(self._join, processes, pool)
        manager, self._manager = self._manager, None
        if manager is not None:
            await asyncio.to_thread(manager.shutdown)
        self._board = self._cancels = None

    def _join(self, processes: list[Any], pool: ProcessPoolExecutor) -> None:
        deadline = time.monotonic() + self._close_timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        pool.shutdown(wait=True)

    # --- used by the handles (called in threads: Manager proxies block on a socket) ---

    def board_get(self, key: str) -> Any:
        return None if self._board is None else self._board.get(key)

    def set_cancel(self, key: str) -> None:
        if self._cancels is not None:
            self._cancels[key] = True

    def clear_keys(self, key: str) -> None:
        with contextlib.suppress(Exception):  # the manager may already be shut down
            if self._board is not None:
                self._board.pop(key, None)
            if self._cancels is not None:
                self._cancels.pop(key, None)

    def forget(self, handle: _PoolHandle) -> None:
        self._handles.discard(handle)
