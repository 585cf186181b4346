"""JobsService on a local Ray (``address="local"``: ``ray.init`` in this process, one CPU).

Few tests on purpose: starting Ray takes seconds. One Ray, one service and one database serve
the whole module; the fixture shuts Ray down at the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from algotrendy.core.clock import SystemClock
from algotrendy.services.jobs.interface import JobRead, JobStatus
from algotrendy.services.jobs.service import JobsService
from algotrendy.services.jobs.settings import JobsSettings
from tests.integration.jobs.support import Db, make_db, make_registry
from tests.support import require

ray_importable = importlib.util.find_spec("ray") is not None
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

OWNER = uuid.UUID(int=1)
WAIT = 120.0  # the first task on a fresh Ray waits for a worker process to boot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ray_jobs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[JobsService, Db]]:
    require(ray_importable, "ray not installed")
    from algotrendy.adapters.jobs.ray_executor import RayJobExecutor

    db = await make_db(Path(tmp_path_factory.mktemp("ray")) / "jobs.db")
    executor = RayJobExecutor(address="local", num_cpus=1, report_interval=0.05, cancel_poll=0.05)
    settings = JobsSettings(workers=2, progress_interval=0.05, max_attempts=3, stale_after=30)
    service = JobsService(
        db.sessions,
        executor,
        make_registry(),
        SystemClock(),
        settings,
        db.outbox,
        poll_interval=0.1,
        wait_poll=0.05,
    )
    await service.start()  # ray.init(num_cpus=1, include_dashboard=False)
    try:
        yield service, db
    finally:
        await service.stop()  # closes the executor: ray.shutdown()
        await db.engine.dispose()
        import ray

        assert not ray.is_initialized()


async def poll(jobs: JobsService, job_id: uuid.UUID, ok: object) -> JobRead:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = await jobs.get(owner=OWNER, job_id=job_id)
        if ok(job):  # type: ignore[operator]
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out; last seen {job}")


async def test_ray_job_reports_progress_and_returns_a_result(ray_jobs: tuple[JobsService, Db]) -> None:
    jobs, _db = ray_jobs
    job = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 20, "delay": 0.05})
    seen = await poll(
        jobs, job.id, lambda j: (j.status is JobStatus.RUNNING and j.progress > 0) or j.status.finished
    )
    assert seen.status is JobStatus.RUNNING and seen.eta_seconds is not None
    done = await jobs.wait(owner=OWNER, job_id=job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCEEDED and done.progress == 1.0
    assert done.result is not None and done.result["total"] == sum(range(20))


async def test_ray_cancel_running_and_queued_jobs(ray_jobs: tuple[JobsService, Db]) -> None:
    jobs, db = ray_jobs
    running = await jobs.submit(owner=OWNER, kind="test.until_cancelled", params={"max_seconds": 60})
    await poll(jobs, running.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
    # One CPU: this one is handed to Ray but waits there for the first to finish.
    waiting = await jobs.submit(owner=OWNER, kind="test.count", params={"steps": 2, "delay": 0})
    await poll(jobs, waiting.id, lambda j: j.status is JobStatus.RUNNING)
    assert (await jobs.cancel(owner=OWNER, job_id=waiting.id)).cancel_requested
    dropped = await jobs.wait(owner=OWNER, job_id=waiting.id, timeout=WAIT)
    assert dropped.status is JobStatus.CANCELLED and dropped.result is None
    assert (await jobs.get(owner=OWNER, job_id=running.id)).status is JobStatus.RUNNING
    await jobs.cancel(owner=OWNER, job_id=running.id)
    stopped = await jobs.wait(owner=OWNER, job_id=running.id, timeout=WAIT)
    assert stopped.status is JobStatus.CANCELLED
    statuses = {e.data["job_id"]: e.data["status"] for e in await db.events()}
    assert statuses[str(running.id)] == statuses[str(waiting.id)] == "cancelled"
