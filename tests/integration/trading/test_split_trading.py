"""Split mode: paper trading through nginx on PostgreSQL, Redis and NATS. The users process
issues tokens; one process hosts market data, portfolio, risk and trading (the order path checks
risk in-process); the order, its fill, the position and the WebSocket update all cross the edge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.procs import Proc, edge_user, split_stack

T = "/api/v1/trading"


@pytest.fixture
async def split(tmp_path: Path) -> Iterator[dict[str, Proc]]:  # type: ignore[misc]
    async with split_stack(tmp_path, "marketdata,portfolio,risk,trading") as procs:
        yield procs


@pytest.mark.slow
async def test_paper_order_through_nginx_on_services(split: dict[str, Proc]) -> None:
    with httpx.Client(base_url=split["nginx"].url, timeout=30) as http:
        h = edge_user(http)
        r = http.post("/api/v1/portfolio", json={"name": "edge", "initial_capital": "25000"}, headers=h)
        assert r.status_code == 201, r.text
        pid = r.json()["portfolio_id"]
        r = http.put(f"/api/v1/risk/limits/{pid}", json={"max_order_notional": "20000"}, headers=h)
        assert r.status_code == 200, r.text
        body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "10"}
        r = http.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": "edge-1"})
        assert r.status_code == 201, r.text
        oid = r.json()["order_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            order = http.get(f"{T}/orders/{oid}", headers=h).json()
            if order["status"] == "filled":
                break
            time.sleep(0.1)
        assert order["status"] == "filled", order
        again = http.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": "edge-1"})
        assert again.status_code == 200 and again.json()["order_id"] == oid
        [pos] = http.get(f"{T}/positions/{pid}", headers=h).json()
        assert Decimal(pos["quantity"]) == 10
        r = http.post(f"{T}/orders", json={**body, "quantity": "1000"}, headers=h)
        assert r.json()["status"] == "rejected" and r.json()["risk"]["reasons"][0]["code"] == "order_notional"
        holdings = http.get(f"/api/v1/portfolio/{pid}/holdings", headers=h).json()
        assert [x["symbol"] for x in holdings] == ["AAPL"]
