"""The paper exchange's open orders (``paper_open.OpenOrders``): the flat map and its indexes by
account and by symbol always agree, in insertion order, and empty groups disappear."""

from __future__ import annotations

from decimal import Decimal

from algotrendy.adapters.brokers.paper_open import OpenOrders
from algotrendy.adapters.brokers.paper_store import PaperOrder, build_order
from algotrendy.core.venue import OrderRequest
from algotrendy.engine.orders import OrderType


def _po(account: str, cid: str, symbol: str) -> PaperOrder:
    request = OrderRequest(cid, symbol, "BUY", "LIMIT", Decimal(1), limit_price=Decimal(10))
    return PaperOrder(0, account, cid, OrderType.LIMIT, build_order(request, f"o-{cid}"), 0, 0, 0)


def test_indexes_follow_adds_and_pops() -> None:
    book = OpenOrders()
    a1, a2, b1 = _po("a", "1", "AAPL"), _po("a", "2", "MSFT"), _po("b", "1", "AAPL")
    for po in (a1, a2, b1):
        book.add(po)
    assert len(book) == 3 and book.get(("a", "2")) is a2 and book.get(("c", "1")) is None
    assert book.of_account("a") == [a1, a2] and book.of_account("b") == [b1] and book.of_account("c") == []
    assert book.of_symbol("AAPL") == [a1, b1] and book.of_symbol("MSFT") == [a2]
    assert book.symbols() == ["AAPL", "MSFT"] and book.has_symbol("MSFT")
    assert book.pop(("a", "2")) is a2 and book.pop(("a", "2")) is None
    assert not book.has_symbol("MSFT") and book.symbols() == ["AAPL"] and book.of_account("a") == [a1]
    book.pop(("a", "1"))
    assert book.of_account("a") == [] and book.of_symbol("AAPL") == [b1]
    book.clear()
    assert len(book) == 0 and book.symbols() == [] and book.of_account("b") == []


def test_adding_under_a_known_key_replaces_the_order_everywhere() -> None:
    book = OpenOrders()
    book.add(_po("a", "1", "AAPL"))
    again = _po("a", "1", "MSFT")
    book.add(again)
    assert len(book) == 1 and book.get(("a", "1")) is again
    assert book.symbols() == ["MSFT"] and book.of_account("a") == [again]
