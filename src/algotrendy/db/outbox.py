"""Transactional outbox: an event is published if and only if its state change commits.

A service adds the event to its ``<service>_outbox`` table *in the same transaction* as the
change (``Outbox.add``). The ``OutboxRelay`` publishes unsent rows in id order and marks a row
sent only after ``Bus.publish`` returns (durable acceptance), so a crash at any point either
loses nothing (the row is still unsent and goes out on restart) or causes a repeat, which
consumers absorb with their inbox (``db.inbox``). With several relay processes on PostgreSQL
rows are claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import cache

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.events import Bus, Envelope, Event
from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime
from algotrendy.db.waits import wait_event

log = structlog.get_logger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")


@cache
def outbox_table(service: str) -> Table:
    name = f"{service}_outbox"
    return Table(
        name,
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("envelope", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", String(500), nullable=True),
        Index(f"ix_{name}_unpublished", "published_at", "id"),
    )


class Outbox:
    """What a service holds to emit events: ``await outbox.add(session, SomethingHappened(...))``."""

    def __init__(self, *, service: str, clock: Clock) -> None:
        self.service = service
        self.table = outbox_table(service)
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._insert = insert(self.table)  # built once: its compiled form is cached (bind parameters)

    async def add(self, session: AsyncSession, event_: Event) -> Envelope:
        return (await self.add_many(session, (event_,)))[0]

    async def add_many(self, session: AsyncSession, events: Iterable[Event]) -> list[Envelope]:
        """Several events of one transaction in one statement (in order)."""
        at = self._clock.now()
        envelopes = [Envelope.of(e, source=self.service, at=at) for e in events]
        if not envelopes:
            return []
        rows = [
            {
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "envelope": envelope.model_dump_json(),
                "created_at": envelope.timestamp,
                "attempts": 0,
            }
            for envelope in envelopes
        ]
        await session.execute(self._insert, rows[0] if len(rows) == 1 else rows)
        # Wake the relay as soon as this transaction commits (not before: G7).
        sync_session = session.sync_session
        if not getattr(sync_session, "_algotrendy_outbox_hook", False):
            sync_session._algotrendy_outbox_hook = True  # type: ignore[attr-defined]
            event.listen(sync_session, "after_commit", lambda _s: self._wakeup.set(), once=True)
        return envelopes

    def wake(self) -> None:
        self._wakeup.set()

    async def wait(self, max_wait: float) -> bool:
        """Until a commit added rows (``True``) or ``max_wait`` seconds passed (``False``)."""
        woken = await wait_event(self._wakeup, max_wait)
        self._wakeup.clear()
        return woken


class OutboxRelay:
    """Moves committed outbox rows onto the bus; one per service per process."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        clock: Clock,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        gather: float = 0.005,
        retention: timedelta = timedelta(days=7),
        on_published: Callable[[Envelope], None] | None = None,
        before_publish: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._table = outbox.table
        self._sessions = sessions
        self._bus = bus
        self._clock = clock
        self._batch = batch_size
        self._poll = poll_interval
        self._gather = gather
        """Seconds the relay waits after a commit woke it before it reads: the request that
        committed goes on first (on SQLite the relay's read would queue on the one connection in
        front of that request's next transaction), and one read and one mark then cover every
        row committed meanwhile. Events go out that much later."""
        self._retention = retention
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._on_published = on_published
        self._before_publish = before_publish
        self._stopping = False
        t = self._table
        # Built once (the relay runs after every commit that adds a row): values are parameters.
        self._unsent = (
            select(t.c.id, t.c.envelope).where(t.c.published_at.is_(None)).order_by(t.c.id).limit(batch_size)
        )
        self._claim = self._unsent.with_for_update(skip_locked=True)  # PostgreSQL: relays share
        self._mark_sent = (
            update(t)
            .where(t.c.id.in_(bindparam("ids", expanding=True)))
            .values(published_at=bindparam("at"), attempts=t.c.attempts + 1)
        )

    @property
    def name(self) -> str:
        return self._table.name

    async def run_once(self) -> int:
        """Publish one batch of unsent rows in id order; returns how many were published.

        PostgreSQL: rows are claimed with ``FOR UPDATE SKIP LOCKED`` for the duration of the
        publish, so several relay processes share the work. SQLite (one process): no
        transaction is held across a publish, because a consumer handling the event needs
        the single write lock; rows are read, published, then marked one by one.
        """
        published = 0
        async with self._sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin():
                    rows = (await session.execute(self._claim)).all()
                    for row_id, raw in rows:
                        if not await self._publish_one(session, row_id, raw):
                            break
                        published += 1
                await self._purge()
                return published
            rows = (await session.execute(self._unsent)).all()
            await session.rollback()
        # Publish the batch, then mark what went out in one write transaction (a crash in
        # between republishes those rows: at least once, and consumers keep an inbox).
        sent: list[int] = []
        failed: tuple[int, Exception] | None = None
        for row_id, raw in rows:
            envelope = Envelope.model_validate_json(raw)
            if self._before_publish is not None:
                self._before_publish(envelope)
            try:
                await self._bus.publish(envelope)
            except Exception as exc:
                self._log_failure(envelope, exc)
                failed = (row_id, exc)
                break
            sent.append(row_id)
            if self._on_published is not None:
                self._on_published(envelope)
        if sent or failed is not None:
            t = self._table
            async with self._sessions() as session, session.begin():
                if sent:
                    await session.execute(self._mark_sent, {"ids": sent, "at": self._clock.now()})
                if failed is not None:
                    await session.execute(
                        update(t)
                        .where(t.c.id == failed[0])
                        .values(attempts=t.c.attempts + 1, last_error=repr(failed[1])[:500])
                    )
        published = len(sent)
        await self._purge()
        return published

    def _log_failure(self, envelope: Envelope, exc: Exception) -> None:
        log.warning(
            "outbox.publish_failed",
            table=self._table.name,
            event_id=str(envelope.event_id),
            event_type=envelope.event_type,
            error=type(exc).__name__,
        )

    async def _publish_one(self, session: AsyncSession, row_id: int, raw: str) -> bool:
        t = self._table
        envelope = Envelope.model_validate_json(raw)
        if self._before_publish is not None:
            self._before_publish(envelope)
        try:
            await self._bus.publish(envelope)
        except Exception as exc:
            self._log_failure(envelope, exc)
            await session.execute(
                update(t)
                .where(t.c.id == row_id)
                .values(attempts=t.c.attempts + 1, last_error=repr(exc)[:500])
            )
            return False  # keep order: retry this row before any later one
        await session.execute(
            update(t)
            .where(t.c.id == row_id)
            .values(published_at=self._clock.now(), attempts=t.c.attempts + 1)
        )
        if self._on_published is not None:
            self._on_published(envelope)
        return True

    async def _purge(self) -> None:
        now = self._clock.monotonic()
        if now - self._last_purge < 3600:
            return
        self._last_purge = now
        cutoff = self._clock.now() - self._retention
        t = self._table
        async with self._sessions() as session, session.begin():
            await session.execute(delete(t).where(t.c.published_at.is_not(None), t.c.published_at < cutoff))

    async def drain(self) -> None:
        """Publish until nothing is left (used at shutdown and in tests)."""
        while await self.run_once():
            pass

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbox.relay_error", table=self._table.name, error=repr(exc)[:300])
                n = 0
            if n >= self._batch or self._stopping:
                continue  # more to publish at once, or the loop ends
            woken = await self._outbox.wait(self._poll)
            if woken and self._gather > 0 and not self._stopping:
                await asyncio.sleep(self._gather)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"relay:{self._table.name}"
            )

    async def stop(self, grace: float = 10.0) -> None:
        """Let the batch in flight finish (a publish is never cut between the bus accepting an
        event and the row being marked), then end the loop; cancel only after ``grace``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._outbox.wake()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            log.warning("outbox.relay_stop_forced", table=self._table.name, grace=grace)
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)
