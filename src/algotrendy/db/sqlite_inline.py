"""SQLite for the async engine without a thread hop per call: statements run inline, commits in a thread.

Why our own (small) driver shim: ``aiosqlite`` sends every call (cursor, execute, fetch, close)
to a worker thread and wakes the event loop for each answer. Measured on the 2-core machine of
``bench/README.md``: 0.6 ms of event-loop CPU per ``SELECT 1`` (four hops), against a few
microseconds for the statement itself, which made a 60-statement order cost ~40 ms of CPU. The
shim keeps the ``aiosqlite.Connection`` surface SQLAlchemy's ``sqlite+aiosqlite`` dialect uses
(passed as ``async_creator``), so everything above it — the dialect, pooling, ``AsyncSession``,
the ``BEGIN IMMEDIATE`` listener in ``db.engine`` — is unchanged, but:

- statements and fetches run on the event loop's thread (an indexed read or a write into the
  page cache takes microseconds; the records database keeps no bulk data, DuckDB has the bars);
- a durable ``COMMIT`` (``synchronous=FULL``) runs in one dedicated thread: it waits for the
  disk's fsync (1 ms typical here, tens of ms at worst), which must not stall the loop. A commit
  that does not wait for the disk (``synchronous=NORMAL``, see ``db.engine``) only copies its pages
  into the WAL in the OS's cache, so it runs inline: a thread hop cost more than it;
- WAL checkpoints (which do fsync) never run inline, and nobody waits for them: the
  connection's automatic checkpoint is off, and every ``CHECKPOINT_EVERY`` commits a passive
  checkpoint (what the automatic one does: it never blocks a writer or waits for a reader) runs on
  a second connection in a thread of its own;
- a ``BEGIN`` that finds the write lock taken by another process (the CLI, a second server on
  the same file) is retried in that thread under the normal busy timeout, so the loop never
  sleeps in SQLite's busy handler. Within one process the engine's pool of one connection queues
  transactions (``db.engine``), so this only happens across processes.

The connection is used by one coroutine at a time (SQLAlchemy's pool hands it out exclusively),
so running the commit in another thread never overlaps another call on it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_BUSY = "database is locked"
CHECKPOINT_EVERY = 100
"""Commits between WAL checkpoints; at a few pages per commit the WAL stays near SQLite's
default automatic checkpoint size (1,000 pages)."""


class _Cursor:
    __slots__ = ("_cursor", "_owner")

    def __init__(self, cursor: sqlite3.Cursor, owner: _Connection) -> None:
        self._cursor = cursor
        self._owner = owner

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> _Cursor:
        try:
            self._cursor.execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if _BUSY not in str(exc) or not sql.lstrip().upper().startswith("BEGIN"):
                raise
            # Another process holds the write lock: wait for it off the loop.
            await self._owner.run(lambda: self._owner.begin_waiting(self._cursor, sql, parameters))
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> _Cursor:
        self._cursor.executemany(sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Inline:
    """Stands in for aiosqlite's request queue (the dialect sets ``isolation_level`` through it)."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class _Connection:
    """The subset of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect calls."""

    _tx = _Inline()

    def __init__(self, conn: sqlite3.Connection, busy_timeout_ms: int, database: str) -> None:
        self._conn = conn
        self._database = database
        self._connection: sqlite3.Connection | None = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")
        self._durable = True  # the commit's sync level (``set_synchronous``): FULL
        self._commits = 0  # since the last checkpoint
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run off the loop (``commit``)
        self._checkpoints = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._checkpointer: sqlite3.Connection | None = None  # opened in that thread

    def begin_waiting(self, cursor: sqlite3.Cursor, sql: str, parameters: Any) -> None:
        """Runs in the commit thread: ``BEGIN`` under the busy timeout, then back to none."""
        self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            cursor.execute(sql, parameters)
        finally:
            self._conn.execute("PRAGMA busy_timeout=0")

    async def run(self, function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor(), self)

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def begin(self, sql: str) -> None:
        """``BEGIN ...`` straight on the driver (the engine's begin listener: no statement
        machinery); a write lock held by another process is waited for off the loop."""
        await _Cursor(self._conn.cursor(), self).execute(sql)

    def set_synchronous(self, level: str) -> None:
        """``PRAGMA synchronous`` (outside a transaction): whether the next commits wait for fsync."""
        if level not in {"NORMAL", "FULL"}:
            raise ValueError(f"synchronous must be NORMAL or FULL, not {level!r}")
        self._conn.execute(f"PRAGMA synchronous={level}")
        self._durable = level == "FULL"

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def commit(self) -> None:
        if not self._conn.in_transaction:
            return
        if self._durable:
            await self.run(self._conn.commit)
        else:
            self._conn.commit()  # no fsync: WAL pages into the OS's cache
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and self._database != ":memory:":
            self._commits = 0
            self._checkpoints.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """Runs in the checkpoint thread, on its own connection (errors are retried next time)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self._database, timeout=0, isolation_level=None)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one catches up
            if _BUSY not in str(exc):
                log.warning("sqlite.checkpoint_failed", database=self._database, error=str(exc)[:200])

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()
            self._thread.shutdown(wait=False)
            self._checkpoints.submit(self._close_checkpointer)
            self._checkpoints.shutdown(wait=False)

    def _close_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None


def creator(database: str, *, busy_timeout_ms: int) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``database`` inline."""

    async def connect() -> _Connection:
        conn = sqlite3.connect(database, timeout=0, check_same_thread=False, isolation_level=None)
        return _Connection(conn, busy_timeout_ms, database)

    return connect
