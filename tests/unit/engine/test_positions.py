"""Positions from fills: open, add, reduce, close and flip, long and short, with realized P&L and
the entry fees carried into the trade that closes them. A position's quantity is the signed sum
of its unique fills (RELIABILITY G3), exactly so on ``Decimal``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.engine.orders import Fill, OrderSide
from algotrendy.engine.positions import Closed, Position

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def fill(
    fill_id: str, side: OrderSide, qty: float, price: float, fee: float = 0.0, index: int = 0
) -> Fill[float]:
    return Fill(fill_id, "o", "X", side, qty, price, fee, index)


def flat() -> Position[float]:
    return Position.flat("X", 0.0)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# ---- long -------------------------------------------------------------------------------------


def test_opening_a_long_records_quantity_price_fee_and_entry_bar() -> None:
    p = flat()
    assert p.apply(fill("f1", BUY, 10, 100.0, fee=1.0, index=3)) == []
    assert p.quantity == 10
    assert p.side == 1
    assert p.average_price == 100.0
    assert p.fees == 1.0
    assert p.entry_fees == 1.0
    assert p.realized_pnl == 0.0
    assert p.entry_index == 3


def test_adding_to_a_long_averages_the_entry_price_and_keeps_the_first_entry_bar() -> None:
    p = flat()
    p.apply(fill("f1", BUY, 10, 100.0, fee=1.0, index=3))
    assert p.apply(fill("f2", BUY, 30, 120.0, fee=3.0, index=5)) == []
    assert p.quantity == 40
    assert p.average_price == approx((10 * 100 + 30 * 120) / 40)
    assert p.entry_fees == 4.0
    assert p.entry_index == 3


def test_reducing_a_long_realizes_pnl_on_the_part_closed_with_its_share_of_entry_fees() -> None:
    p = flat()
    p.apply(fill("f1", BUY, 20, 105.0, fee=3.0, index=1))
    (c,) = p.apply(fill("f2", SELL, 5, 120.0, fee=0.6, index=4))
    assert c == Closed("X", 1, 5, 105.0, 120.0, approx(0.75), 0.6, 1, 4)
    assert c.pnl == approx(15 * 5 - 0.75 - 0.6)
    assert p.quantity == 15
    assert p.average_price == 105.0  # a reduction does not move the entry price
    assert p.realized_pnl == approx(75.0)  # gross: the fees are in ``fees``
    assert p.entry_fees == approx(2.25)
    assert p.fees == approx(3.6)
    assert p.entry_index == 1


def test_closing_a_long_at_a_loss_leaves_it_flat_and_clean() -> None:
    p = flat()
    p.apply(fill("f1", BUY, 10, 100.0, fee=1.0))
    (c,) = p.apply(fill("f2", SELL, 10, 90.0, fee=0.9, index=2))
    assert c.side == 1
    assert c.quantity == 10
    assert c.entry_fee == 1.0
    assert c.exit_fee == 0.9
    assert c.pnl == approx(-100 - 1.9)
    assert p.quantity == 0
    assert p.side == 0
    assert p.average_price == 0.0
    assert p.entry_fees == 0.0
    assert p.realized_pnl == -100.0
    assert p.realized_pnl - p.fees == approx(c.pnl)


def test_a_sell_larger_than_the_long_flips_it_short_at_the_fill_price() -> None:
    p = flat()
    p.apply(fill("f1", BUY, 10, 100.0, fee=1.0, index=0))
    (c,) = p.apply(fill("f2", SELL, 30, 110.0, fee=3.0, index=7))
    # The long closes (10 of the 30 carry a third of the fee) ...
    assert (c.side, c.quantity, c.entry_price, c.exit_price) == (1, 10, 100.0, 110.0)
    assert c.entry_fee == 1.0
    assert c.exit_fee == approx(1.0)
    assert c.pnl == approx(100 - 2.0)
    # ... and the other 20 open a short at 110 with the rest of the fee as its entry fee.
    assert p.quantity == -20
    assert p.side == -1
    assert p.average_price == 110.0
    assert p.entry_fees == approx(2.0)
    assert p.entry_index == 7
    assert p.fees == 4.0
    assert p.realized_pnl == approx(100.0)


# ---- short ------------------------------------------------------------------------------------


def test_a_short_opens_adds_reduces_and_closes_with_mirrored_pnl() -> None:
    p = flat()
    p.apply(fill("f1", SELL, 10, 100.0, fee=1.0, index=0))
    p.apply(fill("f2", SELL, 10, 110.0, fee=1.0, index=1))
    assert p.quantity == -20
    assert p.average_price == 105.0
    (c1,) = p.apply(fill("f3", BUY, 5, 95.0, fee=0.5, index=2))
    assert c1.side == -1
    assert c1.pnl == approx((105 - 95) * 5 - 0.5 - 0.5)  # a short gains when the price falls
    assert p.quantity == -15
    (c2,) = p.apply(fill("f4", BUY, 15, 115.0, fee=1.5, index=3))
    assert c2.pnl == approx((105 - 115) * 15 - 1.5 - 1.5)
    assert p.quantity == 0
    assert p.realized_pnl == approx(50 - 150)
    assert p.fees == approx(4.0)
    assert c1.pnl + c2.pnl == approx(p.realized_pnl - p.fees)


def test_a_buy_larger_than_the_short_flips_it_long() -> None:
    p = flat()
    p.apply(fill("f1", SELL, 4, 50.0, fee=0.2, index=0))
    (c,) = p.apply(fill("f2", BUY, 10, 40.0, fee=1.0, index=2))
    assert (c.side, c.quantity) == (-1, 4)
    assert c.pnl == approx((50 - 40) * 4 - 0.2 - 0.4)
    assert p.quantity == 6
    assert p.average_price == 40.0
    assert p.entry_fees == approx(0.6)
    assert p.entry_index == 2


def test_market_value_and_unrealized_pnl_long_and_short() -> None:
    long, short = flat(), flat()
    long.apply(fill("f1", BUY, 10, 100.0))
    short.apply(fill("f1", SELL, 10, 100.0))
    assert long.market_value(90.0) == 900.0
    assert long.unrealized_pnl(90.0) == -100.0
    assert short.market_value(90.0) == -900.0
    assert short.unrealized_pnl(90.0) == 100.0


# ---- duplicates -------------------------------------------------------------------------------


def test_fill_delivered_twice_changes_position_once() -> None:
    p = flat()
    f = fill("f1", BUY, 10, 100.0, fee=1.0)
    p.apply(f)
    assert p.apply(f) == []
    assert (p.quantity, p.fees, p.entry_fees) == (10, 1.0, 1.0)


def test_a_closing_fill_delivered_twice_closes_once() -> None:
    p = flat()
    p.apply(fill("f1", BUY, 10, 100.0))
    close = fill("f2", SELL, 10, 110.0)
    assert len(p.apply(close)) == 1
    assert p.apply(close) == []
    assert p.quantity == 0  # not flipped short by the replay
    assert p.realized_pnl == 100.0


# ---- Decimal ----------------------------------------------------------------------------------


def dfill(fill_id: str, side: OrderSide, qty: str, price: str, fee: str = "0") -> Fill[Decimal]:
    return Fill(fill_id, "o", "BTC", side, Decimal(qty), Decimal(price), Decimal(fee))


def test_decimal_steps_of_a_tenth_sum_exactly() -> None:
    p = Position.flat("BTC", Decimal(0))
    for k in range(10):
        p.apply(dfill(f"f{k}", BUY, "0.1", "30000.00", "0.03"))
    assert p.quantity == Decimal("1.0")
    assert sum([0.1] * 10) != 1.0  # what floats would have made of it
    assert p.fees == Decimal("0.30")
    assert p.average_price == Decimal("30000.00")
    (c,) = p.apply(dfill("g", SELL, "0.3", "30100.00", "0.09"))
    assert p.quantity == Decimal("0.7")
    assert c.entry_fee == Decimal("0.09")
    assert c.pnl == Decimal("30.00") - Decimal("0.09") - Decimal("0.09")
    (c,) = p.apply(dfill("h", SELL, "0.7", "29900.00", "0.21"))
    assert p.quantity == 0
    assert p.entry_fees == 0
    assert p.realized_pnl == Decimal("30.00") - Decimal("70.00")


@pytest.mark.parametrize(
    "bad",
    [
        Fill("f2", "o", "BTC", SELL, 0.5, 100.0, 0.0),
        Fill("f2", "o", "BTC", SELL, Decimal("0.5"), 100.0, Decimal(0)),
        Fill("f2", "o", "BTC", SELL, Decimal("0.5"), Decimal(100), 0.0),
    ],
    ids=["all_float", "float_price", "float_fee"],
)
def test_a_float_fill_on_a_decimal_position_raises_type_error_and_is_not_recorded(bad: Fill) -> None:
    p = Position.flat("BTC", Decimal(0))
    p.apply(dfill("f1", BUY, "0.5", "100"))
    with pytest.raises(TypeError):
        p.apply(bad)
    assert p.quantity == Decimal("0.5")
    assert p.fees == Decimal(0)
    assert p.fill_ids == {"f1"}  # the refused fill can still be applied once it is well typed
    assert len(p.apply(dfill("f2", SELL, "0.5", "100"))) == 1
    assert p.quantity == 0


# ---- properties over random fill sequences ----------------------------------------------------

# (side, quantity in tenths, price in cents, fee in cents, replay: index of an earlier fill or -1)
fills_strategy = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.integers(1, 50),
        st.integers(5_000, 15_000),
        st.integers(0, 300),
        st.integers(-3, 40),
    ),
    min_size=1,
    max_size=40,
)


def build(spec: list[tuple[OrderSide, int, int, int, int]]) -> list[Fill[Decimal]]:
    """The delivered sequence: new fills and, where ``replay`` points back, a duplicate of an
    earlier one (same fill id)."""
    out: list[Fill[Decimal]] = []
    for k, (side, tenths, cents, fee, replay) in enumerate(spec):
        if 0 <= replay < len(out):
            out.append(out[replay])
        else:
            out.append(
                Fill(
                    f"f{k}", "o", "X", side, Decimal(tenths) / 10, Decimal(cents) / 100, Decimal(fee) / 100, k
                )
            )
    return out


@settings(max_examples=300, deadline=None)
@given(fills_strategy, st.integers(5_000, 15_000))
def test_position_is_the_signed_sum_of_unique_fills_and_pnl_adds_up(spec: list, mark_cents: int) -> None:
    delivered = build(spec)
    p = Position.flat("X", Decimal(0))
    closed: list[Closed[Decimal]] = []
    for f in delivered:
        closed += p.apply(f)
    unique = {f.fill_id: f for f in delivered}.values()
    signed = sum((f.quantity * f.side.sign for f in unique), Decimal(0))
    assert p.quantity == signed  # exact: Decimal
    assert p.fill_ids == {f.fill_id for f in unique}
    fees = sum((f.fee for f in unique), Decimal(0))
    assert p.fees == fees
    # Every fee is either in a closed trade or still waiting as an entry fee of the open quantity.
    tol = Decimal("1e-18")
    assert abs(sum((c.entry_fee + c.exit_fee for c in closed), Decimal(0)) + p.entry_fees - fees) < tol
    assert abs(sum((c.pnl for c in closed), Decimal(0)) - (p.realized_pnl - p.fees + p.entry_fees)) < tol
    # Realized + unrealized - fees is the mark-to-market change of the cash and the holding.
    mark = Decimal(mark_cents) / 100
    cash_flow = -sum((f.quantity * f.side.sign * f.price for f in unique), Decimal(0))
    mtm = cash_flow + p.quantity * mark - fees
    assert abs(p.realized_pnl + p.unrealized_pnl(mark) - p.fees - mtm) < tol
    if p.quantity == 0:
        assert p.entry_fees == 0
        assert p.average_price == 0
        assert abs(sum((c.pnl for c in closed), Decimal(0)) - (cash_flow - fees)) < tol


@settings(max_examples=200, deadline=None)
@given(fills_strategy)
def test_float_positions_track_the_decimal_ones(spec: list) -> None:
    """The same sequence on floats (the backtest's type) ends where Decimal ends, to rounding."""
    exact = Position.flat("X", Decimal(0))
    approx_ = Position.flat("X", 0.0)
    for f in build(spec):
        exact.apply(f)
        approx_.apply(
            Fill(f.fill_id, "o", "X", f.side, float(f.quantity), float(f.price), float(f.fee), f.index)
        )
    assert approx_.quantity == pytest.approx(float(exact.quantity), abs=1e-9)
    assert approx_.realized_pnl == pytest.approx(float(exact.realized_pnl), rel=1e-9, abs=1e-6)
    assert approx_.fees == pytest.approx(float(exact.fees), rel=1e-9, abs=1e-9)
