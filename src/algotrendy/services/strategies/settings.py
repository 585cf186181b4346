"""Settings section ``ALGO_STRATEGIES__*``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StrategiesSettings(BaseModel):
    max_per_owner: int = Field(1000, ge=1, description="Strategies one user may keep")
    max_versions: int = Field(
        1000, ge=1, description="Versions one strategy may have; past it, save as a new strategy"
    )
