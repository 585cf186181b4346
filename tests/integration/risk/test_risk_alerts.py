"""Risk alerts raised by the monitor as prices move: a drawdown and a daily loss on a price drop,
no duplicate while the breach lasts, acknowledgement, resolution when the price comes back, a
fresh alert on the next breach, the VaR figure checked against the normal formula on the stored
closes, the ``risk.threshold.breached`` events, ownership (404) and bad input (422)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
from scipy import stats as sps

from algotrendy.core.events import Envelope
from tests.apphelp import Api, make_settings, running
from tests.golden.indicator_samples import SAMPLES

pytestmark = pytest.mark.asyncio(loop_scope="module")
R = "/api/v1/risk"
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("alerts"),
        marketdata={"load_samples": True},
        trading={"risk_stream_prices": False},  # the test moves prices itself (on_price)
    )
    async with running(settings) as a:
        yield a


async def _portfolio(api: Api, h: dict[str, str], **orders: int) -> str:
    body = {"name": f"alerts-{uuid.uuid4().hex[:6]}", "initial_capital": "100000", "currency": "USD"}
    r = await api.client.post("/api/v1/portfolio", json=body, headers=h)
    assert r.status_code == 201, r.text
    pid: str = r.json()["portfolio_id"]
    for symbol, qty in orders.items():
        order = {"portfolio_id": pid, "symbol": symbol, "side": "BUY", "quantity": str(qty)}
        r = await api.client.post(f"{T}/orders", json=order, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    return pid


def _returns(names: list[str], lookback: int) -> pd.DataFrame:
    frames = []
    for n in names:
        df = pd.read_csv(SAMPLES / f"{n}_1d.csv", parse_dates=["timestamp"])
        frames.append(df.set_index(df["timestamp"].dt.normalize())["close"].rename(n))
    joined = pd.concat(frames, axis=1, join="inner").iloc[-(lookback + 1) :]
    return joined.pct_change().dropna()


async def test_alerts_follow_the_price(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h, AAPL=300, MSFT=100)
    monitor = api.app.state.services["risk.monitor"]
    seen: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope)

    sub = await api.container.bus.subscribe("risk.threshold.breached", group="t-alerts", handler=on_event)
    limits = {
        "max_drawdown": "0.05",
        "daily_loss_limit": "3000",
        "max_var": "0.5",
        "max_concentration": "0.9",
    }
    r = await api.client.put(f"{R}/limits/{pid}", json=limits, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["max_drawdown"] == "0.05" and r.json()["max_var"] == "0.5"
    await monitor.refresh(uuid.UUID(pid))
    assert (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json() == []

    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    positions = {p["symbol"]: p for p in (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()}
    aapl = float(positions["AAPL"]["market_price"])
    equity, peak = float(account["equity"]), float(account["peak_equity"])
    day_start = float(account["day_start_equity"])

    # AAPL falls 20%: equity drops by 60 AAPL shares' worth; drawdown and daily loss breach.
    await monitor.on_price("AAPL", aapl * 0.8)
    after = equity - 300 * aapl * 0.2
    found = {a["kind"]: a for a in (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()}
    assert sorted(found) == ["daily_loss", "drawdown"]
    assert found["drawdown"]["value"] == pytest.approx(1 - after / peak, rel=1e-9)
    assert found["daily_loss"]["value"] == pytest.approx(day_start - after, rel=1e-9)
    assert found["drawdown"]["limit"] == 0.05 and found["drawdown"]["status"] == "open"
    assert "high-water mark" in found["drawdown"]["message"]

    # Further down: still one alert per kind.
    await monitor.on_price("AAPL", aapl * 0.7)
    assert len((await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()) == 2

    # Acknowledge one; another user cannot, nor see them.
    _v, other, _ = await api.user()
    drawdown_id = found["drawdown"]["alert_id"]
    r = await api.client.post(f"{R}/alerts/{drawdown_id}/acknowledge", headers=other)
    assert r.status_code == 404
    assert (await api.client.get(f"{R}/alerts/{pid}", headers=other)).status_code == 404
    r = await api.client.post(f"{R}/alerts/{drawdown_id}/acknowledge", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged", r.text
    acked_at = r.json()["acknowledged_at"]
    again = await api.client.post(f"{R}/alerts/{drawdown_id}/acknowledge", headers=h)
    assert again.json()["acknowledged_at"] == acked_at  # idempotent
    listed = (await api.client.get(f"{R}/alerts/{pid}", params={"status": "open"}, headers=h)).json()
    assert [a["kind"] for a in listed] == ["daily_loss"]

    # The price comes back: both resolve; the next drop raises fresh alerts.
    await monitor.on_price("AAPL", aapl)
    assert (await api.client.get(f"{R}/alerts/{pid}", params={"status": "active"}, headers=h)).json() == []
    resolved = (await api.client.get(f"{R}/alerts/{pid}", params={"status": "resolved"}, headers=h)).json()
    assert sorted(a["kind"] for a in resolved) == ["daily_loss", "drawdown"]
    assert all(a["resolved_at"] for a in resolved)
    await monitor.on_price("AAPL", aapl * 0.8)
    everything = (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()
    assert len(everything) == 4 and sum(a["status"] == "open" for a in everything) == 2

    # The events went out through the outbox, one per alert raised, to the owner.
    for _ in range(200):
        if len(seen) >= 4:
            break
        await asyncio.sleep(0.02)
    mine = [e for e in seen if e.data["portfolio_id"] == pid]
    assert sorted(e.data["kind"] for e in mine) == ["daily_loss", "daily_loss", "drawdown", "drawdown"]
    assert {e.data["alert_id"] for e in mine} == {a["alert_id"] for a in everything}
    await sub.stop()


async def test_var_alert_matches_the_normal_formula(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h, AAPL=200, MSFT=300)
    monitor = api.app.state.services["risk.monitor"]
    r = await api.client.put(f"{R}/limits/{pid}", json={"max_var": "0.001"}, headers=h)
    assert r.status_code == 200, r.text
    await monitor.refresh(uuid.UUID(pid))
    [alert] = (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()
    assert alert["kind"] == "var" and alert["limit"] == 0.001

    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    positions = {p["symbol"]: p for p in (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()}
    equity = float(account["equity"])
    w = np.array([float(positions[s]["market_value"]) / equity for s in ("AAPL", "MSFT")])
    rp = _returns(["AAPL", "MSFT"], 250).to_numpy() @ w
    expected = -sps.norm.ppf(0.05, loc=rp.mean(), scale=rp.std(ddof=1))
    assert alert["value"] == pytest.approx(expected, rel=1e-9)

    # Raising the limit above the figure resolves it at the next rebuild.
    r = await api.client.put(f"{R}/limits/{pid}", json={"max_var": "0.9"}, headers=h)
    await monitor.refresh(uuid.UUID(pid))
    [alert] = (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()
    assert alert["status"] == "resolved"


async def test_the_monitor_picks_up_limits_and_fills_by_itself(api: Api) -> None:
    """No direct calls: the limits event and the fill events reach the monitor over the bus."""
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    monitor = api.app.state.services["risk.monitor"]
    r = await api.client.put(f"{R}/limits/{pid}", json={"max_var": "0.002"}, headers=h)
    assert r.status_code == 200, r.text
    order = {"portfolio_id": pid, "symbol": "MSFT", "side": "BUY", "quantity": "300"}  # about 25% of equity
    r = await api.client.post(f"{T}/orders", json=order, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    alerts: list[dict[str, Any]] = []
    for _ in range(300):
        await monitor.settle()
        alerts = (await api.client.get(f"{R}/alerts/{pid}", headers=h)).json()
        if alerts:
            break
        await asyncio.sleep(0.02)
    assert [a["kind"] for a in alerts] == ["var"]
    assert alerts[0]["value"] > 0.002


async def test_bad_input_and_unknown_ids(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    r = await api.client.get(f"{R}/alerts/{pid}", params={"status": "bogus"}, headers=h)
    assert r.status_code == 422 and "status" in r.text
    r = await api.client.put(f"{R}/limits/{pid}", json={"max_var": "1.5"}, headers=h)
    assert r.status_code == 422 and "max_var" in r.text
    assert (await api.client.post(f"{R}/alerts/{uuid.uuid4()}/acknowledge", headers=h)).status_code == 404
    assert (await api.client.get(f"{R}/alerts/{uuid.uuid4()}", headers=h)).status_code == 404
