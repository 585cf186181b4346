"""A deployed strategy whose template reads an ML model: on the paper broker fed by the replayed
sample data, each new window is scored by the serving model and the strategy trades on it; a
template naming a model that does not exist is refused at deploy time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from algotrendy.core.market import Timeframe
from tests.apphelp import Api, make_settings, running
from tests.integration.ml.test_ml_api import trained

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("mldeploy"),
        marketdata={"load_samples": True, "replay_speed": 0, "replay_loop": False},
        notifications={"welcome_email": False},
    )
    async with running(settings) as a:
        yield a


def _template(model: str) -> dict[str, object]:
    return {
        "name": "model follower",
        "models": {"p_up": model},
        "entry_conditions": ["p_up > 0.5"],
        "exit_conditions": ["p_up < 0.5"],
    }


async def test_a_deployed_template_trades_on_the_serving_model(api: Api) -> None:
    _u, h, _ = await api.user()
    model = await trained(
        api, h, name="btc-hourly", symbol="BTCUSDT", interval="1h", start="2023-01-01", end="2023-09-30"
    )
    await api.client.post(f"/api/v1/ml/models/{model['id']}/promote", headers=h)
    r = await api.client.post(
        "/api/v1/portfolio", json={"name": "mlbot", "initial_capital": "1000000"}, headers=h
    )
    pid = r.json()["portfolio_id"]
    strategy = {"name": "follow", "template": _template("btc-hourly"),
                "symbols": [{"symbol": "BTCUSDT", "interval": "1h"}]}  # fmt: skip
    r = await api.client.post("/api/v1/strategies", json=strategy, headers=h)
    assert r.status_code == 201, r.text
    sid = r.json()["strategy_id"]
    body = {"portfolio_id": pid, "warmup_bars": 300, "allocation": "0.5"}
    r = await api.client.post(f"/api/v1/strategies/{sid}/deploy", json=body, headers=h)
    assert r.status_code == 201, r.text
    dep = r.json()
    store = api.container.services["marketdata"].store
    [info] = [i for i in await store.series(symbol="BTCUSDT") if i.key.timeframe == Timeframe.parse("1h")]
    for _ in range(1200):
        dep = (await api.client.get(f"{T}/deployments/{dep['deployment_id']}", headers=h)).json()
        runner = api.container.services["trading"].deployments_._runners.get(uuid.UUID(dep["deployment_id"]))
        if runner is not None and runner.last_bar_ts == info.last_ts:
            break
        await asyncio.sleep(0.05)
    assert dep["status"] == "running", dep
    r = await api.client.get(f"{T}/orders", params={"portfolio_id": pid, "limit": 500}, headers=h)
    orders = r.json()["items"]
    assert orders and all(o["status"] == "filled" for o in orders), orders[:3]
    assert {o["side"] for o in orders} <= {"BUY", "SELL"}
    await api.client.post(f"{T}/deployments/{dep['deployment_id']}/stop", headers=h)

    strategy = {"name": "follow nothing", "template": _template("no-such-model"),
                "symbols": [{"symbol": "BTCUSDT", "interval": "1h"}]}  # fmt: skip
    r = await api.client.post("/api/v1/strategies", json=strategy, headers=h)
    assert r.status_code == 201, r.text
    r = await api.client.post(f"/api/v1/strategies/{r.json()['strategy_id']}/deploy", json=body, headers=h)
    assert r.status_code == 404 and "models.p_up" in r.text, r.text
