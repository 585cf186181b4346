"""Tables of the risk service: ``risk_limits``, one row per portfolio (absent: no limits)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, String, Table, Uuid

from algotrendy.db.base import metadata
from algotrendy.db.types import UTCDateTime

limits = Table(
    "risk_limits",
    metadata,
    Column("portfolio_id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("trading_state", String(10), nullable=False),
    Column("limits", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
