"""Split mode: a backtest through nginx, on PostgreSQL, Redis and NATS.

The users process issues tokens; a research process hosts jobs, market data, strategies and
backtests. nginx routes ``/api/v1/strategies/...`` to the strategies upstream, but the spec's
strategy-scoped runs (``POST /api/v1/strategies/{id}/backtest``) and
``GET /api/v1/strategies/backtest/{id}/results`` to the backtest upstream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apphelp import remember
from tests.pg import fresh_database
from tests.procs import Proc, free_port, nginx_binary, start_nginx, start_server, wait_ready
from tests.support import require, require_service

LATER = ("marketdata", "strategies", "backtest", "trading", "risk", "portfolio", "ml", "ai")


@pytest.fixture
async def split(tmp_path: Path) -> Iterator[dict[str, Proc]]:  # type: ignore[misc]
    require(nginx_binary() is not None, "nginx is not installed (apt-get install nginx-light)")
    redis_url = require_service("redis")
    nats_url = require_service("nats")
    tag = uuid.uuid4().hex[:10]
    async with fresh_database() as db_url:
        users_port = free_port()
        common = {
            "ALGO_ENV": "development",
            "ALGO_DATABASE_URL": db_url,
            "ALGO_REDIS_URL": redis_url,
            "ALGO_NATS_URL": nats_url,
            "ALGO_BUS__STREAM": f"S_{tag}",
            "ALGO_BUS__SUBJECT_PREFIX": f"s{tag}.events",
            "ALGO_BUS__DLQ_PREFIX": f"s{tag}.dlq",
            "ALGO_GATEWAY__TRUSTED_PROXIES": "127.0.0.1",
            "ALGO_AUTH__JWKS_URL": f"http://127.0.0.1:{users_port}/auth/jwks.json",
        }
        procs: dict[str, Proc] = {}
        try:
            procs["users"] = start_server("users", tmp_path, common, services="users", port=users_port)
            wait_ready(procs["users"])
            procs["research"] = start_server(
                "research", tmp_path, common, services="jobs,marketdata,strategies,backtest"
            )
            wait_ready(procs["research"], timeout=120)
            research = f"127.0.0.1:{procs['research'].port}"
            procs["nginx"] = start_nginx(
                tmp_path,
                {
                    "users": f"127.0.0.1:{procs['users'].port}",
                    "notifications": f"127.0.0.1:{procs['users'].port}",
                    "jobs": research,
                    **dict.fromkeys(LATER, research),
                },
            )
            yield procs
        finally:
            for proc in reversed(list(procs.values())):
                proc.stop()
            from tests.apphelp import _delete_streams

            await _delete_streams(nats_url, [f"S_{tag}", f"S_{tag}_DLQ"])


@pytest.mark.slow
async def test_backtest_through_nginx_on_services(split: dict[str, Proc]) -> None:
    edge = split["nginx"].url
    with httpx.Client(base_url=edge, timeout=30) as http:
        name = f"bt{uuid.uuid4().hex[:8]}"
        password = f"pw-{uuid.uuid4().hex}"
        remember(password)
        r = http.post(
            "/api/v1/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        assert r.status_code == 201, r.text
        r = http.post("/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        remember(r.json()["access_token"], r.json()["refresh_token"])
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
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
