"""Predictor: every fast path gives TrainedModel.predict_proba's numbers, NaN/shape handling, bars, threads.

``trained_model`` (small planted-signal models of every type, cached per process) is shared with
``test_explain``."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.ml.features import compute, compute_last
from algotrendy.engine.ml.models import MODEL_TYPES
from algotrendy.engine.ml.pipeline import TrainedModel, TrainingConfig, train
from algotrendy.engine.ml.trees import CompiledTrees
from algotrendy.services.ml import inference
from algotrendy.services.ml.inference import Predictor
from tests.unit.engine.ml.test_pipeline import planted_bars

FEATURES = ("ret_1", "vol_20", "rsi_14", "volume_z_20", "hl_range", "dollar_vol_20")
"""``ret_1`` carries the planted AR(1) signal; the rest are noise or only weakly related to it
(``co_ret`` is left out: on these bars it equals ``ret_1``)."""
PLANTED = "ret_1"
TINY: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 20},
    "xgboost": {"n_estimators": 20, "max_depth": 3},
    "catboost": {"iterations": 20, "depth": 3},
    "logistic": {},
    "random_forest": {"n_estimators": 20, "min_samples_leaf": 20},
    "lstm": {"seq_len": 8, "hidden_size": 8, "epochs": 8},
}
ROW_TYPES = tuple(t for t in MODEL_TYPES if t != "lstm")
"""Row-wise models; the sequence model (``lstm``) has its own tests (``test_sequence.py``)."""
PATHS = {"lightgbm": "lightgbm-booster", "xgboost": "xgboost-inplace", "catboost": "catboost-1-thread"}


def hyperparams(model_type: str) -> dict[str, Any]:
    if model_type in TINY:
        return TINY[model_type]
    members: dict[str, Any] = {"members": ["lightgbm", "logistic"], "lightgbm": TINY["lightgbm"]}
    return {**members, "cv_splits": 3} if model_type == "stacking" else members


@cache
def bars() -> Bars:
    return planted_bars(1500)


@cache
def trained_model(model_type: str) -> TrainedModel:
    config = TrainingConfig(
        features=FEATURES, model_type=model_type, hyperparams=hyperparams(model_type), cv_splits=3, embargo=5
    )
    return train(bars(), config)


def feature_matrix() -> np.ndarray:
    return compute(bars(), FEATURES).values


@pytest.mark.parametrize("model_type", ROW_TYPES)
def test_every_path_gives_the_models_own_probabilities(model_type: str) -> None:
    trained = trained_model(model_type)
    p = Predictor(trained)
    assert p.path == PATHS.get(model_type, "sklearn")
    assert p.feature_names == FEATURES and p.n_features == len(FEATURES) and p.trained is trained
    X = feature_matrix()
    ok = np.isfinite(X).all(axis=1)
    expected = np.full(len(X), np.nan)
    expected[ok] = trained.predict_proba(X[ok])
    got = p.predict_matrix(X)
    assert np.array_equal(np.isnan(got), ~ok)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=0, atol=1e-12)
    assert expected[ok].std() > 0.01  # the rows reach different leaves: a real comparison
    for i in np.flatnonzero(ok)[::50]:
        assert abs(p.predict_row(X[i]) - trained.predict_proba_row(X[i])) <= 1e-12


def _compiled_row(p: Predictor) -> bool:
    row = p._row
    return isinstance(row, functools.partial) and isinstance(row.func.__self__, CompiledTrees)


def test_lightgbm_single_rows_take_the_compiled_walk() -> None:
    trained = trained_model("lightgbm")
    p = Predictor(trained)
    assert _compiled_row(p)  # the probe check passed: not a fallback
    X = feature_matrix()[-300:]
    singles = np.array([p.predict_row(r) for r in X])
    np.testing.assert_array_equal(singles, p.predict_matrix(X))  # the same trees, bit for bit
    np.testing.assert_array_equal(singles, trained.model.booster_.predict(X, num_threads=1))


def test_a_lightgbm_model_the_walk_refuses_keeps_the_c_single_row_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(booster: Any, num_iteration: int = -1) -> CompiledTrees:
        raise ValueError("unsupported split 'in' (categorical)")

    monkeypatch.setattr(CompiledTrees, "from_lightgbm", refuse)
    trained = trained_model("lightgbm")
    p = Predictor(trained)
    assert p.path == "lightgbm-booster" and isinstance(p._row, inference._FastRow)
    X = feature_matrix()[-100:]
    singles = np.array([p.predict_row(r) for r in X])
    np.testing.assert_array_equal(singles, trained.model.booster_.predict(X, num_threads=1))
    np.testing.assert_array_equal(p.predict_matrix(X), singles)


def test_a_fast_path_that_disagrees_falls_back_to_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    real = inference._lightgbm

    def off_by_a_little(model: Any, n_features: int) -> Any:
        batch, row = real(model, n_features)
        return (lambda X: batch(X) + 1e-9), row

    monkeypatch.setattr(inference, "_lightgbm", off_by_a_little)
    trained = trained_model("lightgbm")
    p = Predictor(trained)
    assert p.path == "sklearn" and p._row is None
    X = feature_matrix()[-50:]
    np.testing.assert_array_equal(p.predict_matrix(X), trained.predict_proba(X))


@pytest.mark.parametrize("model_type", ["lightgbm", "xgboost", "logistic"])
def test_non_finite_inputs_give_nan_and_wrong_shapes_raise(model_type: str) -> None:
    p = Predictor(trained_model(model_type))
    X = feature_matrix()[-20:].copy()
    assert np.isfinite(X).all()
    clean = p.predict_matrix(X)
    X[3, 0] = np.nan
    X[7, 2] = np.inf
    X[9, 5] = -np.inf
    got = p.predict_matrix(X)
    bad = [3, 7, 9]
    assert np.isnan(got[bad]).all()
    keep = np.setdiff1d(np.arange(20), bad)
    np.testing.assert_array_equal(got[keep], clean[keep])
    assert np.isnan(p.predict_row(X[3])) and np.isnan(p.predict_row(X[7]))
    assert np.isnan(p.predict_matrix(np.full((4, len(FEATURES)), np.nan))).all()
    assert p.predict_matrix(np.empty((0, len(FEATURES)))).shape == (0,)
    with pytest.raises(ValueError, match="expected 6 features, got 5"):
        p.predict_row(X[0, :5])
    with pytest.raises(ValueError, match="6 columns"):
        p.predict_matrix(X[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        p.predict_matrix(X[0])


@pytest.mark.parametrize("model_type", ["lightgbm", "catboost"])
def test_bars_in_probability_out(model_type: str) -> None:
    trained = trained_model(model_type)
    p = Predictor(trained)
    b = bars()
    window = b.slice(len(b) - trained.window, len(b))
    assert p.predict_bars(window) == p.predict_row(compute_last(window, FEATURES))
    assert p.predict_bars(b) == pytest.approx(
        trained.predict_proba_row(compute(b, FEATURES).values[-1]), abs=1e-6
    )
    assert np.isnan(p.predict_bars(b.slice(0, trained.warmup)))  # too short: a feature is undefined

    series = p.predict_series(b)
    assert series.shape == (len(b),)
    assert np.isnan(series[: trained.warmup]).all() and np.isfinite(series[trained.warmup :]).all()
    np.testing.assert_array_equal(series, p.predict_matrix(compute(b, FEATURES).values))


def test_concurrent_callers_get_the_sequential_answers() -> None:
    p = Predictor(trained_model("lightgbm"))
    X = feature_matrix()[-400:]
    expected = np.array([p.predict_row(r) for r in X])

    def work(k: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([p.predict_row(r) for r in X[k::4]])
        return rows, p.predict_matrix(X[k::4])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for k, (rows, batch) in enumerate(results):
        np.testing.assert_array_equal(rows, expected[k::4])
        np.testing.assert_array_equal(batch, expected[k::4])


def test_pickles_by_rebuilding_from_the_trained_model() -> None:
    p = Predictor(trained_model("lightgbm"))
    again = pickle.loads(pickle.dumps(p))
    assert again.path == p.path and _compiled_row(again)
    row = feature_matrix()[-1]
    assert again.predict_row(row) == p.predict_row(row)


def test_importing_the_module_does_not_import_the_ml_libraries() -> None:
    code = (
        "import sys; import algotrendy.services.ml.inference, algotrendy.services.ml.explain; "
        "print([m for m in ('lightgbm', 'xgboost', 'catboost', 'sklearn', 'shap') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_streaming_predictor_equals_the_window_path() -> None:
    """Bar by bar through ``Predictor.stream`` gives what ``predict_bars`` gives on the window."""
    from algotrendy.engine.ml.pipeline import TrainingConfig, train
    from tests.fakes.data import sample

    bars = sample("AAPL_1d").bars(0, 900)
    trained = train(bars, TrainingConfig(features="minimal", hyperparams={"n_estimators": 20}, cv_splits=2))
    predictor = Predictor(trained)
    live = predictor.stream()
    assert live.warm(bars.slice(0, 600)) == pytest.approx(
        predictor.predict_bars(bars.slice(0, 600)), abs=1e-12
    )
    for i in range(600, 900):
        p = live.update(
            int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        )
        assert p == pytest.approx(predictor.predict_bars(bars.slice(0, i + 1)), abs=1e-12)
    with pytest.raises(ValueError):
        live.update(int(bars.ts[0]), 1.0, 1.0, 1.0, 1.0, 1.0)
