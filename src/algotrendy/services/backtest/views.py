"""Run rows as read models: the ``RunSummary`` of a row, the headline metrics kept on it, the run
status of a job status, and the ``NotFound`` of a run."""

from __future__ import annotations

import uuid
from typing import Any

from algotrendy.core.errors import NotFound
from algotrendy.services.backtest.interface import RunKind, RunStatus, RunSummary
from algotrendy.services.jobs.interface import JobStatus

HEADLINE = (
    "total_return",
    "annualized_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "win_rate",
    "profit_factor",
    "number_of_trades",
    "exposure",
    "final_equity",
)
JOB_STATUS = {
    JobStatus.QUEUED: RunStatus.QUEUED,
    JobStatus.RUNNING: RunStatus.RUNNING,
    JobStatus.SUCCEEDED: RunStatus.COMPLETED,
    JobStatus.FAILED: RunStatus.FAILED,
    JobStatus.CANCELLED: RunStatus.CANCELLED,
}


def not_found(run_id: uuid.UUID) -> NotFound:
    return NotFound(f"backtest {run_id} not found", code="backtest_not_found")


def headline(kind: str, result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    if kind == RunKind.BACKTEST.value:
        m = result.get("metrics") or {}
    elif kind == RunKind.OPTIMIZE.value:
        m = ((result.get("best") or {}).get("metrics") or {}) | {
            "deflated_sharpe": result.get("deflated_sharpe")
        }
    elif kind == RunKind.WALK_FORWARD.value:
        m = (result.get("metrics") or {}) | {"efficiency": result.get("efficiency")}
    else:
        tb = result.get("trade_bootstrap") or {}
        bb = result.get("block_bootstrap") or {}
        return {"probability_of_ruin": tb.get("probability_of_ruin", bb.get("probability_of_ruin"))}
    keep = (*HEADLINE, "deflated_sharpe", "efficiency", "alpha", "beta")
    return {k: m[k] for k in keep if k in m}


def summary(row: Any, status: RunStatus) -> RunSummary:
    return RunSummary(
        backtest_id=row.id,
        kind=RunKind(row.kind),
        status=status,
        name=row.name,
        strategy_id=row.strategy_id,
        strategy_version=row.strategy_version,
        strategy_name=row.strategy_name,
        symbols=list(row.symbols),
        interval=row.interval,
        metrics=row.metrics or {},
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
