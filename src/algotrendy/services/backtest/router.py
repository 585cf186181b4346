"""HTTP front door of the backtesting service: ``/api/v1/backtest`` and the strategy-scoped runs
``/api/v1/strategies/{strategy_id}/backtest|optimize`` and the spec's
``/api/v1/strategies/backtest/{backtest_id}/results``.

Starting a run answers 202 with its id and status URL; the work happens in a job. Every route
needs ``run_backtests``; runs are the caller's own (another user's id is a 404).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from algotrendy.core.auth import Permission, Principal
from algotrendy.core.errors import Conflict
from algotrendy.gateway.auth import require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.backtest.interface import (
    BacktestApi,
    BacktestCreate,
    CompareRead,
    CompareRequest,
    MonteCarloCreate,
    OptimizeCreate,
    RunAccepted,
    RunKind,
    RunResults,
    RunStatusRead,
    RunSummary,
    StrategyBacktestCreate,
    StrategyOptimizeCreate,
    WalkForwardCreate,
)


async def backtest_api(request: Request) -> BacktestApi:
    api: BacktestApi = request.app.state.services["backtest"]
    return api


Backtests = Annotated[BacktestApi, Depends(backtest_api)]
Tester = Annotated[Principal, Depends(require(Permission.RUN_BACKTESTS))]

router = APIRouter(prefix="/api/v1/backtest", tags=["backtest"], responses=PROBLEM_RESPONSES)
strategy_router = APIRouter(prefix="/api/v1/strategies", tags=["backtest"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=202)
async def start_backtest(body: BacktestCreate, user: Tester, api: Backtests) -> RunAccepted:
    """Backtest a stored strategy (``strategy_id``) or an inline ``template`` on stored bars."""
    return await api.backtest(owner=user.user_id, request=body)


@router.get("")
async def list_runs(
    user: Tester,
    api: Backtests,
    kind: RunKind | None = None,
    strategy_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[RunSummary]:
    """Your runs, newest first."""
    return await api.list(owner=user.user_id, kind=kind, strategy_id=strategy_id, limit=limit, offset=offset)


@router.post("/walk-forward", status_code=202)
async def start_walk_forward(body: WalkForwardCreate, user: Tester, api: Backtests) -> RunAccepted:
    """Optimize in-sample, test out-of-sample, step forward; stitched out-of-sample equity."""
    return await api.walk_forward(owner=user.user_id, request=body)


@router.post("/monte-carlo", status_code=202)
async def start_monte_carlo(body: MonteCarloCreate, user: Tester, api: Backtests) -> RunAccepted:
    """Trade-order and block bootstrap of a run: final equity, drawdown, probability of ruin."""
    return await api.monte_carlo(owner=user.user_id, request=body)


@router.post("/optimize", status_code=202)
async def start_optimize(body: OptimizeCreate, user: Tester, api: Backtests) -> RunAccepted:
    """Grid, random or Bayesian (Optuna) search; top-N table and the deflated Sharpe of the winner."""
    return await api.optimize(owner=user.user_id, request=body)


@router.post("/compare")
async def compare(body: CompareRequest, user: Tester, api: Backtests) -> CompareRead:
    """Completed backtests side by side, with the best on each metric."""
    return await api.compare(owner=user.user_id, request=body)


@router.get("/{backtest_id:uuid}/status")
async def run_status(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> RunStatusRead:
    """Progress (0..1), ETA and, once finished, the status."""
    return await api.status(owner=user.user_id, backtest_id=backtest_id)


@router.get("/{backtest_id:uuid}/results")
async def run_results(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> RunResults:
    """The outcome (``result`` is null until the run has finished)."""
    return await api.results(owner=user.user_id, backtest_id=backtest_id)


@router.get("/{backtest_id:uuid}/report", response_class=HTMLResponse)
async def run_report(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> HTMLResponse:
    """A self-contained HTML report: metrics, equity vs benchmark with trades, drawdown, trades."""
    from algotrendy.services.backtest.report import render_html

    results = await api.results(owner=user.user_id, backtest_id=backtest_id)
    if results.result is None:
        raise Conflict(f"backtest {backtest_id} has no results ({results.status})", code="not_finished")
    page = render_html(
        {
            **results.result,
            "title": results.name or results.strategy_name,
            "strategy_name": results.strategy_name,
        }
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"})


@router.post("/{backtest_id:uuid}/cancel")
async def cancel_run(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> RunStatusRead:
    """Stop a queued or running run (409 once finished)."""
    return await api.cancel(owner=user.user_id, backtest_id=backtest_id)


@router.delete("/{backtest_id:uuid}", status_code=204)
async def delete_run(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> Response:
    await api.delete(owner=user.user_id, backtest_id=backtest_id)
    return Response(status_code=204)


@strategy_router.post("/{strategy_id:uuid}/backtest", status_code=202)
async def backtest_strategy(
    strategy_id: uuid.UUID, body: StrategyBacktestCreate, user: Tester, api: Backtests
) -> RunAccepted:
    """The spec's strategy-scoped backtest."""
    return await api.backtest_strategy(owner=user.user_id, strategy_id=strategy_id, request=body)


@strategy_router.post("/{strategy_id:uuid}/optimize", status_code=202)
async def optimize_strategy(
    strategy_id: uuid.UUID, body: StrategyOptimizeCreate, user: Tester, api: Backtests
) -> RunAccepted:
    return await api.optimize_strategy(owner=user.user_id, strategy_id=strategy_id, request=body)


@strategy_router.get("/backtest/{backtest_id:uuid}/results")
async def strategy_backtest_results(backtest_id: uuid.UUID, user: Tester, api: Backtests) -> RunResults:
    """The spec's path for a backtest's results (same as ``/api/v1/backtest/{id}/results``)."""
    return await api.results(owner=user.user_id, backtest_id=backtest_id)
