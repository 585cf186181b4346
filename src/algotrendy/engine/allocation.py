"""Portfolio allocation: long-only target weights from a history of returns (equal weight,
inverse volatility, equal risk contribution, minimum variance, maximum Sharpe ratio).

Input is a pandas ``DataFrame`` of **daily simple returns**, one column per symbol (column names
become the symbols, as ``str``). Rows with a NaN in any column are dropped first, so every
estimate rests on the days all symbols share. Output is a ``dict[str, float]`` in column order:
every weight is in ``[0, max_weight]`` and they sum to 1 (within 1e-9; the last step clips
solver noise below zero and renormalizes).

Conventions:

* **covariance**: the sample covariance (``ddof=1``) annualized by 252 trading days
  (PyPortfolioOpt's ``risk_models.sample_cov(returns, returns_data=True)``). The scale does not
  change any weight here, but it makes the figures in the tests comparable.
* **expected returns** (``max_sharpe`` only): PyPortfolioOpt's ``mean_historical_return`` with
  its defaults, the geometric (compounded) annual return ``prod(1 + r) ** (252 / n) - 1``;
  ``risk_free_rate`` is annual too, and at least one symbol must beat it.
* **inverse_volatility**: ``w_i ∝ 1 / sigma_i`` (daily sample standard deviations, ``ddof=1``).
* **risk_parity**: equal risk contribution, ``w_i (Sigma w)_i`` the same for every ``i``.
  Spinu's convex formulation (Spinu 2013, *An algorithm for computing risk parity weights*):
  ``x* = argmin 1/2 x' Sigma x - sum(b_i log x_i)`` over ``x > 0`` with budgets ``b_i = 1/n``
  satisfies ``x_i (Sigma x)_i = b_i``, so ``w = x / sum(x)`` has equal contributions. Solved
  with cvxpy (Clarabel) on the covariance divided by its mean variance (for conditioning; it
  only rescales ``x``), then polished by a few damped Newton steps on the same objective (the
  interior-point answer is good to ~1e-8; Newton makes the contributions equal to ~1e-15).
* **min_variance** / **max_sharpe**: PyPortfolioOpt's ``EfficientFrontier`` with
  ``weight_bounds=(0, max_weight)``: ``min_volatility()`` and ``max_sharpe(risk_free_rate)``.
* **max_weight** (default 1, must be in ``(0, 1]`` and ``n * max_weight >= 1``): a bound in the
  optimizer for ``min_variance`` / ``max_sharpe``; for the heuristic methods the weights above
  it are set to it and the excess is spread over the others in proportion to their weights,
  repeated until none is above it (so a capped ``risk_parity`` is no longer equal-risk).

Why libraries and our own code: PyPortfolioOpt is the maintained reference for the
mean-variance problems and cvxpy solves Spinu's problem robustly; the heuristics are a line
each. pypfopt and cvxpy are imported inside the functions that use them, so importing this
module (and so starting the server) stays fast.

Bad input raises ``ValueError`` naming the offending field or symbol (``returns``,
``returns['X']``, ``max_weight``, ``risk_free_rate``, ``method``), which the API reports as 422.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from algotrendy.core.market import F64

TRADING_DAYS = 252
METHODS = ("equal_weight", "inverse_volatility", "risk_parity", "min_variance", "max_sharpe")
_ZERO_VOL = 1e-12
"""A daily standard deviation at or below this is a constant series (zero variance)."""


def _check_symbols(symbols: Sequence[str], field: str) -> list[str]:
    names = [str(s) for s in symbols]
    if not names:
        raise ValueError(f"{field}: at least one symbol is needed")
    seen: set[str] = set()
    for s in names:
        if s in seen:
            raise ValueError(f"{field}: symbol {s!r} appears twice")
        seen.add(s)
    return names


def _max_weight(max_weight: float | None, n: int) -> float:
    if max_weight is None:
        return 1.0
    mw = float(max_weight)
    if not math.isfinite(mw) or mw <= 0.0 or mw > 1.0:
        raise ValueError(f"max_weight must be in (0, 1], got {max_weight}")
    if mw * n < 1.0 - 1e-12:
        raise ValueError(
            f"max_weight {mw} is infeasible for {n} symbols: weights summing to 1 need n * max_weight >= 1"
        )
    return mw


def clean_returns(returns: pd.DataFrame) -> pd.DataFrame:
    """The returns the methods use: string columns, rows with any NaN dropped, checked (at least
    2 shared days, finite values, no zero-variance column)."""
    if not isinstance(returns, pd.DataFrame):
        raise ValueError("returns must be a pandas DataFrame with one column per symbol")
    names = _check_symbols(list(returns.columns), "returns")
    r = returns.copy()
    r.columns = names
    for s in names:
        try:
            r[s] = pd.to_numeric(r[s], errors="raise").astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"returns[{s!r}] must hold numbers") from None
    r = r.dropna(how="any")
    if len(r) < 2:
        raise ValueError(
            f"returns: at least 2 days on which every symbol has a return are needed, got {len(r)}"
        )
    values = r.to_numpy(np.float64)
    for j, s in enumerate(names):
        col = values[:, j]
        if not np.all(np.isfinite(col)):
            raise ValueError(f"returns[{s!r}] holds an infinite value")
        if float(np.std(col, ddof=1)) <= _ZERO_VOL:
            raise ValueError(f"returns[{s!r}] has zero variance: its weight is undefined")
    return r


def _finish(symbols: Sequence[str], w: F64) -> dict[str, float]:
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = float(w.sum())
    if not math.isfinite(total) or total <= 0.0:
        raise ValueError("returns: the optimizer found no portfolio (all weights zero)")
    w = w / total
    return {s: float(x) for s, x in zip(symbols, w, strict=True)}


def cap_weights(weights: F64, max_weight: float) -> F64:
    """Weights (normalized to sum 1) with none above ``max_weight``: capped ones are set to it and
    the excess is spread over the others in proportion to their weights, until none exceeds it."""
    raw = np.asarray(weights, dtype=np.float64)
    base: F64 = raw / float(raw.sum())
    if max_weight >= 1.0:
        return base
    w: F64 = base.copy()
    fixed = np.zeros(w.size, dtype=bool)
    for _ in range(w.size):
        over = ~fixed & (w > max_weight)
        if not np.any(over):
            break
        fixed |= over
        free = ~fixed
        w[fixed] = max_weight
        left = 1.0 - max_weight * int(fixed.sum())
        mass = float(base[free].sum())
        if mass > 0.0:
            w[free] = base[free] / mass * left
    return w


def _annual_cov(r: pd.DataFrame) -> F64:
    out: F64 = r.cov(ddof=1).to_numpy(np.float64) * TRADING_DAYS
    return out


def equal_weight(symbols: Sequence[str], max_weight: float | None = None) -> dict[str, float]:
    """``1/n`` each."""
    names = _check_symbols(symbols, "symbols")
    _max_weight(max_weight, len(names))
    return _finish(names, np.ones(len(names)))


def inverse_volatility(returns: pd.DataFrame, max_weight: float | None = None) -> dict[str, float]:
    """``w_i ∝ 1 / sigma_i`` (sample standard deviation of the daily returns)."""
    r = clean_returns(returns)
    mw = _max_weight(max_weight, r.shape[1])
    vol = r.std(ddof=1).to_numpy(np.float64)
    return _finish(list(r.columns), cap_weights(1.0 / vol, mw))


def _spinu(cov: F64, budgets: F64) -> F64:
    """``argmin 1/2 x' S x - b' log x`` (``x > 0``) for ``S = cov / mean(diag(cov))``."""
    import cvxpy

    cp: Any = cvxpy  # cvxpy's annotations are partial
    s = cov / float(np.mean(np.diag(cov)))
    s = (s + s.T) / 2.0
    values, vectors = np.linalg.eigh(s)
    factor = vectors * np.sqrt(np.clip(values, 0.0, None))  # s == factor @ factor.T
    n = s.shape[0]
    x = cp.Variable(n)
    objective = cp.Minimize(0.5 * cp.sum_squares(factor.T @ x) - budgets @ cp.log(x))
    problem = cp.Problem(objective)
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.error.SolverError as e:
        raise ValueError(f"returns: the risk parity solver failed ({e})") from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
        raise ValueError(f"returns: the risk parity problem has no solution (solver status {problem.status})")
    xv = np.clip(np.asarray(x.value, dtype=np.float64).ravel(), 1e-12, None)
    # Damped Newton polish: gradient S x - b / x, Hessian S + diag(b / x^2) (positive definite).
    for _ in range(50):
        grad = s @ xv - budgets / xv
        if float(np.max(np.abs(grad))) < 1e-14:
            break
        hess = s + np.diag(budgets / xv**2)
        step = np.linalg.solve(hess, -grad)
        t = 1.0
        while np.any(xv + t * step <= 0.0):
            t /= 2.0
        xv = xv + t * step
    return xv


def risk_parity(returns: pd.DataFrame, max_weight: float | None = None) -> dict[str, float]:
    """Equal risk contribution: ``w_i (Sigma w)_i`` equal for every symbol (Spinu, via cvxpy)."""
    r = clean_returns(returns)
    n = r.shape[1]
    mw = _max_weight(max_weight, n)
    if n == 1:
        return _finish(list(r.columns), np.ones(1))
    x = _spinu(_annual_cov(r), np.full(n, 1.0 / n))
    return _finish(list(r.columns), cap_weights(x, mw))


def _frontier(mu: Any, cov: Any, mw: float) -> Any:
    from pypfopt import EfficientFrontier

    return EfficientFrontier(mu, cov, weight_bounds=(0.0, mw))


def _solve(ef: Any, call: str, **kwargs: float) -> F64:
    from pypfopt.exceptions import OptimizationError

    try:
        getattr(ef, call)(**kwargs)
    except OptimizationError as e:
        raise ValueError(f"returns: the {call} optimization failed ({e})") from None
    out: F64 = np.asarray(ef.weights, dtype=np.float64)
    return out


def min_variance(returns: pd.DataFrame, max_weight: float | None = None) -> dict[str, float]:
    """The long-only minimum-variance portfolio (PyPortfolioOpt ``min_volatility``)."""
    from pypfopt import risk_models

    r = clean_returns(returns)
    mw = _max_weight(max_weight, r.shape[1])
    if r.shape[1] == 1:
        return _finish(list(r.columns), np.ones(1))
    cov = risk_models.sample_cov(r, returns_data=True, frequency=TRADING_DAYS)
    return _finish(list(r.columns), _solve(_frontier(None, cov, mw), "min_volatility"))


def max_sharpe(
    returns: pd.DataFrame, risk_free_rate: float = 0.0, max_weight: float | None = None
) -> dict[str, float]:
    """The long-only tangency portfolio (PyPortfolioOpt ``max_sharpe``; annual figures)."""
    from pypfopt import expected_returns, risk_models

    rf = float(risk_free_rate)
    if not math.isfinite(rf):
        raise ValueError(f"risk_free_rate must be a finite annual rate, got {risk_free_rate}")
    r = clean_returns(returns)
    mw = _max_weight(max_weight, r.shape[1])
    mu = expected_returns.mean_historical_return(r, returns_data=True, frequency=TRADING_DAYS)
    if float(mu.max()) <= rf:
        raise ValueError(
            f"risk_free_rate {rf} is at or above every symbol's expected annual return "
            f"(best {float(mu.max()):.6g}): no portfolio has a positive Sharpe ratio"
        )
    if r.shape[1] == 1:
        return _finish(list(r.columns), np.ones(1))
    cov = risk_models.sample_cov(r, returns_data=True, frequency=TRADING_DAYS)
    return _finish(list(r.columns), _solve(_frontier(mu, cov, mw), "max_sharpe", risk_free_rate=rf))


def allocate(
    method: str,
    returns: pd.DataFrame,
    *,
    max_weight: float | None = None,
    risk_free_rate: float = 0.0,
) -> dict[str, float]:
    """One entry point for the five methods (``method`` by name). The returns are checked for
    every method, ``equal_weight`` included, so the same input fails the same way whichever is
    asked for."""
    if method not in METHODS:
        raise ValueError(f"unknown allocation method {method!r}: one of {', '.join(METHODS)}")
    if method == "equal_weight":
        return equal_weight(list(clean_returns(returns).columns), max_weight)
    if method == "inverse_volatility":
        return inverse_volatility(returns, max_weight)
    if method == "risk_parity":
        return risk_parity(returns, max_weight)
    if method == "min_variance":
        return min_variance(returns, max_weight)
    return max_sharpe(returns, risk_free_rate, max_weight)
