"""HTTP front door of the strategies service: ``/api/v1/strategies``.

Every route needs the ``manage_strategies`` permission (traders and admins; viewers have none of
it). Strategy ids are typed ``uuid`` in the paths, so ``/api/v1/strategies/<word>/...`` stays free
for the literal routes other services add under this prefix (``/backtest/{id}/results``).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from algotrendy.core.auth import Permission, Principal
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.strategies.interface import (
    StrategiesApi,
    StrategyCreate,
    StrategyCreatedRead,
    StrategyRead,
    StrategyStatus,
    StrategyUpdate,
    TemplateRead,
    ValidateRequest,
    ValidationReport,
    VersionRead,
)


async def strategies_api(request: Request) -> StrategiesApi:
    api: StrategiesApi = request.app.state.services["strategies"]
    return api


Strategies = Annotated[StrategiesApi, Depends(strategies_api)]
Strategist = Annotated[Principal, Depends(require(Permission.MANAGE_STRATEGIES))]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Version = Annotated[int, Path(ge=1, le=1_000_000)]

router = APIRouter(prefix="/api/v1/strategies", tags=["strategies"], responses=PROBLEM_RESPONSES)


@router.get("/templates")
async def templates(_user: Strategist, strategies: Strategies) -> list[TemplateRead]:
    """The built-in templates; create a strategy from one with ``{"builtin": slug}``."""
    return await strategies.templates()


@router.post("/validate")
async def validate(body: ValidateRequest, _user: Strategist, strategies: Strategies) -> ValidationReport:
    """Check a template without saving it: ``ok``, or the error naming the field."""
    return await strategies.validate(template=body.template, parameters=body.parameters)


@router.post("", status_code=201)
async def create_strategy(
    body: StrategyCreate, user: Strategist, strategies: Strategies
) -> StrategyCreatedRead:
    """Save a strategy (version 1) from a template or a built-in (409 for a name you already use)."""
    created = await strategies.create(owner=user.user_id, data=body)
    return StrategyCreatedRead(**created.model_dump(), strategy_id=created.id)


@router.get("")
async def list_strategies(
    user: Strategist,
    strategies: Strategies,
    name: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    tag: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = None,
    status: StrategyStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[StrategyRead]:
    """Your strategies, newest first; ``name`` matches part of the name, in any case."""
    return await strategies.list(
        owner=user.user_id, name=name, tag=tag, status=status, limit=limit, offset=offset
    )


@router.get("/{strategy_id:uuid}")
async def get_strategy(strategy_id: uuid.UUID, user: Strategist, strategies: Strategies) -> StrategyRead:
    """One of your strategies at its latest version."""
    return await strategies.get(owner=user.user_id, strategy_id=strategy_id)


@router.put("/{strategy_id:uuid}")
async def update_strategy(
    strategy_id: uuid.UUID, body: StrategyUpdate, user: Strategist, strategies: Strategies
) -> StrategyRead:
    """Change the fields given; a changed template (or parameter defaults) is a new version."""
    return await strategies.update(owner=user.user_id, strategy_id=strategy_id, data=body)


@router.delete("/{strategy_id:uuid}", status_code=204)
async def delete_strategy(strategy_id: uuid.UUID, user: Strategist, strategies: Strategies) -> Response:
    """Delete the strategy with all its versions."""
    await strategies.delete(owner=user.user_id, strategy_id=strategy_id)
    return Response(status_code=204)


@router.get("/{strategy_id:uuid}/versions")
async def list_versions(
    strategy_id: uuid.UUID, user: Strategist, strategies: Strategies, limit: Limit = 50, offset: Offset = 0
) -> list[VersionRead]:
    """The strategy's versions, newest first."""
    return await strategies.versions(owner=user.user_id, strategy_id=strategy_id, limit=limit, offset=offset)


@router.get("/{strategy_id:uuid}/versions/{version:int}")
async def get_version(
    strategy_id: uuid.UUID, version: Version, user: Strategist, strategies: Strategies
) -> VersionRead:
    """One version of the strategy's template."""
    return await strategies.version(owner=user.user_id, strategy_id=strategy_id, version=version)
