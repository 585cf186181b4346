"""engine.performance against independent references.

* Real data: daily closes of AAPL, MSFT, GOOG and SPX (the shipped samples, on the dates all
  four have). A portfolio of the three stocks is compared with the SPX benchmark against
  empyrical (``alpha_beta``, ``up_capture``, ``down_capture``, ``excess_sharpe``,
  ``annual_return``, ``annual_volatility``, ``sharpe_ratio``, ``max_drawdown``) and pandas.
  Where definitions differ: empyrical has no tracking error (pandas' ``std`` is used);
  its ``excess_sharpe`` is the information ratio *not* annualized (ours = it * sqrt(252)); its
  ``risk_free`` is per period, ours annual (we pass it ``(1 + rf) ** (1 / 252) - 1``); its
  Sharpe ratio of a constant series is +-inf, ours NaN (not exercised here).
* Excel's documented ``XIRR`` example (Microsoft support, "XIRR function"): 0.373362535.
* Brinson-Fachler: the three-segment example of Bacon, *Practical Portfolio Performance
  Measurement and Attribution* (2nd ed., ch. 5), worked by hand below; a two-period Carino
  example worked with ``math.log``; and the identities with Hypothesis.
"""

from __future__ import annotations

import math
from datetime import date
from functools import cache

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from algotrendy.engine import performance as P
from tests.golden.indicator_samples import SAMPLES

NAMES = ("AAPL", "MSFT", "GOOG", "SPX")
PPY = 252
RF = 0.02
RFB = (1 + RF) ** (1 / PPY) - 1


@cache
def _closes() -> pd.DataFrame:
    closes = [
        pd.read_csv(SAMPLES / f"{n}_1d.csv", parse_dates=["timestamp"])
        .set_index("timestamp")["close"]
        .rename(n)
        for n in NAMES
    ]
    c = pd.concat(closes, axis=1, join="inner").dropna()
    assert len(c) > 1000
    return c


def _returns() -> pd.DataFrame:
    return _closes().pct_change().dropna()


def _rebalanced() -> tuple[np.ndarray, np.ndarray]:
    """Daily-rebalanced 50/30/20 AAPL/MSFT/GOOG portfolio and the SPX, computed with pandas."""
    r = _returns()
    rp = (0.5 * r["AAPL"] + 0.3 * r["MSFT"] + 0.2 * r["GOOG"]).to_numpy()
    return rp, r["SPX"].to_numpy()


# --------------------------------------------------------------------------- relative metrics


def test_relative_metrics_match_empyrical() -> None:
    rp, rb = _rebalanced()
    got = P.relative_metrics(rp, rb, PPY, rf=RF)
    alpha, beta = ep.alpha_beta(rp, rb, risk_free=RFB, annualization=PPY)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert got["beta"] == pytest.approx(beta, rel=1e-9)
    assert got["correlation"] == pytest.approx(np.corrcoef(rp, rb)[0, 1], rel=1e-9)
    assert got["up_capture"] == pytest.approx(ep.up_capture(rp, rb, period="daily"), rel=1e-9)
    assert got["down_capture"] == pytest.approx(ep.down_capture(rp, rb, period="daily"), rel=1e-9)
    te = pd.Series(rp - rb).std(ddof=1) * math.sqrt(PPY)
    assert got["tracking_error"] == pytest.approx(te, rel=1e-9)
    assert got["information_ratio"] == pytest.approx(ep.excess_sharpe(rp, rb) * math.sqrt(PPY), rel=1e-9)
    active = ep.annual_return(rp, annualization=PPY) - ep.annual_return(rb, annualization=PPY)
    assert got["active_return"] == pytest.approx(active, rel=1e-9)
    # a sanity anchor on the real numbers: big tech against the index
    assert 0.8 < got["beta"] < 1.5 and got["up_capture"] > 0.5 and got["down_capture"] > 0.5


def test_capture_ratios_by_hand_on_real_prefix() -> None:
    """The empyrical definition written out: CAGR over the up (down) days of each side."""
    rp, rb = _rebalanced()
    rp, rb = rp[:300], rb[:300]
    up, down = P.capture_ratios(rp, rb, PPY)
    for got, mask in ((up, rb > 0), (down, rb < 0)):
        m = int(mask.sum())
        cagr_p = np.prod(1 + rp[mask]) ** (PPY / m) - 1
        cagr_b = np.prod(1 + rb[mask]) ** (PPY / m) - 1
        assert got == pytest.approx(cagr_p / cagr_b, rel=1e-9)


def test_individual_functions_agree_with_relative_metrics() -> None:
    rp, rb = _rebalanced()
    m = P.relative_metrics(rp, rb, PPY)
    assert P.tracking_error(rp, rb, PPY) == m["tracking_error"]
    assert P.information_ratio(rp, rb, PPY) == m["information_ratio"]
    assert P.capture_ratios(rp, rb, PPY) == (m["up_capture"], m["down_capture"])


# --------------------------------------------------------------------------- TWR on a real account


@cache
def _account() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A buy-and-hold account in AAPL/MSFT/GOOG with deposits and withdrawals.

    Returns (values[0..n], flows[1..n], start-of-period weights (n, 3), asset returns (n, 3)).
    A flow at the start of period t is invested (or withdrawn) pro rata at the closes of t - 1.
    """
    px = _closes()[["AAPL", "MSFT", "GOOG"]].to_numpy()
    n = len(px) - 1
    flows = np.zeros(n)
    flows[[20, 250, 600, 900]] = [50_000.0, -30_000.0, 20_000.0, -10_000.0]
    units = 100_000.0 * np.array([0.5, 0.3, 0.2]) / px[0]
    values = [float(units @ px[0])]
    weights = np.empty((n, 3))
    for t in range(1, n + 1):
        before = units * px[t - 1]
        if flows[t - 1] != 0.0:
            units = units * (1 + flows[t - 1] / before.sum())
            before = units * px[t - 1]
        weights[t - 1] = before / before.sum()
        values.append(float(units @ px[t]))
    asset_r = px[1:] / px[:-1] - 1
    return np.array(values), flows, weights, asset_r


def test_twr_removes_flows() -> None:
    values, flows, w, ar = _account()
    r = P.time_weighted_returns(values, flows)
    assert np.allclose(r, (w * ar).sum(axis=1), rtol=0, atol=1e-12)
    # with flows the plain value ratio is not the performance; the TWR is
    px = _closes()[["AAPL", "MSFT", "GOOG"]].to_numpy()
    first = 0.5 * px[:, 0] / px[0, 0] + 0.3 * px[:, 1] / px[0, 1] + 0.2 * px[:, 2] / px[0, 2]
    assert P.linked_return(r) == pytest.approx(first[-1] - 1, rel=1e-10)
    assert values[-1] / values[0] - 1 != pytest.approx(first[-1] - 1, rel=1e-3)


def test_contributions_on_real_account() -> None:
    values, flows, w, ar = _account()
    res = P.contributions(w, ar)
    twr = P.linked_return(P.time_weighted_returns(values, flows))
    assert res.portfolio_return == pytest.approx(twr, rel=1e-10)
    assert res.total.sum() == pytest.approx(twr, abs=1e-12)
    # Carino by hand, one period at a time
    rt = (w * ar).sum(axis=1)
    total = math.prod(1 + x for x in rt) - 1
    big_k = math.log(1 + total) / total
    expected = np.zeros(3)
    for t in range(len(rt)):
        k_t = math.log(1 + rt[t]) / rt[t] if rt[t] != 0 else 1.0
        expected += k_t / big_k * w[t] * ar[t]
    assert np.allclose(res.total, expected, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- daily series


@pytest.mark.parametrize("day", [0, 1, 2, 19, 20, 21, 250, 777, -1])
def test_daily_series_matches_empyrical_on_prefix(day: int) -> None:
    values, flows, w, ar = _account()
    s = P.daily_series(values, flows, ppy=PPY, rf=RF)
    n = len(flows)
    t = day % n
    prefix = (w * ar).sum(axis=1)[: t + 1]  # independent of the TWR code
    assert s.returns[t] == pytest.approx(prefix[-1], abs=1e-12)
    assert s.cumulative_return[t] == pytest.approx(ep.cum_returns_final(prefix), rel=1e-10, abs=1e-14)
    assert s.max_drawdown[t] == pytest.approx(ep.max_drawdown(prefix), rel=1e-10, abs=1e-14)
    idx = np.concatenate([[1.0], np.cumprod(1 + prefix)])
    assert s.drawdown[t] == pytest.approx(idx[-1] / idx.max() - 1, rel=1e-10, abs=1e-14)
    if t == 0:
        assert math.isnan(s.volatility[t]) and math.isnan(s.sharpe_ratio[t])
    else:
        vol = ep.annual_volatility(prefix, annualization=PPY)
        assert s.volatility[t] == pytest.approx(vol, rel=1e-9)
        sharpe = ep.sharpe_ratio(prefix, risk_free=RFB, annualization=PPY)
        assert s.sharpe_ratio[t] == pytest.approx(sharpe, rel=1e-8, abs=1e-12)


# --------------------------------------------------------------------------- money-weighted


XIRR_DATES = [date(2008, 1, 1), date(2008, 3, 1), date(2008, 10, 30), date(2009, 2, 15), date(2009, 4, 1)]
XIRR_AMOUNTS = [-10_000.0, 2_750.0, 4_250.0, 3_250.0, 2_750.0]


def test_xirr_excel_documented_example() -> None:
    x = P.xirr(XIRR_DATES, XIRR_AMOUNTS)
    assert x is not None
    # Excel shows 0.373362535; its Newton iteration stops at a 1e-8 tolerance
    assert x == pytest.approx(0.373362535, abs=5e-9)
    # and ours is the root to machine precision: NPV at x, written out
    npv = sum(
        a / (1 + x) ** ((d - XIRR_DATES[0]).days / 365) for a, d in zip(XIRR_AMOUNTS, XIRR_DATES, strict=True)
    )
    assert abs(npv) < 1e-8


def test_money_weighted_equals_xirr_from_the_portfolio_side() -> None:
    """The same cash flows seen from the portfolio: 10 000 in, three withdrawals, 2 750 left."""
    t = np.array([(d - XIRR_DATES[0]).days / 365 for d in XIRR_DATES])
    x = P.money_weighted_return(t[:-1], [10_000.0, -2_750.0, -4_250.0, -3_250.0], 2_750.0, end_time=t[-1])
    assert x == pytest.approx(P.xirr(XIRR_DATES, XIRR_AMOUNTS), rel=1e-12)


def test_money_weighted_by_hand() -> None:
    # 1000 in at t=0 and 1000 at t=1, at 5% a year: 1000 * 1.05^2 + 1000 * 1.05 = 2152.5 at t=2
    assert P.money_weighted_return([0.0, 1.0], [1000.0, 1000.0], 2152.5, end_time=2.0) == pytest.approx(
        0.05, abs=1e-13
    )
    # one flow: the CAGR. 100 -> 150 in 2.5 years: 1.5 ** (1 / 2.5) - 1
    assert P.money_weighted_return([0.0], [100.0], 150.0, end_time=2.5) == pytest.approx(
        1.5 ** (1 / 2.5) - 1, rel=1e-13
    )
    # a loss: 100 -> 40 in half a year: 0.4 ** 2 - 1 = -0.84
    assert P.money_weighted_return([0.0], [100.0], 40.0, end_time=0.5) == pytest.approx(-0.84, rel=1e-12)
    # a 10% gain in one day (365-day year): 1.1 ** 365 - 1, a huge but finite rate
    assert P.money_weighted_return([0.0], [100.0], 110.0, end_time=1 / 365) == pytest.approx(
        1.1**365 - 1, rel=1e-9
    )


def test_money_weighted_on_real_account_vs_scipy() -> None:
    values, flows, _, _ = _account()
    n = len(flows)
    times = np.concatenate([[0.0], np.arange(n) / PPY])
    cash = np.concatenate([[values[0]], flows])
    x = P.money_weighted_return(times, cash, values[-1], end_time=n / PPY)
    assert x is not None

    def fv(rate: float) -> float:
        return float(np.sum(cash * (1 + rate) ** (n / PPY - times)) - values[-1])

    from scipy.optimize import newton

    assert x == pytest.approx(newton(fv, 0.1, tol=1e-14, maxiter=200), rel=1e-9)
    # without flows it would be the CAGR of the TWR; with these flows it differs but stays close
    twr_cagr = P.annualized(P.linked_return(P.time_weighted_returns(values, flows)), n / PPY)
    assert twr_cagr is not None and abs(x - twr_cagr) < 0.1


# --------------------------------------------------------------------------- Brinson-Fachler


def test_brinson_fachler_bacon_example() -> None:
    """Bacon, ch. 5: UK, Japan, US equities.

    wp = 40%, 30%, 30%; wb = 40%, 20%, 40%; rp = 20%, -5%, 6%; rb = 10%, -4%, 8%.
    Rp = 0.4*0.20 + 0.3*(-0.05) + 0.3*0.06 = 0.080 - 0.015 + 0.018 = 0.083
    Rb = 0.4*0.10 + 0.2*(-0.04) + 0.4*0.08 = 0.040 - 0.008 + 0.032 = 0.064
    allocation  (wp - wb)(rb - Rb): UK  0.0 * (0.10 - 0.064)  =  0
                                    JP  0.1 * (-0.04 - 0.064) = -0.0104
                                    US -0.1 * (0.08 - 0.064)  = -0.0016   total -0.0120
    selection   wb (rp - rb):       UK  0.4 * 0.10            =  0.040
                                    JP  0.2 * (-0.01)         = -0.002
                                    US  0.4 * (-0.02)         = -0.008    total  0.0300
    interaction (wp - wb)(rp - rb): UK  0.0                   =  0
                                    JP  0.1 * (-0.01)         = -0.001
                                    US -0.1 * (-0.02)         =  0.002    total  0.0010
    -0.0120 + 0.0300 + 0.0010 = 0.0190 = 0.083 - 0.064
    """
    a = P.brinson_fachler([0.4, 0.3, 0.3], [0.4, 0.2, 0.4], [0.20, -0.05, 0.06], [0.10, -0.04, 0.08])
    assert a.portfolio_return == pytest.approx(0.083, abs=1e-15)
    assert a.benchmark_return == pytest.approx(0.064, abs=1e-15)
    assert np.allclose(a.allocation, [0.0, -0.0104, -0.0016], rtol=0, atol=1e-15)
    assert np.allclose(a.selection, [0.040, -0.002, -0.008], rtol=0, atol=1e-15)
    assert np.allclose(a.interaction, [0.0, -0.001, 0.002], rtol=0, atol=1e-15)
    assert a.total_allocation == pytest.approx(-0.012, abs=1e-15)
    assert a.total_selection == pytest.approx(0.030, abs=1e-15)
    assert a.total_interaction == pytest.approx(0.001, abs=1e-15)
    assert a.active_return == pytest.approx(0.019, abs=1e-15)


def test_brinson_fachler_linked_two_periods_by_hand() -> None:
    """Period 1 is Bacon's example above; period 2: two segments held 60/40 against 50/50,
    rp = 5%, 1%, rb = 4%, 2%:
    Rp2 = 0.6*0.05 + 0.4*0.01 = 0.034, Rb2 = 0.5*0.04 + 0.5*0.02 = 0.030
    alloc2 = 0.1*(0.04 - 0.03) = 0.001, -0.1*(0.02 - 0.03) = 0.001
    sel2   = 0.5*0.01 = 0.005, 0.5*(-0.01) = -0.005
    inter2 = 0.1*0.01 = 0.001, -0.1*(-0.01) = 0.001
    Carino: k_t = (ln(1+Rp_t) - ln(1+Rb_t)) / (Rp_t - Rb_t), K the same of the compounded
    Rp = 1.083*1.034 - 1, Rb = 1.064*1.030 - 1.
    The third segment is absent in period 2 (weights 0, returns 0)."""
    wp = np.array([[0.4, 0.3, 0.3], [0.6, 0.4, 0.0]])
    wb = np.array([[0.4, 0.2, 0.4], [0.5, 0.5, 0.0]])
    rp = np.array([[0.20, -0.05, 0.06], [0.05, 0.01, 0.0]])
    rb = np.array([[0.10, -0.04, 0.08], [0.04, 0.02, 0.0]])
    a = P.brinson_fachler_linked(wp, wb, rp, rb)

    def k(p: float, b: float) -> float:
        return (math.log(1 + p) - math.log(1 + b)) / (p - b)

    big_rp, big_rb = 1.083 * 1.034 - 1, 1.064 * 1.030 - 1
    k1, k2, kk = k(0.083, 0.064), k(0.034, 0.030), k(big_rp, big_rb)
    alloc = (k1 * np.array([0.0, -0.0104, -0.0016]) + k2 * np.array([0.001, 0.001, 0.0])) / kk
    sel = (k1 * np.array([0.040, -0.002, -0.008]) + k2 * np.array([0.005, -0.005, 0.0])) / kk
    inter = (k1 * np.array([0.0, -0.001, 0.002]) + k2 * np.array([0.001, 0.001, 0.0])) / kk
    assert np.allclose(a.allocation, alloc, rtol=1e-12, atol=1e-15)
    assert np.allclose(a.selection, sel, rtol=1e-12, atol=1e-15)
    assert np.allclose(a.interaction, inter, rtol=1e-12, atol=1e-15)
    assert a.portfolio_return == pytest.approx(big_rp, abs=1e-15)
    assert a.benchmark_return == pytest.approx(big_rb, abs=1e-15)
    assert a.total.sum() == pytest.approx(big_rp - big_rb, abs=1e-15)


def test_contributions_two_periods_by_hand() -> None:
    """Two assets, 60/40 then 50/50; returns 10%, -5% then -2%, 4%:
    R1 = 0.06 - 0.02 = 0.04, R2 = -0.01 + 0.02 = 0.01, R = 1.04*1.01 - 1 = 0.0504.
    k1 = ln(1.04)/0.04, k2 = ln(1.01)/0.01, K = ln(1.0504)/0.0504.
    C_A = (k1*0.06 + k2*(-0.01)) / K, C_B = (k1*(-0.02) + k2*0.02) / K."""
    res = P.contributions(np.array([[0.6, 0.4], [0.5, 0.5]]), np.array([[0.10, -0.05], [-0.02, 0.04]]))
    k1, k2, kk = math.log(1.04) / 0.04, math.log(1.01) / 0.01, math.log(1.0504) / 0.0504
    assert res.total[0] == pytest.approx((k1 * 0.06 - k2 * 0.01) / kk, rel=1e-13)
    assert res.total[1] == pytest.approx((-k1 * 0.02 + k2 * 0.02) / kk, rel=1e-13)
    assert res.portfolio_return == pytest.approx(0.0504, abs=1e-15)
    assert np.allclose(res.per_period, [[0.06, -0.02], [-0.01, 0.02]], rtol=0, atol=1e-16)


# --------------------------------------------------------------------------- identities (Hypothesis)

_ret = st.floats(-0.5, 0.5, allow_nan=False)


@st.composite
def _weights(draw: st.DrawFn, n: int, k: int) -> np.ndarray:
    raw = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0)))
    raw[:, 0] += 1e-3
    out: np.ndarray = raw / raw.sum(axis=1, keepdims=True)
    return out


@st.composite
def _attribution_case(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 6))
    wp = draw(_weights(n, k))
    wb = draw(_weights(n, k))
    rp = draw(hnp.arrays(np.float64, (n, k), elements=_ret))
    rb = draw(hnp.arrays(np.float64, (n, k), elements=_ret))
    return wp, wb, rp, rb


@settings(max_examples=300, deadline=None)
@given(_attribution_case())
def test_brinson_identities(case: tuple[np.ndarray, ...]) -> None:
    wp, wb, rp, rb = case
    for t in range(len(wp)):
        a = P.brinson_fachler(wp[t], wb[t], rp[t], rb[t])
        rp_t, rb_t = float(wp[t] @ rp[t]), float(wb[t] @ rb[t])
        assert a.total.sum() == pytest.approx(rp_t - rb_t, abs=1e-12)
        assert a.total_allocation + a.total_selection + a.total_interaction == pytest.approx(
            rp_t - rb_t, abs=1e-12
        )
    linked = P.brinson_fachler_linked(wp, wb, rp, rb)
    big_rp = float(np.prod(1 + (wp * rp).sum(axis=1)) - 1)
    big_rb = float(np.prod(1 + (wb * rb).sum(axis=1)) - 1)
    # compounded over up to 12 periods of +-50% the totals reach ~100, so the
    # tolerance is relative (a few ulps of the magnitude), not absolute
    assert linked.total.sum() == pytest.approx(big_rp - big_rb, rel=1e-12, abs=1e-12)
    assert linked.portfolio_return == pytest.approx(big_rp, rel=1e-12, abs=1e-12)
    if len(wp) == 1:
        single = P.brinson_fachler(wp[0], wb[0], rp[0], rb[0])
        assert np.allclose(linked.allocation, single.allocation, rtol=0, atol=1e-14)
        assert np.allclose(linked.selection, single.selection, rtol=0, atol=1e-14)


@settings(max_examples=300, deadline=None)
@given(_attribution_case(), st.floats(0.2, 1.5))
def test_contribution_identity(case: tuple[np.ndarray, ...], leverage: float) -> None:
    w, _, r, _ = case
    res = P.contributions(w * leverage, r)
    total = float(np.prod(1 + (w * leverage * r).sum(axis=1)) - 1)
    assert res.total.sum() == pytest.approx(total, rel=1e-12, abs=1e-12)
    assert np.allclose(res.linked.sum(axis=0), res.total, rtol=1e-13, atol=1e-15)
