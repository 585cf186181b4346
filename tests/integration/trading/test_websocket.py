"""The trading WebSocket: a user's order, fill and position updates as they commit, and risk
alerts, nobody else's; anonymous and foreign-portfolio connections are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from algotrendy.app.asgi import create_app
from tests.apphelp import make_settings, remember

T = "/api/v1/trading"


def _login(client: TestClient, name: str) -> str:
    password = f"pw-{name}-123456"
    remember(password)
    client.post(
        "/api/v1/users/register",
        json={"email": f"{name}@example.com", "username": name, "password": password},
    )
    tok = client.post("/auth/login", json={"username": name, "password": password}).json()
    remember(tok["access_token"], tok["refresh_token"])
    return str(tok["access_token"])


def test_updates_stream_to_the_owner_only(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, marketdata={"load_samples": True}))
    with TestClient(app) as client:
        owner, other = _login(client, "wstrader"), _login(client, "wsother")
        h = {"Authorization": f"Bearer {owner}"}
        pid = client.post(
            "/api/v1/portfolio", json={"name": "ws", "initial_capital": "50000"}, headers=h
        ).json()["portfolio_id"]
        with client.websocket_connect(f"{T}/ws?access_token={owner}&portfolio_id={pid}") as ws:
            assert ws.receive_json() == {"type": "subscribed", "portfolio_id": pid}
            order = client.post(
                f"{T}/orders",
                json={"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "2"},
                headers=h,
            ).json()
            seen: list[str] = []
            while "trading.position.opened" not in seen:
                message = ws.receive_json()
                seen.append(message["type"])
                assert message["data"]["portfolio_id"] == pid and "owner_id" not in message["data"]
                if message["type"].startswith("trading.order."):
                    assert message["data"]["order_id"] == order["order_id"]
            assert seen.index("trading.order.created") < seen.index("trading.fill.executed")
            assert "trading.order.filled" in seen
            # A risk alert reaches the owner on the same socket (the monitor picks up the limit).
            r = client.put(f"/api/v1/risk/limits/{pid}", json={"max_var": "0.00001"}, headers=h)
            assert r.status_code == 200, r.text
            message = ws.receive_json()
            while message["type"] != "risk.threshold.breached":
                message = ws.receive_json()
            assert message["data"]["kind"] == "var" and message["data"]["portfolio_id"] == pid
        with (
            pytest.raises(WebSocketDisconnect) as foreign,
            client.websocket_connect(f"{T}/ws?access_token={other}&portfolio_id={pid}") as ws,
        ):
            ws.receive_json()
        assert foreign.value.code == 4404
        with pytest.raises(WebSocketDisconnect) as anonymous, client.websocket_connect(f"{T}/ws") as ws:
            ws.receive_json()
        assert anonymous.value.code == 4401
