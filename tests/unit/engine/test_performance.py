"""engine.performance: hand-computed small cases, edge cases and input validation."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from algotrendy.engine import performance as P

# --------------------------------------------------------------------------- TWR


def test_twr_flow_at_start_of_period() -> None:
    # 100 -> deposit 50 at the start of period 2 -> 165 at its end: 165 / 150 - 1 = 10%
    r = P.time_weighted_returns([100.0, 100.0, 165.0], [0.0, 50.0])
    assert r.tolist() == pytest.approx([0.0, 0.10], abs=1e-15)
    # withdrawal of 20 then a 5% loss: (100 - 20) * 0.95 = 76
    r = P.time_weighted_returns([100.0, 76.0], [-20.0])
    assert r[0] == pytest.approx(-0.05, abs=1e-15)


def test_twr_withdrawal_of_everything_then_restart() -> None:
    # 100 -> 110 (+10%); withdraw all 110 -> 0; nothing invested: 0; deposit 50 -> 55 (+10%)
    r = P.time_weighted_returns([100.0, 110.0, 0.0, 0.0, 55.0], [0.0, -110.0, 0.0, 50.0])
    assert r.tolist() == pytest.approx([0.10, 0.0, 0.0, 0.10], abs=1e-15)
    assert P.linked_return(r) == pytest.approx(1.1 * 1.1 - 1, abs=1e-15)


def test_twr_total_loss_is_minus_one() -> None:
    r = P.time_weighted_returns([100.0, 0.0], [0.0])
    assert r[0] == -1.0


def test_twr_no_periods_and_bad_shapes() -> None:
    assert P.time_weighted_returns([100.0], []).shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        P.time_weighted_returns([], [])
    with pytest.raises(ValueError, match="len\\(values\\) - 1"):
        P.time_weighted_returns([100.0, 101.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        P.time_weighted_returns([100.0, math.nan], [0.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        P.time_weighted_returns([[100.0, 101.0]], [0.0])


def test_linked_and_annualized() -> None:
    assert P.linked_return([0.1, -0.1]) == pytest.approx(-0.01, abs=1e-15)
    assert P.linked_return([]) == 0.0
    assert P.annualized(0.21, 2.0) == pytest.approx(0.1, abs=1e-15)
    assert P.annualized(0.1, 0.5) == pytest.approx(0.21, abs=1e-15)
    assert P.annualized(-1.0, 3.0) == -1.0
    assert P.annualized(0.1, 0.0) is None
    assert P.annualized(-1.5, 1.0) is None
    with pytest.raises(ValueError):
        P.annualized(math.nan, 1.0)


# --------------------------------------------------------------------------- money-weighted


def test_mwr_simple_interest_cases() -> None:
    # 100 at t=0 grows to 121 at t=2: 10%
    assert P.money_weighted_return([0.0], [100.0], 121.0, end_time=2.0) == pytest.approx(0.1, abs=1e-14)
    # default end_time = last flow time; a flow at the end adds to the final value one for one
    assert P.money_weighted_return([0.0, 1.0], [100.0, 50.0], 160.0) == pytest.approx(0.1, abs=1e-14)
    # total loss: -100%
    assert P.money_weighted_return([0.0], [100.0], 0.0, end_time=1.0) == pytest.approx(-1.0, abs=1e-9)
    # a rate near zero
    assert P.money_weighted_return([0.0], [100.0], 100.0 + 1e-6, end_time=1.0) == pytest.approx(
        1e-8, rel=1e-6
    )


def test_mwr_no_root_is_none() -> None:
    # every flow at the end date: no time for a rate to act
    assert P.money_weighted_return([1.0], [100.0], 120.0) is None
    # money in, nothing ever back... and a negative final value cannot be reached
    assert P.money_weighted_return([0.0], [100.0], -5.0, end_time=1.0) is None


def test_mwr_validation() -> None:
    with pytest.raises(ValueError, match="no flows"):
        P.money_weighted_return([], [], 1.0)
    with pytest.raises(ValueError, match="entries"):
        P.money_weighted_return([0.0, 1.0], [1.0], 1.0)
    with pytest.raises(ValueError, match="before the last flow"):
        P.money_weighted_return([0.0, 1.0], [1.0, 1.0], 3.0, end_time=0.5)
    with pytest.raises(ValueError, match="finite"):
        P.money_weighted_return([0.0], [1.0], math.inf, end_time=1.0)


def test_xirr_one_year_and_sign_rules() -> None:
    # -100 on day 0, +110 on day 365: exactly 10%
    assert P.xirr(["2021-01-01", "2022-01-01"], [-100.0, 110.0]) == pytest.approx(0.1, abs=1e-14)
    # leap year: 366 days of 365-day years, 1.1 ** (365 / 366) - 1
    assert P.xirr(["2020-01-01", "2021-01-01"], [-100.0, 110.0]) == pytest.approx(
        1.1 ** (365 / 366) - 1, rel=1e-12
    )
    # order of dates does not matter (the equation is the same)
    assert P.xirr(["2022-01-01", "2021-01-01"], [110.0, -100.0]) == pytest.approx(0.1, abs=1e-14)
    assert P.xirr(["2021-01-01", "2022-01-01"], [-100.0, -110.0]) is None
    assert P.xirr(["2021-01-01", "2022-01-01"], [100.0, 110.0]) is None
    with pytest.raises(ValueError):
        P.xirr(["2021-01-01"], [1.0, 2.0])
    with pytest.raises(ValueError):
        P.xirr([], [])


# --------------------------------------------------------------------------- relative metrics


R = np.array([0.01, -0.02, 0.03, 0.00, 0.015, -0.01])
RB = np.array([0.005, -0.01, 0.02, 0.002, 0.01, -0.015])


def test_tracking_error_and_ir_by_hand() -> None:
    active = [a - b for a, b in zip(R.tolist(), RB.tolist(), strict=True)]
    te = statistics.stdev(active) * math.sqrt(12)
    assert P.tracking_error(R, RB, 12) == pytest.approx(te, rel=1e-12)
    assert P.information_ratio(R, RB, 12) == pytest.approx(statistics.fmean(active) * 12 / te, rel=1e-12)


def test_capture_by_hand() -> None:
    # up periods of rb: 0, 2, 3, 4 (4 of them); down: 1, 5
    up = (1.01 * 1.03 * 1.0 * 1.015) ** (12 / 4) - 1
    up_b = (1.005 * 1.02 * 1.002 * 1.01) ** (12 / 4) - 1
    down = (0.98 * 0.99) ** (12 / 2) - 1
    down_b = (0.99 * 0.985) ** (12 / 2) - 1
    got = P.capture_ratios(R, RB, 12)
    assert got[0] == pytest.approx(up / up_b, rel=1e-12)
    assert got[1] == pytest.approx(down / down_b, rel=1e-12)


def test_capture_without_down_periods_is_none() -> None:
    up, down = P.capture_ratios([0.01, 0.02], [0.01, 0.01], 252)
    assert up is not None and down is None


def test_relative_metrics_against_itself() -> None:
    m = P.relative_metrics(RB, RB, 252)
    assert m["beta"] == pytest.approx(1.0, abs=1e-12)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert m["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert m["tracking_error"] == 0.0
    assert m["information_ratio"] is None
    assert m["up_capture"] == pytest.approx(1.0, abs=1e-12)
    assert m["down_capture"] == pytest.approx(1.0, abs=1e-12)
    assert m["active_return"] == 0.0


def test_relative_metrics_constant_offset_and_flat_benchmark() -> None:
    # an exactly constant active return: TE exactly 0, IR undefined
    rb = np.array([0.25, -0.5, 0.125, 0.0])
    assert P.tracking_error(rb + 0.125, rb, 252) == 0.0
    assert P.information_ratio(rb + 0.125, rb, 252) is None
    # constant up to rounding (r - rb = 0.001 +- 1e-18): TE ~ 1e-17, IR still undefined, not 1e15
    te = P.tracking_error(RB + 0.001, RB, 252)
    assert te is not None and te < 1e-15
    assert P.information_ratio(RB + 0.001, RB, 252) is None
    # a benchmark without variance: beta, alpha, correlation undefined; no up/down periods
    m = P.relative_metrics(R, np.zeros(len(R)), 252)
    assert m["beta"] is None and m["alpha"] is None and m["correlation"] is None
    assert m["up_capture"] is None and m["down_capture"] is None
    assert m["tracking_error"] is not None and m["active_return"] is not None


def test_relative_metrics_empty_and_single() -> None:
    m = P.relative_metrics([], [], 252)
    assert set(m) == {
        "alpha",
        "beta",
        "correlation",
        "tracking_error",
        "information_ratio",
        "up_capture",
        "down_capture",
        "active_return",
    }
    assert all(v is None for v in m.values())
    m1 = P.relative_metrics([0.01], [0.02], 252)
    assert m1["tracking_error"] is None and m1["beta"] is None
    assert m1["active_return"] == pytest.approx(1.01**252 - 1.02**252, rel=1e-12)


def test_relative_metrics_validation() -> None:
    with pytest.raises(ValueError, match="r has 2 returns, rb has 3"):
        P.relative_metrics([0.0, 0.1], [0.0, 0.1, 0.2], 252)
    with pytest.raises(ValueError, match="NaN"):
        P.tracking_error([0.0, math.nan], [0.0, 0.1], 252)
    with pytest.raises(ValueError, match="periods_per_year"):
        P.tracking_error([0.0, 0.1], [0.0, 0.1], 0)
    with pytest.raises(ValueError, match="risk_free_rate"):
        P.relative_metrics([0.0, 0.1], [0.0, 0.1], 252, rf=-2.0)


# --------------------------------------------------------------------------- contributions


def test_contributions_zero_returns_and_zero_total() -> None:
    res = P.contributions(np.full((3, 2), 0.5), np.zeros((3, 2)))
    assert res.total.tolist() == [0.0, 0.0] and res.portfolio_return == 0.0
    # +10% then -1/11: total exactly 0 (1.1 * 10/11 = 1), Carino K at its limit 1
    res = P.contributions(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.1, 0.0], [0.0, -1 / 11]]))
    assert res.total.sum() == pytest.approx(0.0, abs=1e-15)
    k1, k2 = math.log(1.1) / 0.1, math.log(10 / 11) / (-1 / 11)
    assert res.total[0] == pytest.approx(k1 * 0.1, rel=1e-9)
    assert res.total[1] == pytest.approx(-k2 / 11, rel=1e-9)


def test_contributions_single_period_is_w_times_r() -> None:
    res = P.contributions(np.array([[0.3, 0.7]]), np.array([[0.1, -0.2]]))
    assert res.total.tolist() == pytest.approx([0.03, -0.14], abs=1e-15)


def test_contributions_wipeout_gives_nan_totals() -> None:
    res = P.contributions(np.array([[1.0], [1.0]]), np.array([[0.1], [-1.0]]))
    assert np.isnan(res.total).all()
    assert res.portfolio_return == pytest.approx(-1.0)


def test_contributions_empty_and_validation() -> None:
    res = P.contributions(np.zeros((0, 3)), np.zeros((0, 3)))
    assert res.total.tolist() == [0.0, 0.0, 0.0] and res.portfolio_return == 0.0
    with pytest.raises(ValueError, match="shape"):
        P.contributions(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2-dimensional"):
        P.contributions(np.zeros(3), np.zeros(3))


# --------------------------------------------------------------------------- Brinson-Fachler


def test_brinson_same_weights_only_selection() -> None:
    a = P.brinson_fachler([0.5, 0.5], [0.5, 0.5], [0.1, 0.0], [0.05, 0.02])
    assert a.allocation.tolist() == [0.0, 0.0] and a.interaction.tolist() == [0.0, 0.0]
    assert a.selection.tolist() == pytest.approx([0.025, -0.01], abs=1e-16)


def test_brinson_unheld_segment_nan_return() -> None:
    a = P.brinson_fachler([1.0, 0.0], [0.5, 0.5], [0.1, math.nan], [0.1, 0.0])
    # Rb = 0.05; allocation: 0.5 * (0.1 - 0.05) = 0.025, -0.5 * (0.0 - 0.05) = 0.025
    assert a.allocation.tolist() == pytest.approx([0.025, 0.025], abs=1e-16)
    assert a.selection.tolist() == [0.0, 0.0] and a.interaction.tolist() == [0.0, 0.0]
    assert a.active_return == pytest.approx(0.05, abs=1e-16)


def test_brinson_validation() -> None:
    with pytest.raises(ValueError, match="same total"):
        P.brinson_fachler([0.5, 0.4], [0.5, 0.5], [0.1, 0.1], [0.1, 0.1])
    with pytest.raises(ValueError, match="shape"):
        P.brinson_fachler([0.5, 0.5], [1.0], [0.1, 0.1], [0.1, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        P.brinson_fachler([0.5, 0.5], [0.5, 0.5], [math.nan, 0.1], [0.1, 0.1])
    with pytest.raises(ValueError, match="2-dimensional"):
        P.brinson_fachler_linked([0.5, 0.5], [0.5, 0.5], [0.1, 0.1], [0.1, 0.1])


def test_brinson_linked_equal_period_returns_uses_the_limit() -> None:
    # period returns equal on both sides (Rp_t == Rb_t) but the effects are not zero
    wp = np.array([[0.6, 0.4], [0.5, 0.5]])
    wb = np.array([[0.4, 0.6], [0.5, 0.5]])
    rp = np.array([[0.05, 0.05], [0.02, 0.04]])
    rb = np.array([[0.05, 0.05], [0.03, 0.03]])
    a = P.brinson_fachler_linked(wp, wb, rp, rb)
    assert np.isfinite(a.total).all()
    assert a.active_return == pytest.approx(0.0, abs=1e-15)
    assert a.total.sum() == pytest.approx(0.0, abs=1e-15)
    # period 2 alone: selection 0.5 * (-0.01) and 0.5 * 0.01, scaled by k_2 / K = (1/1.03) / (1/1.0815)
    assert a.selection[0] == pytest.approx(-0.005 * 1.0815 / 1.03, rel=1e-12)


# --------------------------------------------------------------------------- daily series


def test_daily_series_by_hand() -> None:
    s = P.daily_series([100.0, 110.0, 99.0, 108.9, 120.0], [0.0, 0.0, 0.0, 10.0], ppy=252)
    r = [0.1, -0.1, 0.1, 120.0 / 118.9 - 1]
    assert s.returns.tolist() == pytest.approx(r, abs=1e-15)
    idx = [1.1, 0.99, 1.089, 1.089 * 120 / 118.9]
    assert s.cumulative_return.tolist() == pytest.approx([x - 1 for x in idx], abs=1e-14)
    # the last index, 1.089 * 120 / 118.9 = 1.09909..., is still below the peak 1.1
    dd = [0.0, 0.99 / 1.1 - 1, 1.089 / 1.1 - 1, idx[3] / 1.1 - 1]
    assert s.drawdown.tolist() == pytest.approx(dd, abs=1e-14)
    assert s.max_drawdown.tolist() == pytest.approx([0.0, -0.1, -0.1, -0.1], abs=1e-14)
    assert math.isnan(s.volatility[0]) and math.isnan(s.sharpe_ratio[0])
    for t in (1, 2, 3):
        sd = statistics.stdev(r[: t + 1])
        assert s.volatility[t] == pytest.approx(sd * math.sqrt(252), rel=1e-12)
        assert s.sharpe_ratio[t] == pytest.approx(
            statistics.fmean(r[: t + 1]) / sd * math.sqrt(252), rel=1e-12
        )


def test_daily_series_loss_on_first_day_is_a_drawdown() -> None:
    s = P.daily_series([100.0, 90.0], [0.0])
    assert s.drawdown[0] == pytest.approx(-0.1) and s.max_drawdown[0] == pytest.approx(-0.1)


def test_daily_series_constant_returns() -> None:
    s = P.daily_series([100.0, 101.0, 102.01, 103.0301], [0.0, 0.0, 0.0])
    assert np.isnan(s.volatility[0])
    assert s.volatility[1:].tolist() == [0.0, 0.0]
    assert np.isnan(s.sharpe_ratio).all()


def test_daily_series_risk_free() -> None:
    rf = 0.05
    rfb = 1.05 ** (1 / 252) - 1
    s = P.daily_series([100.0, 101.0, 100.5], [0.0, 0.0], rf=rf)
    x = [0.01 - rfb, 100.5 / 101 - 1 - rfb]
    assert s.sharpe_ratio[1] == pytest.approx(statistics.fmean(x) / statistics.stdev(x) * math.sqrt(252))


def test_daily_series_empty_and_validation() -> None:
    s = P.daily_series([100.0], [])
    for a in (s.returns, s.cumulative_return, s.volatility, s.sharpe_ratio, s.max_drawdown, s.drawdown):
        assert a.shape == (0,)
    with pytest.raises(ValueError):
        P.daily_series([100.0, 101.0], [0.0, 1.0])
    with pytest.raises(ValueError):
        P.daily_series([100.0, 101.0], [0.0], ppy=-1)


def test_daily_series_withdraw_everything() -> None:
    s = P.daily_series([100.0, 110.0, 0.0, 0.0], [0.0, -110.0, 0.0])
    assert s.returns.tolist() == [pytest.approx(0.1), 0.0, 0.0]
    assert s.cumulative_return[-1] == pytest.approx(0.1)
    assert s.max_drawdown[-1] == 0.0
