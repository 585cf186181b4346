"""Async engines and session factories for SQLite (embedded) and PostgreSQL (split mode).

SQLite runs in WAL mode with foreign keys on and ``synchronous=FULL`` so a committed row
survives ``kill -9`` and power loss (RELIABILITY G8), through ``db.sqlite_inline`` (statements on
the loop, commits and waits for another process's lock in a thread). Every SQLite transaction
begins ``IMMEDIATE`` on the engine's one connection, so sessions queue on the pool in arrival
order, which is what makes check-then-write sequences safe in the embedded shape.
``begin_serialized`` opens a write transaction that serializes check-then-write sequences
(``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL callers lock rows with ``SELECT ... FOR UPDATE``).

``make_sessionmaker(engine, durable=False)`` gives sessions whose commits do not wait for the
disk: SQLite ``synchronous=NORMAL`` for that transaction (WAL: no fsync at its commit),
PostgreSQL ``SET LOCAL synchronous_commit TO OFF``. Such a commit is as atomic and as visible as
any other and survives ``kill -9`` (it is in the OS's page cache / the server's WAL buffers); a
power failure or an OS crash can lose it, but never alone: both logs are sequential, so it
becomes durable with the next durable commit on the same database. Only records whose loss is
recovered by design may use it: an outbox relay's "published" marks (a lost mark republishes,
consumers are idempotent) and the paper venue's book (the order's intent was committed durably
before the venue was called, and the booking of the venue's answer is a durable commit after
it, so the venue's record is durable before anyone relies on it; lost with the power, the
order is one the venue never saw, which reconciliation resolves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only

from algotrendy.db import sqlite_inline

SQLITE_BUSY_TIMEOUT_MS = 10_000
_DURABLE = "durable_commit"  # execution option set by ``make_sessionmaker(durable=False)``


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _sqlite_on_connect(dbapi_conn: Any, record: Any) -> None:
    # isolation_level=None lets SQLAlchemy emit BEGIN itself, which is what makes BEGIN
    # IMMEDIATE possible. No busy timeout on the connection: ``sqlite_inline`` waits for a
    # lock held by another process in its own thread, never on the event loop.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=0")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()
    record.info["synchronous"] = "FULL"


def _sqlite_on_begin(conn: Any) -> None:
    # IMMEDIATE by default: in WAL mode a deferred transaction that reads and then writes
    # fails at once ("database is locked", no busy wait) if another writer committed in
    # between. Taking the write lock up front makes writers queue on the busy timeout.
    options = conn.get_execution_options()
    # The commit's sync level is the connection's setting when COMMIT runs; it may only be
    # changed outside a transaction, so it is set (when it differs) before BEGIN.
    level = "FULL" if options.get(_DURABLE, True) else "NORMAL"
    if conn.info.get("synchronous") != level:
        conn.connection.driver_connection.set_synchronous(level)  # no statement machinery
        conn.info["synchronous"] = level
    await_only(conn.connection.driver_connection.begin(f"BEGIN {options.get('sqlite_begin', 'IMMEDIATE')}"))


def _postgres_on_begin(conn: Any) -> None:
    # Runs before the transaction's first statement; SET LOCAL ends with the transaction.
    if not conn.get_execution_options().get(_DURABLE, True):
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Build the engine for ``url`` (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # One connection: every transaction begins IMMEDIATE (it holds the file's write lock),
        # so a second connection could only wait for that lock in SQLite's busy handler, which
        # sleeps 1, 2, 5, 10, ... 100 ms between tries. Queuing on the pool instead wakes the
        # next session the moment the previous one ends, in arrival order.
        engine = create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000 * 3,
            async_creator=sqlite_inline.creator(
                make_url(url).database or ":memory:", busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS
            ),
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "begin", _postgres_on_begin)
    return engine


def make_sessionmaker(engine: AsyncEngine, *, durable: bool = True) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``durable=False``: commits that do not wait for the disk (see above)."""
    if not durable:
        engine = engine.execution_options(**{_DURABLE: False})
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def begin_serialized(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A write transaction that holds the write lock from its first statement.

    SQLite: ``BEGIN IMMEDIATE``. PostgreSQL: a normal transaction in which the caller locks
    the rows it checks with ``SELECT ... FOR UPDATE``. Commits on exit, rolls back on error.
    """
    async with sessions() as session:
        await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
