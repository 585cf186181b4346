"""Inbox: consumers apply each event id once, whatever the bus redelivers (RELIABILITY G7).

JetStream deduplicates publishes only within a short window and any at-least-once bus
redelivers after a crash, so a consumer records ``(consumer, event_id)`` in its service's
``<service>_inbox`` table in the same transaction as the change the event causes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache

from sqlalchemy import Column, PrimaryKeyConstraint, String, Table, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.events import Envelope
from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime


@cache
def inbox_table(service: str) -> Table:
    name = f"{service}_inbox"
    return Table(
        name,
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", UTCDateTime, nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name=f"pk_{name}"),
    )


async def claim(
    session: AsyncSession, *, service: str, consumer: str, envelope: Envelope, clock: Clock
) -> bool:
    """Record the event as applied by ``consumer``; False if it already was."""
    t = inbox_table(service)
    values = {
        "consumer": consumer,
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "processed_at": clock.now(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        result = await session.execute(pg_insert(t).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        result = await session.execute(sqlite_insert(t).values(values).on_conflict_do_nothing())
    else:  # pragma: no cover - only the two dialects above are supported
        exists = await session.scalar(
            select(t.c.event_id).where(t.c.consumer == consumer, t.c.event_id == envelope.event_id)
        )
        if exists is not None:
            return False
        result = await session.execute(t.insert().values(values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def apply_once(
    sessions: async_sessionmaker[AsyncSession],
    *,
    service: str,
    consumer: str,
    envelope: Envelope,
    clock: Clock,
    apply: Callable[[AsyncSession], Awaitable[None]],
) -> bool:
    """Run ``apply`` and record the event in one transaction; skip if already applied."""
    async with sessions() as session, session.begin():
        if not await claim(session, service=service, consumer=consumer, envelope=envelope, clock=clock):
            return False
        await apply(session)
        return True
