"""Settings section ``ALGO_NOTIFICATIONS__*``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NotificationsSettings(BaseModel):
    welcome_email: bool = Field(True, description="Send a welcome email on user.registered")
    max_attempts: int = Field(5, ge=1)
