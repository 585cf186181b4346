"""One migration history that passes on SQLite and PostgreSQL and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from algotrendy.app.models import all_metadata
from algotrendy.db import migrate
from algotrendy.db.engine import make_engine
from tests.pg import fresh_database


async def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # idempotent
        assert await migrate.current_revision(engine) == migrate.head_revision()

        def diff(conn):  # type: ignore[no-untyped-def]
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            return compare_metadata(ctx, all_metadata())

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == [], f"models and migrations disagree: {differences}"
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: c.dialect.get_table_names(c)))
        assert {t for t in tables if t != "alembic_version"} == set(all_metadata().tables)
        assert all(
            t == "alembic_version"
            or t.split("_")[0]
            in {"users", "notifications", "jobs", "marketdata", "strategies", "backtest"}
            | {"portfolio", "risk", "trading", "ml"}
            for t in tables
        )
    finally:
        await engine.dispose()


async def test_migrations_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await _check(url)
    engine = make_engine(url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
        # The loop never sleeps in SQLite's busy handler (db.sqlite_inline waits off the loop).
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 0
    await engine.dispose()


async def test_migrations_on_postgresql() -> None:
    async with fresh_database() as url:
        await _check(url)


async def test_concurrent_migrations_serialize(tmp_path: Path) -> None:
    import asyncio

    async with fresh_database() as url:
        engines = [make_engine(url) for _ in range(3)]
        try:
            await asyncio.gather(*(migrate.upgrade(e) for e in engines))
            assert await migrate.current_revision(engines[0]) == migrate.head_revision()
        finally:
            for e in engines:
                await e.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_downgrade_to_base_and_back(tmp_path: Path, backend: str) -> None:
    async def run(url: str) -> None:
        engine = make_engine(url)
        try:
            await migrate.upgrade(engine)
            await migrate.downgrade(engine, "base")
            assert await migrate.current_revision(engine) is None
            await migrate.upgrade(engine)
            assert await migrate.current_revision(engine) == migrate.head_revision()
        finally:
            await engine.dispose()

    if backend == "sqlite":
        await run(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    else:
        async with fresh_database() as url:
            await run(url)
