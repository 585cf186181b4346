"""HTTP front door of the risk service: ``/api/v1/risk``. Reading limits and risk figures needs
``read_portfolio``; changing limits (and the kill switch) ``manage_risk``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from algotrendy.core.auth import Permission, Principal
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.risk.interface import (
    AlertQuery,
    PortfolioRiskRead,
    PositionRiskRead,
    PreTradeCheckRequest,
    RiskAlertRead,
    RiskApi,
    RiskLimitsRead,
    RiskLimitsUpdate,
    RiskQuery,
    StressTestRead,
    StressTestRequest,
)
from algotrendy.services.trading.interface import OrderCreate, RiskCheckRead


async def risk_api(request: Request) -> RiskApi:
    api: RiskApi = request.app.state.services["risk"]
    return api


Risk = Annotated[RiskApi, Depends(risk_api)]
Reader = Annotated[Principal, Depends(require(Permission.READ_PORTFOLIO))]
RiskManager = Annotated[Principal, Depends(require(Permission.MANAGE_RISK))]

router = APIRouter(prefix="/api/v1/risk", tags=["risk"], responses=PROBLEM_RESPONSES)


@router.get("/limits/{portfolio_id:uuid}")
async def get_limits(portfolio_id: uuid.UUID, user: Reader, risk: Risk) -> RiskLimitsRead:
    """The limits and the kill switch state (``ACTIVE``, ``REDUCING``, ``HALTED``)."""
    return await risk.get_limits(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.put("/limits/{portfolio_id:uuid}")
async def put_limits(
    portfolio_id: uuid.UUID, body: RiskLimitsUpdate, user: RiskManager, risk: Risk
) -> RiskLimitsRead:
    """Replace the limits; ``trading_state`` is the kill switch."""
    return await risk.put_limits(owner_id=user.user_id, portfolio_id=portfolio_id, limits=body)


@router.post("/pre-trade-check")
async def pre_trade_check(body: PreTradeCheckRequest, user: Reader, risk: Risk) -> RiskCheckRead:
    """Run the order path's checks on an order without placing it."""
    order = OrderCreate.model_validate({**body.order.model_dump(), "portfolio_id": body.portfolio_id})
    return await risk.pre_trade_check(owner_id=user.user_id, request=order)


Measure = Annotated[RiskQuery, Query()]


@router.get("/portfolio/{portfolio_id:uuid}")
async def portfolio_risk(
    portfolio_id: uuid.UUID, user: Reader, risk: Risk, query: Measure
) -> PortfolioRiskRead:
    """VaR and expected shortfall (historical, normal, Cornish-Fisher, Monte Carlo), drawdown,
    Sharpe, Sortino, volatility, beta and correlation to ``benchmark``, and each position's
    marginal and component VaR, for the holdings as they are now."""
    return await risk.portfolio_risk(owner_id=user.user_id, portfolio_id=portfolio_id, query=query)


@router.get("/position/{position_id:uuid}")
async def position_risk(position_id: uuid.UUID, user: Reader, risk: Risk, query: Measure) -> PositionRiskRead:
    """One position's risk: alone (its own VaR, volatility, beta) and within its portfolio."""
    return await risk.position_risk(owner_id=user.user_id, position_id=position_id, query=query)


@router.post("/stress-test")
async def stress_test(body: StressTestRequest, user: Reader, risk: Risk) -> StressTestRead:
    """What each scenario would do to the holdings now: a market move (by beta), per-symbol
    shocks, a historical window replayed from stored prices (2008, 2020, 2022 or any dates), or
    a volatility multiplier (stressed VaR); the result per position and in total."""
    return await risk.stress_test(owner_id=user.user_id, request=body)


@router.get("/alerts/{portfolio_id:uuid}")
async def alerts(
    portfolio_id: uuid.UUID, user: Reader, risk: Risk, query: Annotated[AlertQuery, Query()]
) -> list[RiskAlertRead]:
    """Limits found breached as prices moved (``max_var``, ``max_drawdown``,
    ``max_concentration``, ``daily_loss_limit``), newest first."""
    return await risk.alerts(owner_id=user.user_id, portfolio_id=portfolio_id, query=query)


@router.post("/alerts/{alert_id:uuid}/acknowledge")
async def acknowledge_alert(alert_id: uuid.UUID, user: RiskManager, risk: Risk) -> RiskAlertRead:
    """Mark the alert seen; it stays active until the figure is back within its limit."""
    return await risk.acknowledge_alert(owner_id=user.user_id, alert_id=alert_id)
