"""``MlService``: train model versions as jobs, keep them in the registry, promote and roll back.

A training request is checked completely before its job starts: the settings must make a valid
``TrainingConfig`` (each bad value is ``Invalid`` naming its field), the symbol must have bars in
the range, and there must be enough of them for the features' warm-up, the label horizon and the
pipeline's minimum of samples. The bars are staged for the job (workers open no database). When
the job finishes (``jobs.job.finished``, or the first read after it) the outcome is copied onto
the ``ml_models`` row once: the version is logged to MLflow (run, parameters, metrics, artifacts,
registered model version) and ``ml.model.trained`` goes through the outbox in the same
transaction as the row. If MLflow cannot be reached the row stays ``training`` and the next read
or event retries: a trained model is never lost to a registry outage.

Inference, features and signals live in ``predicting.Predicting``; this class delegates to it.
"""

from __future__ import annotations

import asyncio
import builtins
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound, TemporaryError
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.db.outbox import Outbox
from algotrendy.services.jobs.interface import JobFinished, JobRead, JobsApi, JobStatus
from algotrendy.services.marketdata.interface import MarketDataApi
from algotrendy.services.ml import jobs as ml_jobs
from algotrendy.services.ml import store
from algotrendy.services.ml.interface import (
    BatchPredictionRead,
    BatchPredictRequest,
    FeaturesEngineer,
    FeatureSetRead,
    FeaturesRead,
    ImportanceRead,
    ModelDeleted,
    ModelPromoted,
    ModelRead,
    ModelStage,
    ModelStatus,
    ModelStatusRead,
    ModelSummary,
    ModelTrainCreate,
    ModelTrained,
    PredictionRead,
    PredictRequest,
    RegistryRead,
    Scorer,
    SignalGenerate,
    SignalRead,
    SignalType,
    TrainAccepted,
)
from algotrendy.services.ml.predicting import Predicting
from algotrendy.services.ml.registry import MlflowRegistry
from algotrendy.services.ml.serving import ModelCache
from algotrendy.services.ml.settings import MlSettings
from algotrendy.services.ml.training import check_request
from algotrendy.services.ml.views import holdout_score, model_read, not_found, summary_of

log = structlog.get_logger(__name__)

MAX_PAGE = 200
_JOB_STATUS = {
    JobStatus.QUEUED: ModelStatus.QUEUED,
    JobStatus.RUNNING: ModelStatus.TRAINING,
    JobStatus.SUCCEEDED: ModelStatus.COMPLETED,
    JobStatus.FAILED: ModelStatus.FAILED,
    JobStatus.CANCELLED: ModelStatus.CANCELLED,
}
_RUNNING = (ModelStatus.QUEUED.value, ModelStatus.TRAINING.value)


class MlService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: MlSettings,
        jobs: JobsApi,
        marketdata: MarketDataApi,
        outbox: Outbox,
        registry: MlflowRegistry,
        models_dir: Path,
        inputs_dir: Path,
    ) -> None:
        self._db = sessions
        self._clock = clock
        self._s = settings
        self._jobs = jobs
        self._md = marketdata
        self._outbox = outbox
        self._registry = registry
        self._models_dir = models_dir
        self._inputs_dir = inputs_dir
        self._cache = ModelCache(max_models=settings.cache_models)
        self._predicting = Predicting(
            sessions=sessions,
            clock=clock,
            settings=settings,
            marketdata=marketdata,
            outbox=outbox,
            cache=self._cache,
            models_dir=models_dir,
        )
        self._subs: list[Subscription] = []
        self._finalizing: dict[uuid.UUID, asyncio.Lock] = {}

    async def subscribe(self, bus: Bus) -> None:
        self._subs.append(await bus.subscribe(JobFinished.topic, group="ml.finalize", handler=self._on_job))

    async def unsubscribe(self) -> None:
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()

    async def _on_job(self, envelope: Envelope) -> None:
        event = JobFinished.model_validate(envelope.data)
        if event.kind != ml_jobs.KIND:
            return
        async with self._db() as session:
            row = await store.by_job(session, event.job_id)
        if row is None:
            await self._orphan(event)
        elif row.status in _RUNNING:
            await self._finalize(row)

    # ---- training -------------------------------------------------------------------------------

    async def train(self, *, owner: uuid.UUID, request: ModelTrainCreate) -> TrainAccepted:
        async with self._db() as session:
            if await store.running(session, owner) >= self._s.max_trainings:
                raise Conflict(
                    f"{self._s.max_trainings} trainings are already running; wait for one to finish",
                    code="too_many_trainings",
                )
        checked = await check_request(request, marketdata=self._md, settings=self._s, now=self._clock.now())
        model_id = uuid.uuid4()
        name = request.name or f"{checked.series.symbol}-{checked.interval}-{request.model_type}".lower()
        path = ml_jobs.stage(self._inputs_dir, model_id, checked.series.bars)
        now = self._clock.now()
        try:
            async with self._db.begin() as session:
                version = await store.next_version(session, owner, name)
                await store.add(
                    session,
                    {
                        "id": model_id,
                        "owner_id": owner,
                        "name": name,
                        "version": version,
                        "model_type": request.model_type,
                        "symbol": checked.series.symbol,
                        "venue": checked.series.venue,
                        "asset_type": checked.series.asset_type.value,
                        "interval": checked.interval,
                        "status": ModelStatus.QUEUED.value,
                        "stage": ModelStage.NONE.value,
                        "config": checked.config,
                        "inputs": str(path),
                        "data_start": checked.first,
                        "data_end": checked.last,
                        "created_at": now,
                    },
                )
            job = await self._jobs.submit(
                owner=owner,
                kind=ml_jobs.KIND,
                params={
                    "model_id": str(model_id),
                    "inputs": str(path),
                    "config": checked.config,
                    "models_dir": str(self._models_dir),
                },
            )
        except Exception:
            async with self._db.begin() as session:
                await store.remove(session, model_id)
            ml_jobs.unstage(path)
            raise
        async with self._db.begin() as session:
            await store.set_values(session, model_id, {"job_id": job.id})
        log.info(
            "ml.training.started", model_id=str(model_id), name=name, version=version, job_id=str(job.id)
        )
        return TrainAccepted(
            model_id=model_id, job_id=job.id, name=name, version=version, status=ModelStatus.QUEUED
        )

    async def _row(self, owner: uuid.UUID, model_id: uuid.UUID) -> tuple[Any, JobRead | None]:
        """The row (finalized first when its job has finished) and, while training, its job."""
        async with self._db() as session:
            row = await store.get(session, owner, model_id)
        if row is None:
            raise not_found(model_id)
        if row.status in _RUNNING and row.job_id is not None:
            job = await self._jobs.get(owner=owner, job_id=row.job_id)
            if not job.status.finished:
                return row, job
            await self._finalize(row, job)
            async with self._db() as session:
                row = await store.get(session, owner, model_id)
            if row is None:
                raise not_found(model_id)
            if row.status in _RUNNING:  # the registry was unreachable: still finishing
                return row, job
        return row, None

    async def _finalize(self, row: Any, job: JobRead | None = None) -> None:
        """Copy a finished job's outcome onto its row, once: the job-finished event and a read may
        race here, and the registry must not get the version twice."""
        lock = self._finalizing.setdefault(row.id, asyncio.Lock())
        try:
            async with lock:
                async with self._db() as session:
                    row = await store.by_id(session, row.id)
                if row is None or row.status not in _RUNNING:
                    return
                await self._finish(row, job)
        finally:
            if not lock.locked():
                self._finalizing.pop(row.id, None)

    async def _finish(self, row: Any, job: JobRead | None) -> None:
        job = job or await self._jobs.get(owner=row.owner_id, job_id=row.job_id)
        if not job.status.finished:
            return
        status = _JOB_STATUS[job.status]
        values: dict[str, Any] = {"status": status.value, "error": job.error, "inputs": None}
        result: dict[str, Any] | None = job.result if isinstance(job.result, dict) else None
        if status is ModelStatus.COMPLETED and result is not None:
            summary = result["summary"]
            try:
                run_id, registry_version = await asyncio.to_thread(
                    self._registry.log_version,
                    owner=row.owner_id,
                    name=row.name,
                    version=row.version,
                    model_id=row.id,
                    summary=summary,
                    artifact=Path(result["model_path"]),
                    data_range={"data_start": str(row.data_start), "data_end": str(row.data_end)},
                )
            except TemporaryError as exc:
                log.warning("ml.registry.unavailable", model_id=str(row.id), error=str(exc))
                return
            values |= {
                "summary": summary,
                "importance": result.get("importance"),
                "model_path": result["model_path"],
                "artifact_sha256": result["sha256"],
                "mlflow_run_id": run_id,
                "registry_version": registry_version,
                "accuracy": holdout_score(summary, "accuracy"),
                "auc": holdout_score(summary, "auc"),
                "trained_at": job.finished_at or self._clock.now(),
            }
        elif status is ModelStatus.COMPLETED:
            values |= {"status": ModelStatus.FAILED.value, "error": "the training job returned no model"}
        async with self._db.begin() as session:
            won = await store.finish(session, row.id, values)
            if won:
                await self._outbox.add(
                    session,
                    ModelTrained(
                        model_id=row.id,
                        owner_id=row.owner_id,
                        name=row.name,
                        version=row.version,
                        status=ModelStatus(values["status"]),
                        accuracy=values.get("accuracy"),
                    ),
                )
        if won:
            ml_jobs.unstage(row.inputs)
            log.info("ml.training.finished", model_id=str(row.id), status=values["status"])

    async def _orphan(self, event: JobFinished) -> None:
        """A training whose model was deleted while it ran: remove what its job wrote."""
        job = await self._jobs.get(owner=event.owner_id, job_id=event.job_id)
        result: dict[str, Any] = job.result if isinstance(job.result, dict) else {}
        model_path = result.get("model_path")
        if isinstance(model_path, str) and model_path:
            await asyncio.to_thread(shutil.rmtree, Path(model_path).parent, True)

    async def status(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelStatusRead:
        row, job = await self._row(owner, model_id)
        if job is not None and job.status.finished:  # trained; the registry was unreachable
            return ModelStatusRead(
                model_id=row.id,
                status=ModelStatus.TRAINING,
                progress=0.99,
                step="ModelDeployment",
                message="waiting for the model registry to record the version",
            )
        if job is not None:
            return ModelStatusRead(
                model_id=row.id,
                status=_JOB_STATUS[job.status],
                progress=job.progress,
                step=job.message,
                message=job.message,
                eta_seconds=job.eta_seconds,
            )
        done = row.status == ModelStatus.COMPLETED.value
        return ModelStatusRead(
            model_id=row.id,
            status=ModelStatus(row.status),
            progress=1.0 if done else 0.0,
            step="ModelDeployment" if done else None,
            error=row.error,
        )

    async def get(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead:
        row, job = await self._row(owner, model_id)
        read = model_read(row)
        if job is not None:
            read.status = _JOB_STATUS[job.status] if not job.status.finished else ModelStatus.TRAINING
        return read

    async def list(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[ModelSummary]:
        allowed = {s.value for s in ModelStatus} | {"active"}
        if status is not None and status not in allowed:
            raise Invalid(f"status must be one of {sorted(allowed)}", field="status")
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must be >= 0", field="offset")
        async with self._db() as session:
            rows = await store.listing(
                session, owner, symbol=symbol, status=status, name=name, limit=limit, offset=offset
            )
        out = []
        for r in rows:  # only unfinished rows (at most max_trainings) ask their job
            if r.status not in _RUNNING or r.job_id is None:
                out.append(summary_of(r))
                continue
            try:
                fresh, job = await self._row(owner, r.id)
            except NotFound:  # deleted meanwhile
                continue
            item = summary_of(fresh)
            if job is not None:
                item.status = ModelStatus.TRAINING if job.status.finished else _JOB_STATUS[job.status]
            out.append(item)
        return out

    async def delete(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> None:
        row, job = await self._row(owner, model_id)
        if row.stage == ModelStage.SERVING.value:
            raise Conflict(
                f"{row.name} v{row.version} is serving; promote another version first",
                code="model_serving",
            )
        if job is not None and not job.status.finished:
            await self._jobs.cancel(owner=owner, job_id=job.id)
        async with self._db.begin() as session:
            await store.remove(session, row.id)
            await self._outbox.add(
                session, ModelDeleted(model_id=row.id, owner_id=owner, name=row.name, version=row.version)
            )
        self._cache.evict(row.id)
        ml_jobs.unstage(row.inputs)
        await asyncio.to_thread(shutil.rmtree, self._models_dir / str(row.id), True)
        if row.registry_version:
            try:
                await asyncio.to_thread(
                    self._registry.delete_version,
                    owner=owner,
                    name=row.name,
                    registry_version=row.registry_version,
                )
            except TemporaryError as exc:  # the row is gone; the MLflow version is only a copy
                log.warning("ml.registry.delete_failed", model_id=str(row.id), error=str(exc))

    # ---- registry: promote, roll back -----------------------------------------------------------

    async def promote(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead:
        row, _job = await self._row(owner, model_id)
        return await self._serve(owner, row, rollback=False)

    async def rollback(self, *, owner: uuid.UUID, name: str) -> ModelRead:
        async with self._db() as session:
            current = await store.serving(session, owner, name)
            history = await store.promotion_history(session, owner, name)
            if current is None:
                if not await store.versions(session, owner, name):
                    raise NotFound(f"no model named {name}", code="model_not_found")
                raise Conflict(f"no version of {name} is serving", code="nothing_to_roll_back")
            target = None
            for mid in history:
                if mid != current.id:
                    target = await store.get(session, owner, mid)
                    if target is not None and target.status == ModelStatus.COMPLETED.value:
                        break
                    target = None
        if target is None:
            raise Conflict(
                f"{name} v{current.version} is the only version that has served", code="nothing_to_roll_back"
            )
        return await self._serve(owner, target, rollback=True)

    async def _serve(self, owner: uuid.UUID, row: Any, *, rollback: bool) -> ModelRead:
        if row.status != ModelStatus.COMPLETED.value:
            raise Conflict(
                f"{row.name} v{row.version} is {row.status}; only a completed model can serve",
                code="model_not_ready",
            )
        await self._predicting.predictor(row)  # loaded before the swap: no request waits on it
        now = self._clock.now()
        async with self._db.begin() as session:
            before = await store.set_stage(
                session, owner=owner, name=row.name, model_id=row.id, at=now, rollback=rollback
            )
            await self._outbox.add(
                session,
                ModelPromoted(
                    model_id=row.id,
                    owner_id=owner,
                    name=row.name,
                    version=row.version,
                    previous_model_id=None if before is None else before.id,
                    rollback=rollback,
                ),
            )
        self._cache.set_serving((owner, row.name), row.id)
        if row.registry_version:
            try:
                await asyncio.to_thread(
                    self._registry.set_serving,
                    owner=owner,
                    name=row.name,
                    registry_version=row.registry_version,
                )
            except TemporaryError as exc:
                log.warning("ml.registry.alias_failed", model_id=str(row.id), error=str(exc))
        log.info("ml.model.promoted", model_id=str(row.id), name=row.name, rollback=rollback)
        async with self._db() as session:
            fresh = await store.get(session, owner, row.id)
        return model_read(fresh)

    async def registry(self, *, owner: uuid.UUID, name: str) -> RegistryRead:
        async with self._db() as session:
            rows = await store.versions(session, owner, name)
        if not rows:
            raise NotFound(f"no model named {name}", code="model_not_found")
        serving = next((r for r in rows if r.stage == ModelStage.SERVING.value), None)
        return RegistryRead(
            name=name,
            serving=None if serving is None else summary_of(serving),
            versions=[summary_of(r) for r in rows],
        )

    # ---- inference, features, signals (predicting.py) --------------------------------------------

    async def predict(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: PredictRequest
    ) -> PredictionRead:
        return await self._predicting.predict(await self._completed(owner, model_id), request)

    async def predict_serving(
        self, *, owner: uuid.UUID, name: str, request: PredictRequest
    ) -> PredictionRead:
        return await self._predicting.predict(await self._predicting.serving_row(owner, name), request)

    async def predict_batch(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: BatchPredictRequest
    ) -> BatchPredictionRead:
        return await self._predicting.predict_batch(await self._completed(owner, model_id), request)

    async def _completed(self, owner: uuid.UUID, model_id: uuid.UUID) -> Any:
        """The row a prediction reads: from memory when recently read and completed."""
        row = self._cache.row(model_id)
        if row is None or row.owner_id != owner:
            row, _job = await self._row(owner, model_id)
            if row.status == ModelStatus.COMPLETED.value:
                self._cache.put_row(row)
        return row

    async def importance(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ImportanceRead:
        row, _job = await self._row(owner, model_id)
        return self._predicting.importance(row)

    async def engineer(self, *, owner: uuid.UUID, request: FeaturesEngineer) -> FeaturesRead:
        return await self._predicting.engineer(request)

    async def feature_sets(self) -> builtins.list[FeatureSetRead]:
        return self._predicting.feature_sets()

    async def generate_signal(self, *, owner: uuid.UUID, request: SignalGenerate) -> SignalRead:
        return await self._predicting.generate_signal(owner, request)

    async def signals(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        signal_type: SignalType | None = None,
        active: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[SignalRead]:
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise Invalid("offset must be >= 0", field="offset")
        return await self._predicting.signals(
            owner, symbol=symbol, signal_type=signal_type, active=active, limit=limit, offset=offset
        )

    async def signal(self, *, owner: uuid.UUID, signal_id: uuid.UUID) -> SignalRead:
        return await self._predicting.signal(owner, signal_id)

    async def scorer(self, *, owner: uuid.UUID, models: Mapping[str, str], interval: str) -> Scorer:
        return await self._predicting.scorer(owner, models, interval)
