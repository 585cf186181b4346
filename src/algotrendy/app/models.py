"""Every table of every service on the shared metadata (for autogenerate and schema checks)."""

from __future__ import annotations

from sqlalchemy import MetaData

from algotrendy.db.base import metadata
from algotrendy.db.inbox import inbox_table
from algotrendy.db.outbox import outbox_table

OUTBOXES = ("users", "jobs", "marketdata", "strategies", "backtest", "portfolio", "risk", "trading", "ml")
INBOXES = ("notifications",)


def all_metadata() -> MetaData:
    import algotrendy.services.notifications.store
    import algotrendy.services.users.store

    for service in OUTBOXES:
        outbox_table(service)
    for service in INBOXES:
        inbox_table(service)
    import algotrendy.adapters.brokers.paper_store
    import algotrendy.services.backtest.store
    import algotrendy.services.jobs.store
    import algotrendy.services.marketdata.store
    import algotrendy.services.ml.store
    import algotrendy.services.portfolio.store
    import algotrendy.services.risk.store
    import algotrendy.services.strategies.store
    import algotrendy.services.trading.store  # noqa: F401

    return metadata
