"""The training pipeline's steps (``pipeline.train`` runs them): progress reporting, data
validation, feature engineering with the label and the hold-out split, the purged-CV trainer, and
model validation. ``pipeline``'s docstring says what each step does."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml import labels as lab
from algotrendy.engine.ml.evaluate import previous_direction, report
from algotrendy.engine.ml.feature_specs import FeaturePlan
from algotrendy.engine.ml.features import compute
from algotrendy.engine.ml.models import SEQUENCE_TYPES, make_model, sequence_length
from algotrendy.engine.ml.validation import embargo_bars, purged_kfold

if TYPE_CHECKING:
    from algotrendy.engine.ml.pipeline import TrainingConfig

STEPS: tuple[str, ...] = (
    "DataValidation",
    "FeatureEngineering",
    "FeatureSelection",
    "HyperparameterOptimization",
    "ModelTraining",
    "ModelValidation",
    "ModelDeployment",
)
MIN_SAMPLES = 200
"""Fewest labelled samples (training part and hold-out together) ``train`` accepts."""

Progress = Callable[[str, float], None]
I64 = npt.NDArray[np.int64]


def _positive(model: Any, X: F64) -> F64:
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    col = list(np.asarray(model.classes_)).index(1)
    out: F64 = np.ascontiguousarray(proba[:, col])
    return out


def _positive_at(model: Any, X: F64, rows: I64, cols: I64) -> F64:
    """``P(class 1)`` of ``rows`` of ``X``. A sequence model's window of the first rows reads up to
    ``seq_len - 1`` rows of ``X`` just before them (features only, all earlier in time) when
    ``rows`` are consecutive and those rows are complete, as a live window does, instead of the
    zero padding a bare block starts with. Row-wise models read only ``rows``."""
    lead_max = min(sequence_length(model) - 1, int(rows[0])) if len(rows) else 0
    if lead_max <= 0 or not np.all(np.diff(rows) == 1):
        return _positive(model, X[np.ix_(rows, cols)])
    before = X[np.ix_(np.arange(rows[0] - lead_max, rows[0]), cols)]
    complete = np.isfinite(before).all(axis=1)
    lead = lead_max if complete.all() else lead_max - 1 - int(np.flatnonzero(~complete)[-1])
    block = X[np.ix_(np.arange(rows[0] - lead, rows[-1] + 1), cols)]
    return _positive(model, block)[lead:]


# ---- progress -----------------------------------------------------------------------------------


class _Reporter:
    """Maps (step, fraction of the step) to a fraction of the whole run, weighted by rough cost
    in model fits, and calls the callback with non-decreasing values."""

    def __init__(self, config: TrainingConfig, callback: Progress | None) -> None:
        k = config.cv_splits
        tuned = config.optimize_trials > 0
        cost = {
            "DataValidation": 0.02,
            "FeatureEngineering": 0.2,
            "FeatureSelection": {"none": 0.0, "mdi": 1.0, "permutation": k + 1.0}[config.selection],
            "HyperparameterOptimization": float(config.optimize_trials * k),
            "ModelTraining": 1.25,
            "ModelValidation": 0.2 if tuned else k + 0.2,
            "ModelDeployment": 0.0,
        }
        total = sum(cost.values())
        self.start: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        acc = 0.0
        for step in STEPS:
            self.start[step] = acc / total
            self.weight[step] = cost[step] / total
            acc += cost[step]
        self.callback = callback
        self.last = 0.0

    def at(self, step: str, within: float) -> None:
        value = 1.0 if step == STEPS[-1] else min(1.0, self.start[step] + self.weight[step] * within)
        self.last = max(self.last, value)
        if self.callback is not None:
            self.callback(step, self.last)

    def done(self, step: str) -> None:
        self.at(step, 1.0)


# ---- steps ----------------------------------------------------------------------------------------


def _validate_bars(bars: Bars, plan: FeaturePlan, config: TrainingConfig) -> None:
    n = len(bars)
    need = plan.warmup + config.label.horizon + MIN_SAMPLES
    if n < need:
        raise ValueError(
            f"bars: need at least {need} bars (feature warm-up {plan.warmup} + label horizon "
            f"{config.label.horizon} + {MIN_SAMPLES} samples), got {n}"
        )
    ts = np.asarray(bars.ts, dtype=np.int64)
    d = np.diff(ts)
    if np.any(d == 0):
        i = int(np.flatnonzero(d == 0)[0]) + 1
        raise ValueError(f"bars.ts: duplicated timestamp at index {i} (ts {int(ts[i])})")
    if np.any(d < 0):
        i = int(np.flatnonzero(d < 0)[0]) + 1
        raise ValueError(f"bars.ts: not increasing at index {i} (ts {int(ts[i])} after {int(ts[i - 1])})")
    c = np.asarray(bars.close, dtype=np.float64)
    bad = ~(np.isfinite(c) & (c > 0))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"bars.close: not a finite positive price at index {i} ({c[i]!r})")


@dataclass(frozen=True, slots=True)
class _Data:
    X: F64  # (n_bars, n_features), NaN in the warm-up
    feature_ok: npt.NDArray[np.bool_]
    y: F64  # (n_bars,) 1/0/NaN
    t1: I64  # (n_bars,) label end per bar (for an unlabelled bar: where its label would have ended)
    fwd: F64  # (n_bars,) the labelled return (for the IC)
    split: int  # first bar of the hold-out
    train: I64  # training sample bar indices (t0)
    holdout: I64  # hold-out sample bar indices (t0)
    weight: F64  # uniqueness weights of the training samples, scaled to mean 1 (0: unlabelled)
    uniqueness: float  # their mean before scaling (AFML's bagging sample fraction)

    @property
    def holdout_scored(self) -> npt.NDArray[np.bool_]:
        """Which hold-out samples have a label (the others: a sequence model's context rows)."""
        return ~np.isnan(self.y[self.holdout])


def _engineer(bars: Bars, plan: FeaturePlan, config: TrainingConfig) -> _Data:
    """Features, labels and the samples. A row-wise model's samples are the labelled bars. A
    sequence model (``models.SEQUENCE_TYPES``) reads windows of consecutive bars, as a live window
    does, so its samples are every bar with features: a bar whose label is undecided (a dead zone,
    a time-limit barrier) is a sample of weight 0, read as context and never scored."""
    n = len(bars)
    X = compute(bars, plan).values
    feature_ok = np.all(np.isfinite(X), axis=1)
    close = np.asarray(bars.close, dtype=np.float64)
    spec = config.label
    if spec.kind == "direction":
        y = lab.direction(close, spec.horizon, spec.dead_zone)
        t1 = lab.event_ends(n, spec.horizon)
        fwd = lab.forward_returns(close, spec.horizon)
    else:
        tb = lab.triple_barrier(
            close,
            horizon=spec.horizon,
            profit_take=spec.profit_take,
            stop_loss=spec.stop_loss,
            volatility=lab.ewm_volatility(close, span=spec.vol_span),
            high=bars.high,
            low=bars.low,
        )
        y = np.where(tb.label > 0, 1.0, np.where(tb.label < 0, 0.0, np.nan))
        t1 = np.where(tb.t1 >= 0, tb.t1, lab.event_ends(n, spec.horizon))  # unresolved: the time limit
        fwd = tb.ret
    usable = np.flatnonzero(feature_ok)
    if len(usable) == 0:
        raise ValueError("bars: no bar has every feature defined (too few bars, or NaN in the data)")
    first = int(usable[0])
    split = first + math.floor((n - first) * (1.0 - config.test_fraction))
    labelled = feature_ok & ~np.isnan(y)
    samples = feature_ok if config.model_type in SEQUENCE_TYPES else labelled
    idx = np.arange(n, dtype=np.int64)
    train = idx[samples & (idx < split) & (t1 < split)]
    holdout = idx[samples & (idx >= split)]
    n_train, n_holdout = int(labelled[train].sum()), int(labelled[holdout].sum())
    need_train = max(MIN_SAMPLES // 2, 10 * config.cv_splits)
    if n_train < need_train or n_holdout < 10:
        raise ValueError(
            f"bars: too few labelled samples ({n_train} for training, {n_holdout} held out; "
            f"need {need_train} and 10): more bars, a smaller dead zone or another label"
        )
    scored = labelled[train]
    if len(np.unique(y[train][scored])) < 2:
        raise ValueError("label: the training part holds a single class")
    w = np.zeros(len(train))
    w[scored] = lab.uniqueness_weights(train[scored], t1[train][scored], split)
    u = float(w[scored].mean())
    return _Data(X, feature_ok, y, t1, fwd, split, train, holdout, w / u, u)


class _Trainer:
    """Fits and cross-validates models of one type on the training part. ``scored`` marks the
    samples with a label: every metric reads those only (the others are a sequence model's
    weight-0 context rows, ``_engineer``)."""

    def __init__(self, data: _Data, config: TrainingConfig) -> None:
        self.config = config
        self.t0 = data.train
        self.t1 = data.t1[data.train]
        self.scored = ~np.isnan(data.y[data.train])
        self.y = np.nan_to_num(data.y[data.train]).astype(np.int64)
        self.w = data.weight
        self.uniqueness = data.uniqueness
        self.X_all = data.X[data.train]
        self.splits = list(purged_kfold(self.t0, self.t1, config.cv_splits, config.embargo))
        for train_idx, _ in self.splits:
            if len(np.unique(self.y[train_idx][self.scored[train_idx]])) < 2:
                raise ValueError(
                    "cv_splits: a training fold holds a single class; use fewer folds or more data"
                )

    def make(self, params: Mapping[str, Any], rows: I64 | None = None) -> Any:
        t0 = self.t0 if rows is None else self.t0[rows]
        t1 = self.t1 if rows is None else self.t1[rows]
        c = self.config
        return make_model(
            c.model_type, params, seed=c.seed, n_jobs=c.n_jobs, spans=(t0, t1), embargo=c.embargo
        )

    def fit(self, params: Mapping[str, Any], cols: I64, rows: I64 | None = None) -> Any:
        X = self.X_all[:, cols] if rows is None else self.X_all[np.ix_(rows, cols)]
        y = self.y if rows is None else self.y[rows]
        w = self.w if rows is None else self.w[rows]
        model = self.make(params, rows)
        model.fit(X, y, sample_weight=w)
        return model

    def cv_proba(self, params: Mapping[str, Any], cols: I64, on_fold: Callable[[int], None]) -> F64:
        out = np.full(len(self.y), np.nan)
        for k, (tr, te) in enumerate(self.splits):
            model = self.fit(params, cols, tr)
            out[te] = _positive_at(model, self.X_all, te, cols)
            on_fold(k + 1)
        return out


def _range(ts: npt.NDArray[np.int64], t0: I64, t1: I64) -> dict[str, int]:
    end = int(t1.max())
    return {
        "first_index": int(t0[0]),
        "last_index": int(t0[-1]),
        "start_ts": int(ts[t0[0]]),
        "end_ts": int(ts[t0[-1]]),
        "label_end_index": end,
        "label_end_ts": int(ts[end]),
        "n_samples": len(t0),
    }


def _p_bars(data: _Data, model: Any, cols: I64, start: int, stop: int) -> F64:
    """The model's probability at every bar of ``[start, stop)`` with all features (else NaN)."""
    out = np.full(stop - start, np.nan)
    ok = np.flatnonzero(data.feature_ok[start:stop])
    if len(ok):
        out[ok] = _positive_at(model, data.X, ok + start, cols)
    return out


def _validate_model(
    bars: Bars, data: _Data, tr: _Trainer, model: Any, cols: I64, cv_p: F64, config: TrainingConfig
) -> dict[str, Any]:
    close = np.asarray(bars.close, dtype=np.float64)
    s = tr.scored
    rate = float(tr.y[s].mean())
    costs: dict[str, Any] = {
        "threshold_long": config.threshold_long,
        "threshold_short": config.threshold_short,
        "fee_rate": config.fee_rate,
        "slippage": config.slippage,
    }
    # CV: out-of-fold probabilities of the training samples, traded over the training bars
    first, last = int(tr.t0[0]), int(tr.t0[-1])
    cv_bars = np.full(last - first + 1, np.nan)
    cv_bars[tr.t0 - first] = cv_p
    cv = report(
        tr.y[s],
        cv_p[s],
        forward_ret=data.fwd[tr.t0[s]],
        prev_direction=previous_direction(close, tr.t0[s]),
        train_positive_rate=rate,
        bars=bars.slice(first, last + 1),
        p_bars=cv_bars,
        **costs,
    )
    # hold-out: the final model on the block it never saw, traded to the end of the data
    hold = data.holdout
    p_hold = _positive_at(model, data.X, hold, cols)
    hs = data.holdout_scored
    hold, p_hold = hold[hs], p_hold[hs]
    n = len(bars)
    holdout = report(
        data.y[hold],
        p_hold,
        forward_ret=data.fwd[hold],
        prev_direction=previous_direction(close, hold),
        train_positive_rate=rate,
        bars=bars.slice(data.split, n),
        p_bars=_p_bars(data, model, cols, data.split, n),
        **costs,
    )
    return {
        "cv": cv,
        "holdout": holdout,
        "train_positive_rate": rate,
        "n_train": int(s.sum()),
        "n_holdout": len(hold),
        "cv_splits": config.cv_splits,
        "embargo_bars": embargo_bars(config.embargo, tr.t0, tr.t1),
    }
