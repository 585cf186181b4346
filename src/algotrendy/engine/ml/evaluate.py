"""Honest evaluation of a direction classifier: out-of-sample scores, naive baselines, a backtest.

    from algotrendy.engine.ml.evaluate import classification_scores, baselines, signal_backtest, report

Every trained model (``pipeline.train``) is scored twice, on out-of-sample predictions only: the
purged cross-validation predictions of the training part, and the untouched hold-out block at the
end of the data. Each is set next to naive baselines on the **same samples**:

* ``majority``: always the class that was more frequent in the training labels, as the constant
  probability ``P(up)`` of the training part (its Brier score is the "climatology" reference of
  the Brier skill score);
* ``previous_direction``: "the next move repeats the last bar's": 1 if ``close[t0] > close[t0-1]``.
  A hard 0/1 forecast: it has no meaningful log loss (None).

and, on the same bars, by a backtest of the simplest strategy trading the model's
probabilities through the vectorized engine (``engine.vector.run``): long while ``p > 0.55``,
flat otherwise (optionally short while ``p < threshold_short``), decided at a bar's close and
filled at the next bar's open, with fees and slippage, against buy-and-hold of the same bars with
the same costs. Accuracy is not money: a model can be right 52 % of the time and lose after costs
(or be right 48 % and gain, if it is right on the big moves).

**What to expect.** A claim like "80 % accuracy on next-bar direction" is not realistic for a
liquid market. Next-bar returns are close to unpredictable: if any public signal called the
direction 80 % of the time, trading it would earn far more than the costs and the edge would be
arbitraged away. Out of sample, with leakage controlled (purged CV, a hold-out block at the end,
point-in-time features), expect accuracy within a few points of the majority-class baseline
(about 50-55 %), AUC 0.50-0.55, and information coefficients of a few hundredths. Figures far
above that almost always mean a leak: shuffled cross-validation on overlapping labels, features
computed with future bars, a hold-out that was used for selection or tuning, or a label that
overlaps its own features. Measured with the default LightGBM on the sample data (``standard``
features, direction of the next bar, purged 5-fold CV, last 20 % held out, fee 0.1 % and slippage
0.05 % per fill; ``tests/unit/engine/ml/test_evaluate.py`` and ``bench/ml_train_bench.py``):

* AAPL daily 2004-2018 (3,379 bars; hold-out 2015-06 .. 2018-01, 661 samples): hold-out
  accuracy 0.525 (balanced 0.520), AUC 0.563, IC 0.125 (standard error about 0.04 on 661
  samples); majority-class baseline 0.514, previous-bar direction 0.484. On the purged CV of the
  training part the same model reached accuracy 0.511, *below* the majority baseline (0.531),
  and AUC 0.515. Traded on the hold-out: +18.9 % against +37.5 % for buy-and-hold.
* BTCUSDT 1-minute (66,087 bars, 2023-03 .. 2023-05; hold-out 12,848 samples): hold-out accuracy
  0.530, AUC 0.545, IC 0.053; majority 0.498, previous-bar direction 0.511 (CV: 0.542, AUC 0.559).
  A small edge (CV and hold-out agree) that the costs erase: long while p > 0.55 made
  1,523 round trips at about 0.3 % each and lost 99 % of the capital; buy-and-hold made +0.45 %.

Conventions: ``y`` is 0/1 (1 = up), ``p`` the predicted probability of 1; samples where ``p`` is
NaN are not scored. Classification is at ``p >= 0.5``. Values that are undefined (AUC or balanced
accuracy with one class, the IC of a constant forecast) are None, never NaN: the report is stored
as strict JSON. scikit-learn and scipy are imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.metrics import Metric, compute_metrics
from algotrendy.engine.vector import VectorConfig, run

__all__ = [
    "DEFAULT_FEE_RATE",
    "DEFAULT_SLIPPAGE",
    "SCORE_NAMES",
    "baselines",
    "classification_scores",
    "information_coefficient",
    "previous_direction",
    "report",
    "signal_backtest",
]

Score = float | None
SCORE_NAMES: tuple[str, ...] = (
    *("n", "positive_rate", "predicted_positive_rate", "accuracy", "balanced_accuracy"),
    *("auc", "log_loss", "brier", "ic"),
)
DEFAULT_FEE_RATE = 0.001
"""0.1 % of the notional per fill (a retail taker fee on a crypto venue; high for US stocks)."""
DEFAULT_SLIPPAGE = 0.0005
"""0.05 % of the price per fill, against the trader."""


def _num(x: float) -> Score:
    return float(x) if math.isfinite(x) else None


def _arrays(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[F64, F64]:
    yy = np.asarray(y, dtype=np.float64)
    pp = np.asarray(p, dtype=np.float64)
    if yy.ndim != 1 or yy.shape != pp.shape:
        raise ValueError(
            f"y and p must be one-dimensional and of the same length, got {yy.shape} and {pp.shape}"
        )
    known = ~np.isnan(yy)
    if not np.all(np.isin(yy[known], (0.0, 1.0))):
        raise ValueError("y must hold 0/1 labels")
    if np.any((pp < 0) | (pp > 1)):
        raise ValueError("p must be probabilities in [0, 1]")
    return yy, pp


def information_coefficient(p: npt.ArrayLike, forward_ret: npt.ArrayLike) -> Score:
    """Spearman rank correlation of the forecast and the realized forward return (pairs with a
    NaN left out); None with fewer than 3 pairs or a constant side."""
    from scipy.stats import spearmanr

    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(forward_ret, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("p and forward_ret must have the same length")
    m = np.isfinite(a) & np.isfinite(b)
    if m.sum() < 3 or np.ptp(a[m]) == 0 or np.ptp(b[m]) == 0:
        return None
    return _num(float(spearmanr(a[m], b[m]).statistic))


def classification_scores(
    y: npt.ArrayLike, p: npt.ArrayLike, forward_ret: npt.ArrayLike | None = None
) -> dict[str, Score]:
    """Scores of probabilities ``p`` of class 1 against 0/1 labels ``y`` (pairs with a NaN left
    out): ``n``, ``positive_rate`` (share of 1 in y), ``predicted_positive_rate`` (share with
    ``p >= 0.5``), ``accuracy``, ``balanced_accuracy``, ``auc``, ``log_loss``, ``brier``, ``ic``
    (Spearman of p and ``forward_ret``; None without it)."""
    from sklearn import metrics

    yy, pp = _arrays(y, p)
    m = ~(np.isnan(yy) | np.isnan(pp))
    yb = yy[m].astype(np.int64)
    ps = pp[m]
    n = len(yb)
    out: dict[str, Score] = dict.fromkeys(SCORE_NAMES)
    out["n"] = float(n)
    if n == 0:
        return out
    pred = (ps >= 0.5).astype(np.int64)
    both = len(np.unique(yb)) == 2
    out["positive_rate"] = float(yb.mean())
    out["predicted_positive_rate"] = float(pred.mean())
    out["accuracy"] = float(metrics.accuracy_score(yb, pred))
    out["balanced_accuracy"] = float(metrics.balanced_accuracy_score(yb, pred)) if both else None
    out["auc"] = float(metrics.roc_auc_score(yb, ps)) if both else None
    out["log_loss"] = _num(float(metrics.log_loss(yb, ps, labels=[0, 1])))
    out["brier"] = float(metrics.brier_score_loss(yb, ps, pos_label=1))
    if forward_ret is not None:
        f = np.asarray(forward_ret, dtype=np.float64)
        if f.shape != yy.shape:
            raise ValueError("forward_ret must have the same length as y")
        out["ic"] = information_coefficient(ps, f[m])
    return out


def previous_direction(close: npt.ArrayLike, t0: npt.ArrayLike) -> F64:
    """1.0 where ``close[t0] > close[t0 - 1]`` (the bar that ended at the sample went up), else
    0.0; NaN at ``t0 == 0`` (no previous bar). The ``previous_direction`` baseline's forecast."""
    c = np.asarray(close, dtype=np.float64)
    i = np.asarray(t0, dtype=np.int64)
    out = np.full(len(i), np.nan)
    ok = i >= 1
    out[ok] = (c[i[ok]] > c[i[ok] - 1]).astype(np.float64)
    return out


def baselines(
    y: npt.ArrayLike,
    prev_direction: npt.ArrayLike,
    *,
    forward_ret: npt.ArrayLike | None = None,
    train_positive_rate: float | None = None,
) -> dict[str, dict[str, Score]]:
    """The naive forecasts scored on the same samples as a model (``classification_scores``):

    * ``majority``: the constant ``train_positive_rate`` (share of 1 in the training labels; the
      share in ``y`` itself when not given, which flatters the baseline slightly);
    * ``previous_direction``: ``prev_direction`` (0/1 per sample, see ``previous_direction``),
      scored where it is known; its ``log_loss`` is None (a hard forecast has none to speak of).
    """
    yy = np.asarray(y, dtype=np.float64)
    prev = np.asarray(prev_direction, dtype=np.float64)
    if prev.shape != yy.shape:
        raise ValueError("prev_direction must have the same length as y")
    if train_positive_rate is None:
        known = yy[~np.isnan(yy)]
        rate = float(known.mean()) if len(known) else 0.5
    else:
        rate = float(train_positive_rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("train_positive_rate must be in [0, 1]")
    majority = classification_scores(yy, np.full(len(yy), rate), forward_ret)
    previous = classification_scores(yy, prev, forward_ret)
    previous["log_loss"] = None
    return {"majority": majority, "previous_direction": previous}


def signal_backtest(
    bars: Bars,
    p: npt.ArrayLike,
    *,
    threshold_long: float = 0.55,
    threshold_short: float | None = None,
    fee_rate: float = DEFAULT_FEE_RATE,
    slippage: float = DEFAULT_SLIPPAGE,
    initial_capital: float = 100_000.0,
    periods_per_year: float | None = None,
) -> dict[str, Any]:
    """Backtest "long while p > threshold_long (short while p < threshold_short), else flat" on
    ``bars`` with the out-of-sample probabilities ``p`` (one per bar; NaN = no forecast = flat),
    all equity per position, through ``engine.vector.run``; and buy-and-hold (bought at the
    second bar's open, as a signal at the first close would be) on the same bars with the same
    costs. Returns both ``compute_metrics`` dicts, the excess total return and the settings."""
    pp = np.asarray(p, dtype=np.float64)
    n = len(bars)
    if pp.shape != (n,):
        raise ValueError(f"p has shape {pp.shape}, the bars have {n}")
    if n < 2:
        raise ValueError("the backtest needs at least two bars")
    if not 0.0 <= threshold_long <= 1.0:
        raise ValueError("threshold_long must be in [0, 1]")
    if threshold_short is not None and not 0.0 <= threshold_short < threshold_long:
        raise ValueError("threshold_short must be in [0, threshold_long)")
    cfg = VectorConfig(initial_capital=initial_capital, fee_rate=fee_rate, slippage=slippage)
    fraction = np.ones(n)
    long_entry = pp > threshold_long  # NaN compares False: no forecast, no position
    short_entry = pp < threshold_short if threshold_short is not None else np.zeros(n, dtype=np.bool_)
    strategy = run(bars, long_entry, ~long_entry, short_entry, ~short_entry, fraction, cfg)
    hold = np.zeros(n, dtype=np.bool_)
    hold[0] = True
    never = np.zeros(n, dtype=np.bool_)
    bh = run(bars, hold, never, never, never, fraction, cfg)
    m_strategy = compute_metrics(strategy, periods_per_year=periods_per_year)
    m_bh = compute_metrics(bh, periods_per_year=periods_per_year)
    excess: Metric = None
    if m_strategy["total_return"] is not None and m_bh["total_return"] is not None:
        excess = float(m_strategy["total_return"]) - float(m_bh["total_return"])
    return {
        "strategy": m_strategy,
        "buy_and_hold": m_bh,
        "excess_return": excess,
        "bars": n,
        "start_ts": int(bars.ts[0]),
        "end_ts": int(bars.ts[-1]),
        "signal_bars": int(np.count_nonzero(~np.isnan(pp))),
        "long_bars": int(np.count_nonzero(long_entry)),
        "short_bars": int(np.count_nonzero(short_entry)),
        "threshold_long": threshold_long,
        "threshold_short": threshold_short,
        "fee_rate": fee_rate,
        "slippage": slippage,
    }


def _diff(a: Score, b: Score) -> Score:
    return None if a is None or b is None else a - b


def report(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    forward_ret: npt.ArrayLike | None = None,
    prev_direction: npt.ArrayLike | None = None,
    train_positive_rate: float | None = None,
    bars: Bars | None = None,
    p_bars: npt.ArrayLike | None = None,
    threshold_long: float = 0.55,
    threshold_short: float | None = None,
    fee_rate: float = DEFAULT_FEE_RATE,
    slippage: float = DEFAULT_SLIPPAGE,
) -> dict[str, Any]:
    """One JSON-ready evaluation: ``model`` (``classification_scores``), ``baselines`` (when
    ``prev_direction`` is given), ``vs_baselines`` (accuracy over each baseline, the Brier skill
    score against the majority forecast ``1 - brier / brier_majority``) and ``backtest``
    (``signal_backtest`` of ``p_bars`` on ``bars``, when given)."""
    model = classification_scores(y, p, forward_ret)
    out: dict[str, Any] = {"model": model, "baselines": None, "vs_baselines": None, "backtest": None}
    if prev_direction is not None:
        yy, pp = _arrays(y, p)
        scored = ~np.isnan(pp)  # the baselines are scored on the model's samples
        prev = np.where(scored, np.asarray(prev_direction, dtype=np.float64), np.nan)
        f = (
            None
            if forward_ret is None
            else np.where(scored, np.asarray(forward_ret, dtype=np.float64), np.nan)
        )
        base = baselines(
            np.where(scored, yy, np.nan), prev, forward_ret=f, train_positive_rate=train_positive_rate
        )
        out["baselines"] = base
        maj, prv = base["majority"], base["previous_direction"]
        skill = None
        if model["brier"] is not None and maj["brier"]:
            skill = 1.0 - model["brier"] / maj["brier"]
        out["vs_baselines"] = {
            "accuracy_minus_majority": _diff(model["accuracy"], maj["accuracy"]),
            "accuracy_minus_previous_direction": _diff(model["accuracy"], prv["accuracy"]),
            "balanced_accuracy_minus_previous_direction": _diff(
                model["balanced_accuracy"], prv["balanced_accuracy"]
            ),
            "brier_skill_vs_majority": skill,
        }
    if bars is not None:
        if p_bars is None:
            raise ValueError("give p_bars (one probability per bar) with bars")
        out["backtest"] = signal_backtest(
            bars,
            p_bars,
            threshold_long=threshold_long,
            threshold_short=threshold_short,
            fee_rate=fee_rate,
            slippage=slippage,
        )
    return out
