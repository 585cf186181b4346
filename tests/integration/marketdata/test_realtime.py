"""Live market data: subscriptions, the WebSocket stream, bar-closed events, ownership."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from algotrendy.core.events import Envelope
from tests.apphelp import Api

pytestmark = pytest.mark.asyncio(loop_scope="module")
MD = "/api/v1/market-data"


async def test_subscribe_stream_events_and_unsubscribe(md: Api, trader: dict[str, str]) -> None:
    closed: list[Envelope] = []

    async def on_bar(envelope: Envelope) -> None:
        closed.append(envelope)

    sub = await md.container.bus.subscribe("marketdata.bar.closed", group="test-bars", handler=on_bar)
    r = await md.client.post(
        f"{MD}/realtime/subscribe",
        headers=trader,
        json={"symbols": ["BTC/USDT"], "fields": ["bars"], "interval": "1m"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    sub_id = body["subscription_id"]
    assert body["symbols"] == ["BTCUSDT"] and body["stream_url"].endswith(sub_id)

    hub = md.app.state.services["marketdata.live"]
    user = (await md.client.get("/auth/me", headers=trader)).json()
    messages, lag = [], []
    stream = hub.stream(owner=uuid.UUID(user["id"]), subscription_id=sub_id)
    async with asyncio.timeout(20):
        async for message in stream:
            lag.append((datetime.now(UTC) - datetime.fromisoformat(message["sent_at"])).total_seconds())
            messages.append(message)
            if len(messages) >= 50:
                break
    await stream.aclose()
    assert all(m["type"] == "bar" and m["symbol"] == "BTCUSDT" for m in messages)
    assert {"open", "high", "low", "close", "volume", "timestamp", "closed"} <= set(messages[0])
    stamps = [m["timestamp"] for m in messages]
    assert stamps == sorted(stamps)
    assert max(lag) < 1.0  # feed -> subscriber freshness (spec: < 1 s)
    async with asyncio.timeout(10):
        while not closed:
            await asyncio.sleep(0.05)
    assert closed[0].data["symbol"] == "BTCUSDT"
    await sub.stop()

    listed = await md.client.get(f"{MD}/realtime", headers=trader)
    assert [s["subscription_id"] for s in listed.json()] == [sub_id]
    _other, other_headers, _ = await md.user()
    assert (await md.client.delete(f"{MD}/realtime/{sub_id}", headers=other_headers)).status_code == 404
    assert (await md.client.delete(f"{MD}/realtime/{sub_id}", headers=trader)).status_code == 204
    assert (await md.client.delete(f"{MD}/realtime/{sub_id}", headers=trader)).status_code == 404


async def test_subscribe_refuses_unknown_symbols_and_intervals(md: Api, trader: dict[str, str]) -> None:
    r = await md.client.post(f"{MD}/realtime/subscribe", headers=trader, json={"symbols": ["NOPE"]})
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "symbol"
    r = await md.client.post(
        f"{MD}/realtime/subscribe", headers=trader, json={"symbols": ["BTCUSDT"], "interval": "4h"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "interval"
    r = await md.client.post(f"{MD}/realtime/subscribe", headers=trader, json={"symbols": []})
    assert r.status_code == 422
