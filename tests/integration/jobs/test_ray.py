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

import numpy as np
import pytest
import pytest_asyncio

from algotrendy.core.clock import SystemClock
from algotrendy.core.market import Bars
from algotrendy.services.jobs.interface import JobRead, JobStatus
from algotrendy.services.jobs.service import JobsService
from algotrendy.services.jobs.settings import JobsSettings
from algotrendy.services.ml import jobs as ml_jobs
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
    registry = make_registry()
    ml_jobs.register(registry)
    service = JobsService(
        db.sessions,
        executor,
        registry,
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


async def test_ray_trains_a_model_version(ray_jobs: tuple[JobsService, Db], tmp_path: Path) -> None:
    """``ml.train`` on Ray: the staged bars are read by the Ray worker, the pipeline's steps report
    as progress, the model file is written where the service will look, and it loads and predicts."""
    require(importlib.util.find_spec("lightgbm") is not None, "ml extra not installed")
    from algotrendy.engine.ml.pipeline import TrainingConfig
    from algotrendy.services.ml import artifacts

    jobs, _db = ray_jobs
    rng = np.random.default_rng(7)
    n = 1500
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    ts = np.arange(n, dtype=np.int64) * 3_600_000_000_000
    bars = Bars(ts, close, close * 1.002, close * 0.998, close, rng.uniform(1, 2, n))
    model_id = uuid.uuid4()
    staged = ml_jobs.stage(tmp_path / "staged", model_id, bars)
    config = TrainingConfig(features="minimal", hyperparams={"n_estimators": 30}, cv_splits=2, embargo=5)
    params = {
        "inputs": str(staged),
        "config": config.to_dict(),
        "models_dir": str(tmp_path / "models"),
        "model_id": str(model_id),
    }
    job = await jobs.submit(owner=OWNER, kind=ml_jobs.KIND, params=params)
    steps: set[str] = set()
    deadline = time.monotonic() + WAIT
    while not (current := await jobs.get(owner=OWNER, job_id=job.id)).status.finished:
        assert time.monotonic() < deadline, f"timed out; last seen {current}"
        if current.message:
            steps.add(current.message)
        await asyncio.sleep(0.02)
    assert current.status is JobStatus.SUCCEEDED, current.error
    # progress is sampled by polling: on a slow machine some steps pass between two polls
    known = {"DataValidation", "FeatureEngineering", "FeatureSelection", "HyperparameterOptimization"}
    known |= {"ModelTraining", "ModelValidation", "ModelDeployment"}
    assert len(steps) >= 2 and steps <= known, steps
    result = current.result
    assert result is not None and result["summary"]["model_type"] == "lightgbm"
    trained = artifacts.load(root=tmp_path / "models", path=result["model_path"], sha256=result["sha256"])
    probabilities = trained.predict_proba(np.zeros((1, len(trained.feature_names))))
    assert probabilities.shape == (1,) and 0.0 < float(probabilities[0]) < 1.0
