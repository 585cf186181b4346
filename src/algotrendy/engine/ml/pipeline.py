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
   dropped. Then the split: the bars after the warm-up are cut at ``1 - test_fraction``; the
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml import labels as lab
from algotrendy.engine.ml.evaluate import previous_direction, report
from algotrendy.engine.ml.feature_specs import FeatureError, FeaturePlan, parse
from algotrendy.engine.ml.features import compute
from algotrendy.engine.ml.models import MODEL_TYPES, make_model, suggest, validate_params
from algotrendy.engine.ml.validation import embargo_bars, purged_kfold

__all__ = [
    "MIN_SAMPLES",
    "STEPS",
    "LabelSpec",
    "Progress",
    "TrainedModel",
    "TrainingConfig",
    "train",
]

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


def _positive(model: Any, X: F64) -> F64:
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    col = list(np.asarray(model.classes_)).index(1)
    out: F64 = np.ascontiguousarray(proba[:, col])
    return out


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
    t1: I64  # (n_bars,) label end per bar (valid where y is not NaN)
    fwd: F64  # (n_bars,) the labelled return (for the IC)
    split: int  # first bar of the hold-out
    train: I64  # training sample bar indices (t0)
    holdout: I64  # hold-out sample bar indices (t0)
    weight: F64  # uniqueness weights of the training samples, scaled to mean 1
    uniqueness: float  # their mean before scaling (AFML's bagging sample fraction)


def _engineer(bars: Bars, plan: FeaturePlan, config: TrainingConfig) -> _Data:
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
        t1 = tb.t1
        fwd = tb.ret
    usable = np.flatnonzero(feature_ok)
    if len(usable) == 0:
        raise ValueError("bars: no bar has every feature defined (too few bars, or NaN in the data)")
    first = int(usable[0])
    split = first + math.floor((n - first) * (1.0 - config.test_fraction))
    labelled = feature_ok & ~np.isnan(y)
    idx = np.arange(n, dtype=np.int64)
    train = idx[labelled & (idx < split) & (t1 < split)]
    holdout = idx[labelled & (idx >= split)]
    need_train = max(MIN_SAMPLES // 2, 10 * config.cv_splits)
    if len(train) < need_train or len(holdout) < 10:
        raise ValueError(
            f"bars: too few labelled samples ({len(train)} for training, {len(holdout)} held out; "
            f"need {need_train} and 10): more bars, a smaller dead zone or another label"
        )
    if len(np.unique(y[train])) < 2:
        raise ValueError("label: the training part holds a single class")
    w = lab.uniqueness_weights(train, t1[train], split)
    u = float(w.mean())
    return _Data(X, feature_ok, y, t1, fwd, split, train, holdout, w / u, u)


class _Trainer:
    """Fits and cross-validates models of one type on the training part."""

    def __init__(self, data: _Data, config: TrainingConfig) -> None:
        self.config = config
        self.t0 = data.train
        self.t1 = data.t1[data.train]
        self.y = data.y[data.train].astype(np.int64)
        self.w = data.weight
        self.uniqueness = data.uniqueness
        self.X_all = data.X[data.train]
        self.splits = list(purged_kfold(self.t0, self.t1, config.cv_splits, config.embargo))
        for train_idx, _ in self.splits:
            if len(np.unique(self.y[train_idx])) < 2:
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
            out[te] = _positive(model, self.X_all[np.ix_(te, cols)])
            on_fold(k + 1)
        return out


def _log_loss(y: npt.NDArray[np.int64], p: F64) -> float:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _auc(y: npt.NDArray[np.int64], p: F64) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def _select(tr: _Trainer, names: Sequence[str], rep: _Reporter) -> tuple[I64, dict[str, float] | None]:
    config = tr.config
    n_feat = len(names)
    all_cols = np.arange(n_feat, dtype=np.int64)
    if config.selection == "none":
        return all_cols, None
    if config.selection == "mdi":
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(
            n_estimators=100,
            max_features=1,
            min_samples_leaf=50,
            max_samples=min(1.0, max(0.05, tr.uniqueness)),
            random_state=config.seed,
            n_jobs=config.n_jobs,
        )
        forest.fit(tr.X_all, tr.y, sample_weight=tr.w)
        importance = np.asarray(forest.feature_importances_, dtype=np.float64)
    else:
        rng = np.random.default_rng(config.seed)
        gains = np.zeros(n_feat)
        k = len(tr.splits)
        for f, (train_idx, test_idx) in enumerate(tr.splits):
            model = tr.fit(config.hyperparams, all_cols, train_idx)
            X_test = tr.X_all[test_idx]
            y_test = tr.y[test_idx]
            base = _log_loss(y_test, _positive(model, X_test))
            for j in range(n_feat):
                shuffled = X_test.copy()
                shuffled[:, j] = rng.permutation(shuffled[:, j])
                gains[j] += _log_loss(y_test, _positive(model, shuffled)) - base
            rep.at("FeatureSelection", (f + 1) / (k + 1))
        importance = gains / k
    order = sorted(range(n_feat), key=lambda j: (-importance[j], j))
    cols = np.array(sorted(order[: config.select_k]), dtype=np.int64)
    return cols, {names[j]: float(importance[j]) for j in range(n_feat)}


def _optimize(
    tr: _Trainer, cols: I64, rep: _Reporter
) -> tuple[dict[str, Any], F64 | None, dict[str, Any] | None]:
    config = tr.config
    if config.optimize_trials == 0:
        return validate_params(config.model_type, config.hyperparams), None, None
    import optuna

    trials = config.optimize_trials
    k = len(tr.splits)
    maximize = config.optimize_metric == "auc"
    oos: dict[int, F64] = {}
    chosen: dict[int, dict[str, Any]] = {}

    def objective(trial: optuna.Trial) -> float:
        params = validate_params(config.model_type, suggest(trial, config.model_type, config.hyperparams))
        n = trial.number

        def fold(f: int) -> None:
            rep.at("HyperparameterOptimization", (n * k + f) / (trials * k))

        p = tr.cv_proba(params, cols, fold)
        oos[n], chosen[n] = p, params
        return _auc(tr.y, p) if maximize else _log_loss(tr.y, p)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=config.seed),
        )
        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = study.best_trial.number
    info = {
        "trials": trials,
        "metric": config.optimize_metric,
        "direction": "maximize" if maximize else "minimize",
        "best_trial": best,
        "best_value": float(study.best_value),
        "best_params": chosen[best],
        "values": [float(t.value) if t.value is not None else None for t in study.trials],
    }
    return chosen[best], oos[best], info


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
        out[ok] = _positive(model, data.X[np.ix_(ok + start, cols)])
    return out


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
    hold = data.holdout
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
        train_range=_range(ts, tr.t0, tr.t1),
        holdout_range=holdout_range,
        metrics=metrics,
        feature_importance=importance,
        optimization=optimization,
        warmup=sel_plan.warmup,
        window=sel_plan.window,
    )
    rep.done("ModelDeployment")
    return trained


def _validate_model(
    bars: Bars, data: _Data, tr: _Trainer, model: Any, cols: I64, cv_p: F64, config: TrainingConfig
) -> dict[str, Any]:
    close = np.asarray(bars.close, dtype=np.float64)
    rate = float(tr.y.mean())
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
        tr.y,
        cv_p,
        forward_ret=data.fwd[tr.t0],
        prev_direction=previous_direction(close, tr.t0),
        train_positive_rate=rate,
        bars=bars.slice(first, last + 1),
        p_bars=cv_bars,
        **costs,
    )
    # hold-out: the final model on the block it never saw, traded to the end of the data
    hold = data.holdout
    p_hold = _positive(model, data.X[np.ix_(hold, cols)])
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
        "n_train": len(tr.t0),
        "n_holdout": len(hold),
        "cv_splits": config.cv_splits,
        "embargo_bars": embargo_bars(config.embargo, tr.t0, tr.t1),
    }
