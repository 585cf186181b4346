"""Feature importance of a trained model: the model's own split gain and mean |SHAP| on hold-out rows.

    X = holdout_matrix(bars, trained)          # hold-out rows' features (data the model never saw)
    imp = importance(trained, X, seed=0)       # Importance(gain=..., shap=..., method=...)
    imp.to_dict()                              # JSON-ready; every feature in feature_names order

Two views, because they answer different questions:

* ``gain``: what the fitted model relied on while training, from the library itself, as a share of
  the total (sums to 1; all 0 if the model never split). LightGBM: split gain; XGBoost:
  ``total_gain`` (features never split on count 0); CatBoost: ``PredictionValuesChange``; random
  forest: mean decrease in impurity (MDI, biased towards high-cardinality features); logistic:
  |coefficient| on the standardized inputs; voting: the members' shares averaged with the voting
  weights; stacking: the members' shares weighted by the share of |coefficient| the final logistic
  regression gives each member's probability.
* ``shap``: mean |SHAP value| per feature over hold-out rows (at most ``max_rows``, a seeded
  subsample), with the ``shap`` library: ``TreeExplainer`` (tree path dependent, exact) for
  LightGBM, XGBoost and CatBoost, which explains the **log-odds**, and for the random forest, which
  explains the **probability** of class 1; ``LinearExplainer`` for logistic (log-odds, on the
  scaler's output, which maps feature for feature onto the model's inputs; background: the rows
  explained); for voting and stacking, which have no exact explainer, ``PermutationExplainer`` on
  the ``P(up)`` function (probability) with a seeded background of at most 100 rows and one
  antithetic permutation per row (``2 * n_features + 1`` evaluations, each on the whole
  background). ``method`` records which was computed and in which units, so log-odds and
  probability figures are never compared by mistake.
* ``lstm`` (a sequence model: a prediction reads the last ``seq_len`` bars' features) has no split
  gain; its ``gain`` view is model reliance instead: the mean |change in P(up)| when one feature's
  column is shuffled over the hold-out rows, as a share. Its ``shap`` view treats each feature's
  whole window as one player (``PermutationExplainer`` over coalitions: kept features read the
  explained window, the others each of 10 seeded hold-out windows), in probability, over at most
  ``MAX_WINDOWS`` hold-out bars. LSTM members inside voting or stacking are refused by the service.

Cost: the tree and linear explainers take milliseconds for 500 rows. The permutation explainer
evaluates the ensemble ``rows * (2 * n_features + 1) * background`` times: measured about 0.1 s
per row for the default voting ensemble (LightGBM, XGBoost, logistic; 36 features) on 2 busy
cores, so about 50 s for 500 rows; its first call in a process also compiles shap's numba kernels
(6-9 s). Run it in a job, not in a request.

``shap`` is imported inside the functions: it is heavy (numba, matplotlib colours) and the app
must start fast. Deterministic given ``seed`` (note: shap's permutation explainer seeds and draws
from numpy's *global* random state). No I/O.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml.features import compute
from algotrendy.engine.ml.pipeline import TrainedModel

__all__ = ["Importance", "ShapValues", "holdout_matrix", "importance", "shap_values"]

MAX_BACKGROUND = 100
"""Background rows of the model-agnostic (permutation) explainer."""
MAX_WINDOWS = 60
"""Hold-out bars explained for a sequence model (each one its own explainer run)."""
WINDOW_BACKGROUND = 10
"""Background windows of a sequence model's explainer (each coalition is evaluated on all)."""

_KINDS = {
    "LGBMClassifier": "lightgbm",
    "XGBClassifier": "xgboost",
    "CatBoostClassifier": "catboost",
    "RandomForestClassifier": "random_forest",
    "VotingClassifier": "voting",
    "StackingClassifier": "stacking",
}
_TREE_OUTPUT = {
    "lightgbm": "log-odds",
    "xgboost": "log-odds",
    "catboost": "log-odds",
    "random_forest": "probability",
}
_GAIN = {
    "lightgbm": "lightgbm split gain",
    "xgboost": "xgboost total_gain",
    "catboost": "catboost PredictionValuesChange",
    "random_forest": "random forest mean decrease in impurity (MDI)",
    "logistic": "|coefficient| on the standardized inputs",
}


@dataclass(frozen=True)
class Importance:
    """Per feature (``feature_names`` order): ``gain`` shares (sum 1), ``shap`` mean |SHAP value|
    (in the units ``method["shap"]`` names), and ``method``: what each one is."""

    gain: dict[str, float]
    shap: dict[str, float]
    method: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"gain": dict(self.gain), "shap": dict(self.shap), "method": dict(self.method)}


@dataclass(frozen=True)
class ShapValues:
    """SHAP values of the rows explained: ``values[i, j]`` is feature ``j``'s contribution to row
    ``i``'s ``output`` (``"log-odds"`` or ``"probability"``); ``base + values.sum(axis=1)`` is the
    model's output for ``rows`` (additivity)."""

    values: F64
    base: F64
    rows: F64
    output: str
    method: str


def _kind(est: Any) -> str:
    name = type(est).__name__
    if name in _KINDS:
        return _KINDS[name]
    steps = getattr(est, "steps", None)
    if steps and type(steps[-1][1]).__name__ == "LogisticRegression":
        return "logistic"
    raise ValueError(f"cannot explain a {name} model")


def _positive_col(est: Any) -> int:
    return [int(c) for c in est.classes_].index(1)


def _share(values: npt.ArrayLike) -> F64:
    v = np.abs(np.asarray(values, dtype=np.float64))
    total = float(v.sum())
    return v / total if total > 0 else np.zeros_like(v)


def _base_gain(est: Any, kind: str, n_features: int) -> F64:
    if kind == "lightgbm":
        raw = est.booster_.feature_importance(importance_type="gain")
    elif kind == "xgboost":
        booster = est.get_booster()
        scores = booster.get_score(importance_type="total_gain")
        names = booster.feature_names or [f"f{j}" for j in range(n_features)]
        raw = [float(np.sum(scores.get(name, 0.0))) for name in names]
    elif kind == "catboost":
        raw = est.get_feature_importance()
    elif kind == "random_forest":
        raw = est.feature_importances_
    else:
        raw = est.steps[-1][1].coef_[0]
    out = _share(raw)
    if out.shape != (n_features,):
        raise ValueError(f"{kind} importance has shape {out.shape}, expected ({n_features},)")
    return out


def _gain(est: Any, n_features: int) -> tuple[F64, str]:
    kind = _kind(est)
    if kind not in ("voting", "stacking"):
        return _base_gain(est, kind, n_features), f"{_GAIN[kind]}, share of total"
    names = [name for name, _ in est.estimators]
    members = [(name, _kind(est.named_estimators_[name])) for name in names]
    gains = [_base_gain(est.named_estimators_[name], k, n_features) for name, k in members]
    if kind == "voting":
        weights = np.ones(len(names)) if est.weights is None else np.asarray(est.weights, dtype=np.float64)
        how = "averaged with the voting weights"
    else:
        weights = np.abs(np.asarray(est.final_estimator_.coef_, dtype=np.float64)[0, : len(names)])
        how = "weighted by the final estimator's |coefficient| share"
    w = weights / weights.sum() if weights.sum() > 0 else np.full(len(names), 1.0 / len(names))
    combined = _share(np.sum([wk * g for wk, g in zip(w, gains, strict=True)], axis=0))
    parts = ", ".join(f"{name} {wk:.3g} ({_GAIN[k]})" for (name, k), wk in zip(members, w, strict=True))
    return combined, f"members' gain shares {how}: {parts}"


def holdout_matrix(bars: Bars, trained: TrainedModel, *, max_rows: int = 2000) -> F64:
    """The hold-out block's feature rows (``trained.holdout_range``: its first to last sample bar),
    finite rows only, the last ``max_rows`` of them. ``bars`` must be the bars the model was trained
    on (at least up to the hold-out's last sample; checked by timestamp), since infinite-memory
    features depend on where the data starts."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    ho = trained.holdout_range
    first, last = int(ho["first_index"]), int(ho["last_index"])
    ts = np.asarray(bars.ts, dtype=np.int64)
    if last >= len(ts) or int(ts[first]) != int(ho["start_ts"]) or int(ts[last]) != int(ho["end_ts"]):
        raise ValueError(
            "bars: not the bars the model was trained on (the hold-out runs from bar "
            f"{first} at ts {ho['start_ts']} to bar {last} at ts {ho['end_ts']})"
        )
    X = compute(bars.slice(0, last + 1), trained.feature_names).values[first:]
    X = X[np.isfinite(X).all(axis=1)]
    return np.ascontiguousarray(X[-max_rows:])


def _finite_rows(trained: TrainedModel, X: npt.ArrayLike, max_rows: int) -> F64:
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    arr = np.asarray(X, dtype=np.float64)
    n_features = len(trained.feature_names)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"X must be 2-D with {n_features} columns, got shape {arr.shape}")
    arr = arr[np.isfinite(arr).all(axis=1)]
    if len(arr) == 0:
        raise ValueError("X has no row with every feature finite")
    return arr


def _sample(arr: F64, k: int, rng: np.random.Generator) -> F64:
    """At most ``k`` rows of ``arr``, seeded, in their original order."""
    if len(arr) <= k:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(arr[np.sort(rng.choice(len(arr), k, replace=False))])


def _pick(values: Any, base: Any, col: int) -> tuple[F64, F64]:
    """The positive class's output (``col``) from whatever shape the explainer returned: a list per
    class, an array ``(rows, features, classes)`` or ``(rows, features)``; ``base`` a scalar, one per
    row, one per class or one per row and class."""
    b = np.asarray(base, dtype=np.float64)
    if isinstance(values, list):
        values, b = values[col], b.reshape(-1)[col]
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 3:
        v, b = v[:, :, col], b[..., col]
    b = b.reshape(-1)
    if v.ndim != 2 or b.size not in (1, v.shape[0]):
        raise ValueError(f"unexpected SHAP output: values {v.shape}, base {b.shape}")
    return v, np.broadcast_to(b, (v.shape[0],)).astype(np.float64)


def _is_sequence(est: Any) -> bool:
    return type(est).__name__ == "LstmClassifier"


def _contiguous(trained: TrainedModel, X: npt.ArrayLike) -> F64:
    """A sequence model's rows: consecutive bars, all finite (``holdout_matrix`` gives that)."""
    arr = np.asarray(X, dtype=np.float64)
    n_features = len(trained.feature_names)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"X must be 2-D with {n_features} columns, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("X must hold consecutive finite rows for a sequence model")
    if len(arr) < trained.model.seq_len:
        raise ValueError(f"X needs at least {trained.model.seq_len} rows (the model's window)")
    return np.ascontiguousarray(arr)


def _reliance(est: Any, X: F64, rng: np.random.Generator) -> tuple[F64, str]:
    """How much ``P(up)`` moves when one feature's column is shuffled over the rows (each window
    then reads that feature from other bars): mean absolute change, as a share of the total."""
    base = est.predict_proba(X)[:, 1]
    moved = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(X[:, j])
        moved[j] = float(np.mean(np.abs(est.predict_proba(shuffled)[:, 1] - base)))
    return _share(moved), (
        f"an LSTM has no split gain: mean |change in P(up)| when the feature's column is shuffled "
        f"over the {len(X)} hold-out rows (seeded), share of total"
    )


def _window_shap(shap: Any, est: Any, X: F64, rng: np.random.Generator, seed: int, k: int) -> ShapValues:
    """SHAP values of an LSTM's ``P(up)`` at ``k`` hold-out bars with each feature's whole window
    (its ``seq_len`` values) as one player: a coalition keeps the explained window's values of its
    features and takes the others from each of ``WINDOW_BACKGROUND`` seeded hold-out windows
    (interventional, averaged). Exact additivity: base + sum = the model's ``P(up)`` at the bar."""
    L, n_features = int(est.seq_len), X.shape[1]
    ends = np.arange(L - 1, len(X))
    targets = np.sort(rng.choice(ends, min(k, len(ends)), replace=False))
    background = np.stack(
        [X[e - L + 1 : e + 1] for e in rng.choice(ends, min(WINDOW_BACKGROUND, len(ends)), replace=False)]
    )
    evals = 2 * n_features + 1
    values, bases = [], []
    for i in targets:
        window = X[i - L + 1 : i + 1]

        def coalition(U: F64, window: F64 = window) -> F64:
            keep = np.asarray(U)[:, None, None, :] > 0.5  # (m, 1, 1, features)
            W = np.where(keep, window[None, None], background[None])  # (m, background, L, features)
            p = est.predict_proba_windows(W.reshape(-1, L, n_features))
            out: F64 = p.reshape(len(U), len(background)).mean(axis=1)
            return out

        masker = shap.maskers.Independent(np.zeros((1, n_features)), max_samples=1)
        explained = shap.PermutationExplainer(coalition, masker, seed=seed)(
            np.ones((1, n_features)), max_evals=evals, silent=True
        )
        v, b = _pick(explained.values, explained.base_values, 0)
        values.append(v[0])
        bases.append(b[0])
    method = (
        f"PermutationExplainer with each feature's {L}-bar window as one player (interventional, "
        f"{len(background)} seeded hold-out windows as background), probability, {evals} evaluations "
        f"per bar, mean |value| over {len(targets)} hold-out bars"
    )
    return ShapValues(
        values=np.asarray(values), base=np.asarray(bases), rows=np.ascontiguousarray(X[targets]),
        output="probability", method=method,
    )  # fmt: skip


def _import_shap() -> Any:
    """``import shap``, without the PendingDeprecationWarnings its matplotlib colour maps raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


def shap_values(trained: TrainedModel, X: npt.ArrayLike, *, seed: int = 0, max_rows: int = 500) -> ShapValues:
    """SHAP values of ``P(up)``'s model on the finite rows of ``X`` (a seeded subsample of at most
    ``max_rows``), with the explainer the module docstring names for the model's type."""
    shap = _import_shap()
    rng = np.random.default_rng(seed)
    if _is_sequence(trained.model):
        return _window_shap(
            shap, trained.model, _contiguous(trained, X), rng, seed, min(max_rows, MAX_WINDOWS)
        )
    finite = _finite_rows(trained, X, max_rows)
    rows = _sample(finite, max_rows, rng)
    est = trained.model
    kind = _kind(est)
    n = len(rows)
    if kind in _TREE_OUTPUT:
        explained = shap.TreeExplainer(est)(rows)  # checks additivity itself
        values, base = _pick(explained.values, explained.base_values, _positive_col(est))
        output = _TREE_OUTPUT[kind]
        method = f"TreeExplainer (tree path dependent), {output}, mean |value| over {n} hold-out rows"
    elif kind == "logistic":
        pre, lr = est[:-1], est.steps[-1][1]
        scaled = np.asarray(pre.transform(rows), dtype=np.float64)
        explainer = shap.LinearExplainer(lr, shap.maskers.Independent(scaled, max_samples=n))
        values, base = _pick(explainer.shap_values(scaled), explainer.expected_value, 0)
        output = "log-odds"
        method = (
            f"LinearExplainer on the standardized inputs (interventional, background: the {n} rows), "
            f"log-odds, mean |value| over {n} hold-out rows"
        )
    else:
        background = _sample(finite, MAX_BACKGROUND, rng)
        k = len(background)
        masker = shap.maskers.Independent(background, max_samples=k)
        explainer = shap.PermutationExplainer(trained.predict_proba, masker, seed=seed)
        evals = 2 * rows.shape[1] + 1
        out = explainer(rows, max_evals=evals, silent=True)
        values, base = _pick(out.values, out.base_values, 0)
        output = "probability"
        method = (
            f"PermutationExplainer on P(up), probability, background {k} seeded rows of X, {evals} "
            f"evaluations per row, mean |value| over {n} hold-out rows"
        )
    return ShapValues(values=values, base=base, rows=rows, output=output, method=method)


def importance(trained: TrainedModel, X: npt.ArrayLike, *, seed: int = 0, max_rows: int = 500) -> Importance:
    """``gain`` (the model's own importance, shares summing to 1) and ``shap`` (mean |SHAP value|
    over at most ``max_rows`` finite rows of ``X``, seeded) for every feature; see the module
    docstring for what each model type reports. ``X``: normally ``holdout_matrix(bars, trained)``."""
    names = trained.feature_names
    if _is_sequence(trained.model):
        gain, gain_method = _reliance(trained.model, _contiguous(trained, X), np.random.default_rng(seed))
    else:
        gain, gain_method = _gain(trained.model, len(names))
    sv = shap_values(trained, X, seed=seed, max_rows=max_rows)
    mean_abs = np.abs(sv.values).mean(axis=0)
    return Importance(
        gain={name: float(g) for name, g in zip(names, gain, strict=True)},
        shap={name: float(s) for name, s in zip(names, mean_abs, strict=True)},
        method={"gain": gain_method, "shap": sv.method},
    )
