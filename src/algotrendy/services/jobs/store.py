"""The ``jobs_jobs`` table and its queries.

A job row moves ``queued -> running -> succeeded | failed | cancelled`` (or ``queued ->
cancelled``). Every transition is one guarded ``UPDATE ... WHERE status = <expected>``, so two
runners (or a runner and a cancel) can never both win the same row. ``runner_id`` names the
service instance running the job and ``heartbeat_at`` proves it is alive; a running row whose
heartbeat went stale belongs to a dead process and is re-queued.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    Uuid,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime
from algotrendy.services.jobs.interface import MAX_MESSAGE_LENGTH, JobRead, JobStatus

JobRow: TypeAlias = Row[*tuple[Any, ...]]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)

jobs = Table(
    "jobs_jobs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("kind", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", _JSON, nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("eta_seconds", Float, nullable=True),
    Column("message", String(MAX_MESSAGE_LENGTH), nullable=True),
    Column("result", _JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("runner_id", Uuid, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("heartbeat_at", UTCDateTime, nullable=True),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    Index("ix_jobs_jobs_owner_created", "owner_id", "created_at"),
    Index("ix_jobs_jobs_status_created", "status", "created_at"),
)

_READ_COLUMNS = (
    jobs.c.id,
    jobs.c.owner_id,
    jobs.c.kind,
    jobs.c.status,
    jobs.c.progress,
    jobs.c.eta_seconds,
    jobs.c.message,
    jobs.c.result,
    jobs.c.error,
    jobs.c.attempts,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.cancel_requested,
    jobs.c.runner_id,
    jobs.c.heartbeat_at,
)


def to_read(row: JobRow | Mapping[str, Any]) -> JobRead:
    m = row._mapping if isinstance(row, Row) else row
    return JobRead(
        id=m["id"],
        kind=m["kind"],
        status=JobStatus(m["status"]),
        progress=m["progress"],
        eta_seconds=m["eta_seconds"],
        message=m["message"],
        result=m["result"],
        error=m["error"],
        attempts=m["attempts"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        cancel_requested=m["cancel_requested"],
    )


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(jobs.insert().values(values))


async def fetch(
    session: AsyncSession, job_id: uuid.UUID, *, owner: uuid.UUID | None = None, lock: bool = False
) -> JobRow | None:
    stmt = select(*_READ_COLUMNS).where(jobs.c.id == job_id)
    if owner is not None:
        stmt = stmt.where(jobs.c.owner_id == owner)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


async def list_for_owner(
    session: AsyncSession,
    *,
    owner: uuid.UUID,
    status: JobStatus | None,
    kind: str | None,
    limit: int,
    offset: int,
) -> Sequence[JobRow]:
    stmt = select(*_READ_COLUMNS).where(jobs.c.owner_id == owner)
    if status is not None:
        stmt = stmt.where(jobs.c.status == status.value)
    if kind is not None:
        stmt = stmt.where(jobs.c.kind == kind)
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
    return (await session.execute(stmt)).all()


async def next_queued(session: AsyncSession, *, kinds: Collection[str], limit: int) -> Sequence[JobRow]:
    """Oldest queued jobs of the given kinds (the ones this runner knows how to run)."""
    stmt = (
        select(jobs.c.id, jobs.c.owner_id, jobs.c.kind, jobs.c.params)
        .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.kind.in_(list(kinds)))
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


_ANYONE: Any = object()


async def transition(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    expect: JobStatus,
    held_by: uuid.UUID | None = _ANYONE,
    values: dict[str, Any],
) -> bool:
    """Apply ``values`` only if the job is still ``expect`` (and, if given, still held by the runner
    ``held_by``; ``None`` meaning no runner). True if this call won the row."""
    stmt = update(jobs).where(jobs.c.id == job_id, jobs.c.status == expect.value)
    if held_by is not _ANYONE:
        stmt = stmt.where(jobs.c.runner_id.is_(None) if held_by is None else jobs.c.runner_id == held_by)
    result = await session.execute(stmt.values(values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def claim(session: AsyncSession, job_id: uuid.UUID, *, runner_id: uuid.UUID, now: datetime) -> bool:
    return await transition(
        session,
        job_id,
        expect=JobStatus.QUEUED,
        values={
            "status": JobStatus.RUNNING.value,
            "runner_id": runner_id,
            "started_at": now,
            "heartbeat_at": now,
            "attempts": jobs.c.attempts + 1,
            "progress": 0.0,
            "eta_seconds": None,
            "message": None,
        },
    )


async def cancel_flag(session: AsyncSession, job_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)))


async def heartbeat(
    session: AsyncSession, *, job_ids: Collection[uuid.UUID], runner_id: uuid.UUID, now: datetime
) -> None:
    """Prove the runner holding these running jobs is alive."""
    await session.execute(
        update(jobs)
        .where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.runner_id == runner_id,
            jobs.c.status == JobStatus.RUNNING.value,
        )
        .values(heartbeat_at=now)
    )


async def running_rows(
    session: AsyncSession, *, stale_before: datetime | None = None, runner_id: uuid.UUID | None = None
) -> Sequence[JobRow]:
    """Running jobs whose heartbeat is older than ``stale_before`` and/or held by ``runner_id``."""
    stmt = select(*_READ_COLUMNS).where(jobs.c.status == JobStatus.RUNNING.value)
    if stale_before is not None:
        stmt = stmt.where((jobs.c.heartbeat_at < stale_before) | jobs.c.heartbeat_at.is_(None))
    if runner_id is not None:
        stmt = stmt.where(jobs.c.runner_id == runner_id)
    return (await session.execute(stmt)).all()
