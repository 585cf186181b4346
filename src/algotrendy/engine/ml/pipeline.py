"""The training pipeline: bars and a ``TrainingConfig`` in, a packaged ``TrainedModel`` out.

    from algotrendy.engine.ml.pipeline import TrainingConfig, LabelSpec, train

    config = TrainingConfig(features="standard", label=LabelSpec("direction", horizon=1),
                            model_type="lightgbm", optimize_trials=20, seed=7)
    trained = train(bars, config, progress=lambda step, done: print(step, f"{done:.0%}"))
    trained.metrics["holdout"]["model"]["accuracy"]; trained.predict_proba_row(row)

Seven steps, in order (``STEPS``); ``progress(step, fraction_overall)`` is called after each one
and inside the long ones (per CV fold, per Optuna trial), with fractions that never decrease and
end at exactly 1.0. An exception raised by ``progress`` (a cancelled job) stops the training.

1. **DataValidation**: enough bars for the features' warm-up, the label horizon and a minimum of
   samples; timestamps strictly increasing (no duplicates); closes finite and positive. A
   ``ValueError`` names what is wrong (``bars.ts``, ``bars.close``, ``bars``).
2. **FeatureEngineering**: ``features.compute`` (point in time: row ``t`` uses bars ``0..t``),
   the label (``direction`` over ``horizon`` bars with a dead zone, or ``triple_barrier``; 1 = up,
   0 = down, flat or undecided labels dropped), rows with a NaN feature (warm-up) or no label
   dropped. A sequence model (``lstm``) reads windows of consecutive bars, so for it the bars
   without a label stay in as samples of weight 0: context for the windows, never scored or
   counted in a metric. Then the split: the bars after the warm-up are cut at ``1 - test_fraction``; the
   **hold-out** is every sample from there to the end (a single block, never shuffled); the
   **training part** is every sample whose label is settled before the hold-out's first bar
   (``t1 < split``: labels that run into the hold-out are purged). Uniqueness weights (AFML 4.4,
   scaled to mean 1) come from the training labels alone.
3. **FeatureSelection** (training part only): ``none``; ``mdi``: the top ``select_k`` features by
   mean decrease in impurity of a random forest with ``max_features=1`` (AFML 8.3: one feature per
   split, so correlated features do not mask each other), fitted once, in sample, as MDI is
   defined; ``permutation``: the top ``select_k`` by purged-CV permutation importance (AFML's MDA):
   for each purged fold the configured model is fitted and each feature column of the test fold
   permuted (seeded); importance = mean increase of the log loss.
4. **HyperparameterOptimization** (training part only; skipped when ``optimize_trials`` is 0):
   Optuna's TPE sampler, seeded, ``optimize_trials`` trials over ``models.SPACES`` (the user's
   ``hyperparams`` stay fixed), each scored by purged k-fold CV: pooled out-of-fold log loss
   (minimized) or AUC (maximized), see ``optimize_metric``.
5. **ModelTraining**: the model with the chosen parameters fitted on the whole training part with
   the uniqueness weights.
6. **ModelValidation**: out-of-fold probabilities of the training part by purged k-fold CV (the
   best trial's when Optuna ran: the same folds and parameters), and the hold-out block predicted
   by the model of step 5, which never saw it. Both scored by ``evaluate.report`` against naive
   baselines, and the hold-out's signals (and the CV's) backtested against buy-and-hold with costs.
7. **ModelDeployment**: the ``TrainedModel``: fitted model, feature names (canonical spec strings:
   ``features.compute_last(bars, trained.feature_spec)`` gives the row the model takes), label
   spec, data ranges, metrics, parameters. No I/O: the caller stores it (it pickles).

Purged k-fold everywhere (``validation.purged_kfold``, ``cv_splits`` folds, ``embargo`` bars or a
fraction of the bars covered): labels overlap their neighbours, shuffled k-fold would leak.
Deterministic given ``seed`` (models run on ``n_jobs`` fixed threads). Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml.feature_specs import FeatureError, FeaturePlan, parse
from algotrendy.engine.ml.models import MODEL_TYPES, validate_params
from algotrendy.engine.ml.selection import _optimize, _select
from algotrendy.engine.ml.steps import (
    MIN_SAMPLES,
    STEPS,
    Progress,
    _engineer,
    _positive,
    _range,
    _Reporter,
    _Trainer,
    _validate_bars,
    _validate_model,
)

__all__ = [
    "MIN_SAMPLES",
    "STEPS",
    "LabelSpec",
    "Progress",
    "TrainedModel",
    "TrainingConfig",
    "train",
]
Selection = Literal["none", "permutation", "mdi"]


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return (
        isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)
    )


def _need(ok: bool, field_name: str, what: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{field_name} must be {what}, got {value!r}")


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What to predict (``labels``): ``direction`` of the ``horizon``-bar forward return (moves
    within ``dead_zone``, a simple return, are dropped), or ``triple_barrier`` (barriers at
    ``profit_take``/``stop_loss`` times the EWM volatility of ``vol_span`` bars, touched on the
    bars' high/low, time barrier ``horizon`` bars ahead). Either way 1 = up, 0 = down."""

    kind: Literal["direction", "triple_barrier"] = "direction"
    horizon: int = 1
    dead_zone: float = 0.0
    profit_take: float = 2.0
    stop_loss: float = 2.0
    vol_span: int = 100

    def __post_init__(self) -> None:
        _need(
            self.kind in ("direction", "triple_barrier"),
            "label.kind",
            "'direction' or 'triple_barrier'",
            self.kind,
        )
        _need(
            _is_int(self.horizon) and 1 <= self.horizon <= 10_000,
            "label.horizon",
            "an integer in [1, 10000]",
            self.horizon,
        )
        _need(
            _is_num(self.dead_zone) and 0 <= self.dead_zone < 1,
            "label.dead_zone",
            "a number in [0, 1)",
            self.dead_zone,
        )
        for name in ("profit_take", "stop_loss"):
            v = getattr(self, name)
            _need(_is_num(v) and 0 <= v <= 1000, f"label.{name}", "a number in [0, 1000] (0 disables it)", v)
        _need(
            _is_int(self.vol_span) and 1 <= self.vol_span <= 100_000,
            "label.vol_span",
            "an integer >= 1",
            self.vol_span,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything ``train`` needs besides the bars. Checked on construction: a bad value raises
    ``ValueError`` naming its field (``label.horizon``, ``hyperparams.num_leaves`` ...)."""

    features: str | tuple[str, ...] = "standard"
    """A feature set name (``minimal``/``standard``/``extended``) or a list of spec strings/sets."""
    label: LabelSpec = field(default_factory=LabelSpec)
    model_type: str = "lightgbm"
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    """Fixed parameters of ``model_type`` (``models.PARAMS``); the rest default or are searched."""
    optimize_trials: int = 0
    """Optuna trials; 0 = no search (the defaults and ``hyperparams``)."""
    optimize_metric: Literal["log_loss", "auc"] = "log_loss"
    selection: Selection = "none"
    select_k: int = 20
    cv_splits: int = 5
    embargo: float = 0.01
    """Bars after each CV test block not trained on: an int number of bars, or a float in [0, 1)
    as a fraction of the training part's bars."""
    test_fraction: float = 0.2
    seed: int = 0
    n_jobs: int = 1
    threshold_long: float = 0.55
    threshold_short: float | None = None
    fee_rate: float = 0.001
    slippage: float = 0.0005

    def __post_init__(self) -> None:
        feats = self.features
        if not isinstance(feats, str):
            if not isinstance(feats, Sequence) or not all(isinstance(x, str) for x in feats):
                raise ValueError(f"features must be a set name or a list of feature specs, got {feats!r}")
            object.__setattr__(self, "features", tuple(feats))
        try:
            parse(self.features)
        except FeatureError as e:
            raise ValueError(f"features: {e}") from None
        if isinstance(self.label, Mapping):
            object.__setattr__(self, "label", _label_from(self.label))
        _need(isinstance(self.label, LabelSpec), "label", "a LabelSpec", self.label)
        _need(self.model_type in MODEL_TYPES, "model_type", f"one of {list(MODEL_TYPES)}", self.model_type)
        _need(isinstance(self.hyperparams, Mapping), "hyperparams", "a mapping", self.hyperparams)
        object.__setattr__(self, "hyperparams", dict(self.hyperparams))
        validate_params(self.model_type, self.hyperparams)
        _need(_is_int(self.optimize_trials) and 0 <= self.optimize_trials <= 10_000,
              "optimize_trials", "an integer in [0, 10000]", self.optimize_trials)  # fmt: skip
        _need(
            self.optimize_metric in ("log_loss", "auc"),
            "optimize_metric",
            "'log_loss' or 'auc'",
            self.optimize_metric,
        )
        _need(
            self.selection in ("none", "permutation", "mdi"),
            "selection",
            "'none', 'permutation' or 'mdi'",
            self.selection,
        )
        _need(_is_int(self.select_k) and self.select_k >= 1, "select_k", "an integer >= 1", self.select_k)
        n_feats = len(parse(self.features).specs)
        if self.selection != "none" and self.select_k > n_feats:
            raise ValueError(f"select_k must be at most the {n_feats} features, got {self.select_k}")
        _need(
            _is_int(self.cv_splits) and 2 <= self.cv_splits <= 20,
            "cv_splits",
            "an integer in [2, 20]",
            self.cv_splits,
        )
        emb = self.embargo
        ok = (_is_int(emb) and emb >= 0) or (isinstance(emb, float) and 0.0 <= emb < 1.0)
        _need(ok, "embargo", "an int >= 0 (bars) or a float in [0, 1) (a fraction)", emb)
        _need(_is_num(self.test_fraction) and 0.05 <= self.test_fraction <= 0.5,
              "test_fraction", "a number in [0.05, 0.5]", self.test_fraction)  # fmt: skip
        _need(_is_int(self.seed) and 0 <= self.seed < 2**31, "seed", "an integer in [0, 2**31)", self.seed)
        _need(
            _is_int(self.n_jobs) and 1 <= self.n_jobs <= 256, "n_jobs", "an integer in [1, 256]", self.n_jobs
        )
        _need(_is_num(self.threshold_long) and 0 <= self.threshold_long <= 1,
              "threshold_long", "a probability in [0, 1]", self.threshold_long)  # fmt: skip
        ts = self.threshold_short
        _need(ts is None or (_is_num(ts) and 0 <= ts < self.threshold_long),
              "threshold_short", "None or a probability below threshold_long", ts)  # fmt: skip
        for name in ("fee_rate", "slippage"):
            v = getattr(self, name)
            _need(_is_num(v) and 0 <= v < 0.1, name, "a number in [0, 0.1)", v)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """From a JSON-like dict (``label`` as a dict); an unknown key raises ``ValueError``."""
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ValueError(f"{key} is not a training setting (allowed: {sorted(names)})")
        kw = dict(data)
        if "label" in kw and isinstance(kw["label"], Mapping):
            kw["label"] = _label_from(kw["label"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``from_dict`` round-trips it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["features"] = self.features if isinstance(self.features, str) else list(self.features)
        out["label"] = self.label.to_dict()
        out["hyperparams"] = dict(self.hyperparams)
        return out


def _label_from(data: Mapping[str, Any]) -> LabelSpec:
    names = {f.name for f in fields(LabelSpec)}
    for key in data:
        if key not in names:
            raise ValueError(f"label.{key} is not a label setting (allowed: {sorted(names)})")
    return LabelSpec(**data)


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model with everything needed to use it and to judge it (picklable, no I/O)."""

    model: Any
    """The fitted sklearn-compatible classifier (``predict_proba``)."""
    model_type: str
    params: dict[str, Any]
    """The full parameters it was fitted with (``models.validate_params`` form)."""
    feature_names: tuple[str, ...]
    """The model's input columns, in order: canonical feature spec strings (after selection)."""
    candidate_features: tuple[str, ...]
    """Every feature considered (before selection)."""
    label: LabelSpec
    config: TrainingConfig
    train_range: dict[str, int]
    """The training part: sample bar indices and timestamps (``first_index``, ``last_index``,
    ``start_ts``, ``end_ts``), the last bar any training label read (``label_end_index``/``_ts``),
    ``n_samples``."""
    holdout_range: dict[str, int]
    """The hold-out block: ``split_index`` (its first bar), its samples' indices/timestamps,
    ``n_samples``, ``n_bars`` (to the end of the data)."""
    metrics: dict[str, Any]
    """``{"cv": evaluate.report(...), "holdout": evaluate.report(...), ...}``, JSON-ready."""
    feature_importance: dict[str, float] | None
    optimization: dict[str, Any] | None
    warmup: int
    """Leading bars without every feature (``features.warmup``) of ``feature_names``."""
    window: int
    """Bars ``features.compute_last`` reads for one row of ``feature_names``."""

    @property
    def feature_spec(self) -> tuple[str, ...]:
        """What to pass to ``features.compute``/``compute_last`` for the model's input."""
        return self.feature_names

    @property
    def plan(self) -> FeaturePlan:
        return parse(self.feature_names)

    def predict_proba(self, X: npt.ArrayLike) -> F64:
        """``P(up)`` for each row of ``X`` (columns as ``feature_names``)."""
        return _positive(self.model, np.asarray(X, dtype=np.float64))

    def predict_proba_row(self, features_row: npt.ArrayLike) -> float:
        """``P(up)`` for one row (``compute_last(bars, feature_spec)``); NaN if a value is NaN."""
        row = np.asarray(features_row, dtype=np.float64).reshape(1, -1)
        if row.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got {row.shape[1]}")
        if not np.all(np.isfinite(row)):
            return math.nan
        return float(_positive(self.model, row)[0])

    def summary(self) -> dict[str, Any]:
        """Everything but the fitted model, JSON-ready (what the service stores next to it)."""
        return {
            "model_type": self.model_type,
            "params": self.params,
            "feature_names": list(self.feature_names),
            "candidate_features": list(self.candidate_features),
            "label": self.label.to_dict(),
            "config": self.config.to_dict(),
            "train_range": self.train_range,
            "holdout_range": self.holdout_range,
            "metrics": self.metrics,
            "feature_importance": self.feature_importance,
            "optimization": self.optimization,
            "warmup": self.warmup,
            "window": self.window,
        }


def train(bars: Bars, config: TrainingConfig, progress: Progress | None = None) -> TrainedModel:
    """Run the seven ``STEPS`` on ``bars`` (see the module docstring); returns the packaged model.
    Raises ``ValueError`` naming the problem for unusable bars or labels."""
    rep = _Reporter(config, progress)
    plan = parse(config.features)
    names = list(plan.names)

    _validate_bars(bars, plan, config)
    rep.done("DataValidation")

    data = _engineer(bars, plan, config)
    tr = _Trainer(data, config)
    rep.done("FeatureEngineering")

    cols, importance = _select(tr, names, rep)
    rep.done("FeatureSelection")

    params, cv_p, optimization = _optimize(tr, cols, rep)
    rep.done("HyperparameterOptimization")

    model = tr.fit(params, cols)
    rep.done("ModelTraining")

    if cv_p is None:
        k = len(tr.splits)
        cv_p = tr.cv_proba(params, cols, lambda f: rep.at("ModelValidation", f / (k + 0.2)))
    metrics = _validate_model(bars, data, tr, model, cols, cv_p, config)
    rep.done("ModelValidation")

    selected = tuple(names[j] for j in cols)
    sel_plan = parse(selected)
    ts = np.asarray(bars.ts, dtype=np.int64)
    hold = data.holdout[data.holdout_scored]
    holdout_range = {
        **_range(ts, hold, data.t1[hold]),
        "split_index": data.split,
        "n_bars": len(bars) - data.split,
    }
    trained = TrainedModel(
        model=model,
        model_type=config.model_type,
        params=params,
        feature_names=selected,
        candidate_features=tuple(names),
        label=config.label,
        config=config,
        train_range=_range(ts, tr.t0[tr.scored], tr.t1[tr.scored]),
        holdout_range=holdout_range,
        metrics=metrics,
        feature_importance=importance,
        optimization=optimization,
        warmup=sel_plan.warmup,
        window=sel_plan.window,
    )
    rep.done("ModelDeployment")
    return trained
