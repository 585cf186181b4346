"""The ML service over HTTP on the real app: training as a job with the pipeline's steps as
progress, the stored version (scores against baselines, MLflow run and registered version),
predictions from given features agreeing with predictions from the latest bars and with the
batch, importance, the registry (versions, promote, rollback, the serving version deleted only
after another is promoted), signals (stored, published, queryable), owner isolation, and bad
input answered 422/404/409 naming what is wrong."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from mlflow.tracking import MlflowClient

from algotrendy.core.auth import Role
from tests.apphelp import Api, make_settings, running

ASYNC = pytest.mark.asyncio(loop_scope="module")
ML = "/api/v1/ml"
SMALL = {"n_estimators": 40, "num_leaves": 7}
BASE: dict[str, Any] = {
    "symbol": "AAPL",
    "interval": "1d",
    "start": "2012-01-01",
    "end": "2017-12-31",
    "features": "minimal",
    "model_type": "lightgbm",
    "hyperparams": SMALL,
    "cv_splits": 3,
    "seed": 3,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("ml"),
        marketdata={"load_samples": True},
        jobs={"workers": 2},
        notifications={"welcome_email": False},
    )
    async with running(settings) as a:

        async def keep(envelope: Any) -> None:
            EVENTS.append(envelope)

        topics = ("ml.model.trained", "strategy.signal.generated")
        subs = [await a.container.bus.subscribe(t, group=f"t-{t}", handler=keep) for t in topics]
        yield a
        for sub in subs:
            await sub.stop()


EVENTS: list[Any] = []


async def published(topic: str, key: str, value: str) -> dict[str, Any]:
    """The data of the event on ``topic`` whose ``key`` is ``value`` (waits for the relay)."""
    for _ in range(200):
        for e in EVENTS:
            if e.event_type == topic and str(e.data.get(key)) == value:
                return dict(e.data)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {topic} with {key}={value}")


async def train(api: Api, h: dict[str, str], **overrides: Any) -> dict[str, Any]:
    r = await api.client.post(f"{ML}/models/train", json=BASE | overrides, headers=h)
    assert r.status_code == 202, r.text
    return dict(r.json())


async def finished(api: Api, h: dict[str, str], model_id: str) -> tuple[dict[str, Any], list[str]]:
    steps: list[str] = []
    for _ in range(3000):
        r = await api.client.get(f"{ML}/models/{model_id}/status", headers=h)
        assert r.status_code == 200, r.text
        status = r.json()
        if status["step"] and (not steps or steps[-1] != status["step"]):
            steps.append(status["step"])
        if status["status"] in ("completed", "failed", "cancelled"):
            return status, steps
        await asyncio.sleep(0.05)
    raise AssertionError(f"training {model_id} did not finish: {status}")


async def trained(api: Api, h: dict[str, str], **overrides: Any) -> dict[str, Any]:
    accepted = await train(api, h, **overrides)
    status, _ = await finished(api, h, accepted["model_id"])
    assert status["status"] == "completed", status
    r = await api.client.get(f"{ML}/models/{accepted['model_id']}", headers=h)
    assert r.status_code == 200, r.text
    return dict(r.json())


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    if field is not None:
        fields = [e.get("field") for e in body.get("errors", [])] + [body.get("field")]
        assert any(f and (f == field or f.endswith(field)) for f in fields), body
    return body


@ASYNC
async def test_a_training_runs_as_a_job_and_keeps_an_honest_version(api: Api) -> None:
    _u, h, _ = await api.user()
    accepted = await train(api, h, name="aapl-daily")
    assert accepted["name"] == "aapl-daily" and accepted["version"] == 1
    assert accepted["status"] == "queued" and accepted["job_id"]
    status, steps = await finished(api, h, accepted["model_id"])
    assert status["status"] == "completed" and status["progress"] == 1.0, status
    known = ["DataValidation", "FeatureEngineering", "FeatureSelection", "HyperparameterOptimization",
             "ModelTraining", "ModelValidation", "ModelDeployment"]  # fmt: skip
    assert all(s in known for s in steps) and steps == sorted(steps, key=known.index), steps

    r = await api.client.get(f"{ML}/models/{accepted['model_id']}", headers=h)
    model = r.json()
    assert model["status"] == "completed" and model["stage"] == "none"
    assert model["symbol"] == "AAPL" and model["asset_type"] == "stock" and model["interval"] == "1d"
    assert model["data_start"].startswith("2012-01-03") and model["data_end"].startswith("2017-12-29")
    hold = model["metrics"]["holdout"]
    assert set(hold["baselines"]) >= {"majority", "previous_direction"}, hold.keys()
    assert 0.3 < model["accuracy"] < 0.7 and model["accuracy"] == hold["model"]["accuracy"]
    assert model["auc"] == hold["model"]["auc"]
    assert hold["backtest"]["strategy"]["total_return"] is not None and hold["backtest"]["buy_and_hold"]
    assert len(model["feature_names"]) == 8 and model["params"]["n_estimators"] == 40
    assert model["config"]["label"]["horizon"] == 1 and model["config"]["model_type"] == "lightgbm"

    # the MLflow run and registered version hold the same version
    client = MlflowClient(tracking_uri=f"sqlite:///{api.container.settings.data_dir / 'ml' / 'mlflow.db'}")
    run = client.get_run(model["mlflow_run_id"])
    assert run.data.tags["model_id"] == accepted["model_id"]
    assert run.data.metrics["holdout.model.accuracy"] == pytest.approx(model["accuracy"])
    assert model["registry_version"] == "1"

    r = await api.client.get(f"{ML}/models", params={"symbol": "AAPL"}, headers=h)
    assert [m["id"] for m in r.json()] == [accepted["model_id"]]
    r = await api.client.get(f"{ML}/features/importance/{accepted['model_id']}", headers=h)
    assert r.status_code == 200, r.text
    imp = r.json()
    assert imp["features"] == model["feature_names"]
    assert set(imp["gain"]) == set(imp["shap"]) == set(model["feature_names"])
    assert sum(imp["gain"].values()) == pytest.approx(1.0) and all(v >= 0 for v in imp["shap"].values())
    event = await published("ml.model.trained", "model_id", accepted["model_id"])
    assert event["status"] == "completed" and event["version"] == 1 and event["accuracy"] == model["accuracy"]


@ASYNC
async def test_predictions_from_features_bars_and_batch_agree(api: Api) -> None:
    _u, h, _ = await api.user()
    model = await trained(api, h)
    mid = model["id"]
    r = await api.client.post(
        f"{ML}/features/engineer",
        json={"symbol": "AAPL", "interval": "1d", "features": model["feature_names"], "limit": 50},
        headers=h,
    )
    assert r.status_code == 200, r.text
    frame = r.json()
    assert frame["columns"] == model["feature_names"] and len(frame["rows"]) == 50
    last = dict(zip(frame["columns"], frame["rows"][-1], strict=True))

    r = await api.client.post(f"{ML}/models/{mid}/predict", json={"features": last}, headers=h)
    assert r.status_code == 200, r.text
    given = r.json()
    r = await api.client.post(f"{ML}/models/{mid}/predict", json={"prediction_horizon": 1}, headers=h)
    assert r.status_code == 200, r.text
    latest = r.json()
    assert (
        latest["as_of"] == frame["ts"][-1].replace("+00:00", "Z")
        or latest["as_of"][:10] == frame["ts"][-1][:10]
    )
    assert latest["prediction"] == pytest.approx(given["prediction"], abs=1e-12)
    p = given["prediction"]
    assert given["probabilities"] == pytest.approx([1 - p, p]) and given["confidence"] == pytest.approx(
        max(p, 1 - p)
    )
    assert given["direction"] == ("up" if p >= 0.5 else "down") and given["version"] == 1
    assert given["signal"] == ("buy" if p >= 0.55 else "sell" if p <= 0.45 else "hold")

    rows = frame["rows"]
    batch = [dict(zip(frame["columns"], row, strict=True)) for row in rows]
    r = await api.client.post(f"{ML}/models/{mid}/predict/batch", json={"features_batch": batch}, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["count"] == 50 and out["predictions"][-1] == pytest.approx(p, abs=1e-12)
    cols = list(reversed(frame["columns"]))
    flipped = [list(reversed(row)) for row in rows]
    flipped[3][0] = None  # a missing value: that row has no prediction
    r = await api.client.post(
        f"{ML}/models/{mid}/predict/batch", json={"columns": cols, "rows": flipped}, headers=h
    )
    assert r.status_code == 200, r.text
    columnar = r.json()["predictions"]
    assert columnar[3] is None and r.json()["signals"][3] is None
    assert [v for i, v in enumerate(columnar) if i != 3] == pytest.approx(
        [v for i, v in enumerate(out["predictions"]) if i != 3], abs=1e-12
    )
    for i in (0, 17, 49):  # the batch equals row-by-row
        r = await api.client.post(f"{ML}/models/{mid}/predict", json={"features": batch[i]}, headers=h)
        assert r.json()["prediction"] == pytest.approx(out["predictions"][i], abs=1e-12)


@ASYNC
async def test_registry_promote_rollback_and_delete(api: Api) -> None:
    _u, h, _ = await api.user()
    v1 = await trained(api, h, name="spy-dir", symbol="SPY")
    v2 = await trained(
        api, h, name="spy-dir", symbol="SPY", hyperparams={"n_estimators": 30, "num_leaves": 5}
    )
    assert (v1["version"], v2["version"]) == (1, 2)
    r = await api.client.post(f"{ML}/registry/spy-dir/predict", json={}, headers=h)
    assert problem(r, 409)["code"] == "nothing_serving"
    r = await api.client.post(f"{ML}/registry/spy-dir/rollback", headers=h)
    assert problem(r, 409)["code"] == "nothing_to_roll_back"

    r = await api.client.post(f"{ML}/models/{v1['id']}/promote", headers=h)
    assert r.status_code == 200 and r.json()["stage"] == "serving", r.text
    r = await api.client.post(f"{ML}/registry/spy-dir/predict", json={}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    r = await api.client.post(f"{ML}/models/{v2['id']}/promote", headers=h)
    assert r.json()["stage"] == "serving"
    r = await api.client.get(f"{ML}/registry/spy-dir", headers=h)
    reg = r.json()
    assert reg["serving"]["id"] == v2["id"]
    assert {v["version"]: v["stage"] for v in reg["versions"]} == {1: "archived", 2: "serving"}
    r = await api.client.post(f"{ML}/registry/spy-dir/predict", json={}, headers=h)
    assert r.json()["version"] == 2
    r = await api.client.get(f"{ML}/models", params={"status": "active"}, headers=h)
    assert [m["id"] for m in r.json()] == [v2["id"]]

    r = await api.client.post(f"{ML}/registry/spy-dir/rollback", headers=h)
    assert r.status_code == 200 and r.json()["id"] == v1["id"] and r.json()["stage"] == "serving", r.text
    r = await api.client.post(f"{ML}/registry/spy-dir/predict", json={}, headers=h)
    assert r.json()["version"] == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{api.container.settings.data_dir / 'ml' / 'mlflow.db'}")
    names = {m.name for m in client.search_registered_models()}
    registered = next(n for n in names if n.endswith("spy-dir"))
    assert str(client.get_model_version_by_alias(registered, "serving").version) == "1"

    r = await api.client.delete(f"{ML}/models/{v1['id']}", headers=h)
    assert problem(r, 409)["code"] == "model_serving"
    r = await api.client.delete(f"{ML}/models/{v2['id']}", headers=h)
    assert r.status_code == 204, r.text
    r = await api.client.get(f"{ML}/models/{v2['id']}", headers=h)
    assert problem(r, 404)["code"] == "model_not_found"
    assert [str(v.version) for v in client.search_model_versions(f"name='{registered}'")] == ["1"]
    r = await api.client.post(f"{ML}/registry/spy-dir/rollback", headers=h)
    assert problem(r, 409)["code"] == "nothing_to_roll_back"


@ASYNC
async def test_promotion_swaps_the_serving_version_without_dropping_requests(api: Api) -> None:
    _u, h, _ = await api.user()
    a = await trained(api, h, name="swap")
    b = await trained(api, h, name="swap", seed=11)
    await api.client.post(f"{ML}/models/{a['id']}/promote", headers=h)
    row = await api.client.post(
        f"{ML}/features/engineer",
        json={"symbol": "AAPL", "features": a["feature_names"], "limit": 1},
        headers=h,
    )
    features = dict(zip(row.json()["columns"], row.json()["rows"][0], strict=True))
    seen: list[int] = []

    async def hammer() -> None:
        for _ in range(40):
            r = await api.client.post(f"{ML}/registry/swap/predict", json={"features": features}, headers=h)
            assert r.status_code == 200, r.text
            seen.append(r.json()["version"])

    async def flip() -> None:
        for target in (b, a, b):
            r = await api.client.post(f"{ML}/models/{target['id']}/promote", headers=h)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0)

    await asyncio.gather(hammer(), hammer(), flip())
    assert len(seen) == 80 and set(seen) <= {1, 2}
    r = await api.client.post(f"{ML}/registry/swap/predict", json={"features": features}, headers=h)
    assert r.json()["version"] == 2


@ASYNC
async def test_signals_are_stored_published_and_queryable(api: Api) -> None:
    _u, h, _ = await api.user()
    model = await trained(api, h, name="sig")
    await api.client.post(f"{ML}/models/{model['id']}/promote", headers=h)
    r = await api.client.post(
        f"{ML}/signals", json={"symbol": "AAPL", "model_name": "sig", "expires_in_minutes": 60}, headers=h
    )
    assert r.status_code == 201, r.text
    sig = r.json()
    assert sig["signal_type"] in ("buy", "sell", "hold") and 0 <= sig["strength"] <= 1
    assert sig["source"] == "ml+technical" and sig["model_id"] == model["id"]
    assert sig["ml_predictions"]["name"] == "sig" and 0 <= sig["ml_predictions"]["p_up"] <= 1
    assert {"rsi", "macd_hist", "atr"} <= set(sig["technical_indicators"])
    assert "sig v1" in sig["reasoning"]
    if sig["signal_type"] == "buy":
        assert sig["stop_loss"] < sig["price"] < sig["take_profit"]
    r = await api.client.post(f"{ML}/signals", json={"symbol": "MSFT", "use_technical": True}, headers=h)
    assert r.status_code == 201 and r.json()["source"] == "technical" and r.json()["model_id"] is None, r.text

    r = await api.client.get(f"{ML}/signals", params={"active": "true"}, headers=h)
    assert [s["symbol"] for s in r.json()] == ["MSFT", "AAPL"]
    r = await api.client.get(f"{ML}/signals", params={"symbol": "AAPL"}, headers=h)
    assert [s["id"] for s in r.json()] == [sig["id"]]
    r = await api.client.get(f"{ML}/signals/{sig['id']}", headers=h)
    assert r.status_code == 200 and r.json() == sig
    event = await published("strategy.signal.generated", "signal_id", sig["id"])
    assert event["signal_type"] == sig["signal_type"] and event["symbol"] == "AAPL"


@ASYNC
async def test_another_user_sees_nothing(api: Api) -> None:
    _u, h, _ = await api.user()
    model = await trained(api, h, name="mine")
    r = await api.client.post(f"{ML}/signals", json={"symbol": "AAPL", "model_id": model["id"]}, headers=h)
    sid = r.json()["id"]
    _v, other, _ = await api.user()
    mid = model["id"]
    for method, url, body in (
        ("GET", f"{ML}/models/{mid}", None),
        ("GET", f"{ML}/models/{mid}/status", None),
        ("POST", f"{ML}/models/{mid}/predict", {}),
        ("POST", f"{ML}/models/{mid}/predict/batch", {"features_batch": []}),
        ("POST", f"{ML}/models/{mid}/promote", None),
        ("DELETE", f"{ML}/models/{mid}", None),
        ("GET", f"{ML}/features/importance/{mid}", None),
        ("GET", f"{ML}/registry/mine", None),
        ("GET", f"{ML}/signals/{sid}", None),
    ):
        r = await api.client.request(method, url, json=body, headers=other)
        assert r.status_code == 404, (method, url, r.text)
    r = await api.client.post(f"{ML}/signals", json={"symbol": "AAPL", "model_id": mid}, headers=other)
    assert r.status_code == 404
    assert (await api.client.get(f"{ML}/models", headers=other)).json() == []
    assert (await api.client.get(f"{ML}/signals", headers=other)).json() == []
    _w, viewer, _ = await api.user(role=Role.VIEWER)
    r = await api.client.post(f"{ML}/models/train", json=BASE, headers=viewer)
    assert r.status_code == 403


@ASYNC
async def test_bad_requests_name_what_is_wrong(api: Api) -> None:
    _u, h, _ = await api.user()
    post = api.client.post
    r = await post(f"{ML}/models/train", json=BASE | {"symbol": "NOPE"}, headers=h)
    problem(r, 404)
    r = await post(f"{ML}/models/train", json=BASE | {"hyperparams": {"num_leaves": 1}}, headers=h)
    problem(r, 422, "hyperparams.num_leaves")
    r = await post(f"{ML}/models/train", json=BASE | {"hyperparams": {"bogus": 1}}, headers=h)
    problem(r, 422, "hyperparams.bogus")
    r = await post(f"{ML}/models/train", json=BASE | {"features": ["rsi_banana"]}, headers=h)
    problem(r, 422, "features")
    r = await post(f"{ML}/models/train", json=BASE | {"start": "2017-06-01"}, headers=h)
    assert "bars" in problem(r, 422, "start")["detail"]
    r = await post(f"{ML}/models/train", json=BASE | {"label": {"horizon": 0}}, headers=h)
    problem(r, 422, "horizon")
    r = await post(f"{ML}/models/train", json=BASE | {"asset_type": "crypto"}, headers=h)
    problem(r, 422, "asset_type")
    r = await post(f"{ML}/models/train", json=BASE | {"training_period": "2y"}, headers=h)
    problem(r, 422, "training_period")  # and a start
    r = await post(
        f"{ML}/models/train", json=BASE | {"threshold_long": 0.4, "threshold_short": 0.5}, headers=h
    )
    problem(r, 422, "threshold_short")
    r = await api.client.get(f"{ML}/models", params={"status": "sleepy"}, headers=h)
    problem(r, 422, "status")

    model = await trained(api, h)
    mid = model["id"]
    names = model["feature_names"]
    full = dict.fromkeys(names, 0.1)
    r = await post(
        f"{ML}/models/{mid}/predict",
        json={"features": {k: v for k, v in full.items() if k != names[2]}},
        headers=h,
    )
    problem(r, 422, f"features.{names[2]}")
    r = await post(f"{ML}/models/{mid}/predict", json={"features": full | {"zzz": 1.0}}, headers=h)
    problem(r, 422, "features.zzz")
    r = await post(f"{ML}/models/{mid}/predict", json={"features": full, "prediction_horizon": 5}, headers=h)
    problem(r, 422, "prediction_horizon")
    r = await post(
        f"{ML}/models/{mid}/predict/batch", json={"columns": names[:-1], "rows": [[0.0] * 7]}, headers=h
    )
    problem(r, 422, "columns")
    r = await post(
        f"{ML}/models/{mid}/predict/batch", json={"columns": names, "rows": [[0.0] * 3]}, headers=h
    )
    problem(r, 422, "rows[0]")
    r = await post(f"{ML}/models/{uuid.uuid4()}/predict", json={}, headers=h)
    problem(r, 404)
    r = await post(f"{ML}/features/engineer", json={"features": "standard"}, headers=h)
    problem(r, 422, "symbol")
    raw = {"ts": ["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"], "open": [1, 1], "high": [1, 1],
           "low": [1, 1], "close": [1, 1], "volume": [1, 1]}  # fmt: skip
    r = await post(f"{ML}/features/engineer", json={"raw_data": raw}, headers=h)
    problem(r, 422, "raw_data.ts")
    r = await post(f"{ML}/signals", json={"symbol": "AAPL", "use_technical": False}, headers=h)
    problem(r, 422, "model_id")
    r = await post(f"{ML}/signals", json={"symbol": "AAPL", "model_id": mid, "interval": "1h"}, headers=h)
    problem(r, 422, "interval")

    # a model still training cannot predict or serve
    accepted = await train(api, h, optimize_trials=3)
    r = await post(f"{ML}/models/{accepted['model_id']}/predict", json={"features": full}, headers=h)
    if r.status_code != 200:
        assert problem(r, 409)["code"] == "model_not_ready"
    r = await api.client.delete(f"{ML}/models/{accepted['model_id']}", headers=h)
    assert r.status_code == 204


@ASYNC
async def test_features_of_inline_bars_match_the_stored_series(api: Api) -> None:
    _u, h, _ = await api.user()
    r = await api.client.post(
        f"{ML}/features/engineer",
        json={
            "symbol": "MSFT",
            "start": "2016-01-01",
            "end": "2016-12-31",
            "features": "minimal",
            "drop_warmup": False,
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    stored = r.json()
    assert stored["warmup"] > 0 and len(stored["rows"]) == 252  # trading days of 2016
    assert None in stored["rows"][0]  # the warm-up is kept when asked
    assert all(v is not None and math.isfinite(v) for v in stored["rows"][-1])
    r = await api.client.get(
        "/api/v1/market-data/MSFT",
        params={"interval": "1d", "start": "2016-01-01T00:00:00Z", "end": "2017-01-01T00:00:00Z"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    raw = {"ts": data["timestamp"], **{k: data[k] for k in ("open", "high", "low", "close", "volume")}}
    r = await api.client.post(
        f"{ML}/features/engineer",
        json={"raw_data": raw, "features": "minimal", "drop_warmup": False},
        headers=h,
    )
    assert r.status_code == 200, r.text
    inline = r.json()
    assert inline["columns"] == stored["columns"] and inline["ts"] == stored["ts"]
    for a, b in zip(inline["rows"], stored["rows"], strict=True):
        assert a == [x if x is None else pytest.approx(x, rel=1e-9, abs=1e-12) for x in b]
    r = await api.client.post(
        f"{ML}/features/engineer", json={"raw_data": raw, "features": "minimal", "limit": 5}, headers=h
    )
    assert r.json()["rows"] == inline["rows"][-5:]
    r = await api.client.get(f"{ML}/features/sets", headers=h)
    sets = {s["name"]: s["features"] for s in r.json()}
    assert len(sets["minimal"]) == 8 and len(sets["standard"]) == 36


@ASYNC
async def test_a_backtest_trades_a_models_signals_only_out_of_sample(api: Api) -> None:
    _u, h, _ = await api.user()
    model = await trained(api, h, name="bt-model", start="2010-01-01", end="2014-12-31")
    await api.client.post(f"{ML}/models/{model['id']}/promote", headers=h)
    trained_until = model["train_range"]["label_end_ts"]
    template = {
        "name": "follow the model",
        "models": {"p_up": "bt-model"},
        "entry_conditions": ["p_up > 0.5"],
        "exit_conditions": ["p_up < 0.5"],
    }
    body = {"template": template, "symbol": "AAPL", "start_date": "2010-01-01", "end_date": "2018-01-01",
            "commission": 0.001}  # fmt: skip
    r = await api.client.post("/api/v1/backtest", json=body, headers=h)
    assert r.status_code == 202, r.text
    run_id = r.json()["backtest_id"]
    for _ in range(1200):
        r = await api.client.get(f"/api/v1/backtest/{run_id}/results", headers=h)
        if r.json()["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.1)
    res = r.json()
    assert res["status"] == "completed", res
    trades = res["result"]["trades"]
    assert trades, "the model's out-of-sample signals should trade"
    first_entry = min(t["entry_time"] for t in trades)
    assert first_entry > datetime.fromtimestamp(trained_until / 1e9, tz=UTC).isoformat()[:10]

    r = await api.client.post(
        "/api/v1/backtest", json=body | {"template": template | {"models": {"p_up": "nope"}}}, headers=h
    )
    assert problem(r, 404, "models.p_up")["code"] == "model_not_found"
    r = await api.client.post("/api/v1/backtest", json=body | {"interval": "1h"}, headers=h)
    assert r.status_code in (404, 422), r.text


@ASYNC
async def test_an_lstm_trains_predicts_from_windows_and_explains(api: Api) -> None:
    pytest.importorskip("torch")  # training an lstm needs PyTorch; it predicts without it
    _u, h, _ = await api.user()
    lstm = {"seq_len": 8, "hidden_size": 8, "epochs": 6}
    model = await trained(api, h, model_type="lstm", hyperparams=lstm, name="lstm")
    mid = model["id"]
    assert model["model_type"] == "lstm" and model["auc"] == model["metrics"]["holdout"]["model"]["auc"]

    r = await api.client.post(f"{ML}/models/{mid}/predict", json={}, headers=h)
    assert r.status_code == 200, r.text
    latest = r.json()
    assert 0.0 < latest["prediction"] < 1.0 and latest["as_of"] is not None

    r = await api.client.post(
        f"{ML}/features/engineer",
        json={"symbol": "AAPL", "interval": "1d", "features": model["feature_names"], "limit": 50},
        headers=h,
    )
    frame = r.json()
    batch = [dict(zip(frame["columns"], row, strict=True)) for row in frame["rows"]]
    r = await api.client.post(f"{ML}/models/{mid}/predict/batch", json={"features_batch": batch}, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()["predictions"]  # rows in time order: each reads its own 8-row window
    assert out[-1] == pytest.approx(latest["prediction"], abs=1e-9)
    assert all(v is not None for v in out)

    r = await api.client.post(f"{ML}/models/{mid}/predict", json={"features": batch[-1]}, headers=h)
    assert "sequence model" in problem(r, 422, "features")["detail"]
    r = await api.client.get(f"{ML}/features/importance/{mid}", headers=h)
    assert r.status_code == 200, r.text
    imp = r.json()
    assert "no split gain" in imp["method"]["gain"] and "window as one player" in imp["method"]["shap"]

    # a dead zone: the undecided bars stay in the windows with weight 0, the metrics count the rest
    zoned = await trained(
        api, h, model_type="lstm", hyperparams=lstm, name="lstm-zone", label={"dead_zone": 0.01}
    )
    assert zoned["metrics"]["n_holdout"] < model["metrics"]["n_holdout"]
    bad = BASE | {"model_type": "voting", "hyperparams": {"members": ["lstm", "logistic"]}}
    r = await api.client.post(f"{ML}/models/train", json=bad, headers=h)
    problem(r, 422, "hyperparams.members")
