"""Classifiers for the ML pipeline: one factory, default hyperparameters and Optuna search spaces.

    from algotrendy.engine.ml.models import make_model, default_params, suggest

    model = make_model("lightgbm", {"num_leaves": 31}, seed=7)   # an unfitted sklearn classifier
    model.fit(X, y, sample_weight=w); p = model.predict_proba(X_new)[:, 1]

Model types (``MODEL_TYPES``):

* ``lightgbm`` (``LGBMClassifier``), ``xgboost`` (``XGBClassifier``, ``tree_method="hist"``),
  ``catboost`` (``CatBoostClassifier``, silent, writes no files), ``random_forest`` (sklearn);
* ``logistic``: ``StandardScaler`` + ``LogisticRegression`` in a ``WeightedPipeline`` (a sklearn
  ``Pipeline`` whose ``fit`` also takes ``sample_weight``, handed to the regression);
* ``voting``: a soft-voting ensemble (averaged probabilities) of ``members`` (default lightgbm,
  xgboost, logistic), each with its own parameters under its name, optional ``weights``;
* ``lstm``: ``lstm.LstmClassifier``, an LSTM over the last ``seq_len`` rows (consecutive bars),
  trained with PyTorch (an optional install: ``pip install torch==2.13.0``, the CPU build; without
  it ``fit`` raises ``ValueError`` and ``torch_available()`` is False), predicting with numpy. It
  is a sequence model: a prediction for a bar needs the ``sequence_length(model)`` feature rows
  ending at that bar, not just its own row. It may be an ensemble member, never a default one;
* ``stacking``: the same members under a logistic regression fitted on their **out-of-fold**
  probabilities. The inner ``cv`` is a ``validation.PurgedKFold`` (``cv_splits`` folds, the given
  embargo); pass ``spans=(t0, t1)`` of the rows the model will be fitted on so that it purges
  overlapping labels, as the pipeline does (without spans each row counts as a one-bar label:
  only the embargo applies). An unpurged inner CV would let the meta-model learn from leaked
  member predictions.

Threads: every model runs on exactly ``n_jobs`` threads (default 1). Library defaults (all cores)
oversubscribe a shared machine; on a busy core LightGBM's default thread count showed 12 ms p99
spikes. Seeds: every model takes ``seed``; with the thread count fixed a fit is deterministic.

Parameters are checked against a table per type (``PARAMS``): an unknown key or a value of the
wrong type or out of range raises ``ValueError`` naming ``hyperparams.<key>`` (``hyperparams.
lightgbm.<key>`` inside an ensemble). Thread counts, seeds and verbosity are not parameters.

The libraries are imported inside the functions, never at module import: the server imports the
engine at start-up and must not pay the ~1 s these imports cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import optuna

__all__ = [
    "BASE_TYPES",
    "ENSEMBLE_TYPES",
    "MODEL_TYPES",
    "PARAMS",
    "SEQUENCE_TYPES",
    "SPACES",
    "ModelType",
    "default_params",
    "make_model",
    "sequence_length",
    "suggest",
    "torch_available",
    "validate_params",
]

ModelType = Literal[
    "lightgbm", "xgboost", "catboost", "logistic", "random_forest", "lstm", "voting", "stacking"
]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
BASE_TYPES: tuple[str, ...] = ("lightgbm", "xgboost", "catboost", "logistic", "random_forest", "lstm")
SEQUENCE_TYPES: frozenset[str] = frozenset({"lstm"})
"""Model types whose prediction reads a window of consecutive rows (``sequence_length`` > 1): the
pipeline trains them on every bar, an unlabelled one with weight 0 (``steps._engineer``)."""
ENSEMBLE_TYPES: tuple[str, ...] = ("voting", "stacking")
DEFAULT_MEMBERS: tuple[str, ...] = ("lightgbm", "xgboost", "logistic")


@dataclass(frozen=True, slots=True)
class Param:
    """One hyperparameter: ``kind`` int/float/choice, bounds (inclusive unless ``open_lo``), the
    allowed strings/None of a ``choice`` (an int/float kind also takes those), default."""

    kind: Literal["int", "float", "choice"]
    default: Any
    lo: float = -math.inf
    hi: float = math.inf
    open_lo: bool = False
    choices: tuple[Any, ...] = ()

    def check(self, key: str, value: Any) -> Any:
        if value in self.choices and (value is None or isinstance(value, str)):
            return value
        if self.kind == "choice":
            raise ValueError(f"{key} must be one of {list(self.choices)}, got {value!r}")
        ok_type = isinstance(value, int | np.integer | float | np.floating) and not isinstance(value, bool)
        if self.kind == "int" and not (ok_type and float(value).is_integer()):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        if not ok_type or not math.isfinite(float(value)):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        v = float(value)
        if v < self.lo or v > self.hi or (self.open_lo and v <= self.lo):
            low = "(" if self.open_lo else "["
            raise ValueError(f"{key} must be in {low}{self.lo:g}, {self.hi:g}], got {value!r}")
        return int(v) if self.kind == "int" else v


_N = 1_000_000.0


def _frac(default: Any, choices: tuple[Any, ...] = ()) -> Param:
    """A fraction in (0, 1] (or one of ``choices``)."""
    return Param("float", default, 0.0, 1.0, open_lo=True, choices=choices)


PARAMS: dict[str, dict[str, Param]] = {
    "lightgbm": {
        "n_estimators": Param("int", 200, 1, 100_000),
        "learning_rate": _frac(0.05),
        "num_leaves": Param("int", 15, 2, 131_072),
        "max_depth": Param("int", -1, -1, 64),
        "min_child_samples": Param("int", 50, 1, _N),
        "min_child_weight": Param("float", 1e-3, 0.0, _N),
        "subsample": _frac(0.8),
        "subsample_freq": Param("int", 1, 0, 1000),
        "colsample_bytree": _frac(0.8),
        "reg_alpha": Param("float", 0.0, 0.0, _N),
        "reg_lambda": Param("float", 1.0, 0.0, _N),
        "min_split_gain": Param("float", 0.0, 0.0, _N),
        "max_bin": Param("int", 255, 2, 65_535),
        "class_weight": Param("choice", None, choices=(None, "balanced")),
    },
    "xgboost": {
        "n_estimators": Param("int", 200, 1, 100_000),
        "learning_rate": _frac(0.05),
        "max_depth": Param("int", 4, 0, 64),
        "min_child_weight": Param("float", 5.0, 0.0, _N),
        "subsample": _frac(0.8),
        "colsample_bytree": _frac(0.8),
        "reg_alpha": Param("float", 0.0, 0.0, _N),
        "reg_lambda": Param("float", 1.0, 0.0, _N),
        "gamma": Param("float", 0.0, 0.0, _N),
        "max_bin": Param("int", 256, 2, 65_535),
    },
    "catboost": {
        "iterations": Param("int", 200, 1, 100_000),
        "learning_rate": _frac(0.05),
        "depth": Param("int", 4, 1, 16),
        "l2_leaf_reg": Param("float", 3.0, 0.0, _N),
        "random_strength": Param("float", 1.0, 0.0, _N),
        "border_count": Param("int", 254, 1, 65_535),
    },
    "logistic": {
        "C": Param("float", 1.0, 0.0, _N, open_lo=True),
        "max_iter": Param("int", 1000, 1, 1_000_000),
        "class_weight": Param("choice", None, choices=(None, "balanced")),
    },
    "random_forest": {
        "n_estimators": Param("int", 100, 1, 100_000),
        "max_depth": Param("int", 8, 1, 1000, choices=(None,)),
        "min_samples_leaf": Param("int", 50, 1, _N),
        "max_features": _frac("sqrt", ("sqrt", "log2")),
        "max_samples": _frac(0.5, (None,)),
        "class_weight": Param("choice", None, choices=(None, "balanced", "balanced_subsample")),
    },
    "lstm": {
        "seq_len": Param("int", 32, 1, 1024),
        "hidden_size": Param("int", 32, 1, 1024),
        "num_layers": Param("int", 1, 1, 2),
        "epochs": Param("int", 30, 1, 10_000),
        "learning_rate": _frac(0.003),
        "batch_size": Param("int", 64, 1, 65_536),
        "dropout": Param("float", 0.1, 0.0, 0.9),
        "weight_decay": Param("float", 1e-4, 0.0, _N),
        "patience": Param("int", 5, 1, 10_000),
        "validation_fraction": Param("float", 0.15, 0.0, 0.5),
    },
}
"""Allowed hyperparameters of each base type (the library's own names) with defaults and ranges.
The defaults are deliberately small and regularized (financial labels are mostly noise)."""

ENSEMBLE_PARAMS: dict[str, dict[str, Param]] = {
    "voting": {},
    "stacking": {"cv_splits": Param("int", 3, 2, 50), "final_C": Param("float", 1.0, 0.0, _N, open_lo=True)},
}
"""Ensemble-level parameters besides ``members``, ``weights`` (voting) and per-member dicts."""


def _require_type(model_type: str, field: str = "model_type") -> None:
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{field} must be one of {list(MODEL_TYPES)}, got {model_type!r}")


def _members(params: Mapping[str, Any], prefix: str) -> tuple[str, ...]:
    raw = params.get("members", DEFAULT_MEMBERS)
    key = f"{prefix}.members"
    if isinstance(raw, str) or not isinstance(raw, Sequence) or len(raw) < 2:
        raise ValueError(f"{key} must be a list of at least two base model types")
    for m in raw:
        if m not in BASE_TYPES:
            raise ValueError(f"{key}: {m!r} is not one of {list(BASE_TYPES)} (ensembles do not nest)")
    if len(set(raw)) != len(raw):
        raise ValueError(f"{key} must not repeat a type")
    return tuple(raw)


def validate_params(
    model_type: str, params: Mapping[str, Any] | None, prefix: str = "hyperparams"
) -> dict[str, Any]:
    """The full parameter dict of ``model_type``: defaults updated with ``params``, checked.

    Raises ``ValueError`` naming ``<prefix>.<key>`` for an unknown key or a bad value. For an
    ensemble the result holds ``members``, one complete dict per member and its own parameters."""
    _require_type(model_type)
    if not isinstance(params, Mapping | None):
        raise ValueError(f"{prefix} must be a mapping of parameter names to values")
    given = dict(params or {})
    if model_type in BASE_TYPES:
        table = PARAMS[model_type]
        out = {k: p.default for k, p in table.items()}
        for key, value in given.items():
            if key not in table:
                raise ValueError(f"{prefix}.{key} is not a {model_type} parameter (allowed: {sorted(table)})")
            out[key] = table[key].check(f"{prefix}.{key}", value)
        return out
    members = _members(given, prefix)
    own = ENSEMBLE_PARAMS[model_type]
    out = {"members": list(members), **{k: p.default for k, p in own.items()}}
    allowed = {"members", *own, *members} | ({"weights"} if model_type == "voting" else set())
    for key, value in given.items():
        if key not in allowed:
            raise ValueError(f"{prefix}.{key} is not a {model_type} parameter (allowed: {sorted(allowed)})")
        if key in own:
            out[key] = own[key].check(f"{prefix}.{key}", value)
    for m in members:
        sub = given.get(m)
        if sub is not None and not isinstance(sub, Mapping):
            raise ValueError(f"{prefix}.{m} must be a mapping of {m} parameters")
        out[m] = validate_params(m, sub, f"{prefix}.{m}")
    if model_type == "voting":
        w = given.get("weights")
        if w is not None:
            bad = isinstance(w, str) or not isinstance(w, Sequence) or len(w) != len(members)
            if (
                bad
                or not all(isinstance(x, int | float) and math.isfinite(x) and x >= 0 for x in w)
                or sum(w) <= 0
            ):
                raise ValueError(f"{prefix}.weights must be {len(members)} non-negative numbers, not all 0")
            w = [float(x) for x in w]
        out["weights"] = w
    return out


def default_params(model_type: str) -> dict[str, Any]:
    """The defaults of ``model_type`` (ensembles: the default members, each with its defaults)."""
    return validate_params(model_type, None)


# ---- construction -----------------------------------------------------------------------------


@cache
def _weighted_pipeline_class() -> type:
    from sklearn.pipeline import Pipeline

    class WeightedPipeline(Pipeline):  # type: ignore[misc]
        """A ``Pipeline`` whose ``fit`` takes ``sample_weight`` and hands it to the last step."""

        def fit(self, X: Any, y: Any = None, sample_weight: Any = None, **params: Any) -> Any:
            if sample_weight is not None:
                params[f"{self.steps[-1][0]}__sample_weight"] = sample_weight
            return super().fit(X, y, **params)

    WeightedPipeline.__module__ = __name__
    WeightedPipeline.__qualname__ = "WeightedPipeline"
    return WeightedPipeline


def __getattr__(name: str) -> Any:
    """``WeightedPipeline`` is built on first use (sklearn is imported then), also by unpickling."""
    if name == "WeightedPipeline":
        return _weighted_pipeline_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _base(model_type: str, p: dict[str, Any], seed: int, n_jobs: int) -> Any:
    if model_type == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            **p, random_state=seed, n_jobs=n_jobs, verbose=-1, deterministic=True, force_row_wise=True
        )
    if model_type == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            **p, tree_method="hist", random_state=seed, n_jobs=n_jobs, verbosity=0, eval_metric="logloss"
        )
    if model_type == "catboost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier(
            **p, random_seed=seed, thread_count=n_jobs, verbose=False, allow_writing_files=False
        )
    if model_type == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        return _weighted_pipeline_class()(
            [("scale", StandardScaler()), ("logistic", LogisticRegression(**p, random_state=seed))]
        )

    if model_type == "lstm":
        from algotrendy.engine.ml.lstm import LstmClassifier

        return LstmClassifier(**p, random_state=seed, n_jobs=n_jobs)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**p, random_state=seed, n_jobs=n_jobs)


def torch_available() -> bool:
    """Whether PyTorch is installed (``lstm`` can be fitted); looks it up without importing it."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def sequence_length(model: Any) -> int:
    """How many trailing feature rows one prediction reads: ``seq_len`` for an ``lstm`` model,
    the largest of its members' for an ensemble (fitted or not), 1 for row-wise models. To predict
    the latest bar, pass at least that many consecutive rows ending at it and read the last
    output row (a row-wise model gives the same value for the last row whatever precedes it)."""
    seq = getattr(model, "seq_len", None)
    if isinstance(seq, int | np.integer) and not isinstance(seq, bool):
        return int(seq)
    for attr in ("estimators_", "estimators", "steps"):
        parts = getattr(model, attr, None)
        if isinstance(parts, list | tuple):
            inner = [x[1] if isinstance(x, tuple) else x for x in parts]
            return max([1, *(sequence_length(m) for m in inner if not isinstance(m, str | None))])
    return 1


def make_model(
    model_type: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    spans: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    embargo: float = 0,
) -> Any:
    """An unfitted sklearn-compatible binary classifier (``fit(X, y, sample_weight=...)``,
    ``predict_proba``, ``classes_``). ``params`` are checked by ``validate_params`` (defaults
    fill the rest). ``spans``/``embargo`` matter for ``stacking`` only (see the module docstring)."""
    p = validate_params(model_type, params)
    if n_jobs < 1:
        raise ValueError("n_jobs must be >= 1")
    if model_type in BASE_TYPES:
        return _base(model_type, p, seed, n_jobs)
    members = [(m, _base(m, p[m], seed + k, n_jobs)) for k, m in enumerate(p["members"])]
    if model_type == "voting":
        from sklearn.ensemble import VotingClassifier

        return VotingClassifier(members, voting="soft", weights=p["weights"])
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression

    from algotrendy.engine.ml.validation import PurgedKFold

    t0, t1 = spans if spans is not None else (None, None)
    cv = PurgedKFold(p["cv_splits"], embargo, t0=t0, t1=t1)
    final = LogisticRegression(C=p["final_C"], max_iter=1000, random_state=seed)
    return StackingClassifier(members, final_estimator=final, cv=cv, stack_method="predict_proba")


# ---- search spaces ----------------------------------------------------------------------------


SPACES: dict[str, tuple[tuple[str, Literal["int", "float"], float, float, bool], ...]] = {
    "lightgbm": (
        ("n_estimators", "int", 50, 400, True),
        ("learning_rate", "float", 0.01, 0.2, True),
        ("num_leaves", "int", 4, 63, True),
        ("min_child_samples", "int", 20, 500, True),
        ("subsample", "float", 0.5, 1.0, False),
        ("colsample_bytree", "float", 0.3, 1.0, False),
        ("reg_lambda", "float", 1e-3, 10.0, True),
    ),
    "xgboost": (
        ("n_estimators", "int", 50, 400, True),
        ("learning_rate", "float", 0.01, 0.2, True),
        ("max_depth", "int", 2, 8, False),
        ("min_child_weight", "float", 1.0, 100.0, True),
        ("subsample", "float", 0.5, 1.0, False),
        ("colsample_bytree", "float", 0.3, 1.0, False),
        ("reg_lambda", "float", 1e-3, 10.0, True),
    ),
    "catboost": (
        ("iterations", "int", 50, 400, True),
        ("learning_rate", "float", 0.01, 0.2, True),
        ("depth", "int", 2, 8, False),
        ("l2_leaf_reg", "float", 1.0, 30.0, True),
    ),
    "logistic": (("C", "float", 1e-4, 10.0, True),),
    "random_forest": (
        ("n_estimators", "int", 50, 300, True),
        ("max_depth", "int", 2, 12, False),
        ("min_samples_leaf", "int", 10, 500, True),
        ("max_features", "float", 0.1, 1.0, False),
    ),
    "lstm": (
        ("seq_len", "int", 8, 64, True),
        ("hidden_size", "int", 8, 64, True),
        ("num_layers", "int", 1, 2, False),
        ("learning_rate", "float", 1e-4, 1e-2, True),
        ("dropout", "float", 0.0, 0.5, False),
        ("weight_decay", "float", 1e-6, 1e-2, True),
    ),
}
"""The Optuna search space of each base type: (name, kind, low, high, log scale)."""


def _space(trial: optuna.Trial, model_type: str, prefix: str, fixed: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fixed)
    for name, kind, lo, hi, log in SPACES[model_type]:
        if name in fixed:
            continue
        if kind == "int":
            out[name] = trial.suggest_int(prefix + name, int(lo), int(hi), log=log)
        else:
            out[name] = trial.suggest_float(prefix + name, lo, hi, log=log)
    return out


def suggest(trial: optuna.Trial, model_type: str, fixed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameters for one Optuna trial: the type's search space (``SPACES``; for an ensemble
    each member's, named ``<member>.<param>`` in the trial) except the keys of ``fixed`` (the
    user's hyperparameters), which are held at their given values. The result is a valid
    ``params`` for ``make_model``."""
    _require_type(model_type)
    given = dict(fixed or {})
    if model_type in BASE_TYPES:
        return _space(trial, model_type, "", given)
    out = dict(given)
    for m in _members(given, "hyperparams"):
        sub = given.get(m) or {}
        if not isinstance(sub, Mapping):
            raise ValueError(f"hyperparams.{m} must be a mapping of {m} parameters")
        out[m] = _space(trial, m, f"{m}.", sub)
    return out
