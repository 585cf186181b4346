"""Feature importance: the planted feature ranks first, every type reports every feature, SHAP is additive."""

from __future__ import annotations

import json

import numpy as np
import pytest

from algotrendy.engine.ml.features import compute
from algotrendy.services.ml.explain import Importance, holdout_matrix, importance, shap_values
from tests.unit.services.ml.test_inference import FEATURES, PLANTED, ROW_TYPES, bars, trained_model

ROWS = 120  # rows explained per model: enough for stable means, fast (the ensembles' explainer is slow)


def holdout() -> np.ndarray:
    return holdout_matrix(bars(), trained_model("lightgbm"))


def test_holdout_matrix_is_the_end_of_the_holdout_block() -> None:
    trained = trained_model("lightgbm")
    b = bars()
    ho = trained.holdout_range
    X = holdout_matrix(b, trained)
    full = compute(b, FEATURES).values
    expected = full[ho["first_index"] : ho["last_index"] + 1]
    expected = expected[np.isfinite(expected).all(axis=1)]
    np.testing.assert_array_equal(X, expected)
    assert len(X) == ho["last_index"] - ho["first_index"] + 1 > 200  # all finite after the warm-up
    last = holdout_matrix(b, trained, max_rows=50)
    np.testing.assert_array_equal(last, expected[-50:])
    with pytest.raises(ValueError, match="not the bars the model was trained on"):
        holdout_matrix(b.slice(1, len(b)), trained)  # shifted by one bar
    with pytest.raises(ValueError, match="not the bars the model was trained on"):
        holdout_matrix(b.slice(0, ho["last_index"]), trained)  # too short
    with pytest.raises(ValueError, match="max_rows"):
        holdout_matrix(b, trained, max_rows=0)


@pytest.mark.parametrize("model_type", ROW_TYPES)
def test_every_type_reports_every_feature(model_type: str) -> None:
    trained = trained_model(model_type)
    imp = importance(trained, holdout_matrix(bars(), trained), max_rows=ROWS)
    assert isinstance(imp, Importance)
    assert list(imp.gain) == list(FEATURES) and list(imp.shap) == list(FEATURES)
    for values in (imp.gain, imp.shap):
        assert all(np.isfinite(v) and v >= 0 for v in values.values())
    assert sum(imp.gain.values()) == pytest.approx(1.0, abs=1e-9)
    assert sum(imp.shap.values()) > 0
    assert set(imp.method) == {"gain", "shap"} and all(imp.method.values())
    assert f"over {ROWS} hold-out rows" in imp.method["shap"]
    again = json.loads(json.dumps(imp.to_dict(), allow_nan=False))
    assert again == {"gain": imp.gain, "shap": imp.shap, "method": imp.method}


@pytest.mark.parametrize("model_type", ROW_TYPES)
def test_the_planted_feature_ranks_first(model_type: str) -> None:
    trained = trained_model(model_type)
    imp = importance(trained, holdout_matrix(bars(), trained), max_rows=ROWS)
    for name, values in (("gain", imp.gain), ("shap", imp.shap)):
        ranked = sorted(values, key=lambda f: -values[f])
        assert ranked[0] == PLANTED, (name, values)
        assert values[PLANTED] > 2 * values[ranked[1]], (name, values)  # by a clear margin


@pytest.mark.parametrize(
    ("model_type", "output", "words"),
    [
        ("lightgbm", "log-odds", "TreeExplainer"),
        ("xgboost", "log-odds", "TreeExplainer"),
        ("catboost", "log-odds", "TreeExplainer"),
        ("random_forest", "probability", "TreeExplainer"),
        ("logistic", "log-odds", "LinearExplainer"),
        ("voting", "probability", "PermutationExplainer"),
        ("stacking", "probability", "PermutationExplainer"),
    ],
)
def test_shap_values_add_up_to_the_models_output(model_type: str, output: str, words: str) -> None:
    """base + sum of a row's SHAP values = the model's output for that row, in the units named:
    fails if the explainer picked the wrong class, the wrong model or the wrong units."""
    trained = trained_model(model_type)
    sv = shap_values(trained, holdout_matrix(bars(), trained), max_rows=40)
    assert sv.output == output and words in sv.method and output in sv.method
    assert sv.values.shape == (40, len(FEATURES)) and sv.base.shape == (40,)
    model = trained.model
    if model_type == "lightgbm":
        target = model.booster_.predict(sv.rows, raw_score=True)
    elif model_type == "xgboost":
        target = np.asarray(model.predict(sv.rows, output_margin=True), dtype=np.float64)
    elif model_type == "catboost":
        target = np.asarray(model.predict(sv.rows, prediction_type="RawFormulaVal"), dtype=np.float64)
    elif model_type == "logistic":
        target = model.decision_function(sv.rows)
    else:
        target = trained.predict_proba(sv.rows)
    # xgboost explains in float32; the permutation explainer sums differences of background means
    tol = {"xgboost": 1e-5, "voting": 1e-6, "stacking": 1e-6}.get(model_type, 1e-9)
    np.testing.assert_allclose(sv.base + sv.values.sum(axis=1), target, rtol=0, atol=tol)
    assert np.ptp(target) > 0.05  # the rows differ: the check is not trivially met


def test_one_lightgbm_row_adds_up_to_its_log_odds() -> None:
    trained = trained_model("lightgbm")
    row = holdout()[-1:]
    sv = shap_values(trained, row)
    np.testing.assert_array_equal(sv.rows, row)
    raw = float(trained.model.booster_.predict(row, raw_score=True)[0])
    assert float(sv.base[0] + sv.values[0].sum()) == pytest.approx(raw, abs=1e-9)
    p = trained.predict_proba(row)[0]
    assert raw == pytest.approx(np.log(p / (1 - p)), abs=1e-9)  # log-odds of P(up), not of P(down)
    assert abs(sv.values[0, FEATURES.index(PLANTED)]) > 0


def test_seeded_subsample_and_input_checks() -> None:
    trained = trained_model("lightgbm")
    X = holdout()
    a = importance(trained, X, seed=1, max_rows=50)
    assert importance(trained, X, seed=1, max_rows=50) == a
    assert importance(trained, X, seed=2, max_rows=50).shap != a.shap  # another subsample
    assert importance(trained, X, seed=1, max_rows=50).gain == importance(trained, X[:10]).gain
    with_nan = X.copy()
    with_nan[::2, 0] = np.nan
    sv = shap_values(trained, with_nan)
    np.testing.assert_array_equal(sv.rows, X[1::2])  # non-finite rows dropped
    with pytest.raises(ValueError, match="6 columns"):
        importance(trained, X[:, :5])
    with pytest.raises(ValueError, match="no row with every feature finite"):
        importance(trained, np.full((3, len(FEATURES)), np.nan))
    with pytest.raises(ValueError, match="max_rows"):
        importance(trained, X, max_rows=0)
