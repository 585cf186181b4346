"""Tables of the strategies service and their queries.

``strategies_strategy`` holds one row per strategy, pointing at its latest ``version``;
``strategies_version`` holds every version's template, immutable once written; ``strategies_tag``
holds the tags, one row each, so that listing by tag is one indexed lookup on both databases.
Names are unique per owner regardless of case (``name_norm``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime
from algotrendy.engine.template import StrategyTemplate
from algotrendy.services.strategies.interface import (
    StrategyRead,
    StrategyStatus,
    UniverseEntry,
    VersionRead,
)

StrategyRow: TypeAlias = Row[*tuple[Any, ...]]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_STATUSES = ", ".join(f"'{s.value}'" for s in StrategyStatus)

strategies = Table(
    "strategies_strategy",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False),
    Column("name", String(100), nullable=False),
    Column("name_norm", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("builtin", String(40), nullable=True),
    Column("version", Integer, nullable=False),
    Column("symbols", _JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_id", "name_norm", name="uq_strategies_strategy_owner_name"),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    CheckConstraint("version >= 1", name="version"),
    Index("ix_strategies_strategy_owner_created", "owner_id", "created_at"),
)

versions = Table(
    "strategies_version",
    metadata,
    Column("strategy_id", Uuid, ForeignKey("strategies_strategy.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("template", _JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("strategy_id", "version", name="pk_strategies_version"),
)

tags = Table(
    "strategies_tag",
    metadata,
    Column("strategy_id", Uuid, ForeignKey("strategies_strategy.id", ondelete="CASCADE"), nullable=False),
    Column("tag", String(32), nullable=False),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("strategy_id", "tag", name="pk_strategies_tag"),
    Index("ix_strategies_tag_tag", "tag", "strategy_id"),
)

_READ = (
    strategies.c.id,
    strategies.c.owner_id,
    strategies.c.name,
    strategies.c.description,
    strategies.c.builtin,
    strategies.c.version,
    strategies.c.symbols,
    strategies.c.status,
    strategies.c.created_at,
    strategies.c.updated_at,
    versions.c.template,
)
_JOINED = strategies.join(
    versions, (versions.c.strategy_id == strategies.c.id) & (versions.c.version == strategies.c.version)
)


def norm(name: str) -> str:
    return name.casefold()


def to_read(row: StrategyRow | Mapping[str, Any], tag_list: Sequence[str]) -> StrategyRead:
    m = row._mapping if isinstance(row, Row) else row
    return StrategyRead(
        id=m["id"],
        owner=m["owner_id"],
        name=m["name"],
        description=m["description"],
        version=m["version"],
        template=StrategyTemplate.model_validate(m["template"]),
        builtin=m["builtin"],
        symbols=[UniverseEntry.model_validate(s) for s in m["symbols"]],
        tags=list(tag_list),
        status=StrategyStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def to_version(row: StrategyRow) -> VersionRead:
    m = row._mapping
    return VersionRead(
        strategy_id=m["strategy_id"],
        version=m["version"],
        template=StrategyTemplate.model_validate(m["template"]),
        created_at=m["created_at"],
    )


async def insert_strategy(
    session: AsyncSession, values: dict[str, Any], *, template: dict[str, Any], tag_list: Sequence[str]
) -> None:
    await session.execute(strategies.insert().values(values))
    await insert_version(
        session, values["id"], version=values["version"], template=template, at=values["created_at"]
    )
    await set_tags(session, values["id"], tag_list)


async def insert_version(
    session: AsyncSession, strategy_id: uuid.UUID, *, version: int, template: dict[str, Any], at: Any
) -> None:
    await session.execute(
        versions.insert().values(strategy_id=strategy_id, version=version, template=template, created_at=at)
    )


async def set_tags(session: AsyncSession, strategy_id: uuid.UUID, tag_list: Sequence[str]) -> None:
    await session.execute(delete(tags).where(tags.c.strategy_id == strategy_id))
    if tag_list:
        await session.execute(
            tags.insert(),
            [{"strategy_id": strategy_id, "tag": t, "position": i} for i, t in enumerate(tag_list)],
        )


async def tags_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    out: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    stmt = (
        select(tags.c.strategy_id, tags.c.tag)
        .where(tags.c.strategy_id.in_(list(ids)))
        .order_by(tags.c.strategy_id, tags.c.position)
    )
    for strategy_id, tag in (await session.execute(stmt)).all():
        out[strategy_id].append(tag)
    return out


async def fetch(
    session: AsyncSession, strategy_id: uuid.UUID, *, owner: uuid.UUID, lock: bool = False
) -> StrategyRow | None:
    stmt = (
        select(*_READ)
        .select_from(_JOINED)
        .where(strategies.c.id == strategy_id, strategies.c.owner_id == owner)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=strategies)
    return (await session.execute(stmt)).first()


async def name_taken(
    session: AsyncSession, *, owner: uuid.UUID, name: str, exclude: uuid.UUID | None = None
) -> bool:
    stmt = select(strategies.c.id).where(strategies.c.owner_id == owner, strategies.c.name_norm == norm(name))
    if exclude is not None:
        stmt = stmt.where(strategies.c.id != exclude)
    return (await session.execute(stmt.limit(1))).first() is not None


async def count_for_owner(session: AsyncSession, owner: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(strategies).where(strategies.c.owner_id == owner)
        )
        or 0
    )


async def list_for_owner(
    session: AsyncSession,
    *,
    owner: uuid.UUID,
    name: str | None,
    tag: str | None,
    status: StrategyStatus | None,
    limit: int,
    offset: int,
) -> Sequence[StrategyRow]:
    stmt = select(*_READ).select_from(_JOINED).where(strategies.c.owner_id == owner)
    if name:
        stmt = stmt.where(strategies.c.name_norm.contains(norm(name), autoescape=True))
    if tag:
        stmt = stmt.where(strategies.c.id.in_(select(tags.c.strategy_id).where(tags.c.tag == tag.lower())))
    if status is not None:
        stmt = stmt.where(strategies.c.status == status.value)
    stmt = stmt.order_by(strategies.c.created_at.desc(), strategies.c.id.desc()).limit(limit).offset(offset)
    return (await session.execute(stmt)).all()


async def change(session: AsyncSession, strategy_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(update(strategies).where(strategies.c.id == strategy_id).values(values))


async def remove(session: AsyncSession, strategy_id: uuid.UUID) -> None:
    # children first: SQLite enforces the foreign keys, and this does not rely on ON DELETE CASCADE
    await session.execute(delete(tags).where(tags.c.strategy_id == strategy_id))
    await session.execute(delete(versions).where(versions.c.strategy_id == strategy_id))
    await session.execute(delete(strategies).where(strategies.c.id == strategy_id))


async def list_versions(
    session: AsyncSession, strategy_id: uuid.UUID, *, limit: int, offset: int
) -> Sequence[StrategyRow]:
    stmt = (
        select(versions.c.strategy_id, versions.c.version, versions.c.template, versions.c.created_at)
        .where(versions.c.strategy_id == strategy_id)
        .order_by(versions.c.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return (await session.execute(stmt)).all()


async def fetch_version(session: AsyncSession, strategy_id: uuid.UUID, version: int) -> StrategyRow | None:
    stmt = select(
        versions.c.strategy_id, versions.c.version, versions.c.template, versions.c.created_at
    ).where(versions.c.strategy_id == strategy_id, versions.c.version == version)
    return (await session.execute(stmt)).first()
