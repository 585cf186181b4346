"""JobsService state transitions on the in-process thread executor and a temp SQLite file."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import ManualClock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.db.outbox import Outbox
from algotrendy.services.jobs import store
from algotrendy.services.jobs.interface import JobStatus
from tests.unit.services.jobs import fakes
from tests.unit.services.jobs.fakes import ThreadExecutor, events, running, until

OWNER = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def db(
    tmp_path: Path, clock: ManualClock
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Outbox]]:
    engine, sessions, outbox = await fakes.make_db(tmp_path, clock)
    yield sessions, outbox
    await engine.dispose()


@pytest.fixture
def sessions(db: tuple[async_sessionmaker[AsyncSession], Outbox]) -> async_sessionmaker[AsyncSession]:
    return db[0]


@pytest.fixture
def outbox(db: tuple[async_sessionmaker[AsyncSession], Outbox]) -> Outbox:
    return db[1]


@pytest.fixture
def executor() -> ThreadExecutor:
    return ThreadExecutor()


def gate_name() -> str:
    return f"g-{uuid.uuid4().hex}"


async def test_unknown_kind_is_invalid_and_names_the_field(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    with pytest.raises(Invalid) as err:
        await jobs.submit(owner=OWNER, kind="test.nope", params={})
    assert err.value.field == "kind"
    assert await jobs.list(owner=OWNER) == []


async def test_params_must_be_json(sessions: Any, executor: ThreadExecutor, clock: ManualClock) -> None:
    jobs = fakes.service(sessions, executor, clock)
    with pytest.raises(Invalid) as err:
        await jobs.submit(owner=OWNER, kind="test.add", params={"x": object()})
    assert err.value.field == "params"


async def test_submitted_job_is_queued(sessions: Any, executor: ThreadExecutor, clock: ManualClock) -> None:
    jobs = fakes.service(sessions, executor, clock)
    job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 1, "b": 2})
    assert job.status is JobStatus.QUEUED and job.progress == 0 and job.attempts == 0
    assert job.created_at == clock.now() and job.started_at is None
    assert await jobs.get(owner=OWNER, job_id=job.id) == job


async def test_job_runs_to_success_and_emits_finished_in_the_outbox(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock, outbox)
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 2, "b": 40})
        done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"sum": 42} and done.error is None
    assert done.progress == 1.0 and done.eta_seconds is None and done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    [event] = await events(sessions)
    assert event.event_type == "jobs.job.finished" and event.source == "jobs"
    assert event.data == {
        "job_id": str(job.id),
        "owner_id": str(OWNER),
        "kind": "test.add",
        "status": "succeeded",
    }


async def test_failing_job_keeps_type_and_message_but_no_traceback(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock, outbox)
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.fail", params={"window": 3})
        done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.FAILED
    assert done.error == "ValueError: bad window 3" and done.result is None
    [event] = await events(sessions)
    assert event.data["status"] == "failed"


async def test_result_that_is_not_json_fails_the_job(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.not_json", params={})
        done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.FAILED and (done.error or "").startswith("ResultNotJSON")


async def test_cancelling_a_queued_job_is_immediate(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock, outbox)  # not started: the job stays queued
    job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 1, "b": 1})
    cancelled = await jobs.cancel(owner=OWNER, job_id=job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel_requested
    assert cancelled.finished_at == clock.now()
    [event] = await events(sessions)
    assert event.data["status"] == "cancelled"
    with pytest.raises(Conflict):
        await jobs.cancel(owner=OWNER, job_id=job.id)
    async with running(jobs):  # and it never runs
        await asyncio.sleep(0.3)  # several runner cycles (poll_interval 0.05 s)
    assert executor.handles == {}


async def test_cancelling_a_running_job_stops_it_cooperatively(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock, outbox)
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.gated", params={"gate": gate_name()})
        await until(lambda: _status_is(jobs, job.id, JobStatus.RUNNING), what="running")
        asked = await jobs.cancel(owner=OWNER, job_id=job.id)
        assert asked.status is JobStatus.RUNNING and asked.cancel_requested
        done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.CANCELLED and done.result is None
    assert [e.data["status"] for e in await events(sessions)] == ["cancelled"]
    with pytest.raises(Conflict):
        await jobs.cancel(owner=OWNER, job_id=job.id)


async def test_another_owner_cannot_see_or_touch_a_job(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 1, "b": 1})
    for call in (jobs.get, jobs.cancel):
        with pytest.raises(NotFound) as err:
            await call(owner=OTHER, job_id=job.id)
        assert "not found" in err.value.detail
    with pytest.raises(NotFound):
        await jobs.wait(owner=OTHER, job_id=job.id, timeout=0)
    assert await jobs.list(owner=OTHER) == []
    assert (await jobs.get(owner=OWNER, job_id=job.id)).status is JobStatus.QUEUED


async def test_list_filters_pages_and_orders_newest_first(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    ids = []
    for i in range(5):
        kind = "test.add" if i % 2 == 0 else "test.fail"
        ids.append((await jobs.submit(owner=OWNER, kind=kind, params={"a": i, "b": 0})).id)
        clock.advance(1)
    await jobs.cancel(owner=OWNER, job_id=ids[0])
    listed = await jobs.list(owner=OWNER)
    assert [j.id for j in listed] == ids[::-1]
    assert [j.id for j in await jobs.list(owner=OWNER, kind="test.fail")] == [ids[3], ids[1]]
    assert [j.id for j in await jobs.list(owner=OWNER, status=JobStatus.CANCELLED)] == [ids[0]]
    assert [j.id for j in await jobs.list(owner=OWNER, limit=2, offset=1)] == [ids[3], ids[2]]
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        with pytest.raises(Invalid):
            await jobs.list(owner=OWNER, **bad)


async def test_wait_returns_the_current_state_at_timeout(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 1, "b": 1})
    assert (await jobs.wait(owner=OWNER, job_id=job.id, timeout=0.1)).status is JobStatus.QUEUED
    with pytest.raises(Invalid):
        await jobs.wait(owner=OWNER, job_id=job.id, timeout=-1)


async def test_progress_and_eta_are_persisted_while_running(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    name = gate_name()
    fakes.FRACTIONS[name] = 0.0
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.gated", params={"gate": name})
        await until(lambda: _status_is(jobs, job.id, JobStatus.RUNNING), what="running")
        clock.advance(30)
        fakes.FRACTIONS[name] = 0.25
        await until(lambda: _progress_is(jobs, job.id, 0.25), what="progress 0.25")
        seen = await jobs.get(owner=OWNER, job_id=job.id)
        assert seen.eta_seconds == 90.0 and seen.message == f"waiting on {name}"
        clock.advance(10)
        fakes.FRACTIONS[name] = 0.5
        await until(lambda: _progress_is(jobs, job.id, 0.5), what="progress 0.5")
        assert (await jobs.get(owner=OWNER, job_id=job.id)).eta_seconds == 40.0
        fakes.gate(name).set()
        done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED and done.progress == 1.0 and done.eta_seconds is None


async def test_no_more_than_workers_jobs_run_at_once(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock, workers=1)
    first, second = gate_name(), gate_name()
    async with running(jobs):
        a = await jobs.submit(owner=OWNER, kind="test.gated", params={"gate": first})
        clock.advance(1)
        b = await jobs.submit(owner=OWNER, kind="test.gated", params={"gate": second})
        await until(lambda: _status_is(jobs, a.id, JobStatus.RUNNING), what="first running")
        assert (await jobs.get(owner=OWNER, job_id=b.id)).status is JobStatus.QUEUED
        fakes.gate(first).set()
        await until(lambda: _status_is(jobs, b.id, JobStatus.RUNNING), what="second running")
        fakes.gate(second).set()
        assert (await jobs.wait(owner=OWNER, job_id=b.id, timeout=10)).status is JobStatus.SUCCEEDED


async def test_kinds_this_process_does_not_know_stay_queued(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    await _insert(sessions, clock, kind="ml.train", status=JobStatus.QUEUED)
    async with running(jobs):
        job = await jobs.submit(owner=OWNER, kind="test.add", params={"a": 1, "b": 1})
        await jobs.wait(owner=OWNER, job_id=job.id, timeout=10)
    [other] = await jobs.list(owner=OWNER, kind="ml.train")
    assert other.status is JobStatus.QUEUED


async def test_stale_running_job_is_requeued_and_runs_again(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    job_id = await _insert(sessions, clock, status=JobStatus.RUNNING, attempts=1, heartbeat_age=3600)
    jobs = fakes.service(sessions, executor, clock, outbox)
    async with running(jobs):
        done = await jobs.wait(owner=OWNER, job_id=job_id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2 and done.result == {"sum": 3}
    assert [e.data["status"] for e in await events(sessions)] == ["succeeded"]


async def test_stale_job_that_used_its_attempts_fails_as_interrupted(
    sessions: Any, outbox: Outbox, executor: ThreadExecutor, clock: ManualClock
) -> None:
    job_id = await _insert(sessions, clock, status=JobStatus.RUNNING, attempts=3, heartbeat_age=3600)
    jobs = fakes.service(sessions, executor, clock, outbox, max_attempts=3)
    async with running(jobs):
        done = await jobs.wait(owner=OWNER, job_id=job_id, timeout=10)
    assert done.status is JobStatus.FAILED and done.error == "interrupted"
    assert [e.data["status"] for e in await events(sessions)] == ["failed"]


async def test_stale_job_with_a_cancel_request_ends_cancelled(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    job_id = await _insert(
        sessions, clock, status=JobStatus.RUNNING, attempts=1, heartbeat_age=3600, cancel=True
    )
    jobs = fakes.service(sessions, executor, clock)
    async with running(jobs):
        done = await jobs.wait(owner=OWNER, job_id=job_id, timeout=10)
    assert done.status is JobStatus.CANCELLED


async def test_a_live_heartbeat_protects_a_job_until_it_goes_stale(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    job_id = await _insert(sessions, clock, status=JobStatus.RUNNING, attempts=1, heartbeat_age=0)
    jobs = fakes.service(sessions, executor, clock, stale_after=1)  # checks every 0.25 s
    async with running(jobs):
        await jobs.wait(owner=OWNER, job_id=job_id, timeout=0.6)
        assert (await jobs.get(owner=OWNER, job_id=job_id)).status is JobStatus.RUNNING
        clock.advance(2)  # its runner stopped heartbeating two seconds ago
        done = await jobs.wait(owner=OWNER, job_id=job_id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2


async def test_stop_kills_workers_and_requeues_running_jobs(
    sessions: Any, executor: ThreadExecutor, clock: ManualClock
) -> None:
    jobs = fakes.service(sessions, executor, clock)
    name = gate_name()
    await jobs.start()
    job = await jobs.submit(owner=OWNER, kind="test.gated", params={"gate": name})
    await until(lambda: _status_is(jobs, job.id, JobStatus.RUNNING), what="running")
    await jobs.stop()
    fakes.gate(name).set()
    assert executor.closed and jobs.running == frozenset()
    after = await jobs.get(owner=OWNER, job_id=job.id)
    assert after.status is JobStatus.QUEUED and after.attempts == 1 and after.progress == 0
    again = fakes.service(sessions, ThreadExecutor(), clock)  # the next start runs it
    async with running(again):
        done = await again.wait(owner=OWNER, job_id=job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2


# --- helpers ---------------------------------------------------------------------------------------


async def _status_is(jobs: Any, job_id: uuid.UUID, status: JobStatus) -> bool:
    return bool((await jobs.get(owner=OWNER, job_id=job_id)).status is status)


async def _progress_is(jobs: Any, job_id: uuid.UUID, fraction: float) -> bool:
    return bool((await jobs.get(owner=OWNER, job_id=job_id)).progress == fraction)


async def _insert(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    kind: str = "test.add",
    status: JobStatus,
    attempts: int = 0,
    heartbeat_age: float | None = None,
    cancel: bool = False,
) -> uuid.UUID:
    job_id = uuid.uuid4()
    now = clock.now()
    is_running = status is JobStatus.RUNNING
    values = {
        "id": job_id,
        "owner_id": OWNER,
        "kind": kind,
        "status": status.value,
        "params": {"a": 1, "b": 2},
        "progress": 0.4 if is_running else 0.0,
        "attempts": attempts,
        "cancel_requested": cancel,
        "runner_id": uuid.uuid4() if is_running else None,  # a runner that no longer exists
        "created_at": now,
        "started_at": now if is_running else None,
        "heartbeat_at": now - timedelta(seconds=heartbeat_age) if heartbeat_age is not None else None,
    }
    async with sessions() as session, session.begin():
        await store.insert_job(session, values)
        assert (await session.execute(select(store.jobs.c.id).where(store.jobs.c.id == job_id))).scalar()
    return job_id
