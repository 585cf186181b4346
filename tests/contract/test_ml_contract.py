"""``MlApi`` on ``MlService`` (in-process) and on ``MlClient`` (HTTP, over httpx.ASGITransport to
the same app): training as a job, reading, listing, predicting (single, serving, batch),
importance, features, the registry, signals, deleting, and the same errors with the same fields."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio

from algotrendy.core.errors import Conflict, Forbidden, Invalid, NotFound
from algotrendy.services.ml.client import MlClient
from algotrendy.services.ml.interface import (
    BatchPredictRequest,
    FeaturesEngineer,
    MlApi,
    ModelStatus,
    ModelTrainCreate,
    PredictRequest,
    SignalGenerate,
)
from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

ForToken = Callable[[str], MlApi]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("mlc"), marketdata={"load_samples": True}, jobs={"workers": 2}
    )
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def remote(app: Api) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.app, client=("127.0.0.2", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://ml.internal") as client:
        yield client


@pytest.fixture(params=["service", "client"])
def ml_for(request: pytest.FixtureRequest, app: Api, remote: httpx.AsyncClient) -> ForToken:
    if request.param == "service":
        service: MlApi = app.app.state.services["ml"]
        return lambda _token: service
    return lambda token: MlClient(remote, token=token)


async def _person(app: Api, ml_for: ForToken) -> tuple[uuid.UUID, MlApi]:
    user, headers, _ = await app.user()
    return uuid.UUID(user["id"]), ml_for(headers["Authorization"].removeprefix("Bearer "))


def _request(**fields: object) -> ModelTrainCreate:
    data: dict[str, object] = {
        "symbol": "MSFT",
        "start": "2013-01-01",
        "end": "2017-12-31",
        "features": "minimal",
        "hyperparams": {"n_estimators": 30, "num_leaves": 5},
        "cv_splits": 3,
        "seed": 5,
    }
    return ModelTrainCreate.model_validate(data | fields)


async def _done(ml: MlApi, owner: uuid.UUID, model_id: uuid.UUID) -> None:
    for _ in range(3000):
        status = await ml.status(owner=owner, model_id=model_id)
        if status.status in (ModelStatus.COMPLETED, ModelStatus.FAILED, ModelStatus.CANCELLED):
            assert status.status is ModelStatus.COMPLETED, status
            return
        await asyncio.sleep(0.05)
    raise AssertionError("training did not finish")


async def test_the_model_lifecycle_is_the_same_on_both_sides(app: Api, ml_for: ForToken) -> None:
    owner, ml = await _person(app, ml_for)
    accepted = await ml.train(owner=owner, request=_request(name="msft-c"))
    await _done(ml, owner, accepted.model_id)
    model = await ml.get(owner=owner, model_id=accepted.model_id)
    assert model.name == "msft-c" and model.version == 1 and model.accuracy is not None
    assert [m.id for m in await ml.list(owner=owner)] == [model.id]
    assert [m.id for m in await ml.list(owner=owner, status="completed", symbol="MSFT")] == [model.id]
    assert await ml.list(owner=owner, status="active") == []

    frame = await ml.engineer(
        owner=owner, request=FeaturesEngineer(symbol="MSFT", features=model.feature_names, limit=3)
    )
    rows = [dict(zip(frame.columns, r, strict=True)) for r in frame.rows]
    single = await ml.predict(
        owner=owner,
        model_id=model.id,
        request=PredictRequest(features={k: float(v) for k, v in rows[-1].items()}),
    )
    batch = await ml.predict_batch(
        owner=owner, model_id=model.id, request=BatchPredictRequest(features_batch=rows)
    )
    assert batch.count == 3 and batch.predictions[-1] == pytest.approx(single.prediction, abs=1e-12)
    imp = await ml.importance(owner=owner, model_id=model.id)
    assert set(imp.gain) == set(model.feature_names)
    assert {s.name for s in await ml.feature_sets()} >= {"minimal", "standard", "extended"}

    promoted = await ml.promote(owner=owner, model_id=model.id)
    assert promoted.stage.value == "serving"
    serving = await ml.predict_serving(owner=owner, name="msft-c", request=PredictRequest())
    assert serving.model_id == model.id
    reg = await ml.registry(owner=owner, name="msft-c")
    assert reg.serving is not None and reg.serving.id == model.id
    with pytest.raises(Conflict) as exc:
        await ml.rollback(owner=owner, name="msft-c")
    assert exc.value.code == "nothing_to_roll_back"
    with pytest.raises(Conflict) as exc:
        await ml.delete(owner=owner, model_id=model.id)
    assert exc.value.code == "model_serving"

    sig = await ml.generate_signal(owner=owner, request=SignalGenerate(symbol="MSFT", model_name="msft-c"))
    assert sig.model_id == model.id
    assert [s.id for s in await ml.signals(owner=owner, active=True)] == [sig.id]
    assert (await ml.signal(owner=owner, signal_id=sig.id)).id == sig.id
    assert await ml.signals(owner=owner, symbol="AAPL") == []


async def test_errors_are_the_same_on_both_sides(app: Api, ml_for: ForToken) -> None:
    owner, ml = await _person(app, ml_for)
    with pytest.raises(NotFound):
        await ml.get(owner=owner, model_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await ml.train(owner=owner, request=_request(symbol="NOSUCH"))
    with pytest.raises(Invalid) as exc:
        await ml.train(owner=owner, request=_request(hyperparams={"num_leaves": 1}))
    assert exc.value.field == "hyperparams.num_leaves"
    with pytest.raises(Invalid) as exc:
        await ml.list(owner=owner, status="bogus")
    assert exc.value.field == "status"
    with pytest.raises(NotFound):
        await ml.registry(owner=owner, name="nothing-here")
    with pytest.raises(NotFound):
        await ml.signal(owner=owner, signal_id=uuid.uuid4())
    with pytest.raises(Invalid) as exc:
        await ml.generate_signal(owner=owner, request=SignalGenerate(symbol="MSFT", use_technical=False))
    assert exc.value.field == "model_id"


async def test_the_client_acts_only_for_its_token(app: Api, remote: httpx.AsyncClient) -> None:
    _user, headers, _ = await app.user()
    client = MlClient(remote, token=headers["Authorization"].removeprefix("Bearer "))
    with pytest.raises(Forbidden):
        await client.list(owner=uuid.uuid4())
