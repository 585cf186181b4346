"""What this process already knows it applied, so the order path reads nothing for a repeat."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

from algotrendy.core.venue import VenueOrder
from algotrendy.engine.orders import OrderStatus
from algotrendy.services.trading.interface import VenueState


class Seen:
    """What this process already knows it has applied, so a venue report it repeats (the stream
    echoing the submit answer, a fill delivered twice) is dropped without a database read.

    Only lower bounds are kept: an order's acknowledgement, status and booked quantity only ever
    move forward, and a trade id once booked stays booked, so a remembered state can make a
    report look new (then the database decides) but never hide one that is. Bounded: the oldest
    entries are forgotten first, and a forgotten one is simply read again.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self.fills: OrderedDict[tuple[uuid.UUID, str], None] = OrderedDict()
        self.orders: OrderedDict[str, tuple[bool, OrderStatus, Decimal]] = OrderedDict()

    def fill(self, portfolio_id: uuid.UUID, trade_id: str) -> None:
        self.fills[(portfolio_id, trade_id)] = None
        if len(self.fills) > self._capacity:
            self.fills.popitem(last=False)

    def order(self, row: dict[str, Any]) -> None:
        self.orders[row["client_order_id"]] = (
            row["venue_state"] == VenueState.ACKNOWLEDGED.value,
            OrderStatus(row["status"]),
            row["filled_quantity"],
        )
        self.orders.move_to_end(row["client_order_id"])
        if len(self.orders) > self._capacity:
            self.orders.popitem(last=False)

    def nothing_new(self, vo: VenueOrder) -> bool:
        known = self.orders.get(vo.client_order_id)
        if known is None:
            return False
        acknowledged, status, filled = known
        target = OrderStatus(vo.status)
        final_news = target in (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
        return acknowledged and vo.filled_quantity <= filled and (not final_news or status.is_final)
