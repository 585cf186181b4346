"""The inline SQLite driver (db.sqlite_inline): a write lock held by another process is waited for
off the event loop, commits are durable and rollbacks undo, and one engine queues its sessions."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from algotrendy.db import sqlite_inline
from algotrendy.db.engine import make_engine, make_sessionmaker


async def _table(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    await engine.dispose()


async def test_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    url = f"sqlite+aiosqlite:///{db}"
    await _table(url)
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO t (v) VALUES ('other')")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    task = asyncio.get_running_loop().create_task(ticker())
    try:
        started = time.perf_counter()
        async with sessions() as s, s.begin():
            await s.execute(text("INSERT INTO t (v) VALUES ('ours')"))
        waited = time.perf_counter() - started
    finally:
        task.cancel()
        release.join()
        other.close()
    assert waited >= 0.4  # it did wait for the other writer ...
    assert ticks >= 20  # ... while the loop kept running
    async with sessions() as s:
        rows = (await s.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
    assert rows == ["other", "ours"]
    await engine.dispose()


async def test_commit_is_durable_and_rollback_undoes(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    url = f"sqlite+aiosqlite:///{db}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s, s.begin():
        await s.execute(text("INSERT INTO t (id, v) VALUES (1, 'kept')"))
    with pytest.raises(IntegrityError):
        async with sessions() as s, s.begin():
            await s.execute(text("INSERT INTO t (id, v) VALUES (2, 'undone')"))
            await s.execute(text("INSERT INTO t (id, v) VALUES (1, 'duplicate')"))
    await engine.dispose()
    plain = sqlite3.connect(db)  # what another process reads from the file
    assert plain.execute("SELECT id, v FROM t").fetchall() == [(1, "kept")]
    plain.close()


async def test_concurrent_sessions_of_one_engine_queue(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)

    async def bump(i: int) -> None:
        async with sessions() as s, s.begin():
            n = (await s.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await asyncio.sleep(0)  # let the others try to get in
            await s.execute(text("INSERT INTO t (id, v) VALUES (:i, :v)"), {"i": i, "v": str(n)})

    await asyncio.gather(*(bump(i) for i in range(1, 51)))
    async with sessions() as s:
        seen = sorted(int(v) for v in (await s.execute(text("SELECT v FROM t"))).scalars())
    assert seen == list(range(50))  # each saw all earlier inserts: fully serialized
    await engine.dispose()


async def test_only_durable_commits_hop_to_the_commit_thread(tmp_path: Path) -> None:
    """A commit that waits for fsync runs off the loop; one that does not (``durable=False``)
    only copies pages into the WAL, inline. Both are in the file for the next connection."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite'}"
    await _table(url)
    engine = make_engine(url)
    hops: list[str] = []
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
    run = driver.run

    async def counted(function: Any) -> Any:
        hops.append(getattr(function, "__name__", "?"))
        return await run(function)

    driver.run = counted
    durable, relaxed = make_sessionmaker(engine), make_sessionmaker(engine, durable=False)
    for sessions in (durable, relaxed, relaxed, durable):
        async with sessions() as s, s.begin():
            await s.execute(text("INSERT INTO t (v) VALUES ('x')"))
    assert hops == ["commit", "commit"]
    await engine.dispose()
    with sqlite3.connect(tmp_path / "x.sqlite") as other:
        assert other.execute("SELECT count(*) FROM t").fetchone() == (4,)


async def test_checkpoints_run_off_the_loop_every_so_many_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection never checkpoints by itself (a checkpoint fsyncs); every
    ``CHECKPOINT_EVERY`` commits one runs on a connection of its own in another thread, which
    moves the WAL's pages into the database file."""
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 10)
    db = tmp_path / "x.sqlite"
    url = f"sqlite+aiosqlite:///{db}"
    await _table(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine, durable=False)
    start = db.stat().st_size

    async def commit() -> None:
        async with sessions() as s, s.begin():
            await s.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 20_000})

    for _ in range(9):
        await commit()
    await asyncio.sleep(0.2)
    assert db.stat().st_size == start  # 180 kB in the WAL only: nothing checkpointed
    await commit()
    for _ in range(100):
        if db.stat().st_size >= start + 200_000:
            break
        await asyncio.sleep(0.02)
    assert db.stat().st_size >= start + 200_000  # the ten rows moved into the file
    await engine.dispose()
