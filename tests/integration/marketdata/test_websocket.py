"""The WebSocket endpoint of live market data, through Starlette's test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from algotrendy.app.asgi import create_app
from tests.apphelp import make_settings, remember

MD = "/api/v1/market-data"


def test_websocket_streams_to_the_owner_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, marketdata={"load_samples": True, "replay_speed": 60_000})
    app = create_app(settings)
    with TestClient(app) as client:
        tokens = []
        for name in ("wsowner", "wsother"):
            password = f"pw-{name}-123456"
            remember(password)
            client.post(
                "/api/v1/users/register",
                json={"email": f"{name}@example.com", "username": name, "password": password},
            )
            tok = client.post("/auth/login", json={"username": name, "password": password}).json()
            remember(tok["access_token"], tok["refresh_token"])
            tokens.append(tok["access_token"])
        owner, other = tokens
        r = client.post(
            f"{MD}/realtime/subscribe",
            headers={"Authorization": f"Bearer {owner}"},
            json={"symbols": ["ETHUSDT"], "fields": ["price"], "interval": "1m"},
        )
        sub_id = r.json()["subscription_id"]
        with client.websocket_connect(f"{MD}/ws?subscription_id={sub_id}&access_token={owner}") as ws:
            first = ws.receive_json()
            assert first == {"type": "subscribed", "subscription_id": sub_id}
            bar = ws.receive_json()
            assert bar["type"] == "bar" and "price" in bar and "open" not in bar
        with (
            pytest.raises(WebSocketDisconnect) as denied,
            client.websocket_connect(f"{MD}/ws?subscription_id={sub_id}&access_token={other}") as ws,
        ):
            ws.receive_json()
        assert denied.value.code == 4404
        with (
            pytest.raises(WebSocketDisconnect) as anonymous,
            client.websocket_connect(f"{MD}/ws?subscription_id={sub_id}") as ws,
        ):
            ws.receive_json()
        assert anonymous.value.code == 4401
