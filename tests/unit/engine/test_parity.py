"""The event-driven engine and the vectorized kernel agree: same trades, same equity (1e-9).

Random signals on random walks exercise every branch both engines share: longs, shorts,
reversals, stop-loss / trailing / take-profit brackets (including the bar they are placed on),
gaps through stops, fees, fixed fees, slippage, lot sizes, fixed quantities and leverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.result import RunResult
from algotrendy.engine.signal_strategy import Brackets, SignalStrategy
from algotrendy.engine.vector import VectorConfig, run
from tests.unit.indicators.synthetic import walk


def _signals(n: int, seed: int, p: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.random(n) < p for _ in range(4))


def _both(
    bars,
    sig,
    frac,
    *,
    fee=0.0,
    slip=0.0,
    fixed_fee=0.0,
    lot=0.0,
    lev=1.0,
    qty=None,
    sl=None,
    tp=None,
    trail=None,
    shorts=True,
):
    le, lx, se, sx = sig
    if not shorts:
        se = np.zeros_like(se)
        sx = np.zeros_like(sx)
    cfg = BacktestConfig(
        initial_capital=100_000.0,
        fee_rate=fee,
        slippage=slip,
        fee_fixed=fixed_fee,
        lot_size=lot,
        leverage=lev,
    )
    strat = SignalStrategy("X", brackets=Brackets(sl, tp, trail), fixed_quantity=qty)
    strat.set_signals(le, lx, se, sx, frac)
    event = EventBacktest({"X": bars}, strat, cfg).run()
    nan = math.nan
    vcfg = VectorConfig(
        initial_capital=100_000.0,
        fee_rate=fee,
        slippage=slip,
        fee_fixed=fixed_fee,
        lot_size=lot,
        leverage=lev,
        fixed_quantity=nan if qty is None else qty,
        stop_loss=nan if sl is None else sl,
        take_profit=nan if tp is None else tp,
        trailing_stop=nan if trail is None else trail,
    )
    vector = run(bars, le, lx, se, sx, frac, vcfg, symbol="X")
    return event, vector


def _assert_same(a: RunResult, b: RunResult) -> None:
    ta, tb = a.trades, b.trades
    assert len(ta) == len(tb)
    np.testing.assert_array_equal(ta.entry_index, tb.entry_index)
    np.testing.assert_array_equal(ta.exit_index, tb.exit_index)
    np.testing.assert_array_equal(ta.side, tb.side)
    assert ta.exit_reason == tb.exit_reason
    for col in ("quantity", "entry_price", "exit_price", "fees", "pnl", "ret"):
        np.testing.assert_allclose(getattr(ta, col), getattr(tb, col), rtol=1e-9, atol=1e-9, err_msg=col)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.cash, b.cash, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.exposure, b.exposure, rtol=1e-9, atol=1e-12)
    assert a.fees_paid == pytest.approx(b.fees_paid, rel=1e-9, abs=1e-9)
    assert a.turnover == pytest.approx(b.turnover, rel=1e-9, abs=1e-12)
    assert a.orders == b.orders


CASES = {
    "long_only_no_costs": {"shorts": False},
    "long_short_fees_slippage": {"fee": 0.001, "slip": 0.0005},
    "fixed_fee_lots": {"fee": 0.0005, "fixed_fee": 1.0, "lot": 1.0},
    "fixed_quantity": {"qty": 50.0, "fee": 0.001},
    "stop_loss": {"sl": 0.01, "fee": 0.001},
    "take_profit": {"tp": 0.015, "slip": 0.001},
    "trailing": {"trail": 0.02, "fee": 0.001},
    "all_brackets_short": {"sl": 0.02, "tp": 0.03, "trail": 0.015, "fee": 0.001, "slip": 0.0002},
    "leverage": {"lev": 2.0, "fee": 0.001},
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_event_engine_and_kernel_agree(case: str, seed: int) -> None:
    bars = walk(3000, seed=seed)
    sig = _signals(len(bars), seed, 0.03)
    frac = np.full(len(bars), 0.9 if case != "leverage" else 1.8)
    event, vector = _both(bars, sig, frac, **CASES[case])
    assert len(event.trades) > 20
    kw = CASES[case]
    for key, reason in (("sl", "stop_loss"), ("tp", "take_profit"), ("trail", "trailing_stop")):
        if key in kw:
            assert reason in event.trades.exit_reason
    if kw.get("shorts", True):
        assert -1 in event.trades.side
    _assert_same(event, vector)


def test_undefined_size_places_no_order_in_either_engine() -> None:
    bars = walk(500, seed=4)
    sig = _signals(len(bars), 4, 0.05)
    frac = np.where(np.arange(len(bars)) < 250, np.nan, 0.5)
    event, vector = _both(bars, sig, frac, fee=0.001)
    assert len(event.trades) > 0
    assert event.trades.entry_index.min() > 250
    _assert_same(event, vector)


def test_sweep_statistics_equal_the_metrics_of_full_runs() -> None:
    """The kernel's running sums (a sweep never stores equity) give the numbers that
    ``engine.metrics`` computes from the whole run, for every combination."""
    from algotrendy.engine.metrics import compute_metrics
    from algotrendy.engine.vector import STAT_NAMES, curve_stats, sweep

    bars = walk(2000, seed=11)
    n = len(bars)
    inputs = []
    for k in range(6):
        le, lx, se, sx = _signals(n, 100 + k, 0.02)
        cfg = VectorConfig(fee_rate=0.001, stop_loss=0.02 if k % 2 else math.nan)
        inputs.append((le, lx, se if k > 2 else np.zeros(n, bool), sx, np.full(n, 0.8), cfg))
    ppy = 8760.0
    table = sweep(bars, len(inputs), lambda k: inputs[k], periods_per_year=ppy, workers=2)
    for k, (le, lx, se, sx, frac, cfg) in enumerate(inputs):
        res = run(bars, le, lx, se, sx, frac, cfg)
        m = compute_metrics(res, periods_per_year=ppy)
        for j, name in enumerate(STAT_NAMES):
            want = m[name] if name != "exposure" else m["exposure"]
            got = table[k, j]
            if want is None:
                assert np.isnan(got), name
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (k, name)
        tr = np.column_stack(
            [
                res.trades.side,
                res.trades.quantity,
                res.trades.entry_index,
                res.trades.exit_index,
                res.trades.entry_price,
                res.trades.exit_price,
                res.trades.fees,
                res.trades.pnl,
                res.trades.ret,
                np.zeros(len(res.trades)),
                np.zeros(len(res.trades)),
            ]
        )
        again = curve_stats(res.equity, tr, len(res.trades), res.exposure, cfg.initial_capital, ppy, n / ppy)
        np.testing.assert_allclose(again, table[k], rtol=1e-12, equal_nan=True)
