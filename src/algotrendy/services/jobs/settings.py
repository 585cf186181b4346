"""Settings section ``ALGO_JOBS__*``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class JobsSettings(BaseModel):
    workers: int = Field(2, ge=1, le=64, description="Jobs run at once by this process (local pool size)")
    progress_interval: float = Field(0.5, gt=0, description="Seconds between progress writes")
    max_attempts: int = Field(3, ge=1, description="Runs of a job interrupted by restarts")
    stale_after: float = Field(
        30.0,
        ge=1,
        description="Seconds without a heartbeat after which a running job's process is taken as dead "
        "and the job re-queued (heartbeats go out every quarter of this)",
    )
