"""Strategy deployment on the paper broker, fed by the replayed sample data as fast as it goes:
the built-in SMA crossover on BTCUSDT 1h places exactly the orders its signals call for on the
replayed bars (computed by the engine the backtester uses), through the normal order path with
deterministic client order ids; bad requests are refused naming the field; stop stops it."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from algotrendy.core.market import Timeframe
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.signals import compute_signals, resolve_params
from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = "/api/v1/trading"
PARAMS = {"fast": 5, "slow": 20}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("deploy"),
        marketdata={"load_samples": True, "replay_speed": 0, "replay_loop": False},
    )
    async with running(settings) as a:
        yield a


async def setup(api: Api) -> tuple[dict[str, str], str, str]:
    _u, h, _ = await api.user()
    r = await api.client.post(
        "/api/v1/portfolio", json={"name": "bot", "initial_capital": "1000000"}, headers=h
    )
    pid = r.json()["portfolio_id"]
    r = await api.client.post(
        "/api/v1/strategies",
        json={
            "name": "cross",
            "builtin": "sma_crossover",
            "symbols": [{"symbol": "BTCUSDT", "interval": "1h"}],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    return h, pid, r.json()["strategy_id"]


async def test_deployed_crossover_places_the_orders_its_signals_call_for(api: Api) -> None:
    h, pid, sid = await setup(api)
    body = {"portfolio_id": pid, "parameters": PARAMS, "warmup_bars": 300, "allocation": "0.5"}
    r = await api.client.post(f"/api/v1/strategies/{sid}/deploy", json=body, headers=h)
    assert r.status_code == 201, r.text
    dep = r.json()
    assert (
        dep["status"] in ("starting", "running") and dep["symbols"] == ["BTCUSDT"] and dep["interval"] == "1h"
    )
    store = api.container.services["marketdata"].store
    [info] = [i for i in await store.series(symbol="BTCUSDT") if i.key.timeframe == Timeframe.parse("1h")]
    key, last_ts = info.key, info.last_ts
    for _ in range(600):
        dep = (await api.client.get(f"{T}/deployments/{dep['deployment_id']}", headers=h)).json()
        runner = api.container.services["trading"].deployments_._runners.get(uuid.UUID(dep["deployment_id"]))
        if runner is not None and runner.last_bar_ts == last_ts:
            break
        await asyncio.sleep(0.05)
    assert runner is not None and runner.last_bar_ts == last_ts, dep
    assert dep["status"] == "running" and dep["bars_seen"] >= 400
    orders = [
        o
        for o in (
            await api.client.get(f"{T}/orders", params={"portfolio_id": pid, "limit": 500}, headers=h)
        ).json()["items"]
    ]
    orders.sort(key=lambda o: o["created_at"])
    assert orders and all(o["deployment_id"] == dep["deployment_id"] for o in orders)
    ids = [o["client_order_id"] for o in orders]
    assert ids == [f"dp{dep['deployment_id'].replace('-', '')[:12]}-L{i + 1}" for i in range(len(ids))]
    assert all(o["status"] == "filled" for o in orders), [o["reason"] for o in orders]
    sides = [o["side"] for o in orders]
    assert sides[0] == "BUY" and all(a != b for a, b in itertools.pairwise(sides))
    # The signals over the same bars, computed by the backtester's engine.
    bars = await store.read(key)
    first_live = int(np.searchsorted(bars.ts, last_ts - (dep["bars_seen"] - 1) * key.timeframe.nanos))
    template = BUILTIN_TEMPLATES["sma_crossover"]
    sig = compute_signals(template, bars, resolve_params(template, PARAMS))
    expected: list[str] = []
    for i in range(first_live, len(bars)):
        if not expected or expected[-1] == "SELL":
            if sig.long_entry[i]:
                expected.append("BUY")
        elif sig.long_exit[i]:
            expected.append("SELL")
    assert sides == expected
    [stopped] = [(await api.client.post(f"{T}/deployments/{dep['deployment_id']}/stop", headers=h)).json()]
    assert stopped["status"] == "stopped" and stopped["orders_placed"] == len(orders)


async def test_bad_deployments_are_refused_naming_the_field(api: Api) -> None:
    h, pid, sid = await setup(api)
    cases = [
        ({"portfolio_id": pid, "parameters": {"fast": 1000}}, "parameters.fast"),
        ({"portfolio_id": pid, "parameters": {"nope": 1}}, "parameters.nope"),
        ({"portfolio_id": pid, "interval": "4h"}, "symbols"),  # no 4h series stored
        ({"portfolio_id": pid, "allocation": "1.5"}, "allocation"),
        ({"portfolio_id": pid, "symbols": ["BTCUSDT", "ETHUSDT"]}, "symbols"),  # one-symbol template
    ]
    for body, field in cases:
        r = await api.client.post(f"/api/v1/strategies/{sid}/deploy", json=body, headers=h)
        assert r.status_code == 422 and field in r.text, (body, r.text)
    _o, other, _ = await api.user()
    r = await api.client.post(f"/api/v1/strategies/{sid}/deploy", json={"portfolio_id": pid}, headers=other)
    assert r.status_code == 404
    assert (await api.client.get(f"{T}/deployments", headers=h)).json() == []
