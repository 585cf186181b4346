"""HTTP front door of the portfolio service: ``/api/v1/portfolio``. Reading needs
``read_portfolio``; creating, changing and deleting ``manage_portfolio``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from algotrendy.core.auth import Permission, Principal
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.portfolio.interface import (
    PortfolioApi,
    PortfolioCreate,
    PortfolioRead,
    PortfolioUpdate,
)
from algotrendy.services.trading.interface import PositionRead, TradingApi


def portfolio_api(request: Request) -> PortfolioApi:
    api: PortfolioApi = request.app.state.services["portfolio"]
    return api


def trading_api(request: Request) -> TradingApi:
    api: TradingApi = request.app.state.services["trading"]
    return api


Portfolios = Annotated[PortfolioApi, Depends(portfolio_api)]
Reader = Annotated[Principal, Depends(require(Permission.READ_PORTFOLIO))]
Manager = Annotated[Principal, Depends(require(Permission.MANAGE_PORTFOLIO))]

router = APIRouter(prefix="/api/v1/portfolio", tags=["portfolio"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=201)
async def create_portfolio(body: PortfolioCreate, user: Manager, portfolios: Portfolios) -> PortfolioRead:
    """A new portfolio; trading on it starts with ``initial_capital`` in cash (paper by default)."""
    return await portfolios.create(owner_id=user.user_id, data=body)


@router.get("")
async def list_portfolios(user: Reader, portfolios: Portfolios) -> list[PortfolioRead]:
    return await portfolios.list(owner_id=user.user_id)


@router.get("/{portfolio_id:uuid}")
async def get_portfolio(portfolio_id: uuid.UUID, user: Reader, portfolios: Portfolios) -> PortfolioRead:
    return await portfolios.get(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.get("/{portfolio_id:uuid}/holdings")
async def holdings(
    portfolio_id: uuid.UUID, user: Reader, portfolios: Portfolios, request: Request
) -> list[PositionRead]:
    """Current positions with their market value and P&L."""
    await portfolios.get(owner_id=user.user_id, portfolio_id=portfolio_id)
    return await trading_api(request).positions(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.put("/{portfolio_id:uuid}")
async def update_portfolio(
    portfolio_id: uuid.UUID, body: PortfolioUpdate, user: Manager, portfolios: Portfolios
) -> PortfolioRead:
    return await portfolios.update(owner_id=user.user_id, portfolio_id=portfolio_id, data=body)


@router.delete("/{portfolio_id:uuid}", status_code=204)
async def delete_portfolio(portfolio_id: uuid.UUID, user: Manager, portfolios: Portfolios) -> Response:
    """Refused (409) while positions or orders are open."""
    await portfolios.delete(owner_id=user.user_id, portfolio_id=portfolio_id)
    return Response(status_code=204)
