"""LSTM model: the numpy forward pass equals torch's, windows never look ahead, it learns a lagged
signal and not noise, seeded fits repeat, weights matter, pickles predict without torch.

Tests that train need PyTorch (``pytest.importorskip``); the numpy prediction path is tested with
hand-set weights and runs everywhere.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algotrendy.engine.ml import lstm as lstm_mod
from algotrendy.engine.ml.lstm import TORCH_MISSING, LstmClassifier, LstmWeights, lstm_logits
from algotrendy.engine.ml.models import (
    BASE_TYPES,
    DEFAULT_MEMBERS,
    MODEL_TYPES,
    SPACES,
    default_params,
    make_model,
    sequence_length,
    suggest,
    torch_available,
    validate_params,
)

TINY: dict[str, Any] = {"seq_len": 6, "hidden_size": 8, "epochs": 15, "learning_rate": 0.01, "batch_size": 32}


def hand_set(
    n_features: int = 3, hidden: int = 5, layers: int = 1, seq_len: int = 6, seed: int = 0
) -> LstmClassifier:
    """An estimator with random weights, set by hand (no torch, no fit)."""
    rng = np.random.default_rng(seed)

    def a(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.5, shape).astype(np.float32)

    layer_weights = tuple(
        (a(4 * hidden, n_features if k == 0 else hidden), a(4 * hidden, hidden), a(4 * hidden), a(4 * hidden))
        for k in range(layers)
    )
    est = LstmClassifier(seq_len=seq_len, hidden_size=hidden, num_layers=layers)
    est.classes_ = np.array([0, 1])
    est.n_features_in_ = n_features
    est.mean_ = rng.normal(size=n_features)
    est.scale_ = rng.uniform(0.5, 2.0, n_features)
    est.weights_ = LstmWeights(layer_weights, a(hidden), 0.1)
    return est


def lagged(n: int = 800, lag: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Direction at row i = sign of feature 0 ``lag`` rows back (plus noise): invisible in row i."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    past = np.r_[np.zeros(lag), X[:-lag, 0]]
    y = (past + 0.3 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def accuracy(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(X) == y))


# ---- numpy prediction (no torch) --------------------------------------------------------------


def test_registered_as_a_base_type_but_not_a_default_member() -> None:
    assert "lstm" in MODEL_TYPES and "lstm" in BASE_TYPES and "lstm" not in DEFAULT_MEMBERS
    assert default_params("lstm")["seq_len"] == 32 and default_params("lstm")["num_layers"] == 1
    model = make_model("lstm", {"seq_len": 10}, seed=4, n_jobs=2)  # constructing needs no torch
    assert isinstance(model, LstmClassifier)
    assert model.random_state == 4 and model.n_jobs == 2 and model.seq_len == 10
    assert torch_available() == (__import__("importlib").util.find_spec("torch") is not None)


def test_windows_read_the_last_seq_len_rows_and_never_ahead() -> None:
    est = hand_set(seq_len=6)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    p = est.predict_proba(X)
    assert p.shape == (40, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all((p > 0) & (p < 1))
    moved = X.copy()
    moved[20] += 5.0
    q = est.predict_proba(moved)[:, 1]
    np.testing.assert_array_equal(q[:20], p[:20, 1])  # rows before 20 never read row 20
    assert np.all(np.abs(q[20:26] - p[20:26, 1]) > 1e-9)  # the 6 windows holding row 20
    np.testing.assert_array_equal(q[26:], p[26:, 1])  # windows past it do not
    # the latest bar from only its last seq_len rows: the same as from the whole history
    last = est.predict_proba(X[-6:])[-1]
    np.testing.assert_allclose(last, p[-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.predict_proba_last(X), p[-1], rtol=0, atol=1e-12)  # one window
    np.testing.assert_allclose(est.predict_proba_last(X[:3]), p[2], rtol=0, atol=1e-12)  # padded
    # before the start of X: the training mean (zero after standardization)
    padded = np.vstack([np.tile(est.mean_, (5, 1)), X[:3]])
    np.testing.assert_allclose(est.predict_proba(padded)[5:], p[:3], rtol=0, atol=1e-12)
    assert est.predict(X).tolist() == [int(v > 0.5) for v in p[:, 1]]


def test_blocks_of_rows_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    est = hand_set(layers=2, seq_len=7, seed=3)
    X = np.random.default_rng(2).normal(size=(100, 3))
    whole = est.predict_proba(X)
    monkeypatch.setattr(lstm_mod, "_CHUNK", 9)
    np.testing.assert_allclose(est.predict_proba(X), whole, rtol=0, atol=1e-13)


def test_nan_reaches_only_the_windows_holding_it_and_columns_are_checked() -> None:
    est = hand_set(seq_len=4)
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[10, 1] = np.nan
    p = est.predict_proba(X)[:, 1]
    assert np.isnan(p[10:14]).all() and np.isfinite(np.r_[p[:10], p[14:]]).all()
    with pytest.raises(ValueError, match="3 columns"):
        est.predict_proba(X[:, :2])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LstmClassifier().predict_proba(X)


def test_sequence_length_of_models_and_ensembles() -> None:
    assert sequence_length(make_model("lstm", {"seq_len": 12})) == 12
    assert sequence_length(make_model("logistic")) == 1
    assert sequence_length(make_model("lightgbm")) == 1
    voting = make_model("voting", {"members": ["logistic", "lstm"], "lstm": {"seq_len": 9}})
    assert sequence_length(voting) == 9
    stacking = make_model("stacking", {"members": ["lstm", "random_forest"], "lstm": {"seq_len": 5}})
    assert sequence_length(stacking) == 5
    assert sequence_length(make_model("voting")) == 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"seq_len": 0}, r"hyperparams\.seq_len"),
        ({"seq_len": 4.5}, r"hyperparams\.seq_len must be an integer"),
        ({"num_layers": 3}, r"hyperparams\.num_layers"),
        ({"hidden_size": 0}, r"hyperparams\.hidden_size"),
        ({"learning_rate": 0}, r"hyperparams\.learning_rate"),
        ({"dropout": 1.0}, r"hyperparams\.dropout"),
        ({"weight_decay": -1e-3}, r"hyperparams\.weight_decay"),
        ({"validation_fraction": 0.6}, r"hyperparams\.validation_fraction"),
        ({"epochs": True}, r"hyperparams\.epochs"),
        ({"layers": 2}, r"hyperparams\.layers is not a lstm parameter"),
        ({"random_state": 1}, r"hyperparams\.random_state"),
    ],
)
def test_bad_params_name_the_key(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_model("lstm", params)
    with pytest.raises(ValueError, match=match.replace(r"hyperparams\.", r"hyperparams\.lstm\.")):
        validate_params("voting", {"members": ["lstm", "logistic"], "lstm": params})


def test_fit_checks_its_params_and_inputs_before_needing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = lagged(60)
    with pytest.raises(ValueError, match=r"seq_len"):
        LstmClassifier(seq_len=0).fit(X, y)
    with pytest.raises(ValueError, match="two classes"):
        LstmClassifier().fit(X, np.ones(60))
    with pytest.raises(ValueError, match="NaN"):
        LstmClassifier().fit(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="sample_weight"):
        LstmClassifier().fit(X, y, sample_weight=-np.ones(60))
    monkeypatch.setattr(lstm_mod, "torch_available", lambda: False)
    with pytest.raises(ValueError) as err:
        LstmClassifier().fit(X, y)
    assert str(err.value) == TORCH_MISSING
    assert "pip install torch==2.13.0 (CPU build)" in TORCH_MISSING


def test_suggest_gives_valid_params() -> None:
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    params = suggest(trial, "lstm", {"epochs": 5})
    assert params["epochs"] == 5
    assert set(params) == {"epochs", *(name for name, *_ in SPACES["lstm"])}
    validate_params("lstm", params)


# ---- training (torch) -------------------------------------------------------------------------


def reference_logits(torch: Any, net: Any, est: LstmClassifier, X: np.ndarray, dtype: Any) -> np.ndarray:
    """Torch's own forward pass over windows built here row by row (zero padding before X)."""
    L = est.seq_len
    Z = (X - est.mean_) / est.scale_
    padded = np.vstack([np.zeros((L - 1, X.shape[1])), Z])
    windows = np.stack([padded[i : i + L] for i in range(len(X))])
    with torch.no_grad():
        out = lstm_mod._net_logits(net.to(dtype).eval(), torch.from_numpy(windows).to(dtype))
    return np.asarray(out.double().numpy())


@pytest.mark.parametrize("layers", [1, 2])
def test_numpy_forward_equals_torch(layers: int) -> None:
    """float64: numpy vs torch on the same weights to 1e-9; float32 torch (as trained) to 1e-5."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(layers)
    net = lstm_mod._torch_net(torch, 4, 7, layers, 0.3)  # dropout is off in eval mode
    est = hand_set(n_features=4, hidden=7, layers=layers, seq_len=9)
    est.weights_ = lstm_mod._export(net)
    X = np.random.default_rng(5).normal(size=(60, 4))
    ours = est.decision_function(X)
    np.testing.assert_allclose(ours, reference_logits(torch, net, est, X, torch.float64), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours, reference_logits(torch, net, est, X, torch.float32), rtol=0, atol=1e-5)
    p = est.predict_proba(X)[:, 1]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-ours)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(lstm_logits((X - est.mean_) / est.scale_, est.weights_, 9), ours)


def test_a_trained_model_predicts_as_its_torch_network() -> None:
    torch = pytest.importorskip("torch")
    X, y = lagged(300)
    est = LstmClassifier(**{**TINY, "num_layers": 2, "epochs": 3}).fit(X, y)
    net = lstm_mod._torch_net(torch, 3, TINY["hidden_size"], 2, 0.0)
    w = est.weights_
    state = {}
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(w.layers):
        state |= {f"lstm.weight_ih_l{k}": w_ih, f"lstm.weight_hh_l{k}": w_hh}
        state |= {f"lstm.bias_ih_l{k}": b_ih, f"lstm.bias_hh_l{k}": b_hh}
    state |= {"head.weight": w.head_weight[None, :], "head.bias": np.array([w.head_bias], np.float32)}
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    ref = reference_logits(torch, net, est, X, torch.float32)
    np.testing.assert_allclose(est.decision_function(X), ref, rtol=0, atol=1e-5)
    assert all(a.dtype == np.float32 for layer in w.layers for a in layer)


def test_fits_are_deterministic_given_the_seed_and_leave_torch_state_alone() -> None:
    torch = pytest.importorskip("torch")
    X, y = lagged(300)
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state()
    a = make_model("lstm", {**TINY, "epochs": 4}, seed=5).fit(X, y)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    b = make_model("lstm", {**TINY, "epochs": 4}, seed=5).fit(X, y)
    c = make_model("lstm", {**TINY, "epochs": 4}, seed=6).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.history_ == b.history_
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_learns_a_lagged_signal_a_row_model_cannot_see() -> None:
    pytest.importorskip("torch")
    X, y = lagged(800, lag=3)
    model = make_model("lstm", {**TINY, "seq_len": 8, "hidden_size": 16, "epochs": 20}, seed=1)
    model.fit(X[:600], y[:600])
    assert accuracy(model, X[600:], y[600:]) > 0.7
    row_model = make_model("logistic").fit(X[:600], y[:600])
    assert abs(accuracy(row_model, X[600:], y[600:]) - 0.5) < 0.08
    assert 1 <= model.best_epoch_ <= model.n_epochs_ <= 20
    assert len(model.history_["val_loss"]) == model.n_epochs_


def test_finds_nothing_in_noise_and_stops_early() -> None:
    from sklearn.metrics import roc_auc_score

    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(900, 3))
    y = (rng.random(900) > 0.5).astype(np.int64)
    model = make_model("lstm", {**TINY, "epochs": 40, "patience": 3}, seed=2).fit(X[:600], y[:600])
    auc = roc_auc_score(y[600:], model.predict_proba(X[600:])[:, 1])
    assert abs(auc - 0.5) < 0.07
    assert model.n_epochs_ < 40  # validation loss stopped improving
    assert model.history_["val_loss"][model.best_epoch_ - 1] == min(model.history_["val_loss"])


def test_without_validation_it_runs_every_epoch() -> None:
    pytest.importorskip("torch")
    X, y = lagged(200)
    model = make_model("lstm", {**TINY, "epochs": 3, "validation_fraction": 0}).fit(X, y)
    assert model.n_epochs_ == model.best_epoch_ == 3 and model.history_["val_loss"] == []


def test_sample_weight_changes_the_fit() -> None:
    pytest.importorskip("torch")
    X, y = lagged(400)
    w = np.where(y == 1, 3.0, 1.0)  # heavier positives: a higher predicted positive rate
    params = {**TINY, "epochs": 5}
    weighted = make_model("lstm", params).fit(X, y, sample_weight=w).predict_proba(X)[:, 1].mean()
    plain = make_model("lstm", params).fit(X, y).predict_proba(X)[:, 1].mean()
    assert weighted > plain + 0.05


def test_pickle_is_small_and_predicts_without_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    X, y = lagged(300)
    model = make_model("lstm", {**TINY, "epochs": 3}).fit(X, y)
    blob = pickle.dumps(model)
    assert len(blob) < 20_000
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(X), model.predict_proba(X))
    (tmp_path / "model.pkl").write_bytes(blob)
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np\n"
        f"model = pickle.loads(open({str(tmp_path / 'model.pkl')!r}, 'rb').read())\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, model.predict_proba(np.load({str(tmp_path / 'X.npy')!r})))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict_proba(X))


@pytest.mark.parametrize("ensemble", ["voting", "stacking"])
def test_an_lstm_member_in_an_ensemble(ensemble: str) -> None:
    pytest.importorskip("torch")
    X, y = lagged(500)
    params: dict[str, Any] = {"members": ["lstm", "logistic"], "lstm": {**TINY, "epochs": 10}}
    if ensemble == "stacking":
        params["cv_splits"] = 2
    t0 = np.arange(400)
    model = make_model(ensemble, params, seed=1, spans=(t0, t0), embargo=5)
    model.fit(X[:400], y[:400], sample_weight=np.ones(400))
    assert accuracy(model, X[400:], y[400:]) > 0.6
    assert sequence_length(model) == TINY["seq_len"]


@pytest.mark.parametrize(("beta", "signal"), [(-0.45, True), (0.0, False)])
def test_pipeline_end_to_end(beta: float, signal: bool) -> None:
    """AR(1) returns: found in the purged CV and the hold-out; a random walk: AUC about 0.5."""
    pytest.importorskip("torch")
    from algotrendy.engine.ml.features import compute
    from algotrendy.engine.ml.pipeline import TrainingConfig, train
    from tests.unit.engine.ml.test_pipeline import planted_bars

    bars = planted_bars(1200, seed=3, beta=beta)
    hyper = {**TINY, "seq_len": 4, "epochs": 10}
    config = TrainingConfig(features="minimal", model_type="lstm", hyperparams=hyper, cv_splits=3, embargo=5)
    trained = train(bars, config)
    for part in ("cv", "holdout"):
        auc = trained.metrics[part]["model"]["auc"]
        assert auc > 0.6 if signal else abs(auc - 0.5) < 0.07, (part, auc)
    assert trained.model_type == "lstm" and sequence_length(trained.model) == 4
    X = compute(bars, trained.feature_spec).values
    last = trained.predict_proba(X[-4:])[-1]  # what a live prediction passes: the last seq_len rows
    assert last == pytest.approx(trained.predict_proba(X[-200:])[-1], abs=1e-12)
    assert trained.model.predict_proba_last(X[-4:])[1] == pytest.approx(last, abs=1e-12)
    again = pickle.loads(pickle.dumps(trained))
    np.testing.assert_array_equal(again.predict_proba(X[-50:]), trained.predict_proba(X[-50:]))


def test_pipeline_with_a_dead_zone_trains_on_every_bar_and_scores_the_labelled() -> None:
    """Bars inside the dead zone are weight-0 context in the windows: the planted signal is still
    found, and every metric counts the labelled bars only."""
    pytest.importorskip("torch")
    from algotrendy.engine.ml.features import parse
    from algotrendy.engine.ml.pipeline import LabelSpec, TrainingConfig, train
    from algotrendy.engine.ml.steps import _engineer
    from tests.unit.engine.ml.test_pipeline import planted_bars

    bars = planted_bars(1200, seed=3, beta=-0.45)
    config = TrainingConfig(
        features="minimal",
        model_type="lstm",
        hyperparams={**TINY, "seq_len": 4, "epochs": 10},
        label=LabelSpec("direction", horizon=1, dead_zone=0.004),
        cv_splits=3,
        embargo=5,
    )
    trained = train(bars, config)
    data = _engineer(bars, parse(config.features), config)
    labelled = ~np.isnan(data.y)
    assert trained.metrics["n_train"] == labelled[data.train].sum() < len(data.train)
    assert trained.metrics["n_holdout"] == labelled[data.holdout].sum() < len(data.holdout)
    assert trained.train_range["n_samples"] == trained.metrics["n_train"]
    for part in ("cv", "holdout"):
        assert trained.metrics[part]["model"]["auc"] > 0.6, part
