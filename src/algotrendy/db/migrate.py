"""Run the one Alembic history against the records database, safely from several processes.

Split-mode services start together against one PostgreSQL; a transaction-scoped advisory lock
makes them migrate one after another. On SQLite a lock file beside the database does the same.
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from algotrendy.db.engine import sqlite_path

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_KEY = 0x416C676F  # "Algo"


def alembic_config(connection: Connection | None = None, metadata: MetaData | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = metadata
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    lock = path.with_name(path.name + ".migrate.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _upgrade(conn: Connection, revision: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
    command.upgrade(alembic_config(conn), revision)


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    path = sqlite_path(str(engine.url))
    loop = asyncio.get_running_loop()
    lock = _file_lock(path)
    await loop.run_in_executor(None, lock.__enter__)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        await loop.run_in_executor(None, lock.__exit__, None, None, None)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    def _down(conn: Connection, rev: str) -> None:
        command.downgrade(alembic_config(conn), rev)

    async with engine.begin() as conn:
        await conn.run_sync(_down, revision)


async def autogenerate(engine: AsyncEngine, metadata: MetaData, message: str) -> Any:
    """Write a new revision from the difference between ``metadata`` and the database."""

    def _rev(conn: Connection) -> Any:
        return command.revision(alembic_config(conn, metadata), message=message, autogenerate=True)

    async with engine.begin() as conn:
        return await conn.run_sync(_rev)
