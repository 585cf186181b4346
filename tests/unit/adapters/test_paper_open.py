"""The paper exchange's open orders (``paper_open.OpenOrders``): the flat map and its indexes by
account and by symbol always agree, in insertion order, and empty groups disappear; each
account's limit buys' cost is kept."""

from __future__ import annotations

import random
from decimal import Decimal

from algotrendy.adapters.brokers.paper_open import OpenOrders
from algotrendy.adapters.brokers.paper_store import PaperOrder, build_order
from algotrendy.core.venue import OrderRequest
from algotrendy.engine.execution import Costs
from algotrendy.engine.orders import Fill, OrderSide, OrderStatus, OrderType

COSTS = Costs(Decimal("0.001"), Decimal(0), Decimal("0.35"))


def _cost(po: PaperOrder) -> Decimal:
    return po.cost(COSTS, Decimal(0))


def _po(
    account: str, cid: str, symbol: str, side: str = "BUY", limit: str | None = "10", qty: str = "1"
) -> PaperOrder:
    otype = "LIMIT" if limit is not None else "STOP"
    request = OrderRequest(
        cid, symbol, side, otype, Decimal(qty), limit_price=None if limit is None else Decimal(limit),
        stop_price=None if limit is not None else Decimal(5),
    )  # fmt: skip
    kind = OrderType.LIMIT if limit is not None else OrderType.STOP
    order = build_order(request, f"o-{cid}")
    for status in (OrderStatus.VALIDATED, OrderStatus.SUBMITTED):
        order.transition(status)
    return PaperOrder(0, account, cid, kind, order, 0, 0, 0)


def test_indexes_follow_adds_and_pops() -> None:
    book = OpenOrders(_cost)
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
    book = OpenOrders(_cost)
    book.add(_po("a", "1", "AAPL"))
    again = _po("a", "1", "MSFT")
    book.add(again)
    assert len(book) == 1 and book.get(("a", "1")) is again
    assert book.symbols() == ["MSFT"] and book.of_account("a") == [again]


def test_each_accounts_limit_buys_cost_is_kept_as_orders_come_go_and_fill() -> None:
    """The running sum per account equals pricing every open limit buy again, through adds,
    replacements, pops, fills in place (``refresh``) and a clear; buys without a limit and
    sells are not in it."""
    rng = random.Random(7)
    book = OpenOrders(_cost)
    accounts, symbols = ["a", "b", "c"], ["AAPL", "MSFT"]

    def brute(account: str) -> tuple[Decimal, set[str]]:
        total, market = Decimal(0), set()
        for po in book.of_account(account):
            if po.order.side is OrderSide.BUY:
                if po.order.limit_price is None:
                    market.add(po.client_order_id)
                else:
                    total += _cost(po)
        return total, market

    for step in range(3000):
        roll = rng.random()
        account = rng.choice(accounts)
        cid = str(rng.randrange(40))
        if roll < 0.45:
            limit = None if rng.random() < 0.15 else f"{rng.randrange(1, 500)}.{rng.randrange(100):02d}"
            qty = f"{rng.randrange(1, 90)}.{rng.randrange(1000):03d}"
            book.add(_po(account, cid, rng.choice(symbols), rng.choice(["BUY", "SELL"]), limit, qty))
        elif roll < 0.75:
            book.pop((account, cid))
        elif roll < 0.97:
            po = book.get((account, cid))
            if po is not None and po.order.remaining > Decimal("0.001"):
                o = po.order
                part = (o.remaining * Decimal(rng.randrange(1, 90)) / 100).quantize(Decimal("0.001"))
                if part > 0:
                    o.apply_fill(Fill(f"f{step}", o.id, o.symbol, o.side, part, Decimal(3), Decimal(0), ts=0))
                    book.refresh(po)
        else:
            book.clear()
        for name in accounts:
            total, market = book.buys_of(name)
            want_total, want_market = brute(name)
            assert total == want_total, (step, name)
            assert {po.client_order_id for po in market} == want_market, (step, name)
    book.clear()
    assert book.buys_of("a") == (Decimal(0), [])
