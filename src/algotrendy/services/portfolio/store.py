"""Tables of the portfolio service: ``portfolio_portfolios`` (names unique per owner, any case)
and ``portfolio_performance_metrics``, the spec's ``performance_metrics``: one row per portfolio
and UTC day, its value at the day's last valuation and the since-inception figures then (a row
is rewritten during its day and final once the day is over)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

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

performance_metrics = Table(
    "portfolio_performance_metrics",
    metadata,
    Column("portfolio_id", Uuid, nullable=False),
    Column("day", Date, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("total_value", DecimalString, nullable=False),
    Column("cash", DecimalString, nullable=False),
    Column("holdings", JSON, nullable=False),
    Column("daily_return", Float, nullable=False),
    Column("cumulative_return", Float, nullable=False),
    Column("sharpe_ratio", Float, nullable=True),
    Column("max_drawdown", Float, nullable=False),
    Column("volatility", Float, nullable=True),
    PrimaryKeyConstraint("portfolio_id", "day"),
)

rebalances = Table(
    "portfolio_rebalances",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    Column("status", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_id", "idempotency_key", name="uq_portfolio_rebalances_owner_key"),
)
"""One rebalance: ``body`` is its ``RebalanceRead`` (plan, orders, warnings) as JSON; written
before any order is sent, updated with the orders' ids and states as they are placed."""

reports = Table(
    "portfolio_reports",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("portfolio_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("formats", JSON, nullable=False),
    Column("benchmark", String(40), nullable=True),
    Column("recipients", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("job_id", Uuid, nullable=True, index=True),
    Column("files", JSON, nullable=True),
    Column("emailed_at", UTCDateTime, nullable=True),
    Column("email_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
)
"""One report request: ``status`` is ``queued`` until its job finishes (``running`` is read from
the job), then ``succeeded`` with ``files`` (``[{format, name, size}]``, in the report's directory)
or ``failed`` with ``error``; ``emailed_at``/``email_error`` say how mailing the files went."""
