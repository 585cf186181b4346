"""Settings of the ML service (``ALGO_ML__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class MlSettings(BaseModel):
    models_dir: Path | None = Field(
        None,
        description="Where trained model files are kept (default <data_dir>/ml/models); with a remote "
        "Ray cluster this must be storage every node sees",
    )
    inputs_dir: Path | None = Field(None, description="Where a training job's bars are staged")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI: default a SQLite store in <data_dir>/ml; an http(s):// "
        "tracking server in split mode",
    )
    tracking_timeout: int = Field(10, ge=1, le=600, description="Seconds per request to a tracking server")
    tracking_retries: int = Field(2, ge=0, le=20, description="Retries of a failed tracking request")
    artifact_location: str | None = Field(
        None, description="MLflow artifact root (default <data_dir>/ml/mlartifacts)"
    )
    max_bars: int = Field(2_000_000, ge=500, description="Most bars one training may use")
    min_bars: int = Field(300, ge=100, description="Fewest bars a training needs")
    cache_models: int = Field(32, ge=1, le=10_000, description="Model versions kept loaded for inference")
    training_threads: int = Field(1, ge=1, le=64, description="Threads per training (n_jobs)")
    max_trainings: int = Field(5, ge=1, le=1000, description="Trainings one user may have running at once")
    signal_bars: int = Field(400, ge=60, le=100_000, description="Bars read to compute a signal")
