"""Tables of the market data service kept in the records database (bars live in the bar store)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from algotrendy.db.base import Base
from algotrendy.db.types import UTCDateTime


class OrderBookRow(Base):
    """The spec's ``order_book_snapshots``: bids and asks as [[price, quantity], ...]."""

    __tablename__ = "marketdata_order_book_snapshots"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40))
    exchange: Mapped[str] = mapped_column(String(50))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    bids: Mapped[list[Any]] = mapped_column(JSON)
    asks: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_marketdata_order_book_snapshots_symbol_ts", "symbol", "exchange", "timestamp"),
    )
