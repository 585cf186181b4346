"""Tables of the portfolio service: ``portfolio_portfolios`` (names unique per owner, any case)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, String, Table, Text, UniqueConstraint, Uuid

from algotrendy.db.base import metadata
from algotrendy.db.types import DecimalString, UTCDateTime

portfolios = Table(
    "portfolio_portfolios",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("name_norm", String(100), nullable=False),
    Column("description", Text, nullable=False),
    Column("initial_capital", DecimalString, nullable=False),
    Column("currency", String(5), nullable=False),
    Column("strategies", JSON, nullable=False),
    Column("risk_profile", String(20), nullable=False),
    Column("venue", String(40), nullable=False),
    Column("allow_short", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_id", "name_norm", name="uq_portfolio_portfolios_owner_name"),
)
