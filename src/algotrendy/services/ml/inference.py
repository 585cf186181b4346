"""Fast in-process prediction of a trained model: ``P(up)`` for a row, a matrix or the latest bar.

    predictor = Predictor(trained)            # once per promoted version: picks the fastest exact path
    p = predictor.predict_bars(bars)          # features of the last bar (compute_last), then P(up)
    p = predictor.predict_row(row)            # one feature row (columns as trained.feature_names)
    ps = predictor.predict_matrix(X)          # one P(up) per row, vectorized
    series = predictor.predict_series(bars)   # P(up) at every bar, NaN during the warm-up

Why not ``TrainedModel.predict_proba``: the sklearn wrappers re-validate their input on every call
(about 300 µs for one row of a 500-tree LightGBM model) and some libraries predict on every core
by default (LightGBM's default thread count gave a 12 ms p99 on a machine with one busy core). The
numbers must not change, so every fast path is the library's own prediction, only called more
directly, and each one is checked against ``TrainedModel.predict_proba`` when the predictor is
built (probe rows, 1e-12); any difference, or a library without the entry point, falls back to
``sklearn``. ``path`` names what was chosen:

* ``lightgbm-booster``: a private copy of the fitted ``Booster`` (``booster_.model_to_string()``:
  the same trees, ``lgb.train`` itself round-trips the model through that text). Batches go
  through ``engine.ml.trees.CompiledTrees``: the trees as flat arrays walked by a numba kernel,
  LightGBM's decision rule and summation order, 1.9 times faster than ``Booster.predict`` on one
  thread and 2.6 times on two (large batches are split across threads; ``bench/README.md``, "ML
  inference"). Single rows take the same compiled walk (``CompiledTrees.predict_row``: one
  compiled call returning the float, 9 µs median for 500 trees and 50 features against 16 µs for
  LightGBM's fastest single-row entry below). A model the compiled walk does not take
  (categorical splits, linear trees) keeps ``Booster.predict`` on one thread for batches and, for
  single rows, LightGBM's C API single-row fast path (``LGBM_BoosterPredictForMatSingleRowFast``
  with a ``FastConfig`` prepared once), reached via ctypes on the library LightGBM's Python
  package has loaded: the Python ``Booster.predict`` has no single-row entry and its per-call
  set-up (a predictor object, parameter string, input checks) measured 26 µs median / 105 µs p99
  against 16 / 26 µs for the fast path (one core busy). ``lightgbm.basic._LIB`` is private API,
  hence the fallback to ``Booster.predict`` if it is missing or refuses.
* ``xgboost-inplace``: a private copy of the ``Booster`` set to one thread, ``inplace_predict``
  (what ``XGBClassifier.predict_proba`` calls itself), ``best_iteration`` honoured as sklearn does.
* ``catboost-1-thread``: ``CatBoostClassifier.predict_proba`` with ``thread_count=1`` (its default
  is every core).
* ``sklearn``: ``TrainedModel.predict_proba`` (logistic, random forest, voting, stacking).

Inputs: a row or matrix holding a NaN or inf gives NaN for that row (the model was trained on
finite rows only); a wrong number of columns raises ``ValueError``.

Thread safety: a predictor is read-only after ``__init__`` (predictions never change the model);
any number of threads may call it concurrently. The compiled walk only reads its arrays;
LightGBM's single-row path (the fallback) serializes on the booster's own mutex, its batch path
takes a shared lock; XGBoost documents ``inplace_predict`` as lock-free and thread-safe; sklearn's
and CatBoost's ``predict_proba`` only read the fitted model; output buffers are per call.

Compiled tree libraries were tried for the batch path and not taken: ``engine/ml/trees.py``
says why (lleaves does not build against numba's llvmlite; tl2cgen's C disagreed with LightGBM).
"""

from __future__ import annotations

import ctypes
import functools
import math
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml.feature_specs import FeaturePlan, parse
from algotrendy.engine.ml.features import compute, compute_last
from algotrendy.engine.ml.models import sequence_length
from algotrendy.engine.ml.pipeline import TrainedModel
from algotrendy.engine.ml.trees import CompiledTrees

__all__ = ["Predictor"]

_TOLERANCE = 1e-12
_C_API_DTYPE_FLOAT64 = 1
_C_API_PREDICT_NORMAL = 0

Batch = Callable[[F64], F64]
Row = Callable[[F64], float]


def _probe_rows(n_features: int) -> F64:
    """Seeded rows at scales from 0.01 to 100 (features range from returns to RSI levels) and zeros."""
    rng = np.random.default_rng(20_261_121)
    rows = rng.standard_normal((24, n_features)) * np.geomspace(0.01, 100.0, 24)[:, None]
    return np.vstack([rows, np.zeros((1, n_features))])


def _classes_are_binary(model: Any) -> bool:
    classes = getattr(model, "classes_", None)
    return classes is not None and [int(c) for c in classes] == [0, 1]


def _free_fast_config(free: Callable[[ctypes.c_void_p], int], handle: ctypes.c_void_p, booster: Any) -> None:
    """``booster`` is only held: the config points into it, so it must outlive the config."""
    free(handle)


class _FastRow:
    """LightGBM's single-row C entry point on a ``FastConfig`` made once (see the module docstring)."""

    def __init__(self, booster: Any, n_features: int, num_iteration: int) -> None:
        from lightgbm import basic

        lib = basic._LIB  # type: ignore[attr-defined]  # private: see the module docstring
        self._call = lib.LGBM_BoosterPredictForMatSingleRowFast
        self._error = lib.LGBM_GetLastError
        handle = ctypes.c_void_p()
        rc = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(_C_API_PREDICT_NORMAL),
            ctypes.c_int(0),
            ctypes.c_int(num_iteration),
            ctypes.c_int(_C_API_DTYPE_FLOAT64),
            ctypes.c_int32(n_features),
            ctypes.c_char_p(b"num_threads=1"),
            ctypes.byref(handle),
        )
        if rc != 0 or not handle.value:
            raise RuntimeError(f"LightGBM FastConfig: {self._last_error()}")
        self._handle = handle
        # frees the config with this object; holds the booster until then (the config points to it)
        weakref.finalize(self, _free_fast_config, lib.LGBM_FastConfigFree, handle, booster)

    def _last_error(self) -> str:
        raw = self._error()  # lightgbm sets its restype to c_char_p
        return raw.decode(errors="replace") if isinstance(raw, bytes) else "unknown error"

    def __call__(self, row: F64) -> float:
        out = ctypes.c_double()
        out_len = ctypes.c_int64()
        rc = self._call(
            self._handle, ctypes.c_void_p(row.ctypes.data), ctypes.byref(out_len), ctypes.byref(out)
        )
        if rc != 0:
            raise RuntimeError(f"LightGBM single-row prediction failed: {self._last_error()}")
        return out.value


def _lightgbm(model: Any, n_features: int) -> tuple[Batch, Row | None]:
    import lightgbm as lgb

    source = model.booster_
    if source.num_model_per_iteration() != 1 or getattr(model, "objective_", None) != "binary":
        raise ValueError("not a binary LightGBM model")
    num_iteration = source.best_iteration if source.best_iteration > 0 else -1
    booster = lgb.Booster(model_str=source.model_to_string(num_iteration=-1))
    try:
        trees = CompiledTrees.from_lightgbm(booster, num_iteration)
    except (KeyError, ValueError):
        trees = None  # a split or model kind the compiled walk does not take: LightGBM's own

    def batch(X: F64) -> F64:
        if trees is not None:
            return trees.predict(X, finite=True)  # predict_matrix passes finite rows only
        return np.asarray(booster.predict(X, num_iteration=num_iteration, num_threads=1), dtype=np.float64)

    if trees is not None:
        return batch, functools.partial(trees.predict_row, finite=True)  # predict_row: finite rows only
    try:
        row: Row | None = _FastRow(booster, n_features, num_iteration)
    except (AttributeError, OSError, RuntimeError):
        row = None  # the Booster.predict path then serves single rows too
    return batch, row


def _xgboost(model: Any) -> Batch:
    if model.get_params().get("objective") != "binary:logistic" or model.n_classes_ != 2:
        raise ValueError("not a binary:logistic XGBoost model")
    booster = model.get_booster().copy()
    booster.set_param({"nthread": 1})
    try:
        iteration_range = (0, int(model.best_iteration) + 1)
    except AttributeError:
        iteration_range = (0, 0)
    missing = model.missing

    def batch(X: F64) -> F64:
        p = booster.inplace_predict(
            X, iteration_range=iteration_range, predict_type="value", missing=missing, validate_features=False
        )
        return np.asarray(p, dtype=np.float64)

    return batch


def _catboost(model: Any) -> Batch:
    col = [int(c) for c in model.classes_].index(1)

    def batch(X: F64) -> F64:
        return np.ascontiguousarray(
            np.asarray(model.predict_proba(X, thread_count=1), dtype=np.float64)[:, col]
        )

    return batch


class Predictor:
    """``P(up)`` of a ``TrainedModel`` on its fastest exact path (see the module docstring)."""

    trained: TrainedModel
    feature_names: tuple[str, ...]
    n_features: int
    path: str

    def __init__(self, trained: TrainedModel) -> None:
        self.trained = trained
        self.feature_names = tuple(trained.feature_names)
        self.n_features = len(self.feature_names)
        self.sequence = sequence_length(trained.model)
        """Feature rows one prediction reads: 1, or ``seq_len`` for a sequence model (``lstm``)."""
        self.bars_needed = trained.window + self.sequence
        """Bars ``predict_bars`` needs for a defined prediction: the features' window, plus the
        rows before the last a sequence model reads."""
        self._plan: FeaturePlan = parse(self.feature_names)
        self.path, self._batch, self._row = self._choose()

    def __reduce__(self) -> tuple[type[Predictor], tuple[TrainedModel]]:
        return (Predictor, (self.trained,))  # the native handles are rebuilt, not pickled

    def __repr__(self) -> str:
        return f"Predictor({self.trained.model_type}, {self.n_features} features, path={self.path!r})"

    def _sklearn(self, X: F64) -> F64:
        return self.trained.predict_proba(X)

    def _choose(self) -> tuple[str, Batch, Row | None]:
        model, kind = self.trained.model, self.trained.model_type
        if not _classes_are_binary(model) or kind not in ("lightgbm", "xgboost", "catboost"):
            return "sklearn", self._sklearn, None
        try:
            if kind == "lightgbm":
                batch, row = _lightgbm(model, self.n_features)
                name = "lightgbm-booster"
            elif kind == "xgboost":
                batch, row, name = _xgboost(model), None, "xgboost-inplace"
            else:
                batch, row, name = _catboost(model), None, "catboost-1-thread"
        except (ImportError, AttributeError, TypeError, ValueError):
            return "sklearn", self._sklearn, None
        probe = _probe_rows(self.n_features)
        expected = self._sklearn(probe)
        if not np.allclose(batch(probe), expected, rtol=0.0, atol=_TOLERANCE):
            return "sklearn", self._sklearn, None
        if row is not None:
            singles = np.array([row(np.ascontiguousarray(r)) for r in probe])
            if not np.allclose(singles, expected, rtol=0.0, atol=_TOLERANCE):
                row = None
        return name, batch, row

    def _check_row(self, row: npt.ArrayLike) -> F64:
        arr = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {arr.shape[0]}")
        return arr

    def predict_row(self, row: npt.ArrayLike) -> float:
        """``P(up)`` for one feature row (``compute_last(bars, feature_names)``); NaN if a value is
        NaN or inf; ``ValueError`` if it does not hold ``n_features`` values, or if the model is a
        sequence model (it reads ``sequence`` rows: ``predict_window``)."""
        if self.sequence > 1:
            raise ValueError(
                f"a {self.trained.model_type} model reads the last {self.sequence} feature rows, not one"
            )
        arr = self._check_row(row)
        if not np.isfinite(arr).all():
            return math.nan
        if self._row is not None:
            return self._row(arr)
        return float(self._batch(arr.reshape(1, -1))[0])

    def predict_matrix(self, X: npt.ArrayLike) -> F64:
        """``P(up)`` for each row of a 2-D ``X`` (columns as ``feature_names``), NaN for a row
        holding a NaN or inf. One library call for all the finite rows. For a sequence model the rows
        are consecutive bars: row ``i``'s prediction reads rows ``i - sequence + 1 .. i`` (fewer at
        the start), and is NaN if any of them holds a NaN or inf."""
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-D array with {self.n_features} columns, got shape {arr.shape}")
        if self.sequence > 1:  # row i reads rows i - sequence + 1 .. i: none may be dropped
            return self._batch(np.ascontiguousarray(arr))
        ok = np.isfinite(arr).all(axis=1)
        if ok.all():
            return self._batch(np.ascontiguousarray(arr)) if len(arr) else np.empty(0)
        out = np.full(len(arr), np.nan)
        if ok.any():
            out[ok] = self._batch(np.ascontiguousarray(arr[ok]))
        return out

    def predict_window(self, rows: npt.ArrayLike) -> float:
        """``P(up)`` at the last of ``rows`` (consecutive bars' feature rows, at least ``sequence``
        of them; only the last ``sequence`` are read); NaN if one of those is not finite."""
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features or len(arr) < self.sequence:
            raise ValueError(
                f"expected at least {self.sequence} rows of {self.n_features} features, got shape {arr.shape}"
            )
        if self.sequence == 1:
            return self.predict_row(arr[-1])
        window = np.ascontiguousarray(arr[-self.sequence :])
        if not np.isfinite(window).all():
            return math.nan
        return float(self._batch(window)[-1])

    def predict_bars(self, bars: Bars) -> float:
        """``P(up)`` at the last bar: its features (``compute_last``, reading the last ``trained.window``
        bars), then ``predict_row``; for a sequence model the features of the last ``sequence``
        bars, then ``predict_window``. Pass at least ``bars_needed`` bars. NaN if a feature is not
        defined yet."""
        if self.sequence == 1:
            return self.predict_row(compute_last(bars, self._plan))
        tail = bars.slice(max(0, len(bars) - self.bars_needed), len(bars))
        return self.predict_window(compute(tail, self._plan).values[-self.sequence :])

    def predict_series(self, bars: Bars) -> F64:
        """``P(up)`` at every bar (``features.compute`` over ``bars``), NaN during the warm-up."""
        return self.predict_matrix(compute(bars, self._plan).values)

    def stream(self) -> StreamingPredictor:
        """A bar-by-bar predictor: features updated incrementally (``engine.ml.streaming``), then
        ``predict_row`` (the fastest path for live bars: no window is recomputed)."""
        return StreamingPredictor(self)


class StreamingPredictor:
    """``P(up)`` per new bar from a ``FeatureStream`` (one per series; not shared between threads)."""

    def __init__(self, predictor: Predictor) -> None:
        from algotrendy.engine.ml.streaming import FeatureStream

        self.predictor = predictor
        self._features = FeatureStream(predictor.feature_names)
        n = predictor.sequence
        self._rows = np.full((n, predictor.n_features), np.nan)  # the last n feature rows, oldest first

    def _predict(self, row: F64) -> float:
        if self.predictor.sequence == 1:
            return self.predictor.predict_row(row)
        self._rows[:-1] = self._rows[1:]
        self._rows[-1] = row
        return self.predictor.predict_window(self._rows)

    def update(self, ts: int, open: float, high: float, low: float, close: float, volume: float) -> float:
        """The bar's ``P(up)`` (NaN while the features warm up); ``ValueError`` for a bar out of order."""
        return self._predict(self._features.update(ts, open, high, low, close, volume))

    def warm(self, bars: Bars) -> float:
        """Feed history; ``P(up)`` at its last bar."""
        n = len(bars)
        k = min(n, self.predictor.sequence)
        p = self._predict(self._features.warm(bars.slice(0, n - k + 1)))
        for i in range(n - k + 1, n):
            p = self.update(
                int(bars.ts[i]), float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                float(bars.close[i]), float(bars.volume[i]),
            )  # fmt: skip
        return p
