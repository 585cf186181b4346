"""Model factory: every type learns a planted signal, params are checked, stacking purges, lazy imports."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from algotrendy.engine.ml.models import (
    MODEL_TYPES,
    PARAMS,
    SPACES,
    default_params,
    make_model,
    suggest,
    validate_params,
)
from algotrendy.engine.ml.validation import PurgedKFold, purged_kfold

TINY: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 20},
    "xgboost": {"n_estimators": 30, "max_depth": 3},
    "catboost": {"iterations": 30, "depth": 3},
    "logistic": {},
    "random_forest": {"n_estimators": 30, "min_samples_leaf": 20},
    "lstm": {"seq_len": 4, "hidden_size": 8, "epochs": 15, "learning_rate": 0.01, "batch_size": 32},
}


def _params(model_type: str) -> dict[str, Any]:
    if model_type in TINY:
        return TINY[model_type]
    return {"lightgbm": TINY["lightgbm"], "xgboost": TINY["xgboost"]}  # members: default three


def _planted(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (0.8 * X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=n) > 0).astype(np.int64)
    return X, y


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_type_learns_a_planted_signal(model_type: str) -> None:
    from sklearn.metrics import roc_auc_score

    if model_type == "lstm":
        pytest.importorskip("torch")  # an optional install (test_lstm.py tests it in depth)
    X, y = _planted()
    n_fit = 800
    t0 = np.arange(n_fit)
    t1 = np.minimum(t0 + 3, n_fit - 1)
    model = make_model(model_type, _params(model_type), seed=3, spans=(t0, t1), embargo=5)
    w = np.random.default_rng(1).uniform(0.5, 1.5, n_fit)
    model.fit(X[:n_fit], y[:n_fit], sample_weight=w)
    p = model.predict_proba(X[n_fit:])[:, list(model.classes_).index(1)]
    assert roc_auc_score(y[n_fit:], p) > 0.6
    again = pickle.loads(pickle.dumps(model))  # the service logs fitted models as pickles
    np.testing.assert_array_equal(again.predict_proba(X[n_fit:]), model.predict_proba(X[n_fit:]))


def test_fits_are_deterministic_given_the_seed() -> None:
    X, y = _planted(600)
    for model_type in ("lightgbm", "xgboost", "catboost", "random_forest"):
        a = make_model(model_type, _params(model_type), seed=5).fit(X, y).predict_proba(X)
        b = make_model(model_type, _params(model_type), seed=5).fit(X, y).predict_proba(X)
        np.testing.assert_array_equal(a, b)


def test_thread_counts_are_fixed() -> None:
    assert make_model("lightgbm", n_jobs=2).get_params()["n_jobs"] == 2
    assert make_model("xgboost", n_jobs=1).get_params()["n_jobs"] == 1
    assert make_model("catboost", n_jobs=1).get_params()["thread_count"] == 1
    assert make_model("random_forest", n_jobs=1).n_jobs == 1
    cb = make_model("catboost").get_params()
    assert cb["allow_writing_files"] is False and cb["verbose"] is False
    assert make_model("xgboost").get_params()["tree_method"] == "hist"
    with pytest.raises(ValueError, match="n_jobs"):
        make_model("lightgbm", n_jobs=0)


def test_logistic_is_a_scaled_pipeline_that_takes_weights() -> None:
    model = make_model("logistic", {"C": 0.5})
    assert [name for name, _ in model.steps] == ["scale", "logistic"]
    assert type(model).__name__ == "WeightedPipeline"
    X, y = _planted(300)
    w = np.ones(300)
    w[y == 1] = 3.0  # heavier positives: a higher predicted positive rate than unweighted
    weighted = make_model("logistic").fit(X, y, sample_weight=w).predict_proba(X)[:, 1].mean()
    plain = make_model("logistic").fit(X, y).predict_proba(X)[:, 1].mean()
    assert weighted > plain + 0.05


def test_stacking_inner_cv_is_purged() -> None:
    t0 = np.arange(100)
    t1 = np.minimum(t0 + 5, 99)
    model = make_model("stacking", {"cv_splits": 4}, spans=(t0, t1), embargo=3)
    cv = model.cv
    assert isinstance(cv, PurgedKFold)
    assert cv.n_splits == 4 and cv.embargo == 3
    np.testing.assert_array_equal(cv.t0, t0)
    np.testing.assert_array_equal(cv.t1, t1)
    folds = list(cv.split(np.zeros((100, 2))))
    expected = list(purged_kfold(t0, t1, 4, 3))
    for (train, test), (e_train, e_test) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(train, e_train)
        np.testing.assert_array_equal(test, e_test)
        for j in train:  # no training label overlaps the test block
            assert t1[j] < t0[test[0]] or t0[j] > t1[test].max()
    assert model.stack_method == "predict_proba"
    # without spans: still a PurgedKFold (one-bar labels, the embargo only), never sklearn's KFold
    assert isinstance(make_model("stacking").cv, PurgedKFold)


def test_voting_is_soft_over_the_members() -> None:
    model = make_model("voting", {"members": ["lightgbm", "logistic"], "weights": [2, 1]})
    assert model.voting == "soft"
    assert [name for name, _ in model.estimators] == ["lightgbm", "logistic"]
    assert model.weights == [2.0, 1.0]
    assert [name for name, _ in make_model("voting").estimators] == ["lightgbm", "xgboost", "logistic"]


@pytest.mark.parametrize(
    ("model_type", "params", "match"),
    [
        ("lightgbm", {"num_leavs": 3}, r"hyperparams\.num_leavs"),
        ("lightgbm", {"n_jobs": 4}, r"hyperparams\.n_jobs"),
        ("lightgbm", {"num_leaves": 1}, r"hyperparams\.num_leaves"),
        ("lightgbm", {"num_leaves": 3.5}, r"hyperparams\.num_leaves must be an integer"),
        ("lightgbm", {"learning_rate": 0}, r"hyperparams\.learning_rate"),
        ("lightgbm", {"learning_rate": "fast"}, r"hyperparams\.learning_rate"),
        ("xgboost", {"num_leaves": 3}, r"hyperparams\.num_leaves"),
        ("logistic", {"C": -1.0}, r"hyperparams\.C"),
        ("random_forest", {"max_features": "all"}, r"hyperparams\.max_features"),
        ("catboost", {"depth": True}, r"hyperparams\.depth"),
        ("voting", {"lightgbm": {"bad": 1}}, r"hyperparams\.lightgbm\.bad"),
        ("voting", {"catboost": {}}, r"hyperparams\.catboost"),
        ("voting", {"members": ["lightgbm"]}, r"hyperparams\.members"),
        ("voting", {"members": ["lightgbm", "voting"]}, r"hyperparams\.members"),
        ("voting", {"weights": [1, 2]}, r"hyperparams\.weights"),
        ("stacking", {"weights": [1, 2, 3]}, r"hyperparams\.weights"),
        ("stacking", {"cv_splits": 1}, r"hyperparams\.cv_splits"),
    ],
)
def test_bad_params_name_the_key(model_type: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_params(model_type, params)
    with pytest.raises(ValueError, match=match):
        make_model(model_type, params)


def test_unknown_type() -> None:
    with pytest.raises(ValueError, match="model_type"):
        make_model("svm")


def test_defaults() -> None:
    for model_type, table in PARAMS.items():
        assert default_params(model_type) == {k: p.default for k, p in table.items()}
        make_model(model_type, default_params(model_type))
    stacking = default_params("stacking")
    assert stacking["members"] == ["lightgbm", "xgboost", "logistic"]
    assert stacking["lightgbm"] == default_params("lightgbm")
    assert validate_params("lightgbm", {"num_leaves": np.int64(7)})["num_leaves"] == 7


def test_suggest_covers_the_space_keeps_fixed_keys_and_is_seeded() -> None:
    import optuna

    def draws(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        out = []
        for _ in range(3):
            trial = study.ask()
            params = suggest(trial, "voting", {"lightgbm": {"num_leaves": 9}})
            validate_params("voting", params)
            study.tell(trial, 0.0)
            out.append(params)
        return out

    first = draws(11)
    assert first == draws(11)
    assert all(p["lightgbm"]["num_leaves"] == 9 for p in first)
    assert set(first[0]["xgboost"]) == {name for name, *_ in SPACES["xgboost"]}
    trial = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0)).ask()
    params = suggest(trial, "lightgbm", {"learning_rate": 0.1})
    assert params["learning_rate"] == 0.1 and "learning_rate" not in trial.params
    assert set(params) == {name for name, *_ in SPACES["lightgbm"]}


def test_importing_the_engine_does_not_import_the_ml_libraries() -> None:
    code = (
        "import sys\n"
        "import algotrendy.engine.ml.models, algotrendy.engine.ml.pipeline, algotrendy.engine.ml.evaluate\n"
        "heavy = ('sklearn', 'lightgbm', 'xgboost', 'catboost', 'optuna', 'torch')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
