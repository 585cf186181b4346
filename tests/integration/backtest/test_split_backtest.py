"""Split mode: a backtest through nginx, on PostgreSQL, Redis and NATS.

The users process issues tokens; a research process hosts jobs, market data, strategies and
backtests. nginx routes ``/api/v1/strategies/...`` to the strategies upstream, but the spec's
strategy-scoped runs (``POST /api/v1/strategies/{id}/backtest``) and
``GET /api/v1/strategies/backtest/{id}/results`` to the backtest upstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import Proc, edge_user, split_stack


@pytest.fixture
async def split(tmp_path: Path) -> Iterator[dict[str, Proc]]:  # type: ignore[misc]
    async with split_stack(tmp_path, "jobs,marketdata,strategies,backtest") as procs:
        yield procs


@pytest.mark.slow
async def test_backtest_through_nginx_on_services(split: dict[str, Proc]) -> None:
    edge = split["nginx"].url
    with httpx.Client(base_url=edge, timeout=30) as http:
        headers = edge_user(http)
        r = http.post(
            "/api/v1/strategies",
            json={"name": "edge cross", "builtin": "sma_crossover", "symbols": [{"symbol": "SPY"}]},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        sid = r.json()["strategy_id"]
        r = http.post(f"/api/v1/strategies/{sid}/backtest", json={"commission": 0.001}, headers=headers)
        assert r.status_code == 202, r.text
        run_id = r.json()["backtest_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = http.get(f"/api/v1/backtest/{run_id}/status", headers=headers).json()
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.3)
        assert status["status"] == "completed", status
        r = http.get(f"/api/v1/strategies/backtest/{run_id}/results", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["result"]["metrics"]["number_of_trades"] > 0
        r = http.get("/api/v1/backtest", headers=headers)  # /api/v1/backtest itself: backtest upstream
        assert r.status_code == 200 and [x["backtest_id"] for x in r.json()] == [run_id]
