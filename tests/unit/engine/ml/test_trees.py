"""The compiled tree walk gives LightGBM's own probabilities, bit for bit, on every input it takes."""

from __future__ import annotations

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

from algotrendy.engine.ml import trees as trees_mod  # noqa: E402
from algotrendy.engine.ml.trees import CompiledTrees  # noqa: E402


def _data(n: int = 3000, f: int = 12, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)) * np.geomspace(0.01, 100, f)
    y = ((X[:, 0] / 0.01 + X[:, 3] / X[:, 3].std() + rng.standard_normal(n)) > 0).astype(int)
    return X, y


def _booster(X: np.ndarray, y: np.ndarray, **params: object) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 15, "verbose": -1, "deterministic": True, "num_threads": 1}
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=60)


def test_finite_rows_match_lightgbm_exactly() -> None:
    X, y = _data()
    booster = _booster(X, y)
    trees = CompiledTrees.from_lightgbm(booster)
    want = booster.predict(X, num_threads=1)
    assert np.array_equal(trees.predict(X, finite=True), want)
    assert np.array_equal(trees.predict(X), want)
    assert trees.n_features == X.shape[1]
    rows = np.array([trees.predict_row(r, finite=True) for r in X[:500]])
    assert np.array_equal(rows, want[:500])
    assert np.array_equal([trees.predict_row(r) for r in X[:500]], want[:500])


def test_missing_values_follow_lightgbm_rules() -> None:
    X, y = _data(seed=5)
    X[::9, 0] = np.nan  # trained with NaNs: NaN-type missing nodes with a learned default side
    booster = _booster(X, y)
    test = _data(seed=6)[0]
    test[::4, 0] = np.nan
    test[::5, 1] = np.nan  # a feature trained without NaN: NaN reads as 0.0
    test[::6, 2] = 0.0
    trees = CompiledTrees.from_lightgbm(booster)
    want = booster.predict(test, num_threads=1)
    assert np.array_equal(trees.predict(test), want)
    assert np.array_equal([trees.predict_row(r) for r in test], want)


def test_zero_as_missing_model_takes_the_general_kernel() -> None:
    X, y = _data(seed=7)
    X[::3, 0] = 0.0
    booster = _booster(X, y, zero_as_missing=True)
    trees = CompiledTrees.from_lightgbm(booster)
    assert trees.zero_missing
    test = _data(seed=8)[0]
    test[::2, 0] = 0.0
    test[::7, 0] = 1e-36  # within LightGBM's zero threshold: missing too
    want = booster.predict(test, num_threads=1)
    assert np.array_equal(trees.predict(test, finite=True), want)
    assert np.array_equal(
        [trees.predict_row(r, finite=True) for r in test], want
    )  # the promise is not enough


def test_num_iteration_keeps_the_first_trees() -> None:
    X, y = _data(seed=9)
    booster = _booster(X, y)
    got = CompiledTrees.from_lightgbm(booster, num_iteration=17).predict(X)
    assert np.array_equal(got, booster.predict(X, num_iteration=17, num_threads=1))
    assert not np.array_equal(got, booster.predict(X, num_threads=1))


def test_threaded_blocks_equal_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _data(n=20_000, seed=11)
    booster = _booster(X, y)
    trees = CompiledTrees.from_lightgbm(booster)
    monkeypatch.setattr(trees_mod, "_WORKERS", 3)  # three blocks even on a smaller machine
    split = trees.predict(X, finite=True)
    assert np.array_equal(split, trees.predict(X, finite=True, threads=1))
    monkeypatch.setattr(trees_mod, "_WORKERS", 1)
    assert np.array_equal(split, trees.predict(X, finite=True))
    assert np.array_equal(split, booster.predict(X, num_threads=1))


def test_unsupported_models_are_refused() -> None:
    X, _ = _data(seed=12)
    X[:, 1] = np.random.default_rng(1).integers(0, 5, len(X))
    categorical = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(X, (X[:, 1] == 2).astype(int), categorical_feature=[1]),
        num_boost_round=5,
    )
    with pytest.raises(ValueError, match="categorical"):
        CompiledTrees.from_lightgbm(categorical)
    multiclass = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, np.arange(len(X)) % 3),
        num_boost_round=3,
    )
    with pytest.raises(ValueError, match="binary"):
        CompiledTrees.from_lightgbm(multiclass)


def test_wrong_shape_is_refused() -> None:
    X, y = _data(seed=13)
    trees = CompiledTrees.from_lightgbm(_booster(X, y))
    with pytest.raises(ValueError, match="12 columns"):
        trees.predict(X[:, :5])
    with pytest.raises(ValueError, match="12 features"):
        trees.predict_row(X[0, :5])
    with pytest.raises(ValueError, match="12 features"):
        trees.predict_row(X[:2])
    assert trees.predict(X[:0]).shape == (0,)
