"""JobsService on the real spawn process pool and a temp SQLite database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from algotrendy.adapters.jobs.process_pool import ProcessPoolJobExecutor
from algotrendy.core.clock import SystemClock
from algotrendy.core.errors import NotFound
from algotrendy.services.jobs import store
from algotrendy.services.jobs.interface import JobRead, JobStatus
from algotrendy.services.jobs.service import JobsService
from algotrendy.services.jobs.settings import JobsSettings
from tests.integration.jobs.support import Db, make_registry

OWNER = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
WAIT = 60.0  # generous: a cold spawn worker imports the package first


def make_service(db: Db, *, workers: int = 2, max_attempts: int = 3) -> JobsService:
    settings = JobsSettings(
        workers=workers, progress_interval=0.05, max_attempts=max_attempts, stale_after=30
    )
    return JobsService(
        db.sessions,
        ProcessPoolJobExecutor(workers=workers, report_interval=0.02, cancel_poll=0.02),
        make_registry(),
        SystemClock(),
        settings,
        db.outbox,
        poll_interval=0.1,
        wait_poll=0.05,
    )


@pytest.fixture
async def jobs(db: Db) -> AsyncIterator[JobsService]:
    service = make_service(db)
    await service.start()
    yield service
    await service.stop()


async def poll(jobs: JobsService, job_id: uuid.UUID, ok: object, *, timeout: float = WAIT) -> JobRead:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await jobs.get(owner=OWNER, job_id=job_id)
        if ok(job):  # type: ignore[operator]
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out; last seen {job}")


async def test_job_reports_progress_and_returns_a_result(jobs: JobsService, db: Db) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 4, "delay": 0.05})
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result is not None and done.result["total"] == 6 and done.result["steps"] == 4
    assert done.progress == 1.0 and done.attempts == 1 and done.error is None
    assert (
        done.started_at is not None and done.finished_at is not None and done.finished_at >= done.started_at
    )
    [event] = await db.events()
    assert event.event_type == "jobs.job.finished" and event.data["status"] == "succeeded"


async def test_progress_and_eta_are_visible_while_running(jobs: JobsService) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 40, "delay": 0.05})
    seen = await poll(jobs, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress >= 0.2)
    assert seen.eta_seconds is not None and seen.eta_seconds > 0
    assert seen.message is not None and seen.message.startswith("step ")
    later = await poll(jobs, job.id, lambda j: j.progress >= 0.6 or j.status.finished)
    if later.status is JobStatus.RUNNING:
        assert later.progress > seen.progress
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCEEDED and done.eta_seconds is None


async def test_cancelling_a_running_job_stops_it(jobs: JobsService, db: Db) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.until_cancelled", params={"max_seconds": 60})
    await poll(jobs, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
    asked = await jobs.cancel(owner=OWNER, job_id=job.id)
    assert asked.cancel_requested and asked.status is JobStatus.RUNNING
    started = time.monotonic()
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.CANCELLED and done.result is None
    assert time.monotonic() - started < 10
    assert [e.data["status"] for e in await db.events()] == ["cancelled"]


async def test_job_that_raises_fails_with_its_error(jobs: JobsService) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.boom", params={"n": 7})
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.FAILED
    assert done.error == "ValueError: boom 7"


async def test_five_concurrent_jobs_all_finish(db: Db) -> None:
    service = make_service(db, workers=3)
    await service.start()
    try:
        submitted = [
            await service.submit(owner=OWNER, kind="test.count", params={"steps": 5, "delay": 0.05 + i / 100})
            for i in range(5)
        ]
        most_running = 0
        while True:
            current = await service.list(owner=OWNER)
            most_running = max(most_running, sum(j.status is JobStatus.RUNNING for j in current))
            if all(j.status.finished for j in current):
                break
            await asyncio.sleep(0.02)
        done = await asyncio.gather(
            *(service.wait(owner=OWNER, job_id=j.id, timeout=WAIT) for j in submitted)
        )
    finally:
        await service.stop()
    assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 5
    assert most_running <= 3
    assert len({j.result["pid"] for j in done if isinstance(j.result, dict)}) > 1  # spread over workers


async def test_running_row_left_by_a_dead_process_is_requeued_and_completes(db: Db) -> None:
    now = SystemClock().now()
    orphan, exhausted = uuid.uuid4(), uuid.uuid4()
    async with db.sessions() as session, session.begin():
        for job_id, attempts in ((orphan, 1), (exhausted, 3)):
            await store.insert_job(
                session,
                {
                    "id": job_id,
                    "owner_id": OWNER,
                    "kind": "test.count",
                    "status": "running",
                    "params": {"steps": 3, "delay": 0.01},
                    "progress": 0.5,
                    "attempts": attempts,
                    "cancel_requested": False,
                    "runner_id": uuid.uuid4(),  # a process that is gone
                    "created_at": now - timedelta(minutes=10),
                    "started_at": now - timedelta(minutes=5),
                    "heartbeat_at": now - timedelta(minutes=5),
                },
            )
    service = make_service(db, max_attempts=3)
    await service.start()
    try:
        done = await service.wait(owner=OWNER, job_id=orphan, timeout=WAIT)
        gave_up = await service.get(owner=OWNER, job_id=exhausted)
    finally:
        await service.stop()
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert done.result is not None and done.result["total"] == 3
    assert gave_up.status is JobStatus.FAILED and gave_up.error == "interrupted"


async def test_another_owner_gets_not_found(jobs: JobsService) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 1, "delay": 0})
    with pytest.raises(NotFound):
        await jobs.get(owner=OTHER, job_id=job.id)
    with pytest.raises(NotFound):
        await jobs.cancel(owner=OTHER, job_id=job.id)
    assert await jobs.list(owner=OTHER) == []
    assert (await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)).status is JobStatus.SUCCEEDED


async def test_a_dead_worker_fails_its_job_and_the_pool_recovers(jobs: JobsService) -> None:
    job = await jobs.submit(owner=OWNER, kind="test.crash", params={})
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.FAILED and (done.error or "").startswith("BrokenProcessPool")
    after = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 2, "delay": 0})
    assert (await jobs.wait(owner=OWNER, job_id=after.id, timeout=WAIT)).status is JobStatus.SUCCEEDED


async def test_stop_terminates_a_running_job_and_requeues_it(db: Db) -> None:
    service = make_service(db)
    await service.start()
    job = await service.submit(owner=OWNER, kind="test.until_cancelled", params={"max_seconds": 60})
    await poll(service, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
    started = time.monotonic()
    await service.stop()
    assert time.monotonic() - started < 15
    after = await service.get(owner=OWNER, job_id=job.id)
    assert after.status is JobStatus.QUEUED and after.attempts == 1
