"""engine.var on real daily closes (AAPL, MSFT, GOOG, SPY from the shipped samples) against
empyrical (historical VaR / ES), scipy's normal distribution (parametric), numerical
integration (Cornish-Fisher ES), the exact lognormal quantile (Monte Carlo) and finite
differences (marginal VaR)."""

from __future__ import annotations

from functools import cache

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as sps

from algotrendy.engine import var as V
from tests.golden.indicator_samples import SAMPLES

NAMES = ("AAPL", "MSFT", "GOOG", "SPY")
W = np.array([0.4, 0.3, 0.2, 0.1])


@cache
def _returns() -> pd.DataFrame:
    closes = [
        pd.read_csv(SAMPLES / f"{n}_1d.csv", parse_dates=["timestamp"])
        .set_index("timestamp")["close"]
        .rename(n)
        for n in NAMES
    ]
    r = pd.concat(closes, axis=1, join="inner").pct_change().dropna()
    assert len(r) > 1000
    return r


def _matrix() -> np.ndarray:
    return _returns().to_numpy(np.float64)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_historical_equals_empyrical(confidence: float) -> None:
    r = _returns()["AAPL"].to_numpy()
    got = V.historical(r, confidence=confidence)
    assert got.var == pytest.approx(-ep.value_at_risk(r, cutoff=1 - confidence), rel=1e-12)
    assert got.es == pytest.approx(-ep.conditional_value_at_risk(r, cutoff=1 - confidence), rel=1e-12)
    assert got.es > got.var > 0


def test_historical_portfolio_and_horizon() -> None:
    m = _matrix()
    rp = m @ W
    got = V.historical(m, W, confidence=0.99)
    assert got.var == pytest.approx(-ep.value_at_risk(rp, cutoff=0.01), rel=1e-12)
    ten = pd.Series(1 + rp).rolling(10).apply(np.prod, raw=True).dropna().to_numpy() - 1
    got10 = V.historical(m, W, confidence=0.99, horizon=10)
    assert got10.observations == len(ten)
    assert got10.var == pytest.approx(-ep.value_at_risk(ten, cutoff=0.01), rel=1e-9)
    assert got10.es == pytest.approx(-ep.conditional_value_at_risk(ten, cutoff=0.01), rel=1e-9)
    assert got10.var > got.var


@pytest.mark.parametrize(("confidence", "horizon"), [(0.95, 1), (0.99, 1), (0.99, 10)])
def test_normal_equals_scipy(confidence: float, horizon: int) -> None:
    rp = _matrix() @ W
    loc, scale = rp.mean() * horizon, rp.std(ddof=1) * np.sqrt(horizon)
    got = V.normal(_matrix(), W, confidence=confidence, horizon=horizon)
    q = sps.norm.ppf(1 - confidence, loc=loc, scale=scale)
    assert got.var == pytest.approx(-q, rel=1e-12)
    tail_mean = sps.norm.expect(lambda x: x, loc=loc, scale=scale, ub=q, conditional=True)
    assert got.es == pytest.approx(-tail_mean, rel=1e-7)


def test_cornish_fisher_against_its_definition() -> None:
    rp = _returns()["AAPL"].to_numpy()
    mu, s = rp.mean(), rp.std(ddof=1)
    sk, ku = sps.skew(rp), sps.kurtosis(rp)

    def quantile(p: float) -> float:
        z = sps.norm.ppf(p)
        zc = z + (z * z - 1) * sk / 6 + (z**3 - 3 * z) * ku / 24 - (2 * z**3 - 5 * z) * sk * sk / 36
        return float(mu + zc * s)

    got = V.cornish_fisher(rp, confidence=0.99)
    assert got.var == pytest.approx(-quantile(0.01), rel=1e-12)
    es = -integrate.quad(quantile, 0, 0.01, limit=200)[0] / 0.01
    assert got.es == pytest.approx(es, rel=1e-8)
    # AAPL's daily returns are fat-tailed: the expansion widens the 99% loss beyond the normal's.
    assert ku > 1 and got.var > V.normal(rp, confidence=0.99).var
    # With no skew and no excess kurtosis the expansion is the normal quantile.
    z = np.linspace(-3, 3, 13)
    assert np.allclose(V.cornish_fisher_z(z, 0.0, 0.0), z)


def test_monte_carlo_single_asset_matches_the_lognormal_quantile() -> None:
    r = _returns()["SPY"].to_numpy()
    logs = np.log1p(r)
    exact = -np.expm1(logs.mean() + sps.norm.ppf(0.01) * logs.std(ddof=1))
    got = V.monte_carlo(r, confidence=0.99, paths=400_000, seed=7)
    assert got.var == pytest.approx(exact, rel=0.02)
    again = V.monte_carlo(r, confidence=0.99, paths=400_000, seed=7)
    assert (again.var, again.es) == (got.var, got.es)  # the seed fixes the figures
    other = V.monte_carlo(r, confidence=0.99, paths=400_000, seed=8)
    assert other.var != got.var


def test_monte_carlo_portfolio_near_the_parametric_figure_for_one_day() -> None:
    m = _matrix()
    mc = V.monte_carlo(m, W, confidence=0.99, paths=200_000, seed=1)
    normal = V.normal(m, W, confidence=0.99)
    assert mc.var == pytest.approx(normal.var, rel=0.05)
    assert mc.es > mc.var


def test_contributions_add_up_and_are_derivatives() -> None:
    m = _matrix()
    c = V.var_contributions(m, W, confidence=0.99, horizon=5)
    assert c.var == pytest.approx(V.normal(m, W, confidence=0.99, horizon=5).var, rel=1e-12)
    assert c.component.sum() == pytest.approx(c.var, rel=1e-12)
    eps = 1e-6
    for i in range(len(W)):
        up, down = W.copy(), W.copy()
        up[i] += eps
        down[i] -= eps
        fd = (
            V.normal(m, up, confidence=0.99, horizon=5).var
            - V.normal(m, down, confidence=0.99, horizon=5).var
        ) / (2 * eps)
        assert c.marginal[i] == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": 0.95, "horizon": 0}, "horizon"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(V.VarInputError, match=message):
        V.historical(_matrix(), W, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_named() -> None:
    with pytest.raises(V.VarInputError, match="3 weights for 4 assets"):
        V.normal(_matrix(), W[:3], confidence=0.95)
    with pytest.raises(V.VarInputError, match="unknown VaR method"):
        V.compute("garch", _matrix(), W, confidence=0.95)
    with pytest.raises(V.VarInputError, match="at least"):
        V.historical(np.array([0.01]), confidence=0.95)
    with pytest.raises(V.VarInputError, match="-100%"):
        V.normal(np.array([0.01, -1.0, 0.02]), confidence=0.95)
