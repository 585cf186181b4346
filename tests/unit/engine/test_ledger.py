"""The double-entry ledger: every transaction balances, the ledger sums to zero per currency,
cash never goes negative, reservations are used then released once, and the position and P&L
accounts agree with ``Position`` built from the same fills."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.engine.ledger import Ledger, LedgerError, Posting, Transaction
from algotrendy.engine.orders import Fill, OrderSide
from algotrendy.engine.positions import Position


def test_an_unbalanced_transaction_is_refused() -> None:
    with pytest.raises(LedgerError, match="does not balance"):
        Transaction("t1", "x", (Posting("cash", "USD", D("1")), Posting("fees", "USD", D("-0.5"))))


def test_deposit_reserve_fill_release() -> None:
    led = Ledger()
    assert led.deposit("d1", "USD", D("1000"))
    assert not led.deposit("d1", "USD", D("1000"))  # same id: written once
    led.reserve("o1", "USD", D("600"))
    assert led.available("USD") == D("400") and led.balance("reserved", "USD") == D("600")
    with pytest.raises(LedgerError, match="cash USD would be"):
        led.reserve("o2", "USD", D("401"))
    assert led.available("USD") == D("400")  # the refused one wrote nothing
    led.fill(
        "f1",
        order_id="o1",
        symbol="AAPL",
        currency="USD",
        side=OrderSide.BUY,
        notional=D("300"),
        fee=D("1"),
        basis=D("300"),
    )
    assert led.balance("reserved", "USD") == D("299") and led.available("USD") == D("400")
    assert led.release("o1") == D("299") and led.release("o1") == D("0")
    assert led.available("USD") == D("699") and led.balance("position:AAPL", "USD") == D("300")
    assert led.total("USD") == 0


def test_a_fill_larger_than_its_reservation_takes_the_rest_from_cash() -> None:
    led = Ledger()
    led.deposit("d", "USD", D("100"))
    led.reserve("o", "USD", D("50"))
    led.fill(
        "f",
        order_id="o",
        symbol="X",
        currency="USD",
        side=OrderSide.BUY,
        notional=D("60"),
        fee=D("0"),
        basis=D("60"),
    )
    assert led.available("USD") == D("40") and led.balance("reserved", "USD") == 0
    with pytest.raises(LedgerError):
        led.fill(
            "g",
            order_id=None,
            symbol="X",
            currency="USD",
            side=OrderSide.BUY,
            notional=D("41"),
            fee=D("0"),
            basis=D("41"),
        )
    assert "g" not in led.seen and led.total("USD") == 0


def test_a_short_round_trip_realizes_its_loss() -> None:
    led = Ledger()
    led.deposit("d", "USD", D("1000"))
    led.fill(
        "s",
        order_id=None,
        symbol="X",
        currency="USD",
        side=OrderSide.SELL,
        notional=D("500"),
        fee=D("1"),
        basis=D("-500"),
    )
    led.fill(
        "b",
        order_id=None,
        symbol="X",
        currency="USD",
        side=OrderSide.BUY,
        notional=D("550"),
        fee=D("1"),
        basis=D("500"),
    )
    assert led.balance("position:X", "USD") == 0
    assert led.balance("pnl", "USD") == D("50")  # a loss of 50
    assert led.available("USD") == D("1000") - 50 - 2 and led.total("USD") == 0


ops = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "deposit", "reserve", "release"]),
        st.decimals(min_value=D("0.01"), max_value=100, places=2),
        st.decimals(min_value=1, max_value=500, places=2),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_invariants_hold_for_any_sequence(steps: list[tuple[str, D, D]]) -> None:
    led = Ledger()
    pos = Position.flat("X", D(0))
    led.deposit("start", "USD", D("10000"))
    orders = 0
    for k, (op, qty, price) in enumerate(steps):
        try:
            if op == "deposit":
                led.deposit(f"d{k}", "USD", qty * 10)
            elif op == "reserve":
                orders += 1
                led.reserve(f"o{orders}", "USD", qty * price)
            elif op == "release":
                led.release(f"o{orders}")
            else:
                side = OrderSide.BUY if op == "buy" else OrderSide.SELL
                fee = (qty * price * D("0.001")).quantize(D("0.0001"))
                trial = Position(
                    pos.symbol,
                    pos.quantity,
                    pos.average_price,
                    pos.realized_pnl,
                    pos.fees,
                    pos.entry_fees,
                    pos.entry_index,
                    set(pos.fill_ids),
                )
                fill = Fill(f"f{k}", "o", "X", side, qty, price, fee)
                closed = trial.apply(fill)
                # the ledger's rule: what opens adds its notional, what closes takes out its cost
                shut = sum((c.quantity for c in closed), D(0))
                sign = 1 if side is OrderSide.BUY else -1
                basis = sign * (qty - shut) * price - sum(
                    (c.side * c.quantity * c.entry_price for c in closed), D(0)
                )
                led.fill(
                    f"f{k}",
                    order_id=f"o{orders}",
                    symbol="X",
                    currency="USD",
                    side=side,
                    notional=qty * price,
                    fee=fee,
                    basis=basis,
                )
                pos = trial  # only a fill the ledger took changes the position
        except LedgerError:
            pass
        assert led.total("USD") == 0
        assert led.available("USD") >= 0 and led.balance("reserved", "USD") >= 0
        # the ledger keeps 12 decimal places exactly; Position's average price is a 28-digit
        # Decimal: they agree to the ledger's scale
        assert abs(led.balance("position:X", "USD") - pos.quantity * pos.average_price) < D("1e-10")
        assert abs(led.balance("pnl", "USD") + pos.realized_pnl) < D("1e-10")
        assert led.balance("fees", "USD") == pos.fees
