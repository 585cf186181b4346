"""The ML service's rows as its DTOs (one place, used by the service and its predictions)."""

from __future__ import annotations

import uuid
from typing import Any

from algotrendy.core.errors import NotFound
from algotrendy.services.ml.interface import ModelRead, ModelStage, ModelStatus, ModelSummary


def not_found(model_id: uuid.UUID | str) -> NotFound:
    return NotFound(f"model {model_id} not found", code="model_not_found")


def summary_of(row: Any) -> ModelSummary:
    return ModelSummary(
        id=row.id,
        name=row.name,
        version=row.version,
        model_type=row.model_type,
        symbol=row.symbol,
        asset_type=row.asset_type,
        interval=row.interval,
        status=ModelStatus(row.status),
        stage=ModelStage(row.stage),
        accuracy=row.accuracy,
        auc=row.auc,
        created_at=row.created_at,
        trained_at=row.trained_at,
    )


def model_read(row: Any) -> ModelRead:
    summary: dict[str, Any] = row.summary or {}
    return ModelRead(
        **summary_of(row).model_dump(),
        venue=row.venue,
        job_id=row.job_id,
        error=row.error,
        config=row.config,
        feature_names=summary.get("feature_names", []),
        params=summary.get("params", {}),
        data_start=row.data_start,
        data_end=row.data_end,
        train_range=summary.get("train_range"),
        holdout_range=summary.get("holdout_range"),
        metrics=summary.get("metrics"),
        mlflow_run_id=row.mlflow_run_id,
        registry_version=row.registry_version,
        promoted_at=row.promoted_at,
    )


def holdout_score(summary: dict[str, Any], name: str) -> float | None:
    value = ((summary.get("metrics") or {}).get("holdout") or {}).get("model", {}).get(name)
    return float(value) if isinstance(value, int | float) else None
