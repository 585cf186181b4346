"""engine.rebalance: a hand-worked plan with lot sizes, the cash buffer and buy scaling, the input
errors, and properties for any book: the cash buffer holds, quantities are lot multiples, the
drift band is respected and every traded asset ends within one lot of its target."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from algotrendy.engine.rebalance import DEFAULT_LOT, plan

PRICES = {"AAPL": D(150), "MSFT": D(300), "BTC": D(30000), "XOM": D(100)}
HOLD = {"AAPL": D(10), "MSFT": D(5), "XOM": D(3)}
LOTS = {"AAPL": D(1), "MSFT": D(1), "BTC": D("0.001")}


def _rows(p) -> list[tuple[str, str, D, D]]:
    return [(t.symbol, t.side, t.quantity, t.value) for t in p.trades]


def test_hand_worked_three_assets_with_lots() -> None:
    # equity = 6700 cash + 10*150 + 5*300 + 3*100 = 10000; targets sum 0.9 <= 1 - 0.05: used as is
    # AAPL 0.15 -> 0.30: 3000 / 150 = 20 shares, buy 10 (1500)
    # MSFT 0.15 -> 0.10: 1000 / 300 = 3.33 shares, sell 1.67 -> 1 whole share (300)
    # XOM  0.03 -> not targeted: sell all 3 (300)
    # BTC  0    -> 0.50: 5000 / 30000 = 0.1666.. -> 0.166 (lot 0.001) = 4980
    # cash after sells 7300, minus the 500 buffer leaves 6800 >= 1500 + 4980; cash after 820
    p = plan(
        HOLD, PRICES, D(6700), {"AAPL": 0.3, "MSFT": 0.1, "BTC": D("0.5")}, cash_buffer=0.05, lot_sizes=LOTS
    )
    assert p.equity == D(10000)
    assert _rows(p) == [
        ("MSFT", "sell", D(1), D(300)),
        ("XOM", "sell", D(3), D(300)),
        ("AAPL", "buy", D(10), D(1500)),
        ("BTC", "buy", D("0.166"), D(4980)),
    ]
    assert p.cash_after == D(820) and p.buy_scale == 1 and p.skipped == []
    assert p.weights_after == {"AAPL": D("0.3"), "BTC": D("0.498"), "MSFT": D("0.12"), "XOM": D(0)}
    msft = p.trades[0]
    assert (msft.current_weight, msft.target_weight, msft.drift) == (D("0.15"), D("0.1"), D("0.05"))


def test_cash_buffer_scales_the_targets() -> None:
    # buffer 0.2: targets 0.3, 0.1, 0.5 (sum 0.9 > 0.8) become x 8/9: 0.2667, 0.0889, 0.4444
    # AAPL 2666.67 / 150 = 17.78 -> buy 7 (1050); MSFT 888.89 / 300 = 2.96 -> sell 2 (600)
    # XOM sell 3 (300); BTC 4444.44 / 30000 = 0.148148 -> 0.148 (4440); cash 7600 - 1050 - 4440
    p = plan(HOLD, PRICES, D(6700), {"AAPL": 0.3, "MSFT": 0.1, "BTC": 0.5}, cash_buffer=0.2, lot_sizes=LOTS)
    assert _rows(p) == [
        ("MSFT", "sell", D(2), D(600)),
        ("XOM", "sell", D(3), D(300)),
        ("AAPL", "buy", D(7), D(1050)),
        ("BTC", "buy", D("0.148"), D(4440)),
    ]
    assert p.cash_after == D(2110) >= D("0.2") * p.equity


def test_buys_are_scaled_down_to_the_cash() -> None:
    # equity 500 (5 X at 100, no cash); X 0.3 -> 150 = 1.5 units, sell 3.5 -> 2 (lot 2) = 200;
    # Y 0.7 -> 350 = 35 at 10, but only 200 is there: x 200/350 -> 20 (200); cash after 0
    p = plan(
        {"X": D(5)}, {"X": D(100), "Y": D(10)}, D(0), {"X": 0.3, "Y": 0.7}, lot_sizes={"X": D(2), "Y": D(1)}
    )
    assert _rows(p) == [("X", "sell", D(2), D(200)), ("Y", "buy", D(20), D(200))]
    assert p.cash_after == 0 and p.buy_scale == D(200) / D(350)


def test_drift_threshold_and_min_trade_value_skip_with_reasons() -> None:
    p = plan(
        HOLD,
        PRICES,
        D(6700),
        {"AAPL": 0.16, "MSFT": 0.1, "XOM": 0.0305, "BTC": 0.5},
        drift_threshold=0.02,
        min_trade_value=D(500),
        lot_sizes=LOTS,
    )
    reasons = dict(p.skipped)
    assert "drift threshold" in reasons["AAPL"]  # |0.15 - 0.16| < 0.02
    assert "drift threshold" in reasons["XOM"]
    assert "below min_trade_value" in reasons["MSFT"]  # sell 1 share = 300 < 500
    assert [t.symbol for t in p.trades] == ["BTC"]


def test_no_cash_no_buys() -> None:
    p = plan({}, {"A": D(10)}, D(100), {"A": 1.0}, cash_buffer=0.0)
    assert _rows(p) == [("A", "buy", D(10), D(100))] and p.cash_after == 0
    p = plan({"A": D(10)}, {"A": D(10), "B": D(1)}, D(0), {"A": 1.0, "B": 0.0}, cash_buffer=0.1)
    # A is scaled to 0.9 -> sell 1 (10): cash 10 = the buffer
    assert _rows(p) == [("A", "sell", D(1), D(10))] and p.cash_after == D(10)
    p = plan({"A": D(10)}, {"A": D(10), "B": D(1)}, D(0), {"A": 0.5, "B": 0.5}, cash_buffer=0.5)
    # targets 0.25 each: sell 7.5 A -> 75; buy 25 B, the cash above the 50 buffer
    assert _rows(p) == [("A", "sell", D("7.5"), D(75)), ("B", "buy", D(25), D(25))]
    assert p.cash_after == D(50)
    p = plan({"A": D(10)}, {"A": D(10), "B": D(1)}, D(0), {"A": 0.5, "B": 0.5}, lot_sizes={"A": D(20)})
    # the sell of 5 A is less than a lot of 20: no cash for B
    assert p.trades == [] and p.buy_scale == 0 and p.cash_after == 0
    assert [s for s, _ in p.skipped] == ["A", "B"] and "no cash" in p.skipped[1][1]


def test_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"targets sum to 1\.2"):
        plan({}, {"A": D(1), "B": D(1)}, D(100), {"A": 0.6, "B": 0.6})
    plan({}, {"A": D(1), "B": D(1)}, D(100), {"A": 0.5, "B": 0.5000001})  # within tolerance
    with pytest.raises(ValueError, match=r"targets\['A'\] is -0.1"):
        plan({}, {"A": D(1)}, D(100), {"A": -0.1})
    with pytest.raises(ValueError, match=r"prices\['B'\] is missing"):
        plan({}, {"A": D(1)}, D(100), {"A": 0.5, "B": 0.5})
    with pytest.raises(ValueError, match=r"prices\['H'\] is missing"):
        plan({"H": D(1)}, {"A": D(1)}, D(100), {"A": 0.5})
    with pytest.raises(ValueError, match=r"prices\['A'\] must be positive"):
        plan({}, {"A": D(0)}, D(100), {"A": 0.5})
    with pytest.raises(ValueError, match=r"holdings\['A'\] is -1"):
        plan({"A": D(-1)}, {"A": D(1)}, D(100), {"A": 0.5})
    with pytest.raises(ValueError, match=r"lot_sizes\['A'\] must be positive"):
        plan({}, {"A": D(1)}, D(100), {"A": 0.5}, lot_sizes={"A": D(0)})
    with pytest.raises(ValueError, match="cash_buffer must be in"):
        plan({}, {"A": D(1)}, D(100), {"A": 0.5}, cash_buffer=1.0)
    with pytest.raises(ValueError, match="equity"):
        plan({}, {"A": D(1)}, D(0), {"A": 0.5})


SYMS = ("S0", "S1", "S2", "S3")
EPS = D("1e-18")


@st.composite
def _book(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 4))
    syms = SYMS[:n]
    prices = {s: draw(st.decimals(min_value=D("0.5"), max_value=D(5000), places=2)) for s in syms}
    lots = {s: draw(st.sampled_from([D(1), D("0.01"), DEFAULT_LOT, D(5)])) for s in syms}
    holdings = {s: draw(st.decimals(min_value=D(0), max_value=D(500), places=3)) for s in syms}
    cash = draw(st.decimals(min_value=D(0), max_value=D(200000), places=2))
    targeted = [s for s in syms if draw(st.booleans())]
    raw = [draw(st.integers(0, 1000)) for _ in targeted]
    total = D(draw(st.integers(0, 100))) / 100
    denom = sum(raw) or 1
    targets = {
        s: (total * r / denom).quantize(D("0.0001"), rounding="ROUND_DOWN")
        for s, r in zip(targeted, raw, strict=True)
    }
    return {
        "holdings": holdings,
        "prices": prices,
        "cash": cash,
        "targets": targets,
        "lot_sizes": lots,
        "drift_threshold": draw(st.sampled_from([0.0, 0.01, 0.05])),
        "min_trade_value": draw(st.sampled_from([D(0), D(50)])),
        "cash_buffer": draw(st.sampled_from([0.0, 0.02, 0.1])),
    }


def _effective(b: dict, equity: D) -> dict[str, D]:
    buffer = D(repr(b["cash_buffer"]))
    total = sum(b["targets"].values(), D(0))
    scale = (1 - buffer) / total if total > 1 - buffer else D(1)
    return {s: b["targets"].get(s, D(0)) * scale for s in b["prices"]}


@settings(max_examples=300, deadline=None)
@given(_book())
def test_plan_properties(b: dict) -> None:
    equity = b["cash"] + sum((q * b["prices"][s] for s, q in b["holdings"].items()), D(0))
    assume(equity > 0)
    p = plan(
        b["holdings"],
        b["prices"],
        b["cash"],
        b["targets"],
        drift_threshold=b["drift_threshold"],
        min_trade_value=b["min_trade_value"],
        cash_buffer=b["cash_buffer"],
        lot_sizes=b["lot_sizes"],
    )
    assert p.equity == equity
    buffer = D(repr(b["cash_buffer"])) * equity
    eff = _effective(b, equity)
    sides = [t.side for t in p.trades]
    assert sides == sorted(sides, key=lambda s: s == "buy")  # sells first

    # cash: exact bookkeeping, never below the buffer through buying, never negative
    sold = sum((t.value for t in p.trades if t.side == "sell"), D(0))
    bought = sum((t.value for t in p.trades if t.side == "buy"), D(0))
    assert p.cash_after == b["cash"] + sold - bought
    assert p.cash_after >= min(b["cash"], buffer) - EPS * equity
    if b["cash"] >= buffer:
        assert p.cash_after >= buffer - EPS * equity
    if b["drift_threshold"] == 0 and b["min_trade_value"] == 0 and sold > 0:
        # the sells reach the targets (scaled to 1 - buffer) to within one lot each
        slack = sum((b["lot_sizes"][s] * b["prices"][s] for s in b["prices"]), D(0))
        assert p.cash_after >= buffer - slack - EPS * equity

    for t in p.trades:
        held = b["holdings"][t.symbol]
        lot = b["lot_sizes"][t.symbol]
        full = t.side == "sell" and t.quantity == held and eff[t.symbol] == 0
        assert full or t.quantity % lot == 0, t
        assert t.quantity > 0 and t.value >= b["min_trade_value"]
        assert abs(t.drift) >= D(repr(b["drift_threshold"]))
        assert t.target_weight == eff[t.symbol]

    traded = {t.symbol: t for t in p.trades}
    for s in b["prices"]:
        cur = b["holdings"][s] * b["prices"][s] / equity
        after = p.weights_after.get(s, D(0))
        if abs(cur - eff[s]) < D(repr(b["drift_threshold"])):
            assert s not in traded
        if s not in traded:
            assert after == cur
            continue
        t, one_lot = traded[s], b["lot_sizes"][s] * b["prices"][s] / equity
        if t.side == "sell":
            if eff[s] == 0:
                assert after == 0
            else:
                assert eff[s] - EPS <= after <= eff[s] + one_lot + EPS
        else:
            assert after <= eff[s] + EPS  # rounding never carries a buy past its target
            if p.buy_scale == 1:
                assert after >= eff[s] - one_lot - EPS


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=5))
def test_targets_over_one_raise_naming_targets(ws: list[float]) -> None:
    assume(sum(D(repr(w)) for w in ws) > D("1.000001"))
    targets = {f"S{i}": w for i, w in enumerate(ws)}
    with pytest.raises(ValueError, match=r"^targets sum to"):
        plan({}, dict.fromkeys(targets, D(1)), D(100), targets)
