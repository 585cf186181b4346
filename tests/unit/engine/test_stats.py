"""engine.stats: PSR / DSR against the paper's worked example and an independent scipy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from algotrendy.engine.stats import (
    EULER_GAMMA,
    deflated_sharpe_ratio,
    dsr_from_moments,
    expected_max_sharpe,
    kurtosis,
    minimum_track_record_length,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    sharpe_per_bar,
    skewness,
)


def _fat_tailed_returns(seed: int = 11, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.0006 + 0.01 * rng.standard_t(5, size=n) - 0.004 * (rng.random(n) < 0.03)


# --------------------------------------------------------------------------- the paper's example


def test_dsr_paper_example() -> None:
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annualized
    # SR 2.5 over 5 years of daily returns (T = 1250, 250 days a year), skewness -3, kurtosis 10,
    # N = 100 trials whose annualized Sharpe ratios have variance 0.5. The paper reports
    # SR0 = 0.1132 (per day) and DSR = 0.9004.
    sr0 = expected_max_sharpe(n_trials=100, sharpe_variance=0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = dsr_from_moments(
        sharpe=2.5 / math.sqrt(250),
        n_obs=1250,
        skew=-3.0,
        kurtosis=10.0,
        n_trials=100,
        sharpe_variance=0.5 / 250,
    )
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_formula_with_scipy() -> None:
    v, n, mu = 0.003, 250, 0.01
    want = mu + math.sqrt(v) * (
        (1 - np.euler_gamma) * sps.norm.ppf(1 - 1 / n) + np.euler_gamma * sps.norm.ppf(1 - 1 / (n * math.e))
    )
    assert abs(EULER_GAMMA - np.euler_gamma) < 1e-15
    assert expected_max_sharpe(n_trials=n, sharpe_variance=v, mean_sharpe=mu) == pytest.approx(
        want, rel=1e-12
    )
    assert expected_max_sharpe(n_trials=1, sharpe_variance=v, mean_sharpe=mu) == mu


def test_expected_max_sharpe_approximates_the_max_of_normals() -> None:
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(n_trials=100, sharpe_variance=1.0) == pytest.approx(sims, rel=0.02)


# --------------------------------------------------------------------------- PSR on returns vs scipy


def _psr_scipy(r: np.ndarray, sr_star: float) -> float:
    sr = r.mean() / r.std(ddof=1)
    g3 = sps.skew(r)
    g4 = sps.kurtosis(r, fisher=False)
    z = (sr - sr_star) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(sps.norm.cdf(z))


@pytest.mark.parametrize("sr_star", [0.0, 0.02, 0.05])
def test_psr_matches_independent_scipy_computation(sr_star: float) -> None:
    r = _fat_tailed_returns()
    assert probabilistic_sharpe_ratio(r, benchmark_sharpe=sr_star) == pytest.approx(
        _psr_scipy(r, sr_star), rel=1e-10
    )


def test_dsr_is_psr_at_expected_max() -> None:
    r = _fat_tailed_returns()
    sr0 = expected_max_sharpe(n_trials=50, sharpe_variance=0.0004)
    got = deflated_sharpe_ratio(r, n_trials=50, sharpe_variance=0.0004)
    assert got == pytest.approx(_psr_scipy(r, sr0), rel=1e-10)
    # more trials -> higher bar -> lower confidence
    assert deflated_sharpe_ratio(r, n_trials=1000, sharpe_variance=0.0004) < got
    assert deflated_sharpe_ratio(r, n_trials=1, sharpe_variance=0.0004) == pytest.approx(
        probabilistic_sharpe_ratio(r), rel=1e-12
    )


def test_psr_normal_returns_reduces_to_classic_form() -> None:
    # skew 0, kurtosis 3: PSR = Phi(SR * sqrt(T-1) / sqrt(1 + SR^2 / 2))
    sr, t = 0.08, 500
    want = sps.norm.cdf(sr * math.sqrt(t - 1) / math.sqrt(1 + sr * sr / 2))
    assert psr_from_moments(sharpe=sr, n_obs=t, skew=0.0, kurtosis=3.0) == pytest.approx(want, rel=1e-12)


def test_min_track_record_length_reaches_confidence() -> None:
    r = _fat_tailed_returns()
    mintrl = minimum_track_record_length(r, benchmark_sharpe=0.01, confidence=0.9)
    sr, g3, g4 = sharpe_per_bar(r), skewness(r), kurtosis(r, excess=False)
    z = (sr - 0.01) * math.sqrt(mintrl - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert sps.norm.cdf(z) == pytest.approx(0.9, rel=1e-10)
    assert minimum_track_record_length(r, benchmark_sharpe=1.0) == math.inf


def test_moments_match_scipy() -> None:
    r = _fat_tailed_returns()
    assert skewness(r) == pytest.approx(sps.skew(r), rel=1e-10)
    assert kurtosis(r) == pytest.approx(sps.kurtosis(r), rel=1e-10)
    assert kurtosis(r, excess=False) == pytest.approx(sps.kurtosis(r, fisher=False), rel=1e-10)
    assert math.isnan(skewness(np.ones(10)))
    assert math.isnan(kurtosis(np.ones(10)))
    assert math.isnan(sharpe_per_bar(np.ones(10)))


# --------------------------------------------------------------------------- bad input


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(n_trials=0, sharpe_variance=0.1)
    with pytest.raises(ValueError, match="sharpe_variance"):
        expected_max_sharpe(n_trials=10, sharpe_variance=-0.1)
    with pytest.raises(ValueError, match="returns"):
        probabilistic_sharpe_ratio(np.array([0.01, 0.02]))
    with pytest.raises(ValueError, match="zero dispersion"):
        probabilistic_sharpe_ratio(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        probabilistic_sharpe_ratio(np.array([0.01, np.nan, 0.02, 0.0]))
    with pytest.raises(ValueError, match="kurtosis"):
        psr_from_moments(sharpe=1.0, n_obs=100, skew=3.0, kurtosis=1.0)
    with pytest.raises(ValueError, match="confidence"):
        minimum_track_record_length(_fat_tailed_returns(), confidence=1.0)
