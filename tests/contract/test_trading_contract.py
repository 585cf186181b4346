"""``TradingApi`` on ``TradingService`` (in-process) and on ``TradingClient`` (HTTP, over
httpx.ASGITransport to the same app), on the paper broker with the shipped sample data: orders
through fills to positions and the account, idempotency, modify and cancel, closing positions,
the same errors with the same fields, the pre-trade check and the derived counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from algotrendy.core.errors import Conflict, Forbidden, Invalid, NotFound
from algotrendy.engine.orders import OrderSide, OrderStatus, OrderType
from algotrendy.services.trading.client import TradingClient
from algotrendy.services.trading.interface import (
    OrderCreate,
    OrderModify,
    OrderRead,
    PositionClose,
    TradingApi,
)
from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

ForToken = Callable[[str], TradingApi]
OPEN = [OrderStatus.CREATED, OrderStatus.VALIDATED, OrderStatus.SUBMITTED, OrderStatus.PARTIAL_FILL]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path_factory.mktemp("trc"), marketdata={"load_samples": True})
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def remote(app: Api) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the running app, as a remote process would hold one."""
    transport = httpx.ASGITransport(app=app.app, client=("127.0.0.2", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://trading.internal") as client:
        yield client


@pytest.fixture(params=["service", "client"])
def trading_for(request: pytest.FixtureRequest, app: Api, remote: httpx.AsyncClient) -> ForToken:
    """``trading_for(access_token)``: the API as the token's owner, on either side."""
    if request.param == "service":
        service: TradingApi = app.app.state.services["trading"]
        return lambda _token: service
    return lambda token: TradingClient(remote, token=token)


class Trader:
    def __init__(self, owner: uuid.UUID, headers: dict[str, str], t: TradingApi) -> None:
        self.owner, self.headers, self.t = owner, headers, t


async def _person(app: Api, trading_for: ForToken) -> Trader:
    user, headers, _ = await app.user()
    return Trader(
        uuid.UUID(user["id"]), headers, trading_for(headers["Authorization"].removeprefix("Bearer "))
    )


async def _portfolio(app: Api, who: Trader, **extra: Any) -> uuid.UUID:
    body = {"name": f"p-{uuid.uuid4().hex[:8]}", "initial_capital": "100000", **extra}
    r = await app.client.post("/api/v1/portfolio", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["portfolio_id"])


def _order(pid: uuid.UUID, **fields: Any) -> OrderCreate:
    data: dict[str, Any] = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "10"}
    data.update(fields)
    return OrderCreate.model_validate(data)


def _resting(pid: uuid.UUID, price: str = "1.00", **fields: Any) -> OrderCreate:
    return _order(pid, quantity="5", order_type="LIMIT", limit_price=price, **fields)


async def _settled(who: Trader, order_id: uuid.UUID, *statuses: OrderStatus) -> OrderRead:
    order = await who.t.get_order(owner_id=who.owner, order_id=order_id)
    for _ in range(250):
        if order.status in statuses:
            return order
        await asyncio.sleep(0.02)
        order = await who.t.get_order(owner_id=who.owner, order_id=order_id)
    raise AssertionError(f"order {order_id} stayed {order.status}")


async def _bought(app: Api, who: Trader, quantity: str = "10") -> tuple[uuid.UUID, OrderRead]:
    pid = await _portfolio(app, who)
    order, created = await who.t.submit_order(owner_id=who.owner, request=_order(pid, quantity=quantity))
    assert created
    return pid, await _settled(who, order.order_id, OrderStatus.FILLED)


async def test_a_market_order_fills_and_books_position_account_and_stats(
    app: Api, trading_for: ForToken
) -> None:
    me = await _person(app, trading_for)
    pid = await _portfolio(app, me)
    placed, created = await me.t.submit_order(owner_id=me.owner, request=_order(pid))
    assert created and placed.portfolio_id == pid and placed.symbol == "AAPL"
    assert placed.side is OrderSide.BUY and placed.order_type is OrderType.MARKET
    assert placed.quantity == 10 and placed.client_order_id.startswith("at-")
    assert placed.status in (OrderStatus.SUBMITTED, OrderStatus.FILLED)
    order = await _settled(me, placed.order_id, OrderStatus.FILLED)
    assert order.filled_quantity == 10 and order.remaining_quantity == 0
    assert order.average_price is not None and order.average_price > 0
    price, fees = order.average_price, order.fees

    page = await me.t.list_orders(owner_id=me.owner, portfolio_id=pid, status=[OrderStatus.FILLED])
    assert page.total == 1 and [o.order_id for o in page.items] == [order.order_id]
    assert page.items[0] == order
    none = await me.t.list_orders(owner_id=me.owner, portfolio_id=pid, status=OPEN)
    assert (none.total, none.items) == (0, [])
    sold = await me.t.list_orders(owner_id=me.owner, side=OrderSide.SELL)
    assert sold.total == 0
    assert (await me.t.list_orders(owner_id=me.owner, since=order.created_at)).total == 1
    assert (await me.t.list_orders(owner_id=me.owner, until=order.created_at)).total == 0

    by_order = await me.t.fills(owner_id=me.owner, order_id=order.order_id)
    assert sum(f.quantity for f in by_order) == 10 and {f.order_id for f in by_order} == {order.order_id}
    assert all(f.portfolio_id == pid and f.symbol == "AAPL" for f in by_order)
    assert await me.t.fills(owner_id=me.owner, portfolio_id=pid) == by_order
    with pytest.raises(Invalid) as neither:
        await me.t.fills(owner_id=me.owner)
    assert neither.value.field == "portfolio_id"

    [pos] = await me.t.positions(owner_id=me.owner, portfolio_id=pid)
    assert (pos.symbol, pos.side, pos.quantity, pos.average_price) == ("AAPL", "long", 10, price)
    assert await me.t.position(owner_id=me.owner, position_id=pos.position_id) == pos
    with pytest.raises(NotFound):
        await me.t.position(owner_id=me.owner, position_id=uuid.uuid4())
    account = await me.t.account(owner_id=me.owner, portfolio_id=pid)
    assert account.portfolio_id == pid and account.currency == "USD" and not account.halted
    assert account.cash == Decimal(100000) - 10 * price - fees
    assert account.reserved == 0 and account.fees == fees
    view = await me.t.account_view(owner_id=me.owner, portfolio_id=pid)
    assert view.portfolio_id == pid and view.currency == "USD"
    assert view.cash == account.cash < 100000 and view.equity == account.equity
    assert view.positions == {"AAPL": Decimal(10)}
    assert set(view.prices) == {"AAPL"} and view.prices["AAPL"] > 0

    stats = await me.t.execution_stats(owner_id=me.owner, portfolio_id=pid, period="1d")
    assert (stats.portfolio_id, stats.period, stats.orders, stats.filled, stats.open) == (pid, "1d", 1, 1, 0)
    assert stats.fills == len(by_order) and stats.fill_rate == 1.0
    assert stats.traded_notional == sum(f.quantity * f.price for f in by_order) and stats.fees == fees
    everywhere = await me.t.execution_stats(owner_id=me.owner, portfolio_id=None, period="1w")
    assert everywhere.portfolio_id is None and everywhere.orders == 1


async def test_the_same_idempotency_key_answers_the_same_order(app: Api, trading_for: ForToken) -> None:
    me = await _person(app, trading_for)
    pid = await _portfolio(app, me)
    key = f"k-{uuid.uuid4().hex}"
    first, created = await me.t.submit_order(owner_id=me.owner, request=_order(pid), idempotency_key=key)
    again, created_again = await me.t.submit_order(
        owner_id=me.owner, request=_order(pid), idempotency_key=key
    )
    assert created and not created_again
    assert again.order_id == first.order_id and again.client_order_id == first.client_order_id
    with pytest.raises(Conflict) as reused:
        await me.t.submit_order(owner_id=me.owner, request=_order(pid, quantity="11"), idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"
    assert (await me.t.list_orders(owner_id=me.owner, portfolio_id=pid)).total == 1
    # client_order_id in the body works the same way
    coid = f"c-{uuid.uuid4().hex[:20]}"
    one, made = await me.t.submit_order(owner_id=me.owner, request=_resting(pid, client_order_id=coid))
    two, made_again = await me.t.submit_order(owner_id=me.owner, request=_resting(pid, client_order_id=coid))
    assert made and not made_again and one.order_id == two.order_id and one.client_order_id == coid


async def test_a_resting_limit_order_is_modified_then_cancelled(app: Api, trading_for: ForToken) -> None:
    me = await _person(app, trading_for)
    pid = await _portfolio(app, me)
    placed, _ = await me.t.submit_order(owner_id=me.owner, request=_resting(pid))
    resting = await _settled(me, placed.order_id, OrderStatus.SUBMITTED)
    assert resting.status.is_open and resting.limit_price == Decimal("1.00") and resting.filled_quantity == 0
    before = await me.t.account(owner_id=me.owner, portfolio_id=pid)
    assert before.reserved > 0 and before.cash + before.reserved == 100000
    view = await me.t.account_view(owner_id=me.owner, portfolio_id=pid)
    assert (view.cash, view.positions, view.prices) == (Decimal(100000), {}, {})  # reserved is still cash

    moved = await me.t.modify_order(
        owner_id=me.owner, order_id=resting.order_id, changes=OrderModify(limit_price=Decimal("2.00"))
    )
    assert moved.order_id != resting.order_id and moved.replaces_order_id == resting.order_id
    assert (moved.limit_price, moved.quantity, moved.order_type) == (Decimal(2), 5, OrderType.LIMIT)
    assert moved.status.is_open
    old = await me.t.get_order(owner_id=me.owner, order_id=resting.order_id)
    assert old.status is OrderStatus.CANCELLED
    assert (
        await me.t.get_order(owner_id=me.owner, order_id=moved.order_id)
    ).replaces_order_id == old.order_id
    with pytest.raises(Invalid) as no_stop:
        await me.t.modify_order(
            owner_id=me.owner, order_id=moved.order_id, changes=OrderModify(stop_price=Decimal(1))
        )
    assert no_stop.value.field == "stop_price"

    cancelled = await me.t.cancel_order(owner_id=me.owner, order_id=moved.order_id, reason="changed my mind")
    assert cancelled.order_id == moved.order_id and cancelled.status is OrderStatus.CANCELLED
    account = await me.t.account(owner_id=me.owner, portfolio_id=pid)
    assert (account.reserved, account.cash) == (0, 100000)
    with pytest.raises(Conflict) as twice:
        await me.t.cancel_order(owner_id=me.owner, order_id=moved.order_id)
    assert twice.value.code == "not_cancelable" and "cancelled" in twice.value.detail
    with pytest.raises(Conflict):
        await me.t.modify_order(
            owner_id=me.owner, order_id=moved.order_id, changes=OrderModify(quantity=Decimal(3))
        )
    assert (await me.t.list_orders(owner_id=me.owner, portfolio_id=pid, status=OPEN)).total == 0


async def test_closing_part_of_a_position_sells_reduce_only(app: Api, trading_for: ForToken) -> None:
    me = await _person(app, trading_for)
    pid, _bought_order = await _bought(app, me)
    [pos] = await me.t.positions(owner_id=me.owner, portfolio_id=pid)
    closing = await me.t.close_position(
        owner_id=me.owner, position_id=pos.position_id, request=PositionClose(quantity=Decimal(4))
    )
    assert closing.reduce_only and closing.side is OrderSide.SELL and closing.quantity == 4
    assert closing.symbol == "AAPL" and closing.portfolio_id == pid
    done = await _settled(me, closing.order_id, OrderStatus.FILLED)
    assert done.filled_quantity == 4
    [after] = await me.t.positions(owner_id=me.owner, portfolio_id=pid)
    assert (after.position_id, after.quantity, after.side) == (pos.position_id, 6, "long")
    assert (await me.t.account_view(owner_id=me.owner, portfolio_id=pid)).positions == {"AAPL": Decimal(6)}
    with pytest.raises(Invalid) as too_much:
        await me.t.close_position(
            owner_id=me.owner, position_id=pos.position_id, request=PositionClose(quantity=Decimal(7))
        )
    assert too_much.value.field == "quantity"


async def test_errors_map_to_the_same_classes_and_fields(app: Api, trading_for: ForToken) -> None:
    me = await _person(app, trading_for)
    other = await _person(app, trading_for)
    pid = await _portfolio(app, me)
    mine, _ = await me.t.submit_order(owner_id=me.owner, request=_resting(pid))

    with pytest.raises(NotFound):
        await me.t.get_order(owner_id=me.owner, order_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await me.t.cancel_order(owner_id=me.owner, order_id=uuid.uuid4())
    for call in (
        other.t.get_order(owner_id=other.owner, order_id=mine.order_id),
        other.t.cancel_order(owner_id=other.owner, order_id=mine.order_id),
        other.t.fills(owner_id=other.owner, order_id=mine.order_id),
        other.t.positions(owner_id=other.owner, portfolio_id=pid),
        other.t.account(owner_id=other.owner, portfolio_id=pid),
        other.t.submit_order(owner_id=other.owner, request=_order(pid)),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await other.t.list_orders(owner_id=other.owner)).total == 0
    assert (await me.t.get_order(owner_id=me.owner, order_id=mine.order_id)).status.is_open

    with pytest.raises(Invalid) as unknown:
        await me.t.submit_order(owner_id=me.owner, request=_order(pid, symbol="NOPE"))
    assert (unknown.value.field, unknown.value.code) == ("symbol", "unknown_symbol")
    with pytest.raises(Invalid) as unknown_check:
        await me.t.pre_trade_check(owner_id=me.owner, request=_order(pid, symbol="NOPE"))
    assert unknown_check.value.field == "symbol"
    # A limit order without a limit price cannot even be written down (the DTO both sides take) ...
    with pytest.raises(ValidationError, match="limit_price"):
        _order(pid, order_type="LIMIT")
    # ... and a price the order type does not have is refused by either side.
    with pytest.raises(Invalid) as no_limit:
        await me.t.modify_order(
            owner_id=me.owner, order_id=mine.order_id, changes=OrderModify(stop_price=Decimal(1))
        )
    assert no_limit.value.field == "stop_price"
    with pytest.raises(Invalid) as bad_limit:
        await me.t.list_orders(owner_id=me.owner, limit=0)
    assert bad_limit.value.field == "limit"


async def test_pre_trade_check_and_open_position_count(app: Api, trading_for: ForToken) -> None:
    me = await _person(app, trading_for)
    pid, _order_filled = await _bought(app, me, quantity="3")
    small = await me.t.pre_trade_check(owner_id=me.owner, request=_order(pid, quantity="1"))
    assert small.allowed and small.reasons == []
    huge = await me.t.pre_trade_check(owner_id=me.owner, request=_order(pid, quantity="1000000"))
    assert not huge.allowed and huge.reasons
    short = await me.t.pre_trade_check(owner_id=me.owner, request=_order(pid, side="SELL", quantity="50"))
    assert not short.allowed and "short_not_allowed" in {r.code for r in short.reasons}
    assert await me.t.open_position_count(owner_id=me.owner, portfolio_id=pid) == 1

    for price in ("1.00", "1.50"):
        await me.t.submit_order(owner_id=me.owner, request=_resting(pid, price=price))
    held = await me.t.positions(owner_id=me.owner, portfolio_id=pid)
    waiting = await me.t.list_orders(owner_id=me.owner, portfolio_id=pid, status=OPEN)
    assert (len(held), waiting.total) == (1, 2)
    assert await me.t.open_position_count(owner_id=me.owner, portfolio_id=pid) == 3
    fresh = await _portfolio(app, me)
    assert await me.t.open_position_count(owner_id=me.owner, portfolio_id=fresh) == 0


async def test_connections_reconciliation_and_deployments_of_a_fresh_user(
    app: Api, trading_for: ForToken
) -> None:
    me = await _person(app, trading_for)
    assert await me.t.connections(owner_id=me.owner) == []
    assert await me.t.deployments(owner_id=me.owner) == []
    pid = await _portfolio(app, me)
    report = await me.t.reconcile_account(owner_id=me.owner, portfolio_id=pid)
    assert report.portfolio_id == pid and not report.halted and report.halted_reason is None
    resumed = await me.t.resume_account(owner_id=me.owner, portfolio_id=pid)
    assert resumed.portfolio_id == pid and not resumed.halted
    with pytest.raises(NotFound):
        await me.t.deployment(owner_id=me.owner, deployment_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await me.t.stop_deployment(owner_id=me.owner, deployment_id=uuid.uuid4())
    with pytest.raises(NotFound):
        await me.t.delete_connection(owner_id=me.owner, connection_id=uuid.uuid4())
    other = await _person(app, trading_for)
    with pytest.raises(NotFound):
        await other.t.reconcile_account(owner_id=other.owner, portfolio_id=pid)


async def test_client_refuses_other_owners_and_deployment_orders(app: Api, remote: httpx.AsyncClient) -> None:
    user, headers, _ = await app.user()
    owner = uuid.UUID(user["id"])
    client = TradingClient(remote).with_token(headers["Authorization"].removeprefix("Bearer "))
    with pytest.raises(Forbidden) as other:
        await client.list_orders(owner_id=uuid.uuid4())
    assert other.value.code == "not_token_owner"
    with pytest.raises(Forbidden):
        await client.open_position_count(owner_id=uuid.uuid4(), portfolio_id=uuid.uuid4())
    request = _order(uuid.uuid4())
    for field, extra in (
        ("deployment_id", {"deployment_id": uuid.uuid4()}),
        ("local_id", {"local_id": "l1"}),
        ("tag", {"tag": "entry"}),
    ):
        with pytest.raises(Invalid) as inside:
            await client.submit_order(owner_id=owner, request=request, **extra)
        assert inside.value.field == field
