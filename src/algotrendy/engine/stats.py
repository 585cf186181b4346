"""How much to believe a Sharpe ratio: the probabilistic and the deflated Sharpe ratio.

Every Sharpe ratio here is **per bar** (not annualized): ``mean(r) / std(r, ddof=1)`` of the
per-bar simple returns ``r``. To use an annualized figure divide it by ``sqrt(periods_per_year)``
(and a variance of annualized Sharpe ratios by ``periods_per_year``).

Formulas (``SR`` the observed per-bar Sharpe ratio, ``T`` the number of returns, ``g3`` their
skewness, ``g4`` their kurtosis, *not* excess: 3 for a normal distribution, ``Phi`` the standard
normal CDF):

* Probabilistic Sharpe ratio, the probability that the true Sharpe ratio exceeds ``SR*``
  (Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2), 2012,
  eq. 9, after Mertens 2002 for the standard error of ``SR`` under non-normal returns)::

      PSR(SR*) = Phi( (SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2) )

* Minimum track record length, the ``T`` at which ``PSR(SR*)`` reaches ``confidence`` (same
  paper, eq. 11)::

      MinTRL = 1 + (1 - g3 * SR + (g4 - 1) / 4 * SR^2) * (Phi^-1(confidence) / (SR - SR*))^2

* Expected maximum Sharpe ratio of ``N`` independent trials whose Sharpe ratios have mean ``E``
  and variance ``V`` (Bailey & López de Prado, "The Deflated Sharpe Ratio", Journal of Portfolio
  Management 40(5), 2014, eq. 2, using the false strategy theorem's approximation of the
  expected maximum of ``N`` normals; ``gamma`` is the Euler-Mascheroni constant)::

      SR0 = E + sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

* Deflated Sharpe ratio: ``DSR = PSR(SR0)`` computed on the selected (best) trial's returns.

The paper's worked example (annualized SR 2.5 over T = 1250 daily returns, skewness -3,
kurtosis 10, N = 100 trials with annualized Sharpe variance 0.5, 250 days a year) gives
SR0 = 0.1132 per day and DSR = 0.9004; ``tests/unit/engine/test_stats.py`` reproduces it.

Skewness and kurtosis are the biased (population, Fisher-Pearson) moment estimators, as
``scipy.stats.skew`` / ``scipy.stats.kurtosis`` compute them by default and as the papers' code
does. The normal CDF and its inverse come from the standard library (``statistics.NormalDist``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from algotrendy.core.market import F64

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()
_TINY_VAR = 1e-28


def _clean(returns: F64, name: str = "returns") -> F64:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return r


def skewness(returns: F64) -> float:
    """Biased sample skewness ``m3 / m2**1.5`` (``scipy.stats.skew`` default); NaN when the
    returns are fewer than two or constant."""
    r = _clean(returns)
    if len(r) < 2:
        return math.nan
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 <= _TINY_VAR:
        return math.nan
    return float(np.mean(d**3)) / math.pow(m2, 1.5)


def kurtosis(returns: F64, *, excess: bool = True) -> float:
    """Biased sample kurtosis ``m4 / m2**2``, minus 3 when ``excess`` (``scipy.stats.kurtosis``
    default, normal = 0); NaN when the returns are fewer than two or constant."""
    r = _clean(returns)
    if len(r) < 2:
        return math.nan
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 <= _TINY_VAR:
        return math.nan
    k = float(np.mean(d**4)) / (m2 * m2)
    return k - 3.0 if excess else k


def sharpe_per_bar(returns: F64) -> float:
    """``mean(r) / std(r, ddof=1)``; NaN when fewer than two returns or zero dispersion."""
    r = _clean(returns)
    if len(r) < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-14:
        return math.nan
    return float(np.mean(r)) / sd


def _sr_variance_factor(sharpe: float, skew: float, kurt: float) -> float:
    v = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe * sharpe
    if not v > 0.0:
        raise ValueError(
            f"1 - skew*SR + (kurtosis-1)/4*SR^2 = {v} is not positive (skew={skew}, kurtosis={kurt}); "
            "kurtosis must be the non-excess kurtosis (3 for normal returns)"
        )
    return v


def psr_from_moments(
    *, sharpe: float, n_obs: int, skew: float, kurtosis: float, benchmark_sharpe: float = 0.0
) -> float:
    """PSR from summary statistics: ``sharpe`` per bar, ``n_obs`` returns, ``skew``, and
    ``kurtosis`` non-excess (normal = 3). Returns a probability in [0, 1]."""
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    for name, x in (("sharpe", sharpe), ("skew", skew), ("kurtosis", kurtosis)):
        if not math.isfinite(x):
            raise ValueError(f"{name} must be finite, got {x}")
    if not math.isfinite(benchmark_sharpe):
        raise ValueError(f"benchmark_sharpe must be finite, got {benchmark_sharpe}")
    v = _sr_variance_factor(sharpe, skew, kurtosis)
    z = (sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(v)
    return _N.cdf(z)


def _moments(returns: F64) -> tuple[float, int, float, float]:
    r = _clean(returns)
    if len(r) < 3:
        raise ValueError(f"returns: need at least 3 returns, got {len(r)}")
    sr = sharpe_per_bar(r)
    if math.isnan(sr):
        raise ValueError("returns have zero dispersion: the Sharpe ratio is undefined")
    return sr, len(r), skewness(r), kurtosis(r, excess=False)


def probabilistic_sharpe_ratio(returns: F64, *, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe ratio of ``returns`` exceeds ``benchmark_sharpe``
    (per bar), accounting for sample length, skewness and kurtosis (Bailey & López de Prado 2012)."""
    sr, n, g3, g4 = _moments(returns)
    return psr_from_moments(sharpe=sr, n_obs=n, skew=g3, kurtosis=g4, benchmark_sharpe=benchmark_sharpe)


def minimum_track_record_length(
    returns: F64, *, benchmark_sharpe: float = 0.0, confidence: float = 0.95
) -> float:
    """Number of returns needed for ``PSR(benchmark_sharpe)`` to reach ``confidence``, given the
    observed Sharpe ratio, skewness and kurtosis; ``inf`` when the observed Sharpe ratio does not
    exceed the benchmark."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    sr, _, g3, g4 = _moments(returns)
    if sr <= benchmark_sharpe:
        return math.inf
    v = _sr_variance_factor(sr, g3, g4)
    return 1.0 + v * (_N.inv_cdf(confidence) / (sr - benchmark_sharpe)) ** 2


def expected_max_sharpe(*, n_trials: int, sharpe_variance: float, mean_sharpe: float = 0.0) -> float:
    """Expected maximum per-bar Sharpe ratio among ``n_trials`` independent trials whose Sharpe
    ratios have variance ``sharpe_variance`` and mean ``mean_sharpe`` (Bailey & López de Prado
    2014, eq. 2). With one trial there is no selection: ``mean_sharpe``."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0.0):
        raise ValueError(f"sharpe_variance must be finite and >= 0, got {sharpe_variance}")
    if not math.isfinite(mean_sharpe):
        raise ValueError(f"mean_sharpe must be finite, got {mean_sharpe}")
    if n_trials == 1:
        return mean_sharpe
    z1 = _N.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return mean_sharpe + math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(
    returns: F64, *, n_trials: int, sharpe_variance: float, mean_sharpe: float = 0.0
) -> float:
    """Probability that the selected strategy's true Sharpe ratio is positive after correcting
    for selection among ``n_trials`` (Bailey & López de Prado 2014): ``PSR(SR0)`` of the winner's
    per-bar ``returns`` with ``SR0 = expected_max_sharpe(...)``. ``sharpe_variance`` and
    ``mean_sharpe`` describe the per-bar Sharpe ratios of all trials."""
    sr0 = expected_max_sharpe(n_trials=n_trials, sharpe_variance=sharpe_variance, mean_sharpe=mean_sharpe)
    return probabilistic_sharpe_ratio(returns, benchmark_sharpe=sr0)


def dsr_from_moments(
    *,
    sharpe: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    sharpe_variance: float,
    mean_sharpe: float = 0.0,
) -> float:
    """The deflated Sharpe ratio from summary statistics (per-bar ``sharpe``, non-excess
    ``kurtosis``)."""
    sr0 = expected_max_sharpe(n_trials=n_trials, sharpe_variance=sharpe_variance, mean_sharpe=mean_sharpe)
    return psr_from_moments(sharpe=sharpe, n_obs=n_obs, skew=skew, kurtosis=kurtosis, benchmark_sharpe=sr0)
