"""HTTP front door of the portfolio service: ``/api/v1/portfolio``. Reading needs
``read_portfolio``; creating, changing and deleting ``manage_portfolio``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from algotrendy.core.auth import Permission, Principal
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.portfolio.interface import (
    AllocationRead,
    AllocationRequest,
    AttributionQuery,
    AttributionRead,
    DailyMetricsRead,
    MetricsQuery,
    PerformanceQuery,
    PerformanceRead,
    PortfolioApi,
    PortfolioCreate,
    PortfolioRead,
    PortfolioUpdate,
    RebalanceRead,
    RebalanceRequest,
    ReportCreate,
    ReportFormat,
    ReportRead,
    TaxLotRead,
)
from algotrendy.services.trading.interface import PositionRead, TradingApi


async def portfolio_api(request: Request) -> PortfolioApi:
    api: PortfolioApi = request.app.state.services["portfolio"]
    return api


async def trading_api(request: Request) -> TradingApi:
    api: TradingApi = request.app.state.services["trading"]
    return api


Portfolios = Annotated[PortfolioApi, Depends(portfolio_api)]
Reader = Annotated[Principal, Depends(require(Permission.READ_PORTFOLIO))]
Manager = Annotated[Principal, Depends(require(Permission.MANAGE_PORTFOLIO))]
Trader = Annotated[Principal, Depends(require(Permission.EXECUTE_TRADES))]

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
    trading = await trading_api(request)
    return await trading.positions(owner_id=user.user_id, portfolio_id=portfolio_id)


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


@router.post("/{portfolio_id:uuid}/rebalance")
async def rebalance(
    portfolio_id: uuid.UUID,
    body: RebalanceRequest,
    user: Trader,
    portfolios: Portfolios,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$"),
    ] = None,
) -> RebalanceRead:
    """The orders that bring the holdings to ``targets`` (or to an ``allocation``'s weights):
    drift threshold, minimum trade value, cash buffer and lot sizes applied; sells pick tax lots
    (``tax_optimization``). ``dry_run`` shows them; otherwise they go through the trading engine
    and its risk checks. Repeat a request with the same ``Idempotency-Key`` to get its answer."""
    return await portfolios.rebalance(
        owner_id=user.user_id, portfolio_id=portfolio_id, request=body, idempotency_key=idempotency_key
    )


@router.get("/{portfolio_id:uuid}/rebalance/status")
async def rebalance_status(portfolio_id: uuid.UUID, user: Reader, portfolios: Portfolios) -> RebalanceRead:
    """The latest rebalance, with its orders' current states."""
    return await portfolios.rebalance_status(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.get("/{portfolio_id:uuid}/lots")
async def tax_lots(portfolio_id: uuid.UUID, user: Reader, portfolios: Portfolios) -> list[TaxLotRead]:
    """Open tax lots from the fills (lots sold by a rebalance as it chose them, else FIFO)."""
    return await portfolios.tax_lots(owner_id=user.user_id, portfolio_id=portfolio_id)


@router.post("/allocation")
async def allocation(body: AllocationRequest, user: Reader, portfolios: Portfolios) -> AllocationRead:
    """Target weights: equal weight, inverse volatility, risk parity, minimum variance or
    maximum Sharpe, from the symbols' stored daily prices."""
    return await portfolios.allocation(request=body)


@router.get("/{portfolio_id:uuid}/performance")
async def performance(
    portfolio_id: uuid.UUID,
    user: Reader,
    portfolios: Portfolios,
    query: Annotated[PerformanceQuery, Query()],
) -> PerformanceRead:
    """Time- and money-weighted return, volatility, Sharpe, Sortino and drawdown over
    ``period``, and against ``benchmark``: alpha, beta, tracking error, information ratio and
    up/down capture; with the daily series for charts."""
    return await portfolios.performance(owner_id=user.user_id, portfolio_id=portfolio_id, query=query)


@router.get("/{portfolio_id:uuid}/attribution")
async def attribution(
    portfolio_id: uuid.UUID,
    user: Reader,
    portfolios: Portfolios,
    query: Annotated[AttributionQuery, Query()],
) -> AttributionRead:
    """Contribution to return by asset (and trading) and by strategy, and Brinson-Fachler
    allocation, selection and interaction effects by asset class against ``benchmark``."""
    return await portfolios.attribution(owner_id=user.user_id, portfolio_id=portfolio_id, query=query)


@router.get("/{portfolio_id:uuid}/metrics")
async def daily_metrics(
    portfolio_id: uuid.UUID, user: Reader, portfolios: Portfolios, query: Annotated[MetricsQuery, Query()]
) -> list[DailyMetricsRead]:
    """The recorded ``performance_metrics`` series: each day's value and figures since inception."""
    return await portfolios.daily_metrics(owner_id=user.user_id, portfolio_id=portfolio_id, query=query)


_FILE_CONTENT = {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}
    },
}


@router.post("/{portfolio_id:uuid}/report", status_code=202)
async def create_report(
    portfolio_id: uuid.UUID, body: ReportCreate, user: Manager, portfolios: Portfolios
) -> ReportRead:
    """A performance report (PDF with equity vs benchmark, drawdown, allocation and monthly
    returns; Excel with holdings, trades, returns and metrics) over a ``month`` or
    ``start``..``end`` (default: the last complete month), rendered as a job and, given
    ``recipients``, emailed to them with the files attached. Poll ``GET .../reports/{id}``."""
    return await portfolios.create_report(owner_id=user.user_id, portfolio_id=portfolio_id, request=body)


@router.get("/{portfolio_id:uuid}/reports")
async def list_reports(
    portfolio_id: uuid.UUID,
    user: Reader,
    portfolios: Portfolios,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ReportRead]:
    """The portfolio's reports, newest first."""
    return await portfolios.reports(owner_id=user.user_id, portfolio_id=portfolio_id, limit=limit)


@router.get("/reports/{report_id:uuid}")
async def get_report(report_id: uuid.UUID, user: Reader, portfolios: Portfolios) -> ReportRead:
    """The report's status (``queued``, ``running``, ``succeeded``, ``failed`` with the reason),
    its files with download links, and how emailing them went."""
    return await portfolios.report(owner_id=user.user_id, report_id=report_id)


@router.get(
    "/reports/{report_id:uuid}/{format}",
    response_class=Response,
    responses={200: {"description": "The file", "content": _FILE_CONTENT}},
)
async def download_report(
    report_id: uuid.UUID, format: ReportFormat, user: Reader, portfolios: Portfolios
) -> Response:
    """One file of the report (409 while it is not ready, or after it failed)."""
    found = await portfolios.report_file(owner_id=user.user_id, report_id=report_id, format=format)
    return Response(
        found.content,
        media_type=found.content_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
