"""``MlClient``: the ``MlApi`` over HTTP, for processes that do not host the ML service.

Same method names, keyword-only arguments and DTOs as ``MlService``. The owner is the bearer
token's user: acting for anyone else is refused locally with ``Forbidden``. Problem+json errors
come back as the matching ``core.errors`` class; a transport failure or a 5xx is
``TemporaryError`` (``gateway.remote``).
"""

from __future__ import annotations

import builtins
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.gateway.remote import RemoteApi
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

PREFIX = "/api/v1/ml"
_SUMMARIES = TypeAdapter(list[ModelSummary])
_SETS = TypeAdapter(list[FeatureSetRead])
_SIGNALS = TypeAdapter(list[SignalRead])


class MlClient(RemoteApi):
    """``MlApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "ml"

    def with_token(self, token: str) -> MlClient:
        return MlClient(self._http, token=token)

    async def train(self, *, owner: uuid.UUID, request: ModelTrainCreate) -> TrainAccepted:
        self._own(owner)
        return self._model(
            await self._send("POST", f"{PREFIX}/models/train", json=self._body(request)), TrainAccepted
        )

    async def status(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelStatusRead:
        self._own(owner)
        return self._model(await self._send("GET", f"{PREFIX}/models/{model_id}/status"), ModelStatusRead)

    async def get(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead:
        self._own(owner)
        return self._model(await self._send("GET", f"{PREFIX}/models/{model_id}"), ModelRead)

    async def list(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[ModelSummary]:
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for key, value in (("symbol", symbol), ("status", status), ("name", name)):
            if value is not None:
                params[key] = value
        return self._parse(await self._send("GET", f"{PREFIX}/models", params=params), _SUMMARIES)

    async def delete(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> None:
        self._own(owner)
        await self._send("DELETE", f"{PREFIX}/models/{model_id}")

    async def promote(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead:
        self._own(owner)
        return self._model(await self._send("POST", f"{PREFIX}/models/{model_id}/promote"), ModelRead)

    async def rollback(self, *, owner: uuid.UUID, name: str) -> ModelRead:
        self._own(owner)
        return self._model(await self._send("POST", f"{PREFIX}/registry/{name}/rollback"), ModelRead)

    async def registry(self, *, owner: uuid.UUID, name: str) -> RegistryRead:
        self._own(owner)
        return self._model(await self._send("GET", f"{PREFIX}/registry/{name}"), RegistryRead)

    async def predict(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: PredictRequest
    ) -> PredictionRead:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/models/{model_id}/predict", json=self._body(request))
        return self._model(response, PredictionRead)

    async def predict_serving(
        self, *, owner: uuid.UUID, name: str, request: PredictRequest
    ) -> PredictionRead:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/registry/{name}/predict", json=self._body(request))
        return self._model(response, PredictionRead)

    async def predict_batch(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: BatchPredictRequest
    ) -> BatchPredictionRead:
        self._own(owner)
        response = await self._send(
            "POST", f"{PREFIX}/models/{model_id}/predict/batch", json=self._body(request)
        )
        return self._model(response, BatchPredictionRead)

    async def importance(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ImportanceRead:
        self._own(owner)
        return self._model(
            await self._send("GET", f"{PREFIX}/features/importance/{model_id}"), ImportanceRead
        )

    async def engineer(self, *, owner: uuid.UUID, request: FeaturesEngineer) -> FeaturesRead:
        self._own(owner)
        response = await self._send("POST", f"{PREFIX}/features/engineer", json=self._body(request))
        return self._model(response, FeaturesRead)

    async def feature_sets(self) -> builtins.list[FeatureSetRead]:
        return self._parse(await self._send("GET", f"{PREFIX}/features/sets"), _SETS)

    async def generate_signal(self, *, owner: uuid.UUID, request: SignalGenerate) -> SignalRead:
        self._own(owner)
        return self._model(
            await self._send("POST", f"{PREFIX}/signals", json=self._body(request)), SignalRead
        )

    async def signals(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        signal_type: SignalType | None = None,
        active: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[SignalRead]:
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset, "active": str(active).lower()}
        if symbol is not None:
            params["symbol"] = symbol
        if signal_type is not None:
            params["signal_type"] = signal_type
        return self._parse(await self._send("GET", f"{PREFIX}/signals", params=params), _SIGNALS)

    async def signal(self, *, owner: uuid.UUID, signal_id: uuid.UUID) -> SignalRead:
        self._own(owner)
        return self._model(await self._send("GET", f"{PREFIX}/signals/{signal_id}"), SignalRead)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: MlClient) -> MlApi:
        return client
