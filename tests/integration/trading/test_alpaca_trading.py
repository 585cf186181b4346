"""The order path against Alpaca (the fake on 127.0.0.1) and reconciliation of positions.

- a market order placed through the trading API fills at the venue and is booked once;
- a position the venue holds that no fill explains (a transfer, a corporate action, a trade on
  another platform) halts the account with the difference named; orders are then refused; the
  owner resumes it, and a difference still there halts it again at the next reconciliation;
- once the venue and the books agree again, resuming sticks.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, running
from tests.fakes import FakeAlpaca

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake() -> AsyncIterator[FakeAlpaca]:
    async with FakeAlpaca() as f:
        yield f


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("alpaca"),
        marketdata={"load_samples": True},
        trading={
            "allow_custom_venue_urls": True,
            "venue_timeout": 2,
            "venue_poll_interval": 0.05,
            "reconcile_interval": 3600,
        },
    )
    async with running(settings) as a:
        yield a


async def portfolio(api: Api, fake: FakeAlpaca) -> tuple[dict[str, str], str]:
    _u, h, _ = await api.user()
    body = {
        "venue": "alpaca",
        "label": "paper account",
        "api_key": fake.key_id,
        "secret": fake.secret,
        "base_url": fake.url,
        "sandbox": True,
    }
    r = await api.client.post(f"{T}/connections", json=body, headers=h)
    assert r.status_code == 201, r.text
    r = await api.client.post(
        "/api/v1/portfolio",
        json={
            "name": f"alpaca-{uuid.uuid4().hex[:6]}",
            "initial_capital": "100000",
            "currency": "USD",
            "venue": r.json()["connection_id"],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    return h, str(r.json()["portfolio_id"])


async def filled(api: Api, h: dict[str, str], order_id: str) -> dict[str, Any]:
    for _ in range(300):
        order = (await api.client.get(f"{T}/orders/{order_id}", headers=h)).json()
        if order["status"] == "filled":
            return dict(order)
        await asyncio.sleep(0.02)
    raise AssertionError(f"order stayed {order}")


async def test_order_fills_and_an_unexplained_position_halts_the_account(api: Api, fake: FakeAlpaca) -> None:
    h, pid = await portfolio(api, fake)
    order = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "3"}
    r = await api.client.post(f"{T}/orders", json=order, headers=h)
    assert r.status_code == 201, r.text
    done = await filled(api, h, r.json()["order_id"])
    assert Decimal(done["filled_quantity"]) == 3 and fake.accepted_count(done["client_order_id"]) == 1
    positions = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    assert [(p["symbol"], Decimal(p["quantity"])) for p in positions] == [("AAPL", 3)]

    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.status_code == 200 and r.json()["halted"] is False, r.text

    # Five more shares appear at the venue with no fill behind them.
    with fake._state:
        qty, avg = fake.holdings["AAPL"]
        fake.holdings["AAPL"] = (qty + 5, avg)
    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.status_code == 200 and r.json()["halted"] is True, r.text
    reason = r.json()["halted_reason"]
    assert re.search(r"AAPL: ours 3(\.0*)?, venue 8(\.0*)?\b", reason), reason
    r = await api.client.post(f"{T}/orders", json=order, headers=h)
    assert r.json()["status"] == "rejected" and "halted" in r.json()["reason"], r.text
    assert Decimal((await api.client.get(f"{T}/positions/{pid}", headers=h)).json()[0]["quantity"]) == 3

    # Resumed while the difference is still there: the next reconciliation halts again.
    r = await api.client.post(f"{T}/accounts/{pid}/resume", headers=h)
    assert r.status_code == 200, r.text
    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.json()["halted"] is True

    # The venue and the books agree again: resuming sticks and orders go through.
    with fake._state:
        fake.holdings["AAPL"] = (qty, avg)
    r = await api.client.post(f"{T}/accounts/{pid}/resume", headers=h)
    assert r.status_code == 200, r.text
    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.json()["halted"] is False
    r = await api.client.post(f"{T}/orders", json={**order, "quantity": "1"}, headers=h)
    assert r.status_code == 201, r.text
    assert (await filled(api, h, r.json()["order_id"]))["filled_quantity"] == "1"
