"""Helpers for the executor tests: a temp SQLite database and a registry of ``jobfns``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from algotrendy.core.clock import SystemClock
from algotrendy.core.events import Envelope
from algotrendy.db.base import metadata
from algotrendy.db.engine import make_engine, make_sessionmaker
from algotrendy.db.outbox import Outbox, outbox_table
from algotrendy.services.jobs.registry import JobRegistry
from tests.integration.jobs import jobfns


@dataclass
class Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox

    async def events(self) -> list[Envelope]:
        t = outbox_table("jobs")
        async with self.sessions() as session:
            rows = (await session.execute(select(t.c.envelope).order_by(t.c.id))).scalars().all()
        return [Envelope.from_json(raw) for raw in rows]


async def make_db(path: Path) -> Db:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    outbox = Outbox(service="jobs", clock=SystemClock())
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return Db(engine, make_sessionmaker(engine), outbox)


def make_registry() -> JobRegistry:
    registry = JobRegistry()
    for kind, fn in jobfns.KINDS.items():
        registry.register(kind, fn)
    return registry
