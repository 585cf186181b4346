"""The trading API as a client sees it, on the embedded default (paper broker on the shipped
sample data): orders through the state machine, positions and the ledger, idempotency, bad
input, risk limits and the kill switch, owner checks and permissions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from algotrendy.core.auth import Role
from algotrendy.core.events import Envelope
from tests.apphelp import Api, make_settings, order_inserts, running, service_settings

T = "/api/v1/trading"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["embedded", "services"])
async def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The whole module twice: SQLite (BEGIN IMMEDIATE serializes an account's orders) and
    PostgreSQL + Redis + NATS (SELECT ... FOR UPDATE does)."""
    tmp = tmp_path_factory.mktemp("trading")
    if request.param == "embedded":
        async with running(make_settings(tmp, marketdata={"load_samples": True})) as a:
            yield a
        return
    async with service_settings(tmp, marketdata={"load_samples": True}) as settings, running(settings) as a:
        yield a


async def portfolio(api: Api, headers: dict[str, str], **extra: Any) -> str:
    body = {"name": f"p-{uuid.uuid4().hex[:8]}", "initial_capital": "100000", **extra}
    r = await api.client.post("/api/v1/portfolio", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["portfolio_id"])


async def settled(api: Api, headers: dict[str, str], order_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(200):
        r = await api.client.get(f"{T}/orders/{order_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in statuses:
            return dict(r.json())
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {order_id} stayed {r.json()['status']}")


async def test_market_buy_fills_and_books_position_and_cash(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    r = await api.client.post(
        f"{T}/orders",
        json={"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "10"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] in ("submitted", "filled") and order["client_order_id"].startswith("at-")
    order = await settled(api, h, order["order_id"], "filled")
    assert Decimal(order["filled_quantity"]) == 10 and order["venue_state"] == "acknowledged"
    price, fees = Decimal(order["average_price"]), Decimal(order["fees"])
    r = await api.client.get(f"{T}/positions/{pid}", headers=h)
    [pos] = r.json()
    assert (
        pos["symbol"] == "AAPL" and Decimal(pos["quantity"]) == 10 and Decimal(pos["average_price"]) == price
    )
    r = await api.client.get(f"{T}/accounts/{pid}", headers=h)
    acct = r.json()
    assert Decimal(acct["cash"]) == Decimal(100000) - 10 * price - fees
    assert Decimal(acct["reserved"]) == 0 and Decimal(acct["fees"]) == fees
    r = await api.client.get(f"{T}/orders/{order['order_id']}/fills", headers=h)
    assert sum(Decimal(f["quantity"]) for f in r.json()) == 10
    # The ledger sums to zero per currency and cash is never negative.
    from algotrendy.services.trading import store

    async with api.container.sessions() as session:
        rows = await store.balance_rows(session, uuid.UUID(pid))
    assert sum(v for (_a, c), v in rows.items() if c == "USD") == 0
    assert rows[("cash", "USD")] >= 0
    # Sell it back: the position closes and P&L is realized.
    r = await api.client.post(f"{T}/positions/{pos['position_id']}/close", json={"quantity": "4"}, headers=h)
    assert r.status_code == 201, r.text
    await settled(api, h, r.json()["order_id"], "filled")
    [pos] = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    assert Decimal(pos["quantity"]) == 6


async def test_resting_limit_order_reserves_cash_and_cancel_releases_it(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {
        "portfolio_id": pid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "5",
        "order_type": "LIMIT",
        "limit_price": "1.00",
    }
    r = await api.client.post(f"{T}/orders", json=body, headers=h)
    assert r.status_code == 201, r.text
    oid = r.json()["order_id"]
    acct = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    assert Decimal(acct["reserved"]) > 0 and Decimal(acct["cash"]) + Decimal(acct["reserved"]) == 100000
    r = await api.client.put(f"{T}/orders/{oid}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    acct = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    assert Decimal(acct["reserved"]) == 0 and Decimal(acct["cash"]) == 100000
    r = await api.client.put(f"{T}/orders/{oid}/cancel", headers=h)
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]


async def test_idempotency_key_and_client_order_id(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {
        "portfolio_id": pid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "1",
        "order_type": "LIMIT",
        "limit_price": "2",
    }
    keyed = {**h, "Idempotency-Key": "intent-1"}
    first = await api.client.post(f"{T}/orders", json=body, headers=keyed)
    again = await api.client.post(f"{T}/orders", json=body, headers=keyed)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and again.json()["order_id"] == first.json()["order_id"]
    )
    other = await api.client.post(f"{T}/orders", json={**body, "quantity": "2"}, headers=keyed)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    with_id = {**body, "client_order_id": "my-own-1"}
    a = await api.client.post(f"{T}/orders", json=with_id, headers=h)
    b = await api.client.post(f"{T}/orders", json=with_id, headers=h)
    assert a.json()["order_id"] == b.json()["order_id"] and a.json()["client_order_id"] == "my-own-1"
    page = (await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)).json()
    assert page["total"] == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"symbol": "NOPE"}, "symbol"),
        ({"order_type": "LIMIT"}, "limit_price"),
        ({"order_type": "STOP_LIMIT", "limit_price": "10"}, "stop_price"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"side": "HOLD"}, "side"),
        ({"time_in_force": "GTX"}, "time_in_force"),
    ],
)
async def test_bad_orders_are_refused_naming_the_field(api: Api, change: dict[str, str], field: str) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "1", **change}
    r = await api.client.post(f"{T}/orders", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert field in r.text
    page = (await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)).json()
    assert page["total"] == 0  # nothing written, nothing sent


async def test_risk_limits_deny_with_reasons_and_kill_switch(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    seen: list[Envelope] = []

    async def on_event(envelope: Envelope) -> None:
        seen.append(envelope)

    await api.container.bus.subscribe("trading.order.denied", group=f"t-{pid}", handler=on_event)
    r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_order_notional": "100"}, headers=h)
    assert r.status_code == 200 and r.json()["max_order_notional"] == "100", r.text
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "10"}
    r = await api.client.post(
        "/api/v1/risk/pre-trade-check",
        json={"portfolio_id": pid, "order": {k: v for k, v in body.items() if k != "portfolio_id"}},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["allowed"] is False
    assert r.json()["reasons"][0]["code"] == "order_notional"
    r = await api.client.post(f"{T}/orders", json=body, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "rejected", r.text
    assert r.json()["venue_state"] == "none" and r.json()["risk"]["reasons"][0]["code"] == "order_notional"
    for _ in range(100):
        if any(e.data["portfolio_id"] == pid for e in seen):
            break
        await asyncio.sleep(0.02)
    assert any(e.data["portfolio_id"] == pid and e.data["reasons"] for e in seen)
    r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"trading_state": "HALTED"}, headers=h)
    r = await api.client.post(f"{T}/orders", json={**body, "quantity": "0.1"}, headers=h)
    assert r.json()["status"] == "rejected" and "halted" in r.json()["reason"]
    r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_concentration": "2"}, headers=h)
    assert r.status_code == 422 and "max_concentration" in r.text


async def test_paper_intents_do_not_wait_for_the_disk_but_a_denial_does(api: Api) -> None:
    """The paper venue keeps its book in our database, after the intent in the same log: the
    intent's commit need not wait for the disk, the booking after it makes both durable. A
    denial has nothing after it: it is decided again in a durable transaction (one row)."""
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "1"}
    with order_inserts(api, pid) as inserts:
        r = await api.client.post(f"{T}/orders", json=body, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text
        r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_order_notional": "100"}, headers=h)
        assert r.status_code == 200, r.text
        r = await api.client.post(f"{T}/orders", json={**body, "quantity": "10"}, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "rejected", r.text
    assert [i.durable for i in inserts] == [False, True]
    r = await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)
    assert sorted(o["status"] for o in r.json()["items"]) == ["filled", "rejected"], r.text


async def test_order_rate_throttle_counts_the_last_minute(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_orders_per_minute": 3}, headers=h)
    assert r.status_code == 200, r.text
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "1"}
    resting = {**body, "order_type": "LIMIT", "limit_price": "1"}
    for _ in range(3):
        r = await api.client.post(f"{T}/orders", json=resting, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "submitted", r.text
    check = {"portfolio_id": pid, "order": {k: v for k, v in body.items() if k != "portfolio_id"}}
    r = await api.client.post("/api/v1/risk/pre-trade-check", json=check, headers=h)
    assert r.json()["allowed"] is False and r.json()["reasons"][0]["code"] == "rate_limited", r.text
    r = await api.client.post(f"{T}/orders", json=body, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "rejected", r.text
    reason = r.json()["risk"]["reasons"][0]
    assert reason["code"] == "rate_limited" and reason["message"].startswith("3 orders in the last minute")


async def test_concurrent_orders_cannot_jointly_exceed_a_limit(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_position_quantity": "10"}, headers=h)
    body = {
        "portfolio_id": pid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "1",
        "order_type": "LIMIT",
        "limit_price": "1",
    }
    answers = await asyncio.gather(*(api.client.post(f"{T}/orders", json=body, headers=h) for _ in range(50)))
    statuses = [a.json()["status"] for a in answers]
    assert all(a.status_code == 201 for a in answers)
    assert statuses.count("submitted") == 10 and statuses.count("rejected") == 40


def code(order: dict[str, Any]) -> str:
    """The order's first risk denial, or ``ok``."""
    return str((order["risk"]["reasons"] or [{"code": "ok"}])[0]["code"])


async def test_queued_orders_share_an_intent_and_each_sees_the_ones_before_it(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """One account's concurrent orders queue; the next batch's intents are one transaction in
    which each order is checked with the reservations, open quantity and times of the ones
    before it: cash, a position limit and the rate throttle hold exactly, in arrival order.
    Each order's steps are logged under its own request's id, whoever led the batch."""
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)  # 100,000 of cash
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "order_type": "LIMIT"}
    costly = {**body, "quantity": "15000", "limit_price": "1"}  # 15,000 set aside (+ fees) each
    caplog.set_level("INFO", logger="algotrendy.services.trading.service")
    with order_inserts(api, pid) as inserts:
        answers = await asyncio.gather(
            *(api.client.post(f"{T}/orders", json=costly, headers=h) for _ in range(12))
        )
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    codes = sorted(code(a.json()) for a in answers)
    assert codes == ["insufficient_cash"] * 6 + ["ok"] * 6, codes
    sizes = [i.rows for i in inserts]
    assert sum(sizes) == 12 and max(sizes) > 1, sizes  # some orders shared an intent
    denied = {a.headers["x-request-id"] for a in answers if a.json()["status"] == "rejected"}
    logged = {
        r.msg["request_id"]
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "trading.order.denied"
    }
    assert logged == denied, (logged, denied)
    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    assert Decimal(account["cash"]) >= 0 and Decimal(account["reserved"]) > Decimal(90_000), account

    pid = await portfolio(api, h)
    r = await api.client.put(
        f"/api/v1/risk/limits/{pid}",
        json={"max_orders_per_minute": 7, "max_position_quantity": "5"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    cheap = {**body, "portfolio_id": pid, "quantity": "1", "limit_price": "1"}
    with order_inserts(api, pid) as inserts:
        answers = await asyncio.gather(
            *(api.client.post(f"{T}/orders", json=cheap, headers=h) for _ in range(9))
        )
    codes = sorted(code(a.json()) for a in answers)
    # 5 fill the position limit; the 6th and 7th are denied by it; the 8th and 9th by the
    # throttle first (denied orders count too: 7 orders in the minute).
    assert codes == ["ok"] * 5 + ["position_quantity"] * 2 + ["rate_limited"] * 2, codes
    sizes = [i.rows for i in inserts]
    assert sum(sizes) == 9 and max(sizes) > 1, sizes


async def test_concurrent_orders_with_one_client_order_id_make_one_order(api: Api) -> None:
    """Duplicates queued in one batch fail its transaction; each order is then placed on its
    own, and every caller gets the one order."""
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "LIMIT"}
    same = {**body, "limit_price": "2", "client_order_id": f"dup-{uuid.uuid4().hex[:8]}"}
    other = {**body, "limit_price": "3"}
    answers = await asyncio.gather(
        *(api.client.post(f"{T}/orders", json=b, headers=h) for b in [same, same, other, same, other])
    )
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    same_ids = {answers[i].json()["order_id"] for i in (0, 1, 3)}
    assert len(same_ids) == 1
    page = (await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)).json()
    assert page["total"] == 3 and all(o["status"] == "submitted" for o in page["items"]), page


async def test_owner_checks_and_permissions(api: Api) -> None:
    _a, ha, _ = await api.user()
    _b, hb, _ = await api.user()
    _v, hv, _ = await api.user(Role.VIEWER)
    pid = await portfolio(api, ha)
    body = {
        "portfolio_id": pid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "1",
        "order_type": "LIMIT",
        "limit_price": "1",
    }
    oid = (await api.client.post(f"{T}/orders", json=body, headers=ha)).json()["order_id"]
    for path in (
        f"{T}/orders/{oid}",
        f"{T}/positions/{pid}",
        f"{T}/accounts/{pid}",
        f"/api/v1/risk/limits/{pid}",
    ):
        assert (await api.client.get(path, headers=hb)).status_code == 404, path
    assert (await api.client.put(f"{T}/orders/{oid}/cancel", headers=hb)).status_code == 404
    assert (await api.client.post(f"{T}/orders", json=body, headers=hb)).status_code == 404
    assert (await api.client.post(f"{T}/orders", json=body, headers=hv)).status_code == 403
    assert (await api.client.get(f"{T}/orders/{oid}", headers=ha)).json()["status"] == "submitted"
    r = await api.client.delete(f"/api/v1/portfolio/{pid}", headers=ha)
    assert r.status_code == 409  # an order is open


async def test_execution_stats(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    r = await api.client.post(
        f"{T}/orders", json={"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "3"}, headers=h
    )
    await settled(api, h, r.json()["order_id"], "filled")
    stats = (
        await api.client.get(f"{T}/execution/stats", params={"portfolio_id": pid, "period": "1d"}, headers=h)
    ).json()
    assert stats["orders"] == 1 and stats["filled"] == 1 and stats["fills"] >= 1 and stats["fill_rate"] == 1.0
    assert (
        await api.client.get(f"{T}/execution/stats", params={"period": "1y"}, headers=h)
    ).status_code == 422


async def test_modify_replaces_a_resting_order_and_keeps_the_books_right(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    body = {
        "portfolio_id": pid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "10",
        "order_type": "LIMIT",
        "limit_price": "2",
    }
    oid = (await api.client.post(f"{T}/orders", json=body, headers=h)).json()["order_id"]
    r = await api.client.patch(f"{T}/orders/{oid}", json={"quantity": "20", "limit_price": "3"}, headers=h)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["replaces_order_id"] == oid and new["order_id"] != oid
    assert (
        Decimal(new["quantity"]) == 20 and Decimal(new["limit_price"]) == 3 and new["status"] == "submitted"
    )
    old = (await api.client.get(f"{T}/orders/{oid}", headers=h)).json()
    assert old["status"] == "cancelled" and old["reason"] == "replaced"
    acct = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    # Only the new order's reservation is held: 20 x 3 plus the fee allowance.
    assert Decimal(60) <= Decimal(acct["reserved"]) < Decimal("60.1")
    assert Decimal(acct["cash"]) + Decimal(acct["reserved"]) == 100000
    bad = [
        ({}, 422),
        ({"stop_price": "1"}, 422),  # a LIMIT order has no stop
        ({"quantity": "-1"}, 422),
    ]
    for change, status in bad:
        r = await api.client.patch(f"{T}/orders/{new['order_id']}", json=change, headers=h)
        assert r.status_code == status, (change, r.text)
    r = await api.client.patch(f"{T}/orders/{oid}", json={"limit_price": "4"}, headers=h)
    assert r.status_code == 409  # the replaced order is final
    market = await api.client.post(
        f"{T}/orders", json={"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "1"}, headers=h
    )
    done = await settled(api, h, market.json()["order_id"], "filled")
    r = await api.client.patch(f"{T}/orders/{done['order_id']}", json={"quantity": "2"}, headers=h)
    assert r.status_code == 409


async def test_closing_part_of_a_position_realizes_its_share(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await portfolio(api, h)
    r = await api.client.post(
        f"{T}/orders",
        json={"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "10"},
        headers=h,
    )
    await settled(api, h, r.json()["order_id"], "filled")
    [pos] = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    r = await api.client.post(f"{T}/positions/{pos['position_id']}/close", json={"quantity": "11"}, headers=h)
    assert r.status_code == 422 and "quantity" in r.text
    r = await api.client.post(f"{T}/positions/{pos['position_id']}/close", json={"quantity": "4"}, headers=h)
    closing = await settled(api, h, r.json()["order_id"], "filled")
    assert closing["reduce_only"] is True and closing["side"] == "SELL"
    [after] = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    expected = (Decimal(closing["average_price"]) - Decimal(pos["average_price"])) * 4
    assert Decimal(after["quantity"]) == 6 and Decimal(after["realized_pnl"]) == expected
    r = await api.client.post(f"{T}/positions/{pos['position_id']}/close", headers=h)
    await settled(api, h, r.json()["order_id"], "filled")
    assert (await api.client.get(f"{T}/positions/{pid}", headers=h)).json() == []
    r = await api.client.post(f"{T}/positions/{pos['position_id']}/close", headers=h)
    assert r.status_code == 409  # already flat
