"""The transactional outbox across crashes: an event goes out if and only if its change
committed, and consumers apply it exactly once (RELIABILITY G7, G8)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from algotrendy.adapters.bus.memory import InMemoryBus
from algotrendy.core.auth import Role
from algotrendy.core.clock import SystemClock
from algotrendy.core.events import Envelope
from algotrendy.db import migrate
from algotrendy.db.engine import make_engine, make_sessionmaker
from algotrendy.db.inbox import apply_once
from algotrendy.db.outbox import Outbox, OutboxRelay, outbox_table
from algotrendy.services.users.interface import UserRegistered
from algotrendy.services.users.store import AuditRow

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys, uuid
    from algotrendy.core.auth import Role
    from algotrendy.core.clock import SystemClock
    from algotrendy.db.engine import make_engine, make_sessionmaker
    from algotrendy.db.outbox import Outbox
    from algotrendy.services.users.interface import UserRegistered
    from algotrendy.services.users.store import AuditRow

    async def main(url, mode):
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        outbox = Outbox(service="users", clock=SystemClock())
        clock = SystemClock()
        async with sessions() as session:
            session.add(AuditRow(at=clock.now(), action="crash.test", detail={}))
            event = UserRegistered(
                user_id=uuid.uuid4(), username="crash", email="c@example.com", role=Role.TRADER)
            await outbox.add(session, event)
            if mode == "before_commit":
                os.kill(os.getpid(), signal.SIGKILL)
            await session.commit()
        # committed; the relay never ran: die like kill -9 would
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _registered(name: str) -> UserRegistered:
    return UserRegistered(user_id=uuid.uuid4(), username=name, email=f"{name}@example.com", role=Role.TRADER)


async def _users_outbox(tmp_path: Path) -> tuple[Any, Any, SystemClock, Outbox]:
    """A migrated database, its engine and sessions, a clock and the users service's outbox."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await _migrated(url)
    engine = make_engine(url)
    clock = SystemClock()
    return engine, make_sessionmaker(engine), clock, Outbox(service="users", clock=clock)


async def _migrated(url: str) -> None:
    engine = make_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()


def _crash(url: str, mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize("mode", ["after_commit", "before_commit"])
async def test_event_goes_out_once_iff_the_change_committed(tmp_path: Path, mode: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await _migrated(url)
    _crash(url, mode)

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    clock = SystemClock()
    async with sessions() as session:
        audit_rows = await session.scalar(select(func.count()).select_from(AuditRow))
    assert audit_rows == (1 if mode == "after_commit" else 0)

    applied: list[uuid.UUID] = []
    deliveries: list[uuid.UUID] = []

    async def consumer(envelope: Envelope) -> None:
        deliveries.append(envelope.event_id)

        async def apply(_session: object) -> None:
            applied.append(envelope.event_id)

        await apply_once(
            sessions,
            service="notifications",
            consumer="crash-test",
            envelope=envelope,
            clock=clock,
            apply=apply,
        )  # type: ignore[arg-type]

    bus = InMemoryBus()
    await bus.start()
    await bus.subscribe("user.registered", group="crash-test", handler=consumer)
    relay = OutboxRelay(outbox=Outbox(service="users", clock=clock), sessions=sessions, bus=bus, clock=clock)
    await relay.drain()
    expected = 1 if mode == "after_commit" else 0
    assert len(applied) == expected

    if expected:
        # Now a crash *after* publishing but before the row was marked: it goes out again,
        # and the consumer's inbox absorbs the repeat.
        t = outbox_table("users")
        async with sessions() as session, session.begin():
            await session.execute(update(t).values(published_at=None))
        await relay.drain()
        assert len(deliveries) == 2
        assert len(applied) == 1
        async with sessions() as session:
            left = await session.scalar(select(func.count()).select_from(t).where(t.c.published_at.is_(None)))
        assert left == 0
    await bus.close()
    await engine.dispose()


async def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await _migrated(url)
    for _ in range(3):
        _crash(url, "after_commit")
    engine = make_engine(url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM users_audit_log"))).scalar() == 3
        assert (await conn.execute(text("SELECT count(*) FROM users_outbox"))).scalar() == 3
        assert (await conn.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
    await engine.dispose()


async def test_events_added_together_go_out_in_order_iff_committed(tmp_path: Path) -> None:
    """``Outbox.add_many`` (one statement): the events of a transaction that commits go out in
    the order given, once each; those of one rolled back never do."""
    engine, sessions, clock, outbox = await _users_outbox(tmp_path)

    async with sessions() as session, session.begin():
        sent = await outbox.add_many(session, [_registered(n) for n in ("a", "b", "c")])
        assert await outbox.add_many(session, []) == []
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await outbox.add_many(session, [_registered("x"), _registered("y")])
            raise RuntimeError("rolled back")
    seen: list[Envelope] = []

    async def consumer(envelope: Envelope) -> None:
        seen.append(envelope)

    bus = InMemoryBus()
    await bus.start()
    await bus.subscribe("user.registered", group="add-many", handler=consumer)
    await OutboxRelay(outbox=outbox, sessions=sessions, bus=bus, clock=clock).drain()
    await bus.close()
    assert [e.event_id for e in seen] == [e.event_id for e in sent]
    assert [e.data["username"] for e in seen] == ["a", "b", "c"]
    await engine.dispose()


async def test_the_relay_gathers_what_commits_right_after_the_wakeup(tmp_path: Path) -> None:
    """A commit wakes the relay, which waits ``gather`` seconds before it reads: the writer goes
    on first, and rows committed meanwhile go out with one read and one mark."""
    from sqlalchemy import event as sa_event

    engine, sessions, clock, outbox = await _users_outbox(tmp_path)
    seen: list[str] = []

    async def consumer(envelope: Envelope) -> None:
        seen.append(envelope.data["username"])

    reads: list[str] = []
    sa_event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: reads.append(statement) if "FROM users_outbox" in statement else None,
    )
    bus = InMemoryBus()
    await bus.start()
    await bus.subscribe("user.registered", group="gather", handler=consumer)
    relay = OutboxRelay(outbox=outbox, sessions=sessions, bus=bus, clock=clock, gather=1.0, poll_interval=30)
    relay.start()
    await asyncio.sleep(0.05)  # the relay's first (empty) read, then it waits
    reads.clear()
    for name in ("a", "b", "c", "d"):
        async with sessions() as session, session.begin():
            await outbox.add(session, _registered(name))
        await asyncio.sleep(0.02)
    assert seen == [] and reads == []  # within the gather window: nothing read yet
    for _ in range(100):
        if len(seen) == 4:
            break
        await asyncio.sleep(0.02)
    await relay.stop()
    await bus.close()
    assert seen == ["a", "b", "c", "d"]
    assert len(reads) == 1  # one read for the four commits
    await engine.dispose()
