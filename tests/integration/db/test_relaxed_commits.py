"""``make_sessionmaker(durable=False)``: that session's commits do not wait for the disk (SQLite
``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``), every other session's still do,
on the same engine and connection, in any order."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.db.engine import make_engine, make_sessionmaker
from tests.support import require_service

_SQLITE_LEVELS = {1: "NORMAL", 2: "FULL"}


async def _level(sessions: async_sessionmaker[AsyncSession], query: str) -> str:
    async with sessions() as s, s.begin():
        await s.execute(text("INSERT INTO t (v) VALUES ('x')"))  # a write transaction
        value = (await s.execute(text(query))).scalar()
    return _SQLITE_LEVELS.get(value, value) if isinstance(value, int) else str(value)


async def test_sqlite_relaxed_sessions_commit_without_fsync_and_others_stay_full(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    durable, relaxed = make_sessionmaker(engine), make_sessionmaker(engine, durable=False)
    seen = [await _level(s, "PRAGMA synchronous") for s in (durable, relaxed, relaxed, durable, relaxed)]
    assert seen == ["FULL", "NORMAL", "NORMAL", "FULL", "NORMAL"]
    async with relaxed() as s:  # a read-only session on the relaxed side changes nothing either
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 5
    await engine.dispose()
    # Every commit, relaxed or not, is in the file for the next connection.
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        assert (await s.execute(text("SELECT count(*) FROM t"))).scalar() == 5
    assert await _level(make_sessionmaker(engine), "PRAGMA synchronous") == "FULL"
    await engine.dispose()


async def test_postgres_relaxed_sessions_turn_synchronous_commit_off_for_their_transaction() -> None:
    engine = make_engine(require_service("postgres"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS relaxed_t"))
            await conn.execute(text("CREATE TABLE relaxed_t (id SERIAL PRIMARY KEY, v TEXT NOT NULL)"))
        durable, relaxed = make_sessionmaker(engine), make_sessionmaker(engine, durable=False)

        async def level(sessions: async_sessionmaker[AsyncSession]) -> str:
            async with sessions() as s, s.begin():
                await s.execute(text("INSERT INTO relaxed_t (v) VALUES ('x')"))
                return str((await s.execute(text("SHOW synchronous_commit"))).scalar())

        assert [await level(s) for s in (relaxed, durable, relaxed, durable)] == ["off", "on", "off", "on"]
        async with durable() as s:
            assert (await s.execute(text("SELECT count(*) FROM relaxed_t"))).scalar() == 4
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS relaxed_t"))
        await engine.dispose()
