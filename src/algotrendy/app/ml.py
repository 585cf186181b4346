"""Wiring of the ML service: its job kind on the jobs registry, its outbox relay, the MLflow
registry (a SQLite store in the data directory by default, a tracking server when configured),
and the market data and jobs APIs it calls (in this process)."""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

import structlog

from algotrendy.core.errors import ConfigurationError
from algotrendy.db.outbox import Outbox

if TYPE_CHECKING:
    from algotrendy.app.container import Container

log = structlog.get_logger(__name__)
NEEDS = ("jobs", "marketdata")


def build_ml(container: Container) -> None:
    settings = container.settings
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("lightgbm") is None:
        if settings.services == ["all"]:
            log.warning(
                "ml.not_started", reason="the ml extra is not installed: pip install 'algotrendy[ml]'"
            )
            return
        raise ConfigurationError("the ml service needs the ml extra: pip install 'algotrendy[ml]'")
    from algotrendy.services.ml import jobs as ml_jobs
    from algotrendy.services.ml.registry import MlflowRegistry
    from algotrendy.services.ml.service import MlService

    missing = [s for s in NEEDS if s not in container.services]
    if missing:
        raise ConfigurationError(
            f"the ml service runs in the same process as {', '.join(NEEDS)}; add "
            f"{', '.join(missing)} to ALGO_SERVICES (or --services)"
        )
    ml = settings.ml
    root = settings.data_dir / "ml"
    root.mkdir(parents=True, exist_ok=True)
    ml_jobs.register(container.services["jobs.registry"])
    outbox = Outbox(service="ml", clock=container.clock)
    if ml.tracking_uri and ml.tracking_uri.startswith(("http://", "https://")):
        # MLflow reads these per request from the environment (its defaults: 7 retries, 120 s);
        # set once at start, before any request, so a dead server fails a call in seconds
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(ml.tracking_timeout))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(ml.tracking_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    registry = MlflowRegistry(
        tracking_uri=ml.tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=ml.artifact_location or str(root / "mlartifacts"),
    )
    service = MlService(
        sessions=container.sessions,
        clock=container.clock,
        settings=ml,
        jobs=container.services["jobs"],
        marketdata=container.services["marketdata"],
        outbox=outbox,
        registry=registry,
        models_dir=ml.models_dir or root / "models",
        inputs_dir=ml.inputs_dir or root / "inputs",
    )
    container.services["ml"] = service
    container.relays.append(container._relay(outbox))

    async def subscribe() -> None:
        await service.subscribe(container.bus)

    container.on_start(subscribe)
    container.on_stop("ml", service.unsubscribe)
