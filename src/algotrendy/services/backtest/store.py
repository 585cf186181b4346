"""The backtesting service's table: one row per run (backtest, optimization, walk-forward,
Monte Carlo), with its request, the plan its job ran, and, once finished, its result."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    Uuid,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime
from algotrendy.services.backtest.interface import RunKind, RunStatus

RunRow: TypeAlias = Row[*tuple[Any, ...]]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_KINDS = ", ".join(f"'{k.value}'" for k in RunKind)
_STATUSES = ", ".join(f"'{s.value}'" for s in RunStatus)

runs = Table(
    "backtest_run",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(100), nullable=True),
    Column("strategy_id", Uuid, nullable=True),
    Column("strategy_version", Integer, nullable=True),
    Column("strategy_name", String(100), nullable=False),
    Column("symbols", _JSON, nullable=False),
    Column("interval", String(8), nullable=False),
    Column("job_id", Uuid, nullable=True),
    Column("status", String(16), nullable=False),
    Column("request", _JSON, nullable=False),
    Column("plan", _JSON, nullable=False),
    Column("inputs", Text, nullable=True),
    Column("metrics", _JSON, nullable=True),
    Column("result", _JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("partial", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint(f"kind IN ({_KINDS})", name="kind"),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    Index("ix_backtest_run_owner_created", "owner_id", "created_at"),
    Index("ix_backtest_run_job", "job_id"),
)

_SUMMARY = [c for c in runs.c if c.name not in ("result", "plan", "request", "inputs")]


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(runs).values(**values))


async def get(
    session: AsyncSession, owner: uuid.UUID, run_id: uuid.UUID, *, full: bool = True
) -> RunRow | None:
    cols = list(runs.c) if full else _SUMMARY
    stmt = select(*cols).where(runs.c.id == run_id, runs.c.owner_id == owner)
    return (await session.execute(stmt)).first()


async def many(session: AsyncSession, owner: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[RunRow]:
    stmt = select(*_SUMMARY).where(runs.c.owner_id == owner, runs.c.id.in_(list(ids)))
    return list((await session.execute(stmt)).all())


async def by_job(session: AsyncSession, job_id: uuid.UUID) -> RunRow | None:
    return (await session.execute(select(*runs.c).where(runs.c.job_id == job_id))).first()


async def listing(
    session: AsyncSession,
    owner: uuid.UUID,
    *,
    kind: RunKind | None,
    strategy_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> list[RunRow]:
    stmt = select(*_SUMMARY).where(runs.c.owner_id == owner)
    if kind is not None:
        stmt = stmt.where(runs.c.kind == kind.value)
    if strategy_id is not None:
        stmt = stmt.where(runs.c.strategy_id == strategy_id)
    stmt = stmt.order_by(runs.c.created_at.desc(), runs.c.id).limit(limit).offset(offset)
    return list((await session.execute(stmt)).all())


async def set_job(session: AsyncSession, run_id: uuid.UUID, job_id: uuid.UUID) -> None:
    await session.execute(update(runs).where(runs.c.id == run_id).values(job_id=job_id))


async def set_status(session: AsyncSession, run_id: uuid.UUID, status: RunStatus) -> None:
    await session.execute(
        update(runs).where(runs.c.id == run_id, runs.c.finished_at.is_(None)).values(status=status.value)
    )


async def finish(session: AsyncSession, run_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Record the outcome once; ``False`` if another process already did."""
    stmt = update(runs).where(runs.c.id == run_id, runs.c.finished_at.is_(None)).values(**values)
    result: Any = await session.execute(stmt)
    return bool(result.rowcount)


async def remove(session: AsyncSession, owner: uuid.UUID, run_id: uuid.UUID) -> bool:
    stmt = delete(runs).where(runs.c.id == run_id, runs.c.owner_id == owner)
    result: Any = await session.execute(stmt)
    return bool(result.rowcount)
