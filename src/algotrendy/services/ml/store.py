"""The ML service's tables: ``ml_models`` (the spec's table: one row per trained version, with
its settings, its scores and where its file is), ``ml_promotions`` (which version served when:
what a rollback reads) and ``trading_signals`` (the spec's signal records)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime
from algotrendy.services.ml.interface import ModelStage, ModelStatus

ModelRow: TypeAlias = Row[*tuple[Any, ...]]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_STATUSES = ", ".join(f"'{s.value}'" for s in ModelStatus)
_STAGES = ", ".join(f"'{s.value}'" for s in ModelStage)

models = Table(
    "ml_models",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("model_type", String(50), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("venue", String(40), nullable=True),
    Column("asset_type", String(20), nullable=True),
    Column("interval", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("accuracy", Float, nullable=True),
    Column("auc", Float, nullable=True),
    Column("job_id", Uuid, nullable=True),
    Column("config", _JSON, nullable=False),
    Column("inputs", Text, nullable=True),
    Column("data_start", UTCDateTime, nullable=True),
    Column("data_end", UTCDateTime, nullable=True),
    Column("summary", _JSON, nullable=True),
    Column("importance", _JSON, nullable=True),
    Column("model_path", String(500), nullable=True),
    Column("artifact_sha256", String(64), nullable=True),
    Column("mlflow_run_id", String(64), nullable=True),
    Column("registry_version", String(20), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("trained_at", UTCDateTime, nullable=True),
    Column("promoted_at", UTCDateTime, nullable=True),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    CheckConstraint(f"stage IN ({_STAGES})", name="stage"),
    UniqueConstraint("owner_id", "name", "version", name="uq_ml_models_owner_name_version"),
    Index("ix_ml_models_owner_created", "owner_id", "created_at"),
    Index("ix_ml_models_job", "job_id"),
)

promotions = Table(
    "ml_promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("model_id", Uuid, nullable=False),
    Column("rollback", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ml_promotions_owner_name", "owner_id", "name", "id"),
)

signals = Table(
    "trading_signals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("timeframe", String(10), nullable=False),
    Column("signal_type", String(20), nullable=False),
    Column("strength", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("price", Float, nullable=True),
    Column("price_target", Float, nullable=True),
    Column("stop_loss", Float, nullable=True),
    Column("take_profit", Float, nullable=True),
    Column("reasoning", Text, nullable=False),
    Column("technical_indicators", _JSON, nullable=True),
    Column("ml_predictions", _JSON, nullable=True),
    Column("sentiment_score", Float, nullable=True),
    Column("model_id", Uuid, nullable=True),
    Column("source", String(20), nullable=False),
    Column("bar_time", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    CheckConstraint("signal_type IN ('buy', 'sell', 'hold')", name="signal_type"),
    CheckConstraint("strength >= 0 AND strength <= 1", name="strength"),
    CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
    Index("ix_trading_signals_owner_created", "owner_id", "created_at"),
    Index("ix_trading_signals_owner_symbol", "owner_id", "symbol", "created_at"),
)

_SUMMARY = [c for c in models.c if c.name not in ("summary", "importance", "config", "inputs")]


# --- models --------------------------------------------------------------------------------------


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(models).values(**values))


async def next_version(session: AsyncSession, owner: uuid.UUID, name: str) -> int:
    stmt = select(func.max(models.c.version)).where(models.c.owner_id == owner, models.c.name == name)
    current = (await session.execute(stmt)).scalar()
    return int(current or 0) + 1


async def get(session: AsyncSession, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRow | None:
    stmt = select(models).where(models.c.id == model_id, models.c.owner_id == owner)
    return (await session.execute(stmt)).first()


async def by_id(session: AsyncSession, model_id: uuid.UUID) -> ModelRow | None:
    return (await session.execute(select(models).where(models.c.id == model_id))).first()


async def by_job(session: AsyncSession, job_id: uuid.UUID) -> ModelRow | None:
    return (await session.execute(select(models).where(models.c.job_id == job_id))).first()


async def serving(session: AsyncSession, owner: uuid.UUID, name: str) -> ModelRow | None:
    stmt = select(models).where(
        models.c.owner_id == owner, models.c.name == name, models.c.stage == ModelStage.SERVING.value
    )
    return (await session.execute(stmt)).first()


async def versions(session: AsyncSession, owner: uuid.UUID, name: str) -> Sequence[ModelRow]:
    stmt = (
        select(*_SUMMARY)
        .where(models.c.owner_id == owner, models.c.name == name)
        .order_by(models.c.version.desc())
    )
    return (await session.execute(stmt)).all()


async def listing(
    session: AsyncSession,
    owner: uuid.UUID,
    *,
    symbol: str | None,
    status: str | None,
    name: str | None,
    limit: int,
    offset: int,
) -> Sequence[ModelRow]:
    stmt = select(*_SUMMARY).where(models.c.owner_id == owner)
    if symbol is not None:
        stmt = stmt.where(models.c.symbol == symbol)
    if name is not None:
        stmt = stmt.where(models.c.name == name)
    if status == "active":
        stmt = stmt.where(models.c.stage == ModelStage.SERVING.value)
    elif status is not None:
        stmt = stmt.where(models.c.status == status)
    stmt = stmt.order_by(models.c.created_at.desc(), models.c.version.desc()).limit(limit).offset(offset)
    return (await session.execute(stmt)).all()


async def running(session: AsyncSession, owner: uuid.UUID) -> int:
    stmt = select(func.count()).where(
        models.c.owner_id == owner,
        or_(models.c.status == ModelStatus.QUEUED.value, models.c.status == ModelStatus.TRAINING.value),
    )
    return int((await session.execute(stmt)).scalar() or 0)


async def set_values(session: AsyncSession, model_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(update(models).where(models.c.id == model_id).values(**values))


async def finish(session: AsyncSession, model_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Record the outcome once: only a row still queued/training changes (True if it did)."""
    stmt = (
        update(models)
        .where(
            models.c.id == model_id,
            models.c.status.in_([ModelStatus.QUEUED.value, ModelStatus.TRAINING.value]),
        )
        .values(**values)
    )
    result: Any = await session.execute(stmt)
    return bool(result.rowcount)


async def remove(session: AsyncSession, model_id: uuid.UUID) -> None:
    await session.execute(delete(models).where(models.c.id == model_id))
    await session.execute(delete(promotions).where(promotions.c.model_id == model_id))


async def set_stage(
    session: AsyncSession, *, owner: uuid.UUID, name: str, model_id: uuid.UUID, at: datetime, rollback: bool
) -> ModelRow | None:
    """Make ``model_id`` the serving version of ``name`` (the one serving before becomes archived)
    and record the promotion; returns the row that served before (None if none)."""
    before = await serving(session, owner, name)
    if before is not None:
        await set_values(session, before.id, {"stage": ModelStage.ARCHIVED.value})
    await set_values(session, model_id, {"stage": ModelStage.SERVING.value, "promoted_at": at})
    await session.execute(
        insert(promotions).values(
            owner_id=owner, name=name, model_id=model_id, rollback=int(rollback), created_at=at
        )
    )
    return before


async def promotion_history(session: AsyncSession, owner: uuid.UUID, name: str) -> list[uuid.UUID]:
    """The versions promoted for ``name``, most recent first (a model may appear several times)."""
    stmt = (
        select(promotions.c.model_id)
        .where(promotions.c.owner_id == owner, promotions.c.name == name)
        .order_by(promotions.c.id.desc())
    )
    return [r[0] for r in (await session.execute(stmt)).all()]


# --- signals -------------------------------------------------------------------------------------


async def add_signal(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(signals).values(**values))


async def get_signal(session: AsyncSession, owner: uuid.UUID, signal_id: uuid.UUID) -> ModelRow | None:
    stmt = select(signals).where(signals.c.id == signal_id, signals.c.owner_id == owner)
    return (await session.execute(stmt)).first()


async def list_signals(
    session: AsyncSession,
    owner: uuid.UUID,
    *,
    symbol: str | None,
    signal_type: str | None,
    active_at: datetime | None,
    limit: int,
    offset: int,
) -> Sequence[ModelRow]:
    stmt = select(signals).where(signals.c.owner_id == owner)
    if symbol is not None:
        stmt = stmt.where(signals.c.symbol == symbol)
    if signal_type is not None:
        stmt = stmt.where(signals.c.signal_type == signal_type)
    if active_at is not None:
        stmt = stmt.where(or_(signals.c.expires_at.is_(None), signals.c.expires_at > active_at))
    stmt = stmt.order_by(signals.c.created_at.desc()).limit(limit).offset(offset)
    return (await session.execute(stmt)).all()
