"""The sequence model (``lstm``) in the service: predictions read windows of consecutive bars (never
a lone row), the stream matches the matrix, importance explains whole windows, bad requests 422."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from algotrendy.core.errors import Invalid
from algotrendy.engine.ml.features import compute
from algotrendy.services.ml import training
from algotrendy.services.ml.explain import holdout_matrix, importance, shap_values
from algotrendy.services.ml.inference import Predictor
from algotrendy.services.ml.interface import ModelTrainCreate
from tests.unit.services.ml.test_inference import FEATURES, PLANTED, bars, trained_model

pytest.importorskip("torch")  # training an lstm needs PyTorch (predicting does not)

SEQ = 8  # test_inference.TINY["lstm"]


def test_predictor_reads_windows_of_consecutive_rows() -> None:
    trained = trained_model("lstm")
    p = Predictor(trained)
    assert (p.path, p.sequence, p.bars_needed) == ("sklearn", SEQ, trained.window + SEQ)
    X = compute(bars(), FEATURES).values
    got = p.predict_matrix(X)  # no row dropped: the warm-up's NaN rows spoil only their windows
    np.testing.assert_array_equal(got, trained.predict_proba(X))
    first = int(np.flatnonzero(np.isfinite(X).all(axis=1))[0])
    assert np.isnan(got[: first + SEQ - 1]).all() and np.isfinite(got[first + SEQ - 1 :]).all()
    for i in range(first + SEQ - 1, len(X), 97):
        assert p.predict_window(X[: i + 1]) == got[i]
        assert p.predict_window(X[i - SEQ + 1 : i + 1]) == got[i]
    assert math.isnan(p.predict_window(X[first - 1 : first - 1 + SEQ]))  # a warm-up row in the window
    with pytest.raises(ValueError, match=f"reads the last {SEQ} feature rows"):
        p.predict_row(X[-1])
    with pytest.raises(ValueError, match=f"at least {SEQ} rows"):
        p.predict_window(X[-SEQ + 1 :])


def test_latest_bar_and_stream_agree_with_the_matrix() -> None:
    trained = trained_model("lstm")
    p = Predictor(trained)
    b = bars()
    tail = b.slice(len(b) - p.bars_needed, len(b))
    assert p.predict_bars(b) == p.predict_window(compute(tail, FEATURES).values)
    assert math.isfinite(p.predict_bars(tail))
    full = p.predict_matrix(compute(b, FEATURES).values)
    stream = p.stream()
    start = len(b) - 40
    assert stream.warm(b.slice(0, start)) == full[start - 1]  # streamed features equal compute's
    for i in range(start, len(b)):
        row = (b.ts[i], b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
        assert stream.update(int(row[0]), *map(float, row[1:])) == full[i]


def test_importance_explains_whole_windows() -> None:
    trained = trained_model("lstm")
    X = holdout_matrix(bars(), trained)
    imp = importance(trained, X, seed=3, max_rows=30)
    assert list(imp.gain) == list(FEATURES) and list(imp.shap) == list(FEATURES)
    assert sum(imp.gain.values()) == pytest.approx(1.0, abs=1e-9)
    assert "no split gain" in imp.method["gain"] and "window as one player" in imp.method["shap"]
    assert max(imp.gain, key=lambda f: imp.gain[f]) == PLANTED, imp.gain
    assert max(imp.shap, key=lambda f: imp.shap[f]) == PLANTED, imp.shap
    sv = shap_values(trained, X, seed=3, max_rows=30)
    assert sv.values.shape == (30, len(FEATURES)) and sv.output == "probability"
    p = trained.predict_proba(X)
    at = [int(np.flatnonzero((r == X).all(axis=1))[-1]) for r in sv.rows]
    np.testing.assert_allclose(sv.base + sv.values.sum(axis=1), p[at], rtol=0, atol=1e-12)  # additive
    with pytest.raises(ValueError, match="consecutive finite rows"):
        importance(trained, np.vstack([X, np.full((1, len(FEATURES)), np.nan)]))


def _request(**changes: Any) -> ModelTrainCreate:
    return ModelTrainCreate.model_validate({"symbol": "AAPL", "name": "seq", "model_type": "lstm", **changes})


def test_training_requests_are_checked() -> None:
    config = training.config_of(_request(hyperparams={"seq_len": 16}), n_jobs=1)
    assert config["model_type"] == "lstm" and config["hyperparams"]["seq_len"] == 16
    for label in ({"kind": "triple_barrier"}, {"dead_zone": 0.001}):  # undecided bars: weight-0 context
        assert training.config_of(_request(label=label), n_jobs=1)["model_type"] == "lstm"
    cases = [
        (_request(model_type="voting", hyperparams={"members": ["lightgbm", "lstm"]}), "hyperparams.members"),
        (_request(hyperparams={"seq_len": 0}), "hyperparams.seq_len"),
    ]
    for request, field in cases:
        with pytest.raises(Invalid) as err:
            training.config_of(request, n_jobs=1)
        assert err.value.field == field, (field, str(err.value))


def test_without_pytorch_lstm_training_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "torch_available", lambda: False)
    with pytest.raises(Invalid, match="needs PyTorch") as err:
        training.config_of(_request(), n_jobs=1)
    assert err.value.field == "model_type"
    assert training.config_of(_request(model_type="lightgbm"), n_jobs=1)["model_type"] == "lightgbm"
