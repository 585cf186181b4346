"""engine.allocation on the real daily closes of AAPL, MSFT and GOOG (their common dates): equal
risk contributions, the closed-form minimum-variance portfolio, no random long-only portfolio
beating the optimizers, inverse volatility by hand, and the input errors."""

from __future__ import annotations

import subprocess
import sys
from functools import cache

import numpy as np
import pandas as pd
import pytest

from algotrendy.engine import allocation as A
from tests.golden.indicator_samples import SAMPLES

NAMES = ("AAPL", "MSFT", "GOOG")


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


def _cov() -> np.ndarray:
    return _returns().cov(ddof=1).to_numpy() * 252


def _mu() -> np.ndarray:
    r = _returns()
    return ((1 + r).prod() ** (252 / len(r)) - 1).to_numpy()


def _vec(w: dict[str, float]) -> np.ndarray:
    assert list(w) == list(NAMES)
    return np.array([w[n] for n in NAMES])


def _random_portfolios(n: int, max_weight: float = 1.0) -> np.ndarray:
    w = np.random.default_rng(7).dirichlet(np.ones(len(NAMES)), size=n)
    return w[(w <= max_weight).all(axis=1)]


def _check_weights(w: dict[str, float], max_weight: float = 1.0) -> None:
    v = _vec(w)
    assert abs(v.sum() - 1.0) < 1e-9
    assert (v >= 0).all() and (v <= max_weight + 1e-9).all()


def test_importing_the_module_does_not_import_the_solvers() -> None:
    code = (
        "import sys, algotrendy.engine.allocation; "
        "assert 'pypfopt' not in sys.modules and 'cvxpy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_equal_weight() -> None:
    assert A.equal_weight(["A", "B", "C", "D"]) == {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    assert A.allocate("equal_weight", _returns()) == pytest.approx(dict.fromkeys(NAMES, 1 / 3))


def test_inverse_volatility_by_hand() -> None:
    r = _returns()
    sd = [float(np.sqrt(((r[n] - r[n].mean()) ** 2).sum() / (len(r) - 1))) for n in NAMES]
    inv = [1 / s for s in sd]
    expected = {n: x / sum(inv) for n, x in zip(NAMES, inv, strict=True)}
    w = A.inverse_volatility(r)
    _check_weights(w)
    assert w == pytest.approx(expected, rel=1e-12)
    # a tiny example: vols 1% and 2% give 2/3 and 1/3
    small = pd.DataFrame({"X": [0.01, -0.01, 0.01, -0.01], "Y": [0.02, -0.02, 0.02, -0.02]})
    assert A.inverse_volatility(small) == pytest.approx({"X": 2 / 3, "Y": 1 / 3})


def test_risk_parity_contributions_are_equal() -> None:
    w = A.allocate("risk_parity", _returns())
    _check_weights(w)
    v = _vec(w)
    rc = v * (_cov() @ v)
    assert np.max(np.abs(rc / rc.mean() - 1)) < 1e-4
    # not just inverse volatility (the assets are correlated differently)
    assert not np.allclose(v, _vec(A.inverse_volatility(_returns())), atol=1e-4)


def test_min_variance_is_the_closed_form_and_beats_random_portfolios() -> None:
    cov = _cov()
    x = np.linalg.solve(cov, np.ones(len(NAMES)))
    closed = x / x.sum()
    assert (closed > 0).all()  # so the long-only optimum is the unconstrained one
    w = A.allocate("min_variance", _returns())
    _check_weights(w)
    v = _vec(w)
    assert v == pytest.approx(closed, abs=1e-5)
    var = v @ cov @ v
    samples = _random_portfolios(5000)
    assert (np.einsum("ij,jk,ik->i", samples, cov, samples) >= var - 1e-12).all()


def test_min_variance_with_a_cap() -> None:
    w = A.min_variance(_returns(), max_weight=0.4)
    _check_weights(w, 0.4)
    cov, v = _cov(), _vec(w)
    assert v[1] == pytest.approx(0.4, abs=1e-6)  # MSFT (0.55 uncapped) is held at the cap
    samples = _random_portfolios(60000, 0.4)
    assert len(samples) > 1000
    assert (np.einsum("ij,jk,ik->i", samples, cov, samples) >= v @ cov @ v - 1e-10).all()


def _sharpe(w: np.ndarray, rf: float) -> np.ndarray:
    cov, mu = _cov(), _mu()
    w = np.atleast_2d(w)
    return (w @ mu - rf) / np.sqrt(np.einsum("ij,jk,ik->i", w, cov, w))


@pytest.mark.parametrize(("rf", "cap"), [(0.0, 1.0), (0.02, 1.0), (0.0, 0.5)])
def test_max_sharpe_beats_random_portfolios(rf: float, cap: float) -> None:
    w = A.allocate("max_sharpe", _returns(), risk_free_rate=rf, max_weight=cap)
    _check_weights(w, cap)
    best = float(_sharpe(_vec(w), rf)[0])
    samples = _random_portfolios(20000, cap)
    assert (_sharpe(samples, rf) <= best + 1e-9).all()


def test_max_weight_caps_the_heuristics() -> None:
    for method in ("equal_weight", "inverse_volatility", "risk_parity"):
        w = A.allocate(method, _returns(), max_weight=0.34)
        _check_weights(w, 0.34)
    assert A.cap_weights(np.array([0.7, 0.2, 0.1]), 0.4) == pytest.approx([0.4, 0.4, 0.2])


def test_nan_rows_are_dropped() -> None:
    r = _returns().copy()
    r.iloc[:10, 0] = np.nan
    assert A.inverse_volatility(r) == pytest.approx(A.inverse_volatility(_returns().iloc[10:]))


def test_errors_name_the_field() -> None:
    r = _returns()
    with pytest.raises(ValueError, match="unknown allocation method 'nope'"):
        A.allocate("nope", r)
    with pytest.raises(ValueError, match="at least 2 days"):
        A.allocate("risk_parity", r.iloc[:1])
    gappy = pd.DataFrame({"A": [0.01, np.nan, 0.02], "B": [np.nan, 0.01, np.nan]})
    with pytest.raises(ValueError, match="at least 2 days"):
        A.allocate("equal_weight", gappy)
    flat = r.assign(CASH=0.0)
    for method in A.METHODS:
        with pytest.raises(ValueError, match=r"returns\['CASH'\] has zero variance"):
            A.allocate(method, flat)
    with pytest.raises(ValueError, match=r"max_weight 0\.3 is infeasible for 3 symbols"):
        A.allocate("min_variance", r, max_weight=0.3)
    with pytest.raises(ValueError, match="max_weight must be in"):
        A.allocate("max_sharpe", r, max_weight=0.0)
    with pytest.raises(ValueError, match="risk_free_rate"):
        A.allocate("max_sharpe", r, risk_free_rate=0.5)
    with pytest.raises(ValueError, match="symbol 'A' appears twice"):
        A.equal_weight(["A", "A"])
