"""Notifications API, DTOs and the events it consumes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel

Channel = Literal["email", "telegram", "push", "in_app"]
DeliveryStatus = Literal["pending", "sent", "failed"]


class DeliveryRead(BaseModel):
    id: uuid.UUID
    channel: Channel
    template: str
    subject: str
    status: DeliveryStatus
    created_at: datetime
    sent_at: datetime | None
    event_id: uuid.UUID | None


class NotificationsApi(Protocol):
    async def history(
        self, *, owner: uuid.UUID, channel: Channel | None, limit: int, offset: int
    ) -> list[DeliveryRead]: ...
