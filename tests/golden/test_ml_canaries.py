"""ML pipeline canaries: purged CV finds nothing in noise, finds a planted signal, labels real data.

Measured when written (LightGBM 100 trees, 15 leaves, seeds 0..9, 4,000 bars):

* random walk, shuffled KFold:   OOS AUC 0.618 .. 0.668 (the leak), mean 0.640
* random walk, PurgedKFold:      OOS AUC 0.470 .. 0.575, mean 0.508 (per-seed sd ~0.03: the labels
  overlap and the features are smooth, so the effective sample is a few hundred; hence the band is
  asserted on the mean over seeds)
* planted signal (beta = 1.5, seeds 0..2), PurgedKFold with uniqueness weights: AUC 0.699, 0.693,
  0.685; purged walk-forward 0.686, 0.683, 0.672
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algotrendy.engine.ml.labels import (
    PROFIT_TAKE,
    STOP_LOSS,
    TIME,
    direction,
    event_ends,
    ewm_volatility,
    triple_barrier,
    uniqueness_weights,
)
from algotrendy.engine.ml.validation import (
    PurgedKFold,
    cross_val_predict_proba,
    oos_scores,
    purged_walk_forward,
)
from tests.golden.indicator_samples import SAMPLES

N_BARS = 4_000
WINDOWS = (1, 2, 5, 10, 20, 50, 100)


def _lgbm() -> Callable[[], Any]:
    lgb = pytest.importorskip("lightgbm")

    def make() -> Any:
        return lgb.LGBMClassifier(
            n_estimators=100,
            num_leaves=15,
            learning_rate=0.05,
            min_child_samples=20,
            random_state=0,
            n_jobs=1,
            verbose=-1,
        )

    return make


def _past_returns(logp: np.ndarray, windows: tuple[int, ...]) -> np.ndarray:
    """Log return over the last ``w`` bars, ending at bar t (point in time: no data after t)."""
    cols = []
    for w in windows:
        f = np.full(len(logp), np.nan)
        f[w:] = logp[w:] - logp[:-w]
        cols.append(f)
    return np.column_stack(cols)


def _dataset(logp: np.ndarray, X: np.ndarray, horizon: int) -> tuple[np.ndarray, ...]:
    """Rows with complete features and a known label; spans ``[i, i + horizon]``."""
    y = direction(np.exp(logp), horizon)
    ok = ~np.isnan(y) & ~np.isnan(X).any(axis=1)
    t0 = np.flatnonzero(ok)
    return X[ok], y[ok], t0, event_ends(len(logp), horizon)[ok]


def test_random_walk_purged_cv_scores_chance_while_shuffled_kfold_leaks() -> None:
    """On a Gaussian random walk nothing is predictable, so an honest out-of-sample AUC is 0.5.

    Labels are the sign of the forward 10-bar return, made at every bar, so neighbours share 9 of
    their 10 returns; the features are past returns over overlapping windows up to 100 bars, so
    neighbours are also neighbours in feature space (the 50- and 100-bar windows move by one bar's
    return per bar). Shuffled k-fold puts a test row's neighbours in training: the trees look up
    the test row's own label through them (AUC ~0.64 here; AFML 7.2). Purged k-fold drops every
    training row whose label overlaps the test block, plus a 100-bar embargo after it (the longest
    look-back, so no training feature reads the test period) and the score falls back to chance.
    """
    from sklearn.model_selection import KFold

    make = _lgbm()
    shuffled, purged = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        logp = np.cumsum(rng.normal(0.0, 0.01, N_BARS))
        X, y, t0, t1 = _dataset(logp, _past_returns(logp, WINDOWS), horizon=10)
        p_shuffled = cross_val_predict_proba(make, X, y, KFold(5, shuffle=True, random_state=seed))
        p_purged = cross_val_predict_proba(make, X, y, PurgedKFold(5, embargo=100, t0=t0, t1=t1))
        shuffled.append(oos_scores(y, p_shuffled)["auc"])
        purged.append(oos_scores(y, p_purged)["auc"])
    print("random walk AUC shuffled", np.round(shuffled, 3), "purged", np.round(purged, 3))
    assert min(shuffled) > 0.55, shuffled
    assert abs(np.mean(purged) - 0.5) < 0.03, purged
    assert all(s > p for s, p in zip(shuffled, purged, strict=True))


def test_planted_signal_is_found_by_purged_cv() -> None:
    """Returns with a planted, moderate signal: feature ``x_t`` (iid N(0, 1)) adds ``beta * 0.01 / 5
    * x_t`` to each of the next 5 one-bar returns, on top of N(0, 0.01) noise, so the forward 5-bar
    return is ``0.01 * beta * x_t`` plus noise (correlation ~0.42 for beta = 1.5, partly masked by the
    neighbouring x's). Two pure-noise features and past returns ride along as distractors."""
    make = _lgbm()
    horizon, beta = 5, 1.5
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=N_BARS)
        planted = np.zeros(N_BARS)
        for k in range(1, horizon + 1):
            planted[k:] += x[:-k]
        logp = np.cumsum(rng.normal(0.0, 0.01, N_BARS) + beta * 0.01 / horizon * planted)
        feats = np.column_stack([x, rng.normal(size=N_BARS), rng.normal(size=N_BARS)])
        X = np.column_stack([feats, _past_returns(logp, (1, 5, 20))])
        X, y, t0, t1 = _dataset(logp, X, horizon)
        w = uniqueness_weights(t0, t1, N_BARS)
        cv = PurgedKFold(5, embargo=20, t0=t0, t1=t1)
        auc = oos_scores(y, cross_val_predict_proba(make, X, y, cv, sample_weight=w))["auc"]
        wf = list(purged_walk_forward(t0, t1, n_splits=4, min_train=1_000, embargo=20))
        p_wf = cross_val_predict_proba(make, X, y, wf)
        auc_wf = oos_scores(y, p_wf)["auc"]
        print(f"planted signal seed {seed}: purged k-fold AUC {auc:.3f}, walk-forward {auc_wf:.3f}")
        assert auc > 0.64, auc
        assert auc_wf > 0.62, auc_wf
        assert np.isnan(p_wf[:1_000]).all()


def test_triple_barrier_on_aapl_daily(record_property: Callable[[str, object], None]) -> None:
    df = pd.read_csv(SAMPLES / "AAPL_1d.csv")
    close, high, low = (df[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    n, horizon = len(close), 10
    vol = ewm_volatility(close, span=50, min_periods=20)
    tb = triple_barrier(
        close, horizon=horizon, profit_take=2.0, stop_loss=1.0, volatility=vol, high=high, low=low
    )
    v = tb.valid
    t0 = np.flatnonzero(v)
    t1 = tb.t1[v]
    # everything with volatility and a full horizon ahead is labelled
    assert v.sum() == np.sum(~np.isnan(vol[: n - horizon])) + np.sum(v[n - horizon :])
    assert ((t1 > t0) & (t1 <= t0 + horizon)).all()
    barrier, label, ret = tb.barrier[v], tb.label[v], tb.ret[v]
    assert (t1[barrier == TIME] == t0[barrier == TIME] + horizon).all()
    assert (label[barrier == PROFIT_TAKE] == 1).all()
    assert (label[barrier == STOP_LOSS] == -1).all()
    np.testing.assert_allclose(ret[barrier == PROFIT_TAKE], 2.0 * vol[t0][barrier == PROFIT_TAKE])
    # the touch really happened at t1 and not before
    pt = t0[barrier == PROFIT_TAKE]
    assert (high[tb.t1[pt]] >= close[pt] * (1 + 2.0 * vol[pt]) * (1 - 1e-12)).all()
    for i in pt[::50]:
        assert (high[i + 1 : tb.t1[i]] < close[i] * (1 + 2.0 * vol[i])).all()
        assert (low[i + 1 : tb.t1[i]] > close[i] * (1 - vol[i])).all()

    counts = {int(k): int(c) for k, c in zip(*np.unique(label, return_counts=True), strict=True)}
    by_barrier = {int(k): int(c) for k, c in zip(*np.unique(barrier, return_counts=True), strict=True)}
    record_property("label_counts", counts)
    record_property("barrier_counts", by_barrier)
    print("AAPL 1d triple barrier labels", counts, "barriers (1 pt, -1 sl, 0 time)", by_barrier)
    # every class occurs; a 1-vol stop is hit more often than a 2-vol profit-take
    assert counts[-1] > 0.2 * len(label)
    assert counts[1] > 0.2 * len(label)
    assert by_barrier[STOP_LOSS] > by_barrier[PROFIT_TAKE] > 0
    assert by_barrier[TIME] > 0

    u = uniqueness_weights(t0, t1, n)
    assert ((u > 0) & (u <= 1)).all()
    assert 1 / horizon < u.mean() < 1
