"""Tables of the notifications service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from algotrendy.db.base import Base
from algotrendy.db.types import UTCDateTime


class DeliveryRow(Base):
    __tablename__ = "notifications_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column()
    channel: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(500))
    event_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_notifications_deliveries_user_created", "user_id", "created_at"),)
