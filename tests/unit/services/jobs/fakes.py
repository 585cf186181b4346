"""An in-process executor (threads, no pickling), job functions for it, and test plumbing."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.events import Envelope
from algotrendy.db.base import metadata
from algotrendy.db.engine import make_engine, make_sessionmaker
from algotrendy.db.outbox import Outbox, outbox_table
from algotrendy.services.jobs.interface import JobCancelled, JobContext, JobFailed
from algotrendy.services.jobs.registry import JobRegistry
from algotrendy.services.jobs.service import JobsService
from algotrendy.services.jobs.settings import JobsSettings

# --- job functions (module level: the registry insists) -------------------------------------------

GATES: dict[str, threading.Event] = {}
FRACTIONS: dict[str, float] = {}


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


def fail_with_partial(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    done = [1, 2]
    raise JobFailed("window 3 has no data", partial={"done": done})


def cancel_with_partial(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    done: list[int] = []
    try:
        for i in range(10):
            ctx.progress(i / 10)
            done.append(i)
    except JobCancelled:
        raise JobCancelled(partial={"done": done}) from None
    return {"done": done}


def add(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    ctx.progress(0.5, "adding")
    return {"sum": params["a"] + params["b"]}


def gated(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Reports FRACTIONS[name] until the gate opens (or 10 s pass); cancellable."""
    name = params["gate"]
    deadline = time.monotonic() + 10
    while not gate(name).is_set() and time.monotonic() < deadline:
        ctx.progress(FRACTIONS.get(name, 0.25), f"waiting on {name}")
        time.sleep(0.005)
    return {"gate": name}


def fail(params: dict[str, Any], ctx: JobContext) -> None:
    ctx.progress(0.1)
    raise ValueError(f"bad window {params.get('window')}")


def not_json(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return {"when": object()}


def registry() -> JobRegistry:
    r = JobRegistry()
    for fn in (add, gated, fail, not_json):
        r.register(f"test.{fn.__name__}", fn)
    return r


# --- the executor ----------------------------------------------------------------------------------


class ThreadChannel:
    def __init__(self) -> None:
        self.latest: tuple[float, str | None] | None = None
        self.cancel_flag = threading.Event()

    def report(self, fraction: float, message: str | None) -> None:
        self.latest = (fraction, message)

    def cancel_requested(self) -> bool:
        return self.cancel_flag.is_set()


class ThreadHandle:
    def __init__(self, future: asyncio.Future[Any], channel: ThreadChannel) -> None:
        self.future = future
        self.channel = channel

    async def progress(self) -> tuple[float, str | None] | None:
        return self.channel.latest

    async def cancel(self) -> None:
        self.channel.cancel_flag.set()

    async def wait(self) -> Any:
        return await asyncio.shield(self.future)


class ThreadExecutor:
    """Runs each task in a thread of this process, like the real executors run it in a worker."""

    def __init__(self) -> None:
        self.started = False
        self.closed = False
        self.handles: dict[uuid.UUID, ThreadHandle] = {}

    async def start(self) -> None:
        self.started = True
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        for handle in self.handles.values():
            handle.channel.cancel_flag.set()

    async def submit(self, *, job_id: uuid.UUID, task: Callable[[Any], Any]) -> ThreadHandle:
        channel = ThreadChannel()
        future = asyncio.get_running_loop().run_in_executor(None, task, channel)
        handle = ThreadHandle(future, channel)
        self.handles[job_id] = handle
        return handle


# --- plumbing --------------------------------------------------------------------------------------


async def make_db(tmp_path: Path, clock: Clock) -> tuple[Any, async_sessionmaker[AsyncSession], Outbox]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    outbox = Outbox(service="jobs", clock=clock)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine, make_sessionmaker(engine), outbox


@asynccontextmanager
async def running(service: JobsService) -> AsyncIterator[JobsService]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def settings(**overrides: Any) -> JobsSettings:
    values: dict[str, Any] = {"workers": 2, "progress_interval": 0.02, "max_attempts": 3, "stale_after": 30}
    values.update(overrides)
    return JobsSettings(**values)


def service(
    sessions: async_sessionmaker[AsyncSession],
    executor: Any,
    clock: Clock,
    outbox: Outbox | None = None,
    **overrides: Any,
) -> JobsService:
    return JobsService(
        sessions,
        executor,
        registry(),
        clock,
        settings(**overrides),
        outbox,
        poll_interval=0.05,
        wait_poll=0.05,
    )


async def until(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def events(sessions: async_sessionmaker[AsyncSession]) -> list[Envelope]:
    t = outbox_table("jobs")
    async with sessions() as session:
        rows = (await session.execute(select(t.c.envelope).order_by(t.c.id))).scalars().all()
    return [Envelope.from_json(raw) for raw in rows]
