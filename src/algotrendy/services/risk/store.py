"""Tables of the risk service: ``risk_limits``, one row per portfolio (absent: no limits), and
``risk_alerts``, the breaches the monitor found (at most one unresolved per portfolio and kind)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, String, Table, Uuid, text

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

alerts = Table(
    "risk_alerts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False),
    Column("owner_id", Uuid, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("value", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("message", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index("ix_risk_alerts_portfolio_created", "portfolio_id", "created_at"),
    Index(
        "uq_risk_alerts_unresolved",
        "portfolio_id",
        "kind",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)
