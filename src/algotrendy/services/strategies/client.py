"""``StrategiesClient``: the ``StrategiesApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``StrategiesService``. The owner is the
bearer token's user: acting for anyone else is refused locally with ``Forbidden``. Problem+json
errors come back as the matching ``core.errors`` class with ``code``, ``detail`` and ``field``;
a transport failure or a 5xx is ``TemporaryError`` (``gateway.remote``).
"""

from __future__ import annotations

import builtins
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.core.errors import Invalid
from algotrendy.engine.template import ParamValue, StrategyTemplate
from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.strategies.interface import (
    StrategiesApi,
    StrategyCreate,
    StrategyRead,
    StrategyStatus,
    StrategyUpdate,
    TemplateRead,
    ValidateRequest,
    ValidationReport,
    VersionRead,
)

PREFIX = "/api/v1/strategies"
_STRATEGY = TypeAdapter(StrategyRead)
_STRATEGIES = TypeAdapter(list[StrategyRead])
_VERSION = TypeAdapter(VersionRead)
_VERSIONS = TypeAdapter(list[VersionRead])
_TEMPLATES = TypeAdapter(list[TemplateRead])
_REPORT = TypeAdapter(ValidationReport)


class StrategiesClient(RemoteApi):
    """``StrategiesApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "strategies"

    def with_token(self, token: str) -> StrategiesClient:
        return StrategiesClient(self._http, token=token)

    async def templates(self) -> builtins.list[TemplateRead]:
        return self._parse(await self._send("GET", f"{PREFIX}/templates"), _TEMPLATES)

    async def validate(
        self, *, template: StrategyTemplate, parameters: dict[str, ParamValue] | None = None
    ) -> ValidationReport:
        body = ValidateRequest(template=template, parameters=parameters or {})
        response = await self._send("POST", f"{PREFIX}/validate", json=body.model_dump(mode="json"))
        return self._parse(response, _REPORT)

    async def create(self, *, owner: uuid.UUID, data: StrategyCreate) -> StrategyRead:
        self._own(owner)
        response = await self._send("POST", PREFIX, json=self._body(data))
        return self._parse(response, _STRATEGY)

    async def get(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> StrategyRead:
        self._own(owner)
        return self._parse(await self._send("GET", f"{PREFIX}/{strategy_id}"), _STRATEGY)

    async def list(
        self,
        *,
        owner: uuid.UUID,
        name: str | None = None,
        tag: str | None = None,
        status: StrategyStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[StrategyRead]:
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if name is not None:
            params["name"] = name
        if tag is not None:
            params["tag"] = tag
        if status is not None:
            params["status"] = StrategyStatus(status).value
        return self._parse(await self._send("GET", PREFIX, params=params), _STRATEGIES)

    async def update(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, data: StrategyUpdate) -> StrategyRead:
        self._own(owner)
        response = await self._send("PUT", f"{PREFIX}/{strategy_id}", json=self._body(data))
        return self._parse(response, _STRATEGY)

    async def delete(self, *, owner: uuid.UUID, strategy_id: uuid.UUID) -> None:
        self._own(owner)
        await self._send("DELETE", f"{PREFIX}/{strategy_id}")

    async def versions(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, limit: int = 50, offset: int = 0
    ) -> builtins.list[VersionRead]:
        self._own(owner)
        params = {"limit": limit, "offset": offset}
        return self._parse(
            await self._send("GET", f"{PREFIX}/{strategy_id}/versions", params=params), _VERSIONS
        )

    async def version(self, *, owner: uuid.UUID, strategy_id: uuid.UUID, version: int) -> VersionRead:
        self._own(owner)
        if version < 1:
            raise Invalid("version must be 1 or more", field="version")
        return self._parse(
            await self._send("GET", f"{PREFIX}/{strategy_id}/versions/{int(version)}"), _VERSION
        )


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: StrategiesClient) -> StrategiesApi:
        return client
