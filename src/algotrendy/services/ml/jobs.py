"""The ``ml.train`` job kind: train one model version in a job worker (a process pool, or Ray).

The service stages the bars (``stage``) and submits the training settings; the job runs the
seven pipeline steps (``engine.ml.pipeline.train``), reporting each step as its progress message
(``"HyperparameterOptimization"`` ...), computes the feature importance (gain and SHAP on the
hold-out rows), and writes the model file to the registry's directory (``artifacts.save``:
atomic, so a re-run after a crash overwrites harmlessly). It returns JSON: the model's summary
(settings, scores, ranges), its importance, and where the file is with its SHA-256. Bad bars or
labels (too few samples, one class only) fail the job with the pipeline's message.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.services.jobs.interface import JobContext, JobFailed, JobRegistrar

KIND = "ml.train"
_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_TRAIN_SHARE = 0.93
"""Of the job's progress: the pipeline; the rest is the importance and the file."""


def stage(directory: Path, model_id: uuid.UUID, bars: Bars) -> Path:
    """Write the bars a training reads to ``<directory>/<model_id>.npz`` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{model_id}.npz"
    tmp = directory / f".{model_id}.npz.tmp"
    with tmp.open("wb") as f:
        np.savez(f, **{c: getattr(bars, c) for c in _COLUMNS})
    os.replace(tmp, path)
    return path


def unstage(path: str | Path | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def load(path: str | Path) -> Bars:
    with np.load(Path(path)) as z:
        return Bars(*(np.ascontiguousarray(z[c]) for c in _COLUMNS))


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity (and PostgreSQL's JSONB refuses them): they become null."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def run_train(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from algotrendy.engine.ml.pipeline import TrainingConfig, train
    from algotrendy.services.ml import artifacts
    from algotrendy.services.ml import explain as explain_

    ctx.progress(0.0, "DataValidation")
    bars = load(params["inputs"])
    config = TrainingConfig.from_dict(params["config"])

    def progress(step: str, fraction: float) -> None:
        ctx.progress(fraction * _TRAIN_SHARE, step)

    try:
        trained = train(bars, config, progress)
    except ValueError as exc:
        raise JobFailed(str(exc)) from None
    ctx.progress(_TRAIN_SHARE, "ModelDeployment")
    importance = explain_.importance(trained, explain_.holdout_matrix(bars, trained), seed=config.seed)
    ctx.progress(0.98, "ModelDeployment")
    path, sha256 = artifacts.save(
        root=Path(params["models_dir"]), model_id=uuid.UUID(params["model_id"]), trained=trained
    )
    return {
        "summary": json_safe(trained.summary()),
        "importance": json_safe(importance.to_dict()),
        "model_path": str(path),
        "sha256": sha256,
    }


def register(registrar: JobRegistrar) -> None:
    registrar.register(KIND, run_train)
