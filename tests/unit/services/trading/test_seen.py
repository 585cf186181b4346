"""execution.Seen drops only reports that are certainly old: what it remembers is a lower bound
of an order's state, so a report that brings anything new (acknowledgement, a fill, a final
status) always reaches the database."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from algotrendy.core.venue import VenueOrder
from algotrendy.services.trading.execution import Seen


def row(status: str, filled: str, venue_state: str = "acknowledged") -> dict[str, Any]:
    return {
        "client_order_id": "c1",
        "status": status,
        "filled_quantity": Decimal(filled),
        "venue_state": venue_state,
    }


def report(status: str, filled: str) -> VenueOrder:
    return VenueOrder("c1", "v1", "AAPL", "BUY", "LIMIT", Decimal(10), Decimal(filled), status)


def test_unknown_orders_and_unacknowledged_ones_are_always_read() -> None:
    seen = Seen()
    assert not seen.nothing_new(report("submitted", "0"))
    seen.order(row("submitted", "0", venue_state="pending"))
    assert not seen.nothing_new(report("submitted", "0"))


def test_a_repeat_is_dropped_but_a_fill_or_a_final_status_is_not() -> None:
    seen = Seen()
    seen.order(row("partial_fill", "4"))
    assert seen.nothing_new(report("partial_fill", "4"))
    assert seen.nothing_new(report("submitted", "0"))  # older than what we know
    assert not seen.nothing_new(report("partial_fill", "6"))  # more filled
    assert not seen.nothing_new(report("cancelled", "4"))  # a final status we do not have
    assert not seen.nothing_new(report("expired", "4"))
    seen.order(row("cancelled", "4"))
    assert seen.nothing_new(report("cancelled", "4"))
    assert not seen.nothing_new(report("cancelled", "5"))  # a late fill after the cancel


def test_bounded_memory_forgets_the_oldest() -> None:
    seen = Seen(capacity=3)
    pid = uuid.uuid4()
    for i in range(5):
        seen.fill(pid, f"t{i}")
    assert list(seen.fills) == [(pid, "t2"), (pid, "t3"), (pid, "t4")]
    for i in range(5):
        seen.order({**row("filled", "10"), "client_order_id": f"c{i}"})
    assert list(seen.orders) == ["c2", "c3", "c4"]
