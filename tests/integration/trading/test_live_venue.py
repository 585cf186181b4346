"""The order path against a live venue: the fake Binance on 127.0.0.1 (signed spot API) behind a
broker connection, with faults injected where real venues fail.

- a key that can withdraw is refused; a good key is stored encrypted and never shown again;
- timeout after the venue accepted: the order goes ``unknown``, is resolved by client order id,
  and exactly one venue order exists for the intent;
- every fill delivered twice and out of order: the position counts each once;
- 429 on submit: the order is rejected as not placed, nothing reaches the venue;
- an order placed at the venue outside the platform is adopted by reconciliation.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, order_inserts, running
from tests.fakes import FakeBinance

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as f:
        yield f


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("live"),
        marketdata={"load_samples": True},
        trading={
            "allow_custom_venue_urls": True,
            "venue_timeout": 1.0,  # generous: a loaded CI host must not turn a 429 into a timeout
            "venue_poll_interval": 0.05,
            "reconcile_interval": 3600,
        },
    )
    async with running(settings) as a:
        yield a


async def connect(api: Api, fake: FakeBinance, h: dict[str, str], **extra: Any) -> Any:
    body = {
        "venue": "binance",
        "label": "main",
        "api_key": fake.api_key,
        "secret": fake.secret,
        "base_url": fake.url,
        "sandbox": False,
        **extra,
    }
    return await api.client.post(f"{T}/connections", json=body, headers=h)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(api: Api, fake: FakeBinance) -> tuple[dict[str, str], str]:
    """One user with one connection to the fake's account; each test trades a portfolio of its own."""
    _u, h, _ = await api.user()
    r = await connect(api, fake, h)
    assert r.status_code == 201, r.text
    return h, str(r.json()["connection_id"])


async def live_portfolio(api: Api, trader: tuple[dict[str, str], str]) -> tuple[dict[str, str], str]:
    h, connection_id = trader
    r = await api.client.post(
        "/api/v1/portfolio",
        json={
            "name": f"live-{uuid.uuid4().hex[:6]}",
            "initial_capital": "50000",
            "currency": "USDT",
            "venue": connection_id,
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    return h, str(r.json()["portfolio_id"])


async def until(api: Api, h: dict[str, str], order_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(300):
        order = (await api.client.get(f"{T}/orders/{order_id}", headers=h)).json()
        if order["status"] in statuses and order["venue_state"] == "acknowledged":
            return dict(order)
        await asyncio.sleep(0.02)
    raise AssertionError(f"order stayed {order}")


async def test_keys_are_checked_and_never_shown(api: Api) -> None:
    _u, h, _ = await api.user()
    fake = FakeBinance()
    await asyncio.to_thread(fake.start)
    fake.withdrawals_enabled = True
    try:
        r = await connect(api, fake, h)
    finally:
        fake.withdrawals_enabled = False
    assert r.status_code == 422 and r.json()["code"] == "withdrawal_enabled", r.text
    r = await connect(api, fake, h, secret="wrong-secret")
    assert r.status_code == 422 and "api_key" in r.text
    r = await connect(api, fake, h)
    assert r.status_code == 201, r.text
    shown = r.json()
    assert fake.secret not in r.text and fake.api_key not in r.text and "..." in shown["api_key_hint"]
    listed = (await api.client.get(f"{T}/connections", headers=h)).json()
    assert [c["connection_id"] for c in listed] == [shown["connection_id"]]
    from algotrendy.services.trading import store

    async with api.container.sessions() as session:
        row = (
            (
                await session.execute(
                    store.connections.select().where(store.connections.c.base_url == fake.url)
                )
            )
            .mappings()
            .first()
        )
    assert row is not None and fake.secret not in row["secret"] and fake.api_key not in row["api_key"]
    again = await connect(api, fake, h)
    assert again.status_code == 409 and again.json()["code"] == "connection_exists"
    await asyncio.to_thread(fake.stop)


async def test_timeout_after_accept_resolves_to_exactly_one_venue_order(
    api: Api, fake: FakeBinance, trader: tuple[dict[str, str], str]
) -> None:
    h, pid = await live_portfolio(api, trader)
    fake.faults.delay(2.5, path="/api/v3/order")  # the venue takes it; the answer comes too late
    body = {"portfolio_id": pid, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}
    with order_inserts(api, pid) as inserts:
        r = await api.client.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": "slow-1"})
    assert r.status_code == 201, r.text
    assert [i.durable for i in inserts] == [
        True
    ]  # a live venue is called only after the intent is on the disk
    first = r.json()
    assert first["venue_state"] == "unknown" and first["status"] == "submitted", (
        first["reason"],
        first["risk"],
    )
    order = await until(api, h, first["order_id"], "filled")
    assert len(fake.orders_for(order["client_order_id"])) == 1
    again = await api.client.post(f"{T}/orders", json=body, headers={**h, "Idempotency-Key": "slow-1"})
    assert again.json()["order_id"] == first["order_id"]
    assert len(fake.orders_for(order["client_order_id"])) == 1


async def test_duplicated_and_reordered_fills_count_once(
    api: Api, fake: FakeBinance, trader: tuple[dict[str, str], str]
) -> None:
    h, pid = await live_portfolio(api, trader)
    fake.duplicate_trades(1000)
    fake.reorder_trades(1000)
    try:
        body = {"portfolio_id": pid, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.02"}
        r = await api.client.post(f"{T}/orders", json=body, headers=h)
        order = await until(api, h, r.json()["order_id"], "filled")
        await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
        await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    finally:
        fake.duplicate_trades(0)
        fake.reorder_trades(0)
    fills = (await api.client.get(f"{T}/orders/{order['order_id']}/fills", headers=h)).json()
    assert len(fills) == fake.market_splits and sum(Decimal(f["quantity"]) for f in fills) == Decimal("0.02")
    [pos] = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    assert Decimal(pos["quantity"]) == Decimal("0.02")


async def test_rate_limited_submit_is_rejected_and_nothing_placed(
    api: Api, fake: FakeBinance, trader: tuple[dict[str, str], str]
) -> None:
    h, pid = await live_portfolio(api, trader)
    fake.faults.rate_limit(retry_after=30, path="/api/v3/order")
    body = {
        "portfolio_id": pid,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.01",
        "client_order_id": "rl-1",
    }
    r = await api.client.post(f"{T}/orders", json=body, headers=h)
    assert r.json()["status"] == "rejected" and "unavailable" in r.json()["reason"], r.text
    assert fake.orders_for("rl-1") == []
    acct = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    assert Decimal(acct["reserved"]) == 0  # the reservation went back


async def test_bad_input_never_reaches_the_venue(
    api: Api, fake: FakeBinance, trader: tuple[dict[str, str], str]
) -> None:
    h, pid = await live_portfolio(api, trader)
    before = len(fake.accepted)
    cases = [
        ({"quantity": "0.0000001"}, "quantity"),  # below LOT_SIZE minimum / off step
        ({"order_type": "LIMIT", "limit_price": "60000.001"}, "limit_price"),  # off tick
        ({"symbol": "DOGEBTC"}, "symbol"),
    ]
    for change, field in cases:
        body = {"portfolio_id": pid, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", **change}
        r = await api.client.post(f"{T}/orders", json=body, headers=h)
        assert r.status_code == 422 and field in r.text, (change, r.text)
    assert len(fake.accepted) == before


async def test_reconciliation_adopts_an_order_placed_elsewhere(api: Api) -> None:
    """On a venue account only this portfolio uses (with several, an outside order cannot be
    attributed and is logged instead)."""
    from algotrendy.adapters.brokers.ccxt_venue import CcxtVenue
    from algotrendy.adapters.sources.ccxt_source import rehost_api_urls
    from algotrendy.core.venue import OrderRequest

    fake = FakeBinance()
    await asyncio.to_thread(fake.start)
    _u, h, _ = await api.user()
    r = await connect(api, fake, h)
    assert r.status_code == 201, r.text
    h, pid = await live_portfolio(api, (h, r.json()["connection_id"]))
    r = await api.client.post(
        f"{T}/orders",
        json={
            "portfolio_id": pid,
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "0.01",
            "order_type": "LIMIT",
            "limit_price": "1000",
        },
        headers=h,
    )
    await until(api, h, r.json()["order_id"], "submitted")
    outside = CcxtVenue(
        exchange_id="binance",
        api_key=fake.api_key,
        secret=fake.secret,
        urls=rehost_api_urls("binance", fake.url),
        timeout=1,
        rate_limit=False,
    )
    await outside.connect()
    try:
        await outside.submit(
            OrderRequest(
                client_order_id="placed-by-hand",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                quantity=Decimal("0.01"),
                limit_price=Decimal("1000"),
            )
        )
    finally:
        await outside.close()
    # The venue's event stream or the reconciliation adopts it, whichever sees it first; once.
    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.status_code == 200 and r.json()["orders_adopted"] in (0, 1), r.text
    page = (await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)).json()
    adopted = [o for o in page["items"] if o["client_order_id"] == "placed-by-hand"]
    assert len(adopted) == 1 and adopted[0]["status"] == "submitted"
    assert adopted[0]["venue_state"] == "acknowledged"
    r = await api.client.post(f"{T}/accounts/{pid}/reconcile", headers=h)
    assert r.json()["orders_adopted"] == 0 and r.json()["halted"] is False
    await asyncio.to_thread(fake.stop)
