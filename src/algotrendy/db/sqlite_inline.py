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
- ``COMMIT`` runs in one dedicated thread: with ``synchronous=FULL`` it waits for the disk's
  fsync (1 ms typical here, tens of ms at worst), which must not stall the loop;
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

_BUSY = "database is locked"


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

    def __init__(self, conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")

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

    def set_synchronous(self, level: str) -> None:
        """``PRAGMA synchronous`` (outside a transaction): whether the next commits wait for fsync."""
        if level not in {"NORMAL", "FULL"}:
            raise ValueError(f"synchronous must be NORMAL or FULL, not {level!r}")
        self._conn.execute(f"PRAGMA synchronous={level}")

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await self.run(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()
            self._thread.shutdown(wait=False)


def creator(database: str, *, busy_timeout_ms: int) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``database`` inline."""

    async def connect() -> _Connection:
        conn = sqlite3.connect(database, timeout=0, check_same_thread=False, isolation_level=None)
        return _Connection(conn, busy_timeout_ms)

    return connect
