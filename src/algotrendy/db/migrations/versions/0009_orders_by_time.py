"""trading orders by portfolio and time

The pre-trade rate throttle counts a portfolio's orders of the last minute on every order; with
only (portfolio_id, status) indexed, that read every order the portfolio ever placed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_trading_orders_portfolio_created", "trading_orders", ["portfolio_id", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_trading_orders_portfolio_created", table_name="trading_orders")
