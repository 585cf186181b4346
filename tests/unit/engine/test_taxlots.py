"""engine.taxlots: lots from fills (fees in the basis, FIFO and specific relief), lot selection by
each method on a hand-worked book, the 30-day wash-sale boundary, and the quantity identity
(open lots == buys - sells) for any valid fill sequence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.engine.taxlots import (
    Fill,
    Lot,
    buy_times,
    disposals,
    in_wash_sale_window,
    open_lots,
    select_lots,
    wash_sale_window,
)


def _t(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 15, 30, tzinfo=UTC)


def _buy(fid: str, at: datetime, q: str, p: str, fee: str = "0", sym: str = "AAPL") -> Fill:
    return Fill(at, sym, "buy", D(q), D(p), D(fee), fid)


def _sell(fid: str, at: datetime, q: str, p: str, fee: str = "0", sym: str = "AAPL") -> Fill:
    return Fill(at, sym, "sell", D(q), D(p), D(fee), fid)


# The book used below. Cost per unit = (quantity * price + fee) / quantity:
#   b0 2022-05-02  4 @ 130, fee 0 -> 130      b4 2022-09-01  3 @ 101, fee 0 -> 101
#   b1 2023-01-10 10 @ 100, fee 1 -> 100.1    b2 2023-07-01 10 @ 120, fee 0 -> 120
#   b3 2024-03-01 10 @ 90,  fee 2 -> 90.2     b5 2024-05-01  5 @ 104, fee 0 -> 104
#   s1 2024-04-01 sell 2 @ 110, fee 0.5: FIFO relieves 2 of b0 (4 -> 2).
FILLS = [
    _buy("b0", _t(2022, 5, 2), "4", "130"),
    _buy("b4", _t(2022, 9, 1), "3", "101"),
    _buy("b1", _t(2023, 1, 10), "10", "100", "1"),
    _buy("b2", _t(2023, 7, 1), "10", "120"),
    _buy("b3", _t(2024, 3, 1), "10", "90", "2"),
    _sell("s1", _t(2024, 4, 1), "2", "110", "0.5"),
    _buy("b5", _t(2024, 5, 1), "5", "104"),
]
NOW = _t(2024, 6, 1)  # sale at 105: b0, b4, b1 are long-term (> 365 days), b2, b3, b5 short-term
PRICE = D("105")


def _lots() -> list[Lot]:
    return open_lots(FILLS)


def _summary(picks: list) -> list[tuple[str, D, D]]:
    return [(p.lot_id, p.quantity, p.gain) for p in picks]


def test_open_lots_fees_in_basis_and_fifo_relief() -> None:
    lots = {lot.lot_id: lot for lot in _lots()}
    assert {k: (v.quantity, v.cost_per_unit) for k, v in lots.items()} == {
        "b0": (D(2), D(130)),
        "b4": (D(3), D(101)),
        "b1": (D(10), D("100.1")),  # (10 * 100 + 1) / 10
        "b2": (D(10), D(120)),
        "b3": (D(10), D("90.2")),  # (10 * 90 + 2) / 10
        "b5": (D(5), D(104)),
    }
    [lot] = open_lots([_buy("x", NOW, "3", "10", "1")])
    assert lot.quantity * lot.cost_per_unit == pytest.approx(D(31), abs=D("1e-25"))


def test_disposals_spread_the_sell_fee() -> None:
    [d] = disposals(FILLS)
    # 2 of b0: proceeds 2 * 110 - 0.5 = 219.5, gain 219.5 - 2 * 130 = -40.5, held ~700 days
    assert (d.fill_id, d.lot_id, d.quantity, d.proceeds, d.gain, d.long_term) == (
        "s1",
        "b0",
        D(2),
        D("219.5"),
        D("-40.5"),
        True,
    )
    fills = [_buy("a", NOW, "1", "10"), _buy("b", NOW, "2", "20"), _sell("s", NOW, "3", "30", "0.3")]
    a, b = disposals(fills)
    assert (a.proceeds, b.proceeds) == (D("29.9"), D("59.8"))  # fee 0.1 and 0.2
    assert (a.gain, b.gain) == (D("19.9"), D("19.8"))


def test_specific_relief_is_honored() -> None:
    lots = {x.lot_id: x.quantity for x in open_lots(FILLS, {"s1": [("b3", D(2))]})}
    assert lots["b0"] == D(4) and lots["b3"] == D(8)
    # part named, the rest FIFO: 1 of b1, then 1 of b0
    lots = {x.lot_id: x.quantity for x in open_lots(FILLS, {"s1": [("b1", D(1))]})}
    assert lots["b0"] == D(3) and lots["b1"] == D(9)


def test_relief_errors_name_the_fill_and_lot() -> None:
    msft = [*FILLS, _buy("m1", _t(2023, 1, 1), "5", "250", sym="MSFT")]
    with pytest.raises(ValueError, match="lot 'm1' is MSFT"):
        open_lots(msft, {"s1": [("m1", D(1))]})
    with pytest.raises(ValueError, match="no open lot 'zz'"):
        open_lots(FILLS, {"s1": [("zz", D(1))]})
    with pytest.raises(ValueError, match="no open lot 'b5' before the sale"):  # bought after s1
        open_lots(FILLS, {"s1": [("b5", D(1))]})
    with pytest.raises(ValueError, match="names more than the sell's quantity"):
        open_lots(FILLS, {"s1": [("b1", D(3))]})
    with pytest.raises(ValueError, match="lot 'b0' holds 4, asked for 5"):
        open_lots([*FILLS[:5], _sell("s1", _t(2024, 4, 1), "6", "110")], {"s1": [("b0", D(5))]})
    with pytest.raises(ValueError, match=r"relief\['s9'\]: no sell fill"):
        open_lots(FILLS, {"s9": [("b0", D(1))]})
    with pytest.raises(ValueError, match="only 0 is held"):
        open_lots([_sell("s", NOW, "1", "10", sym="MSFT")])
    with pytest.raises(ValueError, match=r"fill 'x': quantity must be positive"):
        open_lots([_buy("x", NOW, "0", "10")])


def test_fifo() -> None:
    # b0 2 (105 - 130) * 2 = -50, b4 3 * 4 = 12, b1 10 * 4.9 = 49, b2 1 * -15 = -15: total -4
    picks = select_lots(_lots(), D(16), PRICE, NOW, "fifo")
    assert _summary(picks) == [
        ("b0", D(2), D(-50)),
        ("b4", D(3), D(12)),
        ("b1", D(10), D(49)),
        ("b2", D(1), D(-15)),
    ]
    assert sum(p.gain for p in picks) == D(-4)
    assert [p.long_term for p in picks] == [True, True, True, False]
    assert picks[0].proceeds == D(210) and picks[2].proceeds == D(1050)


def test_lifo() -> None:
    # b5 5 * 1 = 5, b3 10 * 14.8 = 148, b2 1 * -15 = -15: total 138
    picks = select_lots(_lots(), D(16), PRICE, NOW, "lifo")
    assert _summary(picks) == [("b5", D(5), D(5)), ("b3", D(10), D(148)), ("b2", D(1), D(-15))]


def test_hifo() -> None:
    # costs 130, 120, 104: b0 2 * -25 = -50, b2 10 * -15 = -150, b5 4 * 1 = 4: total -196
    picks = select_lots(_lots(), D(16), PRICE, NOW, "hifo")
    assert _summary(picks) == [("b0", D(2), D(-50)), ("b2", D(10), D(-150)), ("b5", D(4), D(4))]


def test_tax_optimal() -> None:
    # short-term loss b2 (-15/unit) 10 -> -150; long-term loss b0 (-25/unit) 2 -> -50;
    # then long-term gains, smallest first: b4 (+4/unit) 3 -> 12, b1 (+4.9/unit) 1 -> 4.9.
    # (HIFO would take the short-term gain b5 at +1/unit before the long-term ones.)
    picks = select_lots(_lots(), D(16), PRICE, NOW, "tax_optimal")
    assert _summary(picks) == [
        ("b2", D(10), D(-150)),
        ("b0", D(2), D(-50)),
        ("b4", D(3), D(12)),
        ("b1", D(1), D("4.9")),
    ]
    assert sum(p.gain for p in picks) == D("-183.1")
    # everything: short-term gains last, smallest first (b5 +1, b3 +14.8)
    picks = select_lots(_lots(), D(40), PRICE, NOW, "tax_optimal")
    assert [p.lot_id for p in picks] == ["b2", "b0", "b4", "b1", "b5", "b3"]


def test_tax_optimal_zero_gain_lots_come_after_losses() -> None:
    lots = [
        Lot("gain", "X", D(1), D(90), _t(2020, 1, 1)),
        Lot("flat", "X", D(1), D(100), _t(2024, 5, 1)),
        Lot("loss", "X", D(1), D(110), _t(2024, 5, 1)),
    ]
    picks = select_lots(lots, D(3), D(100), NOW, "tax_optimal")
    assert [p.lot_id for p in picks] == ["loss", "flat", "gain"]


def test_wash_sale_boundary_30_in_31_out() -> None:
    lots = _lots()
    for days, wash in ((-31, False), (-30, True), (30, True), (31, False)):
        picks = select_lots(lots, D(16), PRICE, NOW, "tax_optimal", buys_nearby=[NOW + timedelta(days=days)])
        assert [p.wash_sale for p in picks] == [wash, wash, False, False], days
    # the book's own buys: b5 on 2024-05-01 is 31 days before the 2024-06-01 sale
    picks = select_lots(lots, D(16), PRICE, NOW, "tax_optimal", buys_nearby=buy_times(FILLS, "AAPL"))
    assert not any(p.wash_sale for p in picks)
    assert in_wash_sale_window(NOW, datetime(2024, 7, 1, 23, 59, tzinfo=UTC))  # calendar days
    assert not in_wash_sale_window(NOW, datetime(2024, 7, 2, 0, 0, tzinfo=UTC))


def test_a_lots_own_purchase_is_not_a_replacement() -> None:
    lot = Lot("new", "X", D(5), D(100), NOW - timedelta(days=3))
    [pick] = select_lots([lot], D(5), D(90), NOW, "fifo", buys_nearby=[lot.acquired_at])
    assert pick.gain == D(-50) and not pick.wash_sale
    [pick] = select_lots([lot], D(5), D(90), NOW, "fifo", buys_nearby=[lot.acquired_at, NOW])
    assert pick.wash_sale


def test_avoid_wash_sales_puts_wash_loss_lots_last() -> None:
    planned = [NOW + timedelta(days=14)]
    # losses b2, b0 would be wash sales: LT gains b4 3 (+12), b1 10 (+49), then ST gains b5 3 (+3)
    picks = select_lots(_lots(), D(16), PRICE, NOW, "tax_optimal", buys_nearby=planned, avoid_wash_sales=True)
    assert _summary(picks) == [("b4", D(3), D(12)), ("b1", D(10), D(49)), ("b5", D(3), D(3))]
    picks = select_lots(_lots(), D(40), PRICE, NOW, "tax_optimal", buys_nearby=planned, avoid_wash_sales=True)
    assert [(p.lot_id, p.wash_sale) for p in picks[-2:]] == [("b2", True), ("b0", True)]


def test_wash_sale_window_for_a_planned_buy() -> None:
    # s1 (2024-04-01) realized -40.5 on b0: a buy 0 to 30 days after it is warned about
    [d] = wash_sale_window(FILLS, "AAPL", _t(2024, 5, 1))
    assert (d.fill_id, d.gain) == ("s1", D("-40.5"))
    assert wash_sale_window(FILLS, "AAPL", _t(2024, 4, 1))
    assert wash_sale_window(FILLS, "AAPL", _t(2024, 5, 2)) == []
    assert wash_sale_window(FILLS, "AAPL", _t(2024, 3, 31)) == []
    assert wash_sale_window(FILLS, "MSFT", _t(2024, 4, 15)) == []
    gain = [_buy("g", _t(2024, 1, 1), "1", "10"), _sell("gs", _t(2024, 2, 1), "1", "12")]
    assert wash_sale_window(gain, "AAPL", _t(2024, 2, 2)) == []


def test_select_errors() -> None:
    with pytest.raises(ValueError, match="quantity 41 is more than the lots hold"):
        select_lots(_lots(), D(41), PRICE, NOW, "fifo")
    with pytest.raises(ValueError, match="unknown lot selection method 'best'"):
        select_lots(_lots(), D(1), PRICE, NOW, "best")
    with pytest.raises(ValueError, match="lots: all must be of one symbol"):
        select_lots([*_lots(), Lot("m", "MSFT", D(1), D(1), NOW)], D(1), PRICE, NOW, "fifo")
    with pytest.raises(ValueError, match="quantity must be positive"):
        select_lots(_lots(), D(0), PRICE, NOW, "fifo")


@st.composite
def _ops(draw: st.DrawFn) -> list[tuple[str, bool, D, int]]:
    n = draw(st.integers(1, 25))
    return [
        (
            draw(st.sampled_from(["A", "B"])),
            draw(st.booleans()),
            draw(st.decimals(min_value=D("0.001"), max_value=D(100), places=3)),
            draw(st.integers(0, 10_000)),
        )
        for _ in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(_ops(), st.data())
def test_open_quantity_is_buys_minus_sells(ops: list[tuple[str, bool, D, int]], data: st.DataObject) -> None:
    fills: list[Fill] = []
    relief: dict[str, list[tuple[str, D]]] = {}
    held = {"A": D(0), "B": D(0)}
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i, (sym, is_buy, size, pick) in enumerate(ops):
        at = t0 + timedelta(days=i)
        if is_buy:
            fills.append(Fill(at, sym, "buy", size, D("10.5"), D("0.25"), f"f{i}"))
            held[sym] += size
            continue
        q = min(size, held[sym])
        if q == 0:
            continue
        fid = f"f{i}"
        if data.draw(st.booleans()):  # name one open lot for part of the sell
            lots = [x for x in open_lots(fills, relief) if x.symbol == sym]
            lot = lots[pick % len(lots)]
            relief[fid] = [(lot.lot_id, min(lot.quantity, q))]
        fills.append(Fill(at, sym, "sell", q, D(11), D(0), fid))
        held[sym] -= q
    lots = open_lots(fills, relief)
    for sym in ("A", "B"):
        buys = sum((f.quantity for f in fills if f.symbol == sym and f.side == "buy"), D(0))
        sells = sum((f.quantity for f in fills if f.symbol == sym and f.side == "sell"), D(0))
        assert sum((x.quantity for x in lots if x.symbol == sym), D(0)) == buys - sells == held[sym]
    assert all(x.quantity > 0 for x in lots)
    realized = disposals(fills, relief)
    assert sum((d.quantity for d in realized), D(0)) == sum(
        (f.quantity for f in fills if f.side == "sell"), D(0)
    )
