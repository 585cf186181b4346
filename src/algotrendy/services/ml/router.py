"""HTTP front door of the ML service: ``/api/v1/ml``.

Training answers 202 with the model's id; the work happens in a job (``GET .../status``). Model,
registry, prediction and signal routes need ``manage_models`` and act on the caller's own models
(another user's id is a 404); feature engineering needs ``read_market_data``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from algotrendy.core.auth import Permission, Principal
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.ml.interface import (
    BatchPredictionRead,
    BatchPredictRequest,
    FeaturesEngineer,
    FeatureSetRead,
    FeaturesRead,
    ImportanceRead,
    MlApi,
    ModelRead,
    ModelStatusRead,
    ModelSummary,
    ModelTrainCreate,
    PredictionRead,
    PredictRequest,
    RegistryRead,
    SignalGenerate,
    SignalRead,
    SignalType,
    TrainAccepted,
)


async def ml_api(request: Request) -> MlApi:
    api: MlApi = request.app.state.services["ml"]
    return api


Ml = Annotated[MlApi, Depends(ml_api)]
Modeler = Annotated[Principal, Depends(require(Permission.MANAGE_MODELS))]
Reader = Annotated[Principal, Depends(require(Permission.READ_MARKET_DATA))]
Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

router = APIRouter(prefix="/api/v1/ml", tags=["ml"], responses=PROBLEM_RESPONSES)


@router.post("/models/train", status_code=202)
async def train_model(body: ModelTrainCreate, user: Modeler, api: Ml) -> TrainAccepted:
    """Train the next version of a model on stored bars (a job: poll ``/models/{id}/status``)."""
    return await api.train(owner=user.user_id, request=body)


@router.get("/models")
async def list_models(
    user: Modeler,
    api: Ml,
    symbol: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=16, description="A status, or 'active' (serving)")] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ModelSummary]:
    """Your model versions, newest first."""
    return await api.list(
        owner=user.user_id, symbol=symbol, status=status, name=name, limit=limit, offset=offset
    )


@router.get("/models/{model_id:uuid}")
async def get_model(model_id: uuid.UUID, user: Modeler, api: Ml) -> ModelRead:
    """A version's settings, data range, out-of-sample scores against baselines, and registry ids."""
    return await api.get(owner=user.user_id, model_id=model_id)


@router.get("/models/{model_id:uuid}/status")
async def model_status(model_id: uuid.UUID, user: Modeler, api: Ml) -> ModelStatusRead:
    return await api.status(owner=user.user_id, model_id=model_id)


@router.delete("/models/{model_id:uuid}", status_code=204)
async def delete_model(model_id: uuid.UUID, user: Modeler, api: Ml) -> Response:
    """Delete a version (a running training is cancelled); the serving version cannot be deleted."""
    await api.delete(owner=user.user_id, model_id=model_id)
    return Response(status_code=204)


@router.post("/models/{model_id:uuid}/promote")
async def promote_model(model_id: uuid.UUID, user: Modeler, api: Ml) -> ModelRead:
    """Make this version the one its name serves (the previous one is archived)."""
    return await api.promote(owner=user.user_id, model_id=model_id)


@router.post("/models/{model_id:uuid}/predict")
async def predict(model_id: uuid.UUID, body: PredictRequest, user: Modeler, api: Ml) -> PredictionRead:
    """P(up) from the given features, or from the latest bars when ``features`` is omitted."""
    return await api.predict(owner=user.user_id, model_id=model_id, request=body)


@router.post("/models/{model_id:uuid}/predict/batch")
async def predict_batch(
    model_id: uuid.UUID, body: BatchPredictRequest, user: Modeler, api: Ml
) -> BatchPredictionRead:
    return await api.predict_batch(owner=user.user_id, model_id=model_id, request=body)


@router.get("/registry/{name}")
async def registry(name: Name, user: Modeler, api: Ml) -> RegistryRead:
    """Every version of a name and which one serves."""
    return await api.registry(owner=user.user_id, name=name)


@router.post("/registry/{name}/rollback")
async def rollback(name: Name, user: Modeler, api: Ml) -> ModelRead:
    """Serve again the version that served before the current one."""
    return await api.rollback(owner=user.user_id, name=name)


@router.post("/registry/{name}/predict")
async def predict_serving(name: Name, body: PredictRequest, user: Modeler, api: Ml) -> PredictionRead:
    """Predict with whichever version of ``name`` is serving."""
    return await api.predict_serving(owner=user.user_id, name=name, request=body)


@router.get("/features/importance/{model_id:uuid}")
async def importance(model_id: uuid.UUID, user: Modeler, api: Ml) -> ImportanceRead:
    """Split gain and mean |SHAP| per feature on the hold-out."""
    return await api.importance(owner=user.user_id, model_id=model_id)


@router.post("/features/engineer")
async def engineer(body: FeaturesEngineer, user: Reader, api: Ml) -> FeaturesRead:
    """Point-in-time features of a stored series or of bars given inline."""
    return await api.engineer(owner=user.user_id, request=body)


@router.get("/features/sets")
async def feature_sets(user: Reader, api: Ml) -> list[FeatureSetRead]:
    return await api.feature_sets()


@router.post("/signals", status_code=201)
async def generate_signal(body: SignalGenerate, user: Modeler, api: Ml) -> SignalRead:
    """A trading signal from a model's prediction and technical rules on the latest bars."""
    return await api.generate_signal(owner=user.user_id, request=body)


@router.get("/signals")
async def list_signals(
    user: Modeler,
    api: Ml,
    symbol: Annotated[str | None, Query(max_length=40)] = None,
    signal_type: SignalType | None = None,
    active: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[SignalRead]:
    """Your signals, newest first (``active``: not expired)."""
    return await api.signals(
        owner=user.user_id, symbol=symbol, signal_type=signal_type, active=active, limit=limit, offset=offset
    )


@router.get("/signals/{signal_id:uuid}")
async def get_signal(signal_id: uuid.UUID, user: Modeler, api: Ml) -> SignalRead:
    return await api.signal(owner=user.user_id, signal_id=signal_id)
