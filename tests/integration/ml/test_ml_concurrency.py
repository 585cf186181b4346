"""Trainings side by side and a registry outage.

Five trainings run at the same time (five job workers) without interfering: the one among them
that repeats an earlier training alone gets exactly its scores; a sixth while five run is 409.
When MLflow cannot be reached, a finished training is not lost: the version stays `training` at
its last step and is recorded on the first read once the registry is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from algotrendy.services.ml.registry import MlflowRegistry
from tests.apphelp import Api, make_settings, running
from tests.integration.ml.test_ml_api import BASE, ML, finished, train
from tests.procs import free_port

ASYNC = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("mlconc"),
        marketdata={"load_samples": True},
        jobs={"workers": 5},
        ml={"max_trainings": 5},
        notifications={"welcome_email": False},
    )
    async with running(settings) as a:
        yield a


async def _model(api: Api, h: dict[str, str], model_id: str) -> dict[str, Any]:
    r = await api.client.get(f"{ML}/models/{model_id}", headers=h)
    assert r.status_code == 200, r.text
    return dict(r.json())


@ASYNC
async def test_five_trainings_run_at_once_without_interfering(api: Api) -> None:
    _u, h, _ = await api.user()
    repeat = {"symbol": "SPY", "seed": 7, "start": "2010-01-01", "end": "2016-12-31"}
    alone = await train(api, h, **repeat)
    assert (await finished(api, h, alone["model_id"]))[0]["status"] == "completed"
    solo = await _model(api, h, alone["model_id"])

    others: list[dict[str, Any]] = [
        {"symbol": "AAPL", "model_type": "logistic", "hyperparams": {}},
        {"symbol": "MSFT", "model_type": "random_forest", "hyperparams": {"n_estimators": 30}},
        {"symbol": "GOOG", "start": "2006-01-01", "end": "2012-12-31", "seed": 1},
        {"symbol": "SPY", "model_type": "xgboost", "hyperparams": {"n_estimators": 30}},
    ]
    accepted = await asyncio.gather(*(train(api, h, **o) for o in [repeat, *others]))
    r = await api.client.post(f"{ML}/models/train", json=BASE, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "too_many_trainings", r.text

    done = await asyncio.gather(*(finished(api, h, a["model_id"]) for a in accepted))
    assert [d[0]["status"] for d in done] == ["completed"] * 5, done
    jobs = []
    for a in accepted:
        r = await api.client.get(f"/api/v1/jobs/{a['job_id']}", headers=h)
        jobs.append(r.json())
    first_end = min(j["finished_at"] for j in jobs)
    assert all(j["started_at"] < first_end for j in jobs), jobs  # all five ran at the same time

    again = await _model(api, h, accepted[0]["model_id"])
    assert again["metrics"]["holdout"] == solo["metrics"]["holdout"]
    assert again["metrics"]["cv"] == solo["metrics"]["cv"]
    assert (again["name"], again["version"]) == (solo["name"], 2)
    kinds = {(await _model(api, h, a["model_id"]))["model_type"] for a in accepted}
    assert kinds == {"lightgbm", "logistic", "random_forest", "xgboost"}


@ASYNC
async def test_a_registry_outage_loses_no_trained_model(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    service = api.app.state.services["ml"]
    working = service._registry
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    service._registry = MlflowRegistry(tracking_uri=f"http://127.0.0.1:{free_port()}")
    try:
        _u, h, _ = await api.user()
        accepted = await train(api, h, name="outage")
        job_id = accepted["job_id"]
        for _ in range(3000):
            r = await api.client.get(f"/api/v1/jobs/{job_id}", headers=h)
            if r.json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        status = (await api.client.get(f"{ML}/models/{accepted['model_id']}/status", headers=h)).json()
        assert status["status"] == "training" and status["step"] == "ModelDeployment", status
        assert status["progress"] < 1.0
        r = await api.client.post(f"{ML}/models/{accepted['model_id']}/promote", headers=h)
        assert r.status_code == 409 and r.json()["code"] == "model_not_ready"
    finally:
        service._registry = working
    status, _ = await finished(api, h, accepted["model_id"])
    assert status["status"] == "completed"
    model = await _model(api, h, accepted["model_id"])
    assert model["registry_version"] == "1" and model["mlflow_run_id"] and model["accuracy"] is not None
