"""Training pipeline: steps and progress, config checks, the untouched hold-out, determinism, packaging."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.ml.features import compute, compute_last
from algotrendy.engine.ml.pipeline import STEPS, LabelSpec, TrainedModel, TrainingConfig, train

TINY_LGBM = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 20}


def planted_bars(n: int = 1500, seed: int = 0, beta: float = -0.45, start: Bars | None = None) -> Bars:
    """Hourly bars whose 1-bar log returns are AR(1) with coefficient ``beta``: the next bar's
    direction is predictable from ``ret_1`` (accuracy about 0.65). With ``start``, the first bars
    are copied from it and the rest continue its last close with a different random path."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, 0.01, n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = beta * r[t - 1] + eps[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    volume = rng.uniform(100, 1000, n)
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 3600) * 1_000_000_000
    bars = Bars(ts, open_, high, low, close, volume)
    if start is None:
        return bars
    k = len(start)
    scale = start.close[-1] / bars.open[k]
    cols = [np.r_[getattr(start, c), getattr(bars, c)[k:] * scale] for c in ("open", "high", "low", "close")]
    return Bars(ts, *cols, np.r_[start.volume, volume[k:]])


def config(**kw: Any) -> TrainingConfig:
    base: dict[str, Any] = {"features": "minimal", "hyperparams": TINY_LGBM, "cv_splits": 3, "embargo": 5}
    return TrainingConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def bars() -> Bars:
    return planted_bars()


@pytest.fixture(scope="module")
def trained(bars: Bars) -> TrainedModel:
    return train(bars, config())


def test_steps_report_progress_in_order_and_monotonically(bars: Bars) -> None:
    calls: list[tuple[str, float]] = []
    train(
        bars,
        config(selection="permutation", select_k=5, optimize_trials=2),
        lambda s, f: calls.append((s, f)),
    )
    order = [s for i, (s, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != s]
    assert order == list(STEPS)
    fractions = [f for _, f in calls]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions)
    assert calls[-1] == ("ModelDeployment", 1.0)
    inner = {s for s in STEPS if sum(1 for c in calls if c[0] == s) > 1}  # reported within the step
    assert {"FeatureSelection", "HyperparameterOptimization"} <= inner  # per fold, per trial


def test_skipped_steps_still_report(bars: Bars) -> None:
    calls: list[tuple[str, float]] = []
    train(bars, config(), lambda s, f: calls.append((s, f)))
    assert [s for s, _ in calls if s in ("FeatureSelection", "HyperparameterOptimization")] == [
        "FeatureSelection",
        "HyperparameterOptimization",
    ]
    assert calls[-1] == ("ModelDeployment", 1.0)
    assert sum(1 for s, _ in calls if s == "ModelValidation") == 3 + 1  # per CV fold, then done


def test_a_progress_exception_cancels(bars: Bars) -> None:
    class Cancelled(Exception):
        pass

    def cancel(step: str, done: float) -> None:
        if step == "ModelTraining":
            raise Cancelled

    with pytest.raises(Cancelled):
        train(bars, config(), cancel)


def test_learns_the_planted_signal_and_beats_the_baselines(trained: TrainedModel) -> None:
    for part in ("cv", "holdout"):
        rep = trained.metrics[part]
        m, base = rep["model"], rep["baselines"]
        assert m["auc"] > 0.6
        assert m["accuracy"] > base["majority"]["accuracy"] + 0.05
        assert m["accuracy"] > base["previous_direction"]["accuracy"] + 0.05
        assert rep["vs_baselines"]["brier_skill_vs_majority"] > 0
        assert rep["backtest"]["strategy"]["number_of_trades"] > 0
    json.dumps(trained.summary(), allow_nan=False)


def test_holdout_is_the_end_of_the_data(trained: TrainedModel, bars: Bars) -> None:
    tr, ho = trained.train_range, trained.holdout_range
    n = len(bars)
    assert tr["label_end_index"] < ho["split_index"] <= ho["first_index"]
    assert ho["last_index"] == n - 2  # the last bar has no next-bar label
    assert ho["n_bars"] == n - ho["split_index"]
    first = tr["first_index"]
    assert ho["split_index"] == first + int((n - first) * 0.8)
    assert tr["end_ts"] < bars.ts[ho["split_index"]]
    assert trained.metrics["n_train"] == tr["n_samples"]
    assert trained.metrics["holdout"]["backtest"]["start_ts"] == bars.ts[ho["split_index"]]
    assert trained.metrics["cv"]["backtest"]["end_ts"] == tr["end_ts"]


def test_holdout_is_never_used_before_validation(bars: Bars) -> None:
    """Other data after the split leaves selection, tuning, CV and the fitted model bit-identical;
    only the hold-out scores change."""
    cfg = config(selection="permutation", select_k=5, optimize_trials=2)
    a = train(bars, cfg)
    split = a.holdout_range["split_index"]
    other = planted_bars(len(bars), seed=99, beta=0.3, start=bars.slice(0, split))
    np.testing.assert_array_equal(other.close[:split], bars.close[:split])
    assert not np.allclose(other.close[split:], bars.close[split:])
    b = train(other, cfg)
    assert b.holdout_range["split_index"] == split
    assert a.train_range == b.train_range
    assert a.feature_names == b.feature_names and a.feature_importance == b.feature_importance
    assert a.optimization == b.optimization and a.params == b.params
    assert a.metrics["cv"] == b.metrics["cv"]
    X = compute(bars, a.feature_spec).values[-300:]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.metrics["holdout"]["model"] != b.metrics["holdout"]["model"]


def test_optuna_is_deterministic_given_the_seed(bars: Bars) -> None:
    cfg = config(optimize_trials=3, seed=4)
    a, b = train(bars, cfg), train(bars, cfg)
    assert a.optimization is not None and b.optimization is not None
    assert a.optimization["best_params"] == b.optimization["best_params"]
    assert a.optimization["values"] == b.optimization["values"]
    assert len(a.optimization["values"]) == 3
    assert a.params == a.optimization["best_params"]
    assert a.params["num_leaves"] == TINY_LGBM["num_leaves"]  # fixed hyperparams are not searched
    assert a.metrics == b.metrics
    c = train(bars, replace(cfg, seed=5))
    assert c.optimization is not None and c.optimization["best_params"] != a.optimization["best_params"]


@pytest.mark.parametrize("selection", ["mdi", "permutation"])
def test_feature_selection_keeps_the_top_k(bars: Bars, selection: str) -> None:
    m = train(bars, config(selection=selection, select_k=3))
    assert len(m.feature_names) == 3
    importance = m.feature_importance
    assert importance is not None and set(importance) == set(m.candidate_features)
    assert list(m.feature_names) == [f for f in m.candidate_features if f in m.feature_names]  # order kept
    top = sorted(importance, key=lambda f: -importance[f])[:3]
    assert set(m.feature_names) == set(top)
    if selection == "permutation":
        assert "ret_1" in m.feature_names  # the planted signal


def test_triple_barrier_label(bars: Bars) -> None:
    m = train(bars, config(label=LabelSpec("triple_barrier", horizon=5, profit_take=1.0, stop_loss=1.0)))
    assert m.label.kind == "triple_barrier"
    assert m.metrics["holdout"]["model"]["n"] > 100
    assert m.train_range["label_end_index"] < m.holdout_range["split_index"]


def test_stacking_pipeline(bars: Bars) -> None:
    params = {"members": ["lightgbm", "logistic"], "lightgbm": TINY_LGBM, "cv_splits": 3}
    m = train(bars, config(model_type="stacking", hyperparams=params))
    assert m.model.cv.t0 is not None and len(m.model.cv.t0) == m.train_range["n_samples"]
    assert m.metrics["holdout"]["model"]["auc"] > 0.6


def test_package_pickles_and_predicts_a_row(trained: TrainedModel, bars: Bars) -> None:
    again = pickle.loads(pickle.dumps(trained))
    row = compute_last(bars.slice(len(bars) - trained.window, len(bars)), again.feature_spec)
    full = compute(bars, trained.feature_spec).values[-1]
    np.testing.assert_allclose(row, full, rtol=1e-6, atol=1e-9)
    assert again.predict_proba_row(row) == pytest.approx(trained.predict_proba(full[None, :])[0], abs=1e-6)
    assert np.isnan(again.predict_proba_row(np.full(len(trained.feature_names), np.nan)))
    with pytest.raises(ValueError, match="features"):
        again.predict_proba_row(row[:-1])
    assert trained.feature_names == trained.candidate_features  # no selection
    assert trained.params["n_estimators"] == TINY_LGBM["n_estimators"]


def test_config_round_trips_and_names_unknown_keys() -> None:
    cfg = config(label=LabelSpec("direction", horizon=2, dead_zone=0.001), features=["ret_1", "rsi"])
    assert cfg.features == ("ret_1", "rsi")
    d = cfg.to_dict()
    json.dumps(d)
    assert TrainingConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="lable"):
        TrainingConfig.from_dict({"lable": {}})
    with pytest.raises(ValueError, match=r"label\.horizn"):
        TrainingConfig.from_dict({"label": {"horizn": 3}})


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"features": "no_such_set"}, "features"),
        ({"features": ["ret_1", "bogus_9"]}, "features"),
        ({"features": 5}, "features"),
        ({"label": {"horizon": 0}}, r"label\.horizon"),
        ({"label": {"kind": "sign"}}, r"label\.kind"),
        ({"label": {"dead_zone": -0.1}}, r"label\.dead_zone"),
        ({"label": {"kind": "triple_barrier", "profit_take": -1}}, r"label\.profit_take"),
        ({"model_type": "svm"}, "model_type"),
        ({"hyperparams": {"num_leavs": 3}}, r"hyperparams\.num_leavs"),
        ({"optimize_trials": -1}, "optimize_trials"),
        ({"optimize_metric": "accuracy"}, "optimize_metric"),
        ({"selection": "lasso"}, "selection"),
        ({"selection": "mdi", "select_k": 9}, "select_k"),
        ({"select_k": 0}, "select_k"),
        ({"cv_splits": 1}, "cv_splits"),
        ({"embargo": -1}, "embargo"),
        ({"embargo": 1.5}, "embargo"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 0.9}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"threshold_long": 1.5}, "threshold_long"),
        ({"threshold_short": 0.6}, "threshold_short"),
        ({"fee_rate": -0.001}, "fee_rate"),
        ({"slippage": 0.5}, "slippage"),
    ],
)
def test_bad_config_names_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        config(**kw)


def test_bad_bars_name_what_is_wrong(bars: Bars) -> None:
    with pytest.raises(ValueError, match=r"bars: need at least"):
        train(bars.slice(0, 200), config())
    ts = bars.ts.copy()
    ts[500] = ts[499]
    with pytest.raises(ValueError, match=r"bars\.ts: duplicated timestamp at index 500"):
        train(Bars(ts, bars.open, bars.high, bars.low, bars.close, bars.volume), config())
    ts = bars.ts.copy()
    ts[500] = ts[400]
    with pytest.raises(ValueError, match=r"bars\.ts: not increasing at index 500"):
        train(Bars(ts, bars.open, bars.high, bars.low, bars.close, bars.volume), config())
    close = bars.close.copy()
    close[700] = np.nan
    with pytest.raises(ValueError, match=r"bars\.close: .* index 700"):
        train(Bars(bars.ts, bars.open, bars.high, bars.low, close, bars.volume), config())
    flat = np.full(len(bars), 100.0)
    with pytest.raises(ValueError, match="too few labelled samples"):
        train(Bars(bars.ts, flat, flat, flat, flat, bars.volume), config())


class _WindowSum:
    """A stand-in sequence model: P(1) of row i is a logistic of the sum of column 0 over rows
    i-2..i of the matrix given, zeros before its start (the LSTM's padding rule)."""

    seq_len = 3
    classes_ = np.array([0, 1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        padded = np.concatenate([np.zeros(self.seq_len - 1), X[:, 0]])
        s = padded[2:] + padded[1:-1] + padded[:-2]
        p = 1 / (1 + np.exp(-s))
        return np.column_stack([1 - p, p])


def test_a_sequence_model_predicts_a_block_with_the_rows_before_it_as_context() -> None:
    from algotrendy.engine.ml.steps import _positive, _positive_at

    X = np.column_stack([np.arange(1.0, 13.0), np.ones(12)])
    cols = np.array([0, 1])
    model = _WindowSum()
    whole = _positive(model, X)
    rows = np.arange(6, 10)
    assert np.allclose(_positive_at(model, X, rows, cols), whole[6:10])  # as a live window reads them
    assert not np.allclose(_positive(model, X[6:10]), whole[6:10])  # a bare block is padded
    assert np.allclose(_positive_at(model, X, np.arange(0, 3), cols), whole[:3])  # nothing before row 0
    # an incomplete row just before the block ends the context there
    X[4, 0] = np.nan
    got = _positive_at(model, X, rows, cols)
    assert np.isfinite(got).all()
    assert np.allclose(got, _positive(model, X[5:10])[1:])
    # rows that are not consecutive are predicted on their own
    gaps = np.array([6, 8, 9])
    assert np.allclose(_positive_at(model, X, gaps, cols), _positive(model, X[gaps]))


@pytest.mark.parametrize(
    "label",
    [
        LabelSpec("direction", horizon=1, dead_zone=0.004),
        LabelSpec("triple_barrier", horizon=5, profit_take=1.0, stop_loss=1.0),
    ],
)
def test_a_sequence_model_keeps_every_bar_and_scores_only_the_labelled(bars: Bars, label: LabelSpec) -> None:
    from algotrendy.engine.ml.features import parse
    from algotrendy.engine.ml.steps import _engineer, _Trainer

    plan = parse(config().features)
    rows = _engineer(bars, plan, config(label=label))  # row-wise: labelled bars only
    seq = _engineer(bars, plan, config(label=label, model_type="lstm", hyperparams={"seq_len": 4}))
    # the dead zone leaves bars undecided throughout; the barriers, at the end (unresolved)
    assert np.isnan(seq.y[seq.holdout]).any()
    assert np.all(np.diff(seq.train) == 1) and np.all(np.diff(seq.holdout) == 1)  # every bar, in order
    assert seq.holdout[0] == seq.split == rows.split and seq.holdout[-1] == len(bars) - 1
    labelled = ~np.isnan(seq.y[seq.train])
    np.testing.assert_array_equal(seq.train[labelled], rows.train)
    np.testing.assert_array_equal(seq.weight[~labelled], 0.0)  # context, never fitted on
    np.testing.assert_allclose(seq.weight[labelled], rows.weight)  # the same uniqueness weights
    assert np.all(seq.t1[seq.train] >= seq.train) and np.all(seq.t1[seq.train] < seq.split)
    tr = _Trainer(seq, config(label=label, model_type="lstm", hyperparams={"seq_len": 4}))
    np.testing.assert_array_equal(tr.scored, labelled)
    np.testing.assert_array_equal(tr.y[tr.scored], rows.y[rows.train])
