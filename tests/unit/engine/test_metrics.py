"""engine.metrics on tiny hand-computed curves, edge cases and the batch kernels."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.engine.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    batch_calmar,
    batch_max_drawdown,
    batch_scores,
    batch_sharpe,
    batch_sortino,
    batch_total_return,
    calmar_from_equity,
    compute_metrics,
    drawdown,
    max_drawdown_duration,
    max_drawdown_from_equity,
    periods_per_year,
    returns_from_equity,
    sharpe_from_equity,
    sortino_from_equity,
)
from algotrendy.engine.result import RunResult, Trades

DAY = 86_400 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC, a Monday


def make_trades(pnl: list[float], ret: list[float] | None = None) -> Trades:
    n = len(pnl)
    i = np.zeros(n, dtype=np.int64)
    f = np.ones(n)
    r = np.asarray(ret if ret is not None else [p / 100.0 for p in pnl], dtype=np.float64)
    return Trades(i, i + 1, f, i, i + 1, f, f, f * 0.0, np.asarray(pnl, dtype=np.float64), r, ["x"] * n)


def make_run(
    equity: list[float],
    *,
    initial: float = 100.0,
    pnl: list[float] | None = None,
    ret: list[float] | None = None,
    exposure: list[float] | None = None,
    ts: np.ndarray | None = None,
    fees: float = 0.0,
    turnover: float = 0.0,
) -> RunResult:
    e = np.asarray(equity, dtype=np.float64)
    t = ts if ts is not None else T0 + DAY * np.arange(len(e), dtype=np.int64)
    x = np.asarray(exposure if exposure is not None else [0.0] * len(e), dtype=np.float64)
    trades = make_trades(pnl, ret) if pnl is not None else Trades.empty()
    return RunResult(("X",), t, e, e.copy(), x, trades, initial, fees, turnover)


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12, abs=1e-15)


# --------------------------------------------------------------------------- hand-computed curve


def test_small_curve_by_hand() -> None:
    # curve anchored at 100: 100 -> 110 -> 99 -> 121; returns +10%, -10%, +2/9
    m = compute_metrics(make_run([110.0, 99.0, 121.0]), periods_per_year=3.0)
    r = [0.1, -0.1, 121 / 99 - 1]
    mean, sd = statistics.fmean(r), statistics.stdev(r)
    assert m["total_return"] == approx(0.21)
    assert m["final_equity"] == approx(121.0)
    assert m["annualized_return"] == approx(0.21)  # 3 bars at 3 bars/year = exactly one year
    assert m["volatility"] == approx(sd * math.sqrt(3))
    assert m["sharpe_ratio"] == approx(mean / sd * math.sqrt(3))
    downside = math.sqrt(0.01 / 3)  # only the -10% bar falls short of 0
    assert m["downside_risk"] == approx(downside * math.sqrt(3))
    assert m["sortino_ratio"] == approx(mean * 3 / (downside * math.sqrt(3)))
    assert m["max_drawdown"] == approx(-0.1)
    assert m["calmar_ratio"] == approx(0.21 / 0.1)
    assert m["max_drawdown_duration_bars"] == 2  # peak 110 at bar 0, back above it at bar 2
    assert m["max_drawdown_duration_days"] == approx(2.0)
    assert m["best_bar"] == approx(121 / 99 - 1)
    assert m["worst_bar"] == approx(-0.1)


def test_cagr_uses_bar_count_over_periods_per_year() -> None:
    # 4 bars, 2 bars a year -> 2 years; doubling -> sqrt(2) - 1 a year
    m = compute_metrics(make_run([120.0, 150.0, 160.0, 200.0]), periods_per_year=2.0)
    assert m["annualized_return"] == approx(math.sqrt(2.0) - 1.0)


def test_risk_free_rate_is_annual_and_geometric_per_bar() -> None:
    run = make_run([110.0, 99.0, 121.0, 125.0])
    rf_bar = 1.04 ** (1 / 4) - 1
    r = [0.1, -0.1, 121 / 99 - 1, 125 / 121 - 1]
    ex = [x - rf_bar for x in r]
    m = compute_metrics(run, periods_per_year=4.0, risk_free_rate=0.04)
    assert m["sharpe_ratio"] == approx(statistics.fmean(ex) / statistics.stdev(ex) * 2.0)
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in ex) / 4)
    assert m["sortino_ratio"] == approx(statistics.fmean(ex) * 4 / (down * 2.0))


def test_loss_on_first_bar_is_a_drawdown_from_initial_capital() -> None:
    m = compute_metrics(make_run([95.0, 100.0, 98.0]), periods_per_year=252.0)
    assert m["max_drawdown"] == approx(-0.05)
    assert m["max_drawdown_duration_bars"] == 2  # anchor (100) to bar 1 (back at 100)


# --------------------------------------------------------------------------- edge cases


def test_flat_equity() -> None:
    m = compute_metrics(make_run([100.0] * 10), periods_per_year=252.0)
    assert m["total_return"] == 0.0
    assert m["volatility"] == 0.0
    assert m["sharpe_ratio"] is None
    assert m["sortino_ratio"] is None
    assert m["calmar_ratio"] is None
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration_bars"] == 0
    assert m["skew"] is None
    assert m["kurtosis"] is None


def test_monotonic_rise_has_no_drawdown() -> None:
    m = compute_metrics(make_run([101.0, 103.0, 106.0, 110.0]), periods_per_year=252.0)
    assert m["max_drawdown"] == 0.0
    assert m["max_drawdown_duration_bars"] == 0
    assert m["max_drawdown_duration_days"] == 0.0
    assert m["calmar_ratio"] is None
    assert m["sortino_ratio"] is None  # nothing below the target
    assert m["downside_risk"] == 0.0
    assert m["sharpe_ratio"] is not None and m["sharpe_ratio"] > 0


def test_constant_growth_rate_sharpe_is_undefined_not_huge() -> None:
    e = 100.0 * 1.01 ** np.arange(1, 30)
    m = compute_metrics(make_run(list(e)), periods_per_year=252.0)
    assert m["sharpe_ratio"] is None


def test_no_trades() -> None:
    m = compute_metrics(make_run([100.0, 101.0]), periods_per_year=252.0)
    assert m["number_of_trades"] == 0
    for k in (
        "win_rate",
        "profit_factor",
        "expectancy",
        "average_trade_return",
        "average_win",
        "average_loss",
        "largest_win",
        "largest_loss",
    ):
        assert m[k] is None, k


def test_all_wins_profit_factor_none() -> None:
    m = compute_metrics(make_run([100.0, 110.0], pnl=[4.0, 6.0]), periods_per_year=252.0)
    assert m["win_rate"] == 1.0
    assert m["profit_factor"] is None
    assert m["average_loss"] is None
    assert m["largest_loss"] is None
    assert m["average_win"] == approx(5.0)


def test_all_losses_profit_factor_zero() -> None:
    m = compute_metrics(make_run([100.0, 90.0], pnl=[-4.0, -6.0]), periods_per_year=252.0)
    assert m["win_rate"] == 0.0
    assert m["profit_factor"] == 0.0
    assert m["average_win"] is None


def test_trade_statistics() -> None:
    pnl = [10.0, -5.0, 20.0, -15.0, 0.0]
    ret = [0.1, -0.05, 0.2, -0.15, 0.0]
    m = compute_metrics(make_run([100.0, 110.0], pnl=pnl, ret=ret), periods_per_year=252.0)
    assert m["number_of_trades"] == 5
    assert m["win_rate"] == approx(2 / 5)  # a break-even trade is not a win
    assert m["profit_factor"] == approx(30.0 / 20.0)
    assert m["expectancy"] == approx(2.0)
    assert m["average_trade_return"] == approx(0.02)
    assert m["average_win"] == approx(15.0)
    assert m["average_loss"] == approx(-10.0)
    assert m["largest_win"] == approx(20.0)
    assert m["largest_loss"] == approx(-15.0)


def test_exposure_turnover_fees() -> None:
    run = make_run([100.0] * 4, exposure=[0.0, 0.5, 1.0, 0.0], fees=3.5, turnover=2.25)
    m = compute_metrics(run, periods_per_year=252.0)
    assert m["exposure"] == approx(0.5)
    assert m["average_exposure"] == approx(0.375)
    assert m["fees_paid"] == approx(3.5)
    assert m["turnover"] == approx(2.25)


def test_single_bar_run() -> None:
    m = compute_metrics(make_run([105.0]))
    assert m["total_return"] == approx(0.05)
    assert m["volatility"] is None
    assert m["sharpe_ratio"] is None
    assert m["annualized_return"] == approx(1.05**252 - 1)


def test_wiped_out_account() -> None:
    m = compute_metrics(make_run([50.0, 0.0, 0.0]), periods_per_year=252.0)
    assert m["total_return"] == -1.0
    assert m["annualized_return"] == -1.0
    assert m["max_drawdown"] == -1.0
    assert m["worst_bar"] == -1.0


def test_overflowing_cagr_is_none() -> None:
    m = compute_metrics(make_run([200.0, 400.0]), periods_per_year=525_600.0)
    assert m["annualized_return"] is None


# --------------------------------------------------------------------------- alpha / beta


def test_alpha_beta_of_leveraged_benchmark() -> None:
    bench = np.array([100.0, 101.0, 99.0, 102.0, 100.0, 103.0])
    rb = bench[1:] / bench[:-1] - 1
    equity = 100.0 * np.concatenate([[1.0], np.cumprod(1 + 2 * rb)])
    m = compute_metrics(make_run(list(equity)), periods_per_year=252.0, benchmark_close=bench)
    assert m["beta"] == pytest.approx(2.0, rel=1e-12)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-12)


def test_alpha_is_compounded_mean_excess() -> None:
    bench = np.array([100.0, 101.0, 99.0, 102.0, 100.0, 103.0])
    rb = bench[1:] / bench[:-1] - 1
    c = 0.001
    equity = 100.0 * np.concatenate([[1.0], np.cumprod(1 + rb + c)])
    m = compute_metrics(make_run(list(equity)), periods_per_year=252.0, benchmark_close=bench)
    assert m["beta"] == pytest.approx(1.0, rel=1e-12)
    assert m["alpha"] == pytest.approx((1 + c) ** 252 - 1, rel=1e-9)


def test_alpha_beta_none_without_benchmark_or_with_flat_benchmark() -> None:
    run = make_run([100.0, 101.0, 102.0])
    m = compute_metrics(run, periods_per_year=252.0)
    assert m["alpha"] is None and m["beta"] is None
    m = compute_metrics(run, periods_per_year=252.0, benchmark_close=np.full(3, 50.0))
    assert m["alpha"] is None and m["beta"] is None


# --------------------------------------------------------------------------- output contract


@pytest.mark.parametrize(
    "run",
    [
        make_run([100.0] * 5),
        make_run([105.0]),
        make_run([110.0, 99.0, 121.0], pnl=[1.0, -2.0], exposure=[1.0, 1.0, 0.0]),
        make_run([50.0, 0.0, 0.0], pnl=[-100.0]),
    ],
)
def test_output_is_strict_json_of_plain_types(run: RunResult) -> None:
    m = compute_metrics(run, benchmark_close=np.linspace(10, 20, len(run.equity)))
    assert tuple(m) == METRIC_NAMES
    json.dumps(m, allow_nan=False)
    for k, v in m.items():
        assert v is None or type(v) in (float, int), (k, type(v))
    assert type(m["number_of_trades"]) is int
    assert type(m["max_drawdown_duration_bars"]) is int


def test_higher_is_better_covers_every_metric() -> None:
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
    assert HIGHER_IS_BETTER["sharpe_ratio"] and not HIGHER_IS_BETTER["volatility"]
    assert HIGHER_IS_BETTER["max_drawdown"]  # negative fractions: -0.1 beats -0.3


def test_bad_input() -> None:
    run = make_run([100.0, 101.0])
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(run, periods_per_year=0.0)
    with pytest.raises(ValueError, match="benchmark_close"):
        compute_metrics(run, periods_per_year=252.0, benchmark_close=np.ones(3))
    with pytest.raises(ValueError, match="risk_free_rate"):
        compute_metrics(run, periods_per_year=252.0, risk_free_rate=math.nan)
    bad = RunResult(
        ("X",), np.arange(3, dtype=np.int64), np.ones(2), np.ones(2), np.zeros(2), Trades.empty(), 1.0, 0, 0
    )
    with pytest.raises(ValueError, match=r"result\.ts"):
        compute_metrics(bad)
    with pytest.raises(ValueError, match="equity"):
        compute_metrics(make_run([]))


# --------------------------------------------------------------------------- curve primitives


def test_drawdown_series() -> None:
    np.testing.assert_allclose(drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])), [0, 0, -0.25, 0, -0.1])


def test_max_drawdown_duration_unrecovered_counts_to_end() -> None:
    e = np.array([100.0, 90.0, 95.0, 99.0])
    ts = T0 + np.array([0, 1, 3, 7], dtype=np.int64) * DAY
    assert max_drawdown_duration(e, ts) == (3, 7.0)


def test_max_drawdown_duration_picks_longest_span() -> None:
    e = np.array([100.0, 90.0, 100.0, 110.0, 105.0, 104.0, 103.0, 111.0, 112.0])
    ts = T0 + np.arange(len(e), dtype=np.int64) * DAY
    assert max_drawdown_duration(e, ts) == (4, 4.0)  # 110 at 3 to 111 at 7


def test_returns_from_equity_zero_after_ruin() -> None:
    np.testing.assert_allclose(returns_from_equity(np.array([100.0, 50.0, 0.0, 0.0])), [-0.5, -1.0, 0.0])


# --------------------------------------------------------------------------- periods per year


def _grid(step_s: int, n: int, *, weekdays_only: bool = False, start: int = T0) -> np.ndarray:
    ts = start + np.arange(n, dtype=np.int64) * step_s * 10**9
    if weekdays_only:
        wd = (ts // DAY + 3) % 7
        ts = ts[wd < 5]
    return ts


def test_periods_per_year_rules() -> None:
    assert periods_per_year(_grid(86_400, 500, weekdays_only=True)) == 252.0
    assert periods_per_year(_grid(86_400, 500)) == 365.0
    assert periods_per_year(_grid(3600, 2000)) == 8760.0
    assert periods_per_year(_grid(60, 20_000)) == 525_600.0
    assert periods_per_year(_grid(3600, 3000, weekdays_only=True)) == 6240.0  # FX, 24h on weekdays
    assert periods_per_year(_grid(7 * 86_400, 100)) == 52.0
    assert periods_per_year(T0 + np.array([0, 31, 60, 91, 121, 152], dtype=np.int64) * DAY) == 12.0


def test_periods_per_year_session_market() -> None:
    # US regular session: 390 one-minute bars from 14:30 UTC, weekdays only
    days = _grid(86_400, 30, weekdays_only=True)
    ts = (days[:, None] + (14 * 3600 + 1800 + 60 * np.arange(390)) * 10**9).ravel()
    assert periods_per_year(ts) == 252.0 * 390
    hourly = (days[:, None] + (14 * 3600 + 3600 * np.arange(7)) * 10**9).ravel()
    assert periods_per_year(hourly) == 252.0 * 7


def test_periods_per_year_needs_two_timestamps() -> None:
    with pytest.raises(ValueError, match="ts"):
        periods_per_year(np.array([T0], dtype=np.int64))
    with pytest.raises(ValueError, match="ts"):
        periods_per_year(np.array([T0, T0], dtype=np.int64))


def test_inferred_periods_per_year_is_used() -> None:
    rng = np.random.default_rng(1)
    run = make_run(list(100 * np.cumprod(1 + rng.normal(0, 0.01, 200))), ts=_grid(3600, 200))
    assert compute_metrics(run) == compute_metrics(run, periods_per_year=8760.0)


# --------------------------------------------------------------------------- fast / batch kernels


def _random_curves(seed: int, n_combos: int, n_bars: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0004, 0.01, size=(n_combos, n_bars))
    r[0] = 0.0  # one flat curve: undefined ratios
    r[1] = np.abs(r[1])  # one that never falls: no drawdown, no downside
    return 1000.0 * np.cumprod(1 + r, axis=1)


def test_batch_equals_scalar_and_compute_metrics() -> None:
    curves = _random_curves(7, 20, 300)
    scores = batch_scores(curves, 252.0, risk_free_rate=0.03, initial_capital=1000.0)
    for i, eq in enumerate(curves):
        m = compute_metrics(make_run(list(eq), initial=1000.0), periods_per_year=252.0, risk_free_rate=0.03)
        for key, arr in scores.items():
            want = m[key]
            assert (math.isnan(arr[i]) and want is None) or arr[i] == pytest.approx(want, rel=1e-12), (i, key)
        sr = sharpe_from_equity(eq, 252.0, risk_free_rate=0.03, initial_capital=1000.0)
        assert (math.isnan(sr) and m["sharpe_ratio"] is None) or sr == m["sharpe_ratio"]
        so = sortino_from_equity(eq, 252.0, risk_free_rate=0.03, initial_capital=1000.0)
        assert (math.isnan(so) and m["sortino_ratio"] is None) or so == m["sortino_ratio"]
        ca = calmar_from_equity(eq, 252.0, initial_capital=1000.0)
        assert (math.isnan(ca) and m["calmar_ratio"] is None) or ca == m["calmar_ratio"]
        assert max_drawdown_from_equity(eq, initial_capital=1000.0) == m["max_drawdown"]


def test_batch_single_functions_match_batch_scores() -> None:
    curves = _random_curves(3, 10, 100)
    s = batch_scores(curves, 365.0)
    np.testing.assert_array_equal(batch_sharpe(curves, 365.0), s["sharpe_ratio"])
    np.testing.assert_array_equal(batch_sortino(curves, 365.0), s["sortino_ratio"])
    np.testing.assert_array_equal(batch_calmar(curves, 365.0), s["calmar_ratio"])
    np.testing.assert_array_equal(batch_total_return(curves), s["total_return"])
    np.testing.assert_array_equal(batch_max_drawdown(curves), s["max_drawdown"])
    assert np.isnan(s["sharpe_ratio"][0]) and np.isnan(s["calmar_ratio"][1])


def test_batch_without_initial_capital_uses_first_column() -> None:
    curves = _random_curves(5, 4, 50)
    with_anchor = np.concatenate([np.full((4, 1), 1000.0), curves], axis=1)
    np.testing.assert_array_equal(
        batch_sharpe(with_anchor, 252.0), batch_sharpe(curves, 252.0, initial_capital=1000.0)
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=40))
def test_drawdown_bounds_and_batch_consistency(rets: list[float]) -> None:
    eq = 100.0 * np.cumprod(1 + np.asarray(rets))
    mdd = max_drawdown_from_equity(eq, initial_capital=100.0)
    assert -1.0 <= mdd <= 0.0
    assert float(drawdown(np.concatenate([[100.0], eq])).min()) == pytest.approx(mdd, abs=1e-15)
    m = compute_metrics(make_run(list(eq)), periods_per_year=252.0)
    assert m["max_drawdown"] == mdd
    json.dumps(m, allow_nan=False)
