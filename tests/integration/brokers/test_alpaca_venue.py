"""The Alpaca venue adapter against the fake Alpaca Trading API on 127.0.0.1 (its own thread).

Client timeouts are 0.3 s and retries milliseconds apart, so the fault tests stay fast.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from algotrendy.adapters.brokers import alpaca_venue
from algotrendy.adapters.brokers.alpaca_orders import STATUS_MAP, map_status
from algotrendy.adapters.brokers.alpaca_venue import AlpacaVenue
from algotrendy.adapters.sources._http import RetryPolicy
from algotrendy.core.venue import (
    VENUE_STATUSES,
    OrderRequest,
    Venue,
    VenueAmbiguous,
    VenueDataError,
    VenueEvent,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from tests.apphelp import SECRETS
from tests.fakes import FakeAlpaca
from tests.fakes.alpaca import KEY_ID, SECRET, START_CASH, last_close

SECRETS.add(SECRET)  # the suite's log guard fails the run if the key secret is ever logged
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.03, max_retry_after=2.0)
TIMEOUT = 0.3
AAPL_LAST = last_close("AAPL_1d")
T = TypeVar("T")


def order(
    cid: str,
    symbol: str = "AAPL",
    side: str = "BUY",
    kind: str = "MARKET",
    qty: str = "10",
    tif: str = "DAY",
    **kw: Any,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        type=kind,
        quantity=Decimal(qty),
        time_in_force=tif,
        **kw,
    )


def below(delta: str) -> Decimal:
    """A limit under AAPL's last close (so it rests), on the penny grid."""
    return (AAPL_LAST - Decimal(delta)).quantize(Decimal("0.01"))


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 3.0) -> T:
    """Ask ``probe`` until it answers something (the fake acts on a delayed request later)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the fake never got there")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAlpaca]:
    async with FakeAlpaca() as server:
        yield server


def make(fake: FakeAlpaca, **kw: Any) -> AlpacaVenue:
    args: dict[str, Any] = {
        "key_id": KEY_ID,
        "secret": SECRET,
        "base_url": fake.url,
        "timeout": TIMEOUT,
        "poll_interval": 0.05,
        "retry": FAST,
    }
    return AlpacaVenue(**(args | kw))


@pytest.fixture
async def venue(fake: FakeAlpaca) -> AsyncIterator[AlpacaVenue]:
    v = make(fake)
    await v.connect()
    yield v
    await v.close()


async def test_the_adapter_is_a_venue() -> None:
    v: Venue = AlpacaVenue(key_id=KEY_ID, secret=SECRET)
    assert v.name == "alpaca"
    await v.close()
    with pytest.raises(ValueError, match="key id"):
        AlpacaVenue(key_id="", secret=SECRET)


# ---- submit, fetch, cancel ---------------------------------------------------------------------


async def test_market_order_fills_at_the_last_close(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    placed = await venue.submit(order("mkt-1"))
    assert placed.status == "filled" and placed.filled_quantity == Decimal(10)
    assert placed.average_price == AAPL_LAST and placed.symbol == "AAPL" and placed.side == "BUY"
    assert placed.type == "MARKET" and placed.time_in_force == "DAY" and placed.updated_ns > 0
    (post,) = [r for r in fake.requests("/v2/orders") if r.method == "POST"]
    assert post.headers["APCA-API-KEY-ID"] == KEY_ID and post.headers["APCA-API-SECRET-KEY"] == SECRET
    assert fake.order("mkt-1")["qty"] == "10" and fake.order("mkt-1")["side"] == "buy"

    fetched = await venue.fetch_order(client_order_id="mkt-1", symbol="AAPL")
    assert fetched is not None and fetched.venue_order_id == placed.venue_order_id
    assert await venue.fetch_order(client_order_id="never-sent", symbol="AAPL") is None

    (fill,) = await venue.fills()
    assert (fill.client_order_id, fill.venue_order_id, fill.side) == ("mkt-1", placed.venue_order_id, "BUY")
    assert (fill.quantity, fill.price, fill.fee, fill.fee_currency) == (10, AAPL_LAST, 0, "USD")
    (position,) = await venue.positions()
    assert (position.symbol, position.quantity, position.average_price) == ("AAPL", 10, AAPL_LAST)
    (balance,) = await venue.balances()
    assert balance.currency == "USD" and balance.total == START_CASH - 10 * AAPL_LAST
    assert balance.free == balance.total


async def test_resting_limit_fills_partially_then_fully(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    price = below("5")
    placed = await venue.submit(order("lim-1", kind="LIMIT", limit_price=price))
    assert placed.status == "submitted" and placed.filled_quantity == 0 and placed.limit_price == price
    assert [o.client_order_id for o in await venue.open_orders()] == ["lim-1"]
    assert await venue.open_orders(symbol="MSFT") == []

    assert fake.trade("AAPL", price + 1) == 0  # above a buy limit: nothing
    assert fake.trade("AAPL", price, qty=4) == 1
    partial = await venue.fetch_order(client_order_id="lim-1", symbol="AAPL")
    assert partial is not None and partial.status == "partial_fill" and partial.filled_quantity == 4
    assert partial.average_price == price

    fake.trade("AAPL", price - 1)
    done = await venue.fetch_order(client_order_id="lim-1", symbol="AAPL")
    assert done is not None and done.status == "filled" and done.filled_quantity == 10
    assert done.average_price == (4 * price + 6 * (price - 1)) / 10
    fills = await venue.fills(symbol="AAPL")
    assert [(f.quantity, f.price) for f in fills] == [(4, price), (6, price - 1)]
    assert len({f.trade_id for f in fills}) == 2 and fills[0].ts_ns <= fills[1].ts_ns
    assert await venue.fills(since_ns=fills[1].ts_ns) == [fills[1]]
    assert await venue.fills(symbol="MSFT") == []
    assert await venue.open_orders() == []


async def test_cancel(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    await venue.submit(order("c-1", kind="LIMIT", limit_price=below("5"), tif="GTC"))
    cancelled = await venue.cancel(client_order_id="c-1", symbol="AAPL")
    assert cancelled.status == "cancelled"
    deletes = [r for r in fake.requests("/v2/orders/") if r.method == "DELETE"]
    assert len(deletes) == 1

    again = await venue.cancel(client_order_id="c-1", symbol="AAPL")  # already final: no DELETE
    assert again.status == "cancelled"
    assert len([r for r in fake.requests("/v2/orders/") if r.method == "DELETE"]) == 1

    await venue.submit(order("c-2"))
    assert (await venue.cancel(client_order_id="c-2", symbol="AAPL")).status == "filled"
    with pytest.raises(VenueRejected, match="no order 'nope'"):
        await venue.cancel(client_order_id="nope", symbol="AAPL")


async def test_cancel_racing_a_fill_answers_the_filled_order(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    price = below("5")
    await venue.submit(order("race-1", kind="LIMIT", limit_price=price))
    fake.faults.delay(0.15, path="/v2/orders/")  # hold the DELETE while the order fills
    task = asyncio.create_task(venue.cancel(client_order_id="race-1", symbol="AAPL"))
    await asyncio.sleep(0.05)
    fake.trade("AAPL", price)
    result = await task
    assert result.status == "filled" and result.filled_quantity == 10
    (delete,) = [r for r in fake.requests("/v2/orders/") if r.method == "DELETE"]
    assert delete.status == 422


async def test_take_profit_and_trailing_stop_translate(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    await venue.submit(order("buy-1", qty="10"))
    tp = await venue.submit(
        order("tp-1", side="SELL", kind="TAKE_PROFIT", qty="5", limit_price=AAPL_LAST + 20, tif="GTC")
    )
    assert tp.type == "LIMIT" and tp.status == "submitted" and fake.order("tp-1")["type"] == "limit"
    trail = await venue.submit(
        order("ts-1", side="SELL", kind="TRAILING_STOP", qty="5", trail_percent=Decimal("0.02"), tif="GTC")
    )
    assert trail.type == "TRAILING_STOP" and trail.status == "submitted"
    assert fake.order("ts-1")["trail_percent"] == "2"
    stop = Decimal(fake.order("ts-1")["stop_price"])
    assert stop == (AAPL_LAST * Decimal("0.98")).quantize(Decimal("0.01"))
    fake.trade("AAPL", stop - 1)
    done = await venue.fetch_order(client_order_id="ts-1", symbol="AAPL")
    assert done is not None and done.status == "filled"


# ---- idempotency and ambiguity -----------------------------------------------------------------


async def test_a_reused_client_order_id_returns_the_same_order(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    first = await venue.submit(order("dup-1", kind="LIMIT", limit_price=below("5")))
    second = await venue.submit(order("dup-1", kind="LIMIT", limit_price=below("5")))
    assert second.venue_order_id == first.venue_order_id
    assert fake.accepted_count("dup-1") == 1
    assert [r.status for r in fake.requests("/v2/orders") if r.method == "POST"] == [200, 422]
    with pytest.raises(VenueRejected, match="different order"):
        await venue.submit(order("dup-1", symbol="MSFT", qty="3"))
    assert fake.accepted_count("dup-1") == 1


@pytest.mark.parametrize("fault", ["delay", "drop", "drop502"])
async def test_accepted_but_unanswered_is_ambiguous_then_found_once(
    venue: AlpacaVenue, fake: FakeAlpaca, fault: str
) -> None:
    if fault == "delay":
        fake.faults.delay(TIMEOUT * 2, path="/v2/orders")
    elif fault == "drop":
        fake.faults.drop(path="/v2/orders")
    else:
        fake.faults.drop(502, path="/v2/orders")
    with pytest.raises(VenueAmbiguous):
        await venue.submit(order("amb-1"))

    async def probe() -> VenueOrder | None:
        return await venue.fetch_order(client_order_id="amb-1", symbol="AAPL")

    found = await eventually(probe)
    assert found.status == "filled" and found.filled_quantity == 10
    assert fake.accepted_count("amb-1") == 1
    again = await venue.submit(order("amb-1"))  # the service's resubmit is harmless
    assert again.venue_order_id == found.venue_order_id and fake.accepted_count("amb-1") == 1


async def test_5xx_on_submit_is_ambiguous(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    fake.faults.fail(500, path="/v2/orders")
    with pytest.raises(VenueAmbiguous, match="HTTP 500") as info:
        await venue.submit(order("err-1"))
    assert not isinstance(info.value, VenueDataError)
    assert len(fake.requests("/v2/orders")) == 1  # a write is never retried
    assert await venue.fetch_order(client_order_id="err-1", symbol="AAPL") is None


async def test_reads_retry_then_raise(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    fake.faults.fail(503, path="/v2/positions", times=2)
    assert await venue.positions() == []
    assert len(fake.requests("/v2/positions")) == 3
    fake.reset()
    fake.faults.fail(503, path="/v2/positions", times=None)
    with pytest.raises(VenueAmbiguous, match="HTTP 503"):
        await venue.positions()
    assert len(fake.requests("/v2/positions")) == FAST.attempts
    fake.reset()
    fake.faults.garbage(path="/v2/account")
    assert (await venue.balances())[0].total == START_CASH
    fake.reset()
    fake.faults.garbage(path="/v2/account", times=None)
    with pytest.raises(VenueAmbiguous, match="not JSON"):
        await venue.balances()
    fake.reset()
    fake.faults.delay(TIMEOUT + 0.05, path="/v2/account", times=None)
    with pytest.raises(VenueAmbiguous, match="in time"):
        await venue.balances()
    assert len(fake.requests("/v2/account")) == FAST.attempts
    await asyncio.sleep(0.1)  # let the fake finish the last held answer


async def test_open_orders_follow_pages(
    venue: AlpacaVenue, fake: FakeAlpaca, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca_venue, "_ORDERS_PAGE", 2)
    for k in range(5):
        await venue.submit(order(f"page-{k}", kind="LIMIT", qty="1", limit_price=below(str(k + 1))))
    await venue.submit(order("page-msft", symbol="MSFT", kind="LIMIT", qty="1", limit_price=Decimal(50)))
    got = await venue.open_orders(symbol="AAPL")
    assert [o.client_order_id for o in got] == [f"page-{k}" for k in range(5)]
    pages = fake.requests("/v2/orders")[-3:]
    assert [p.query.get("after") is None for p in pages] == [True, False, False]
    assert all(p.query["symbols"] == "AAPL" and p.query["limit"] == "2" for p in pages)


async def test_garbage_answer_to_submit_is_ambiguous(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    fake.faults.garbage(path="/v2/orders")
    with pytest.raises(VenueAmbiguous, match="not JSON"):
        await venue.submit(order("html-1"))


async def test_rate_limit_is_unavailable_with_retry_after(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    fake.faults.rate_limit(retry_after=7, path="/v2/orders")
    with pytest.raises(VenueUnavailable) as info:
        await venue.submit(order("rl-1"))
    assert info.value.retry_after == 7 and info.value.code == "42910000"
    assert fake.accepted_count("rl-1") == 0
    assert (await venue.submit(order("rl-1"))).status == "filled"  # same id, later: fine

    fake.faults.rate_limit(retry_after=0, path="/v2/positions")  # a read waits and retries
    assert len(await venue.positions()) == 1
    fake.faults.rate_limit(retry_after=30, path="/v2/positions")  # longer than we wait
    with pytest.raises(VenueUnavailable) as info:
        await venue.positions()
    assert info.value.retry_after == 30


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    venue = AlpacaVenue(
        key_id=KEY_ID, secret=SECRET, base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT, retry=FAST
    )
    try:
        with pytest.raises(VenueUnavailable, match="unreachable"):
            await venue.submit(order("cr-1"))
        with pytest.raises(VenueUnavailable):
            await venue.fetch_order(client_order_id="cr-1", symbol="AAPL")
    finally:
        await venue.close()
    with pytest.raises(VenueUnavailable, match="closed"):
        await venue.balances()


# ---- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (order("r-1", symbol="GOOG", qty="1.5"), "not fractionable"),
        (order("r-2", kind="LIMIT", limit_price=Decimal("100.123")), "sub-penny"),
        (order("r-3", symbol="BTCUSD", qty="0.00001", tif="GTC"), "qty must be >= 0.0001"),
        (order("r-4", qty="0.5", tif="GTC"), "fractional orders must be DAY"),
        (order("r-5", symbol="ZZZZ"), 'asset "ZZZZ" not found'),
        (order("r-6", symbol="DELIST"), "not tradable"),
        (order("r-7", qty="100000"), "insufficient buying power"),
        (
            order("r-8", side="SELL", kind="TRAILING_STOP", trail_percent=Decimal("0.02"), tif="IOC"),
            "DAY or GTC",
        ),
    ],
)
async def test_venue_refusals_name_the_problem(
    venue: AlpacaVenue, fake: FakeAlpaca, request_: OrderRequest, message: str
) -> None:
    with pytest.raises(VenueRejected, match=message):
        await venue.submit(request_)
    assert fake.accepted == []


async def test_refusal_codes_and_local_checks(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    with pytest.raises(VenueRejected) as info:
        await venue.submit(order("code-1", qty="100000"))
    assert info.value.code == "40310000"
    fake.reset()
    with pytest.raises(VenueRejected, match="needs a positive limit_price"):
        await venue.submit(order("loc-1", kind="LIMIT"))
    with pytest.raises(VenueRejected, match="trail_percent"):
        await venue.submit(order("loc-2", kind="TRAILING_STOP"))
    with pytest.raises(VenueRejected, match="quantity must be positive"):
        await venue.submit(order("loc-3", qty="0"))
    with pytest.raises(VenueRejected, match="unsupported order type"):
        await venue.submit(order("loc-4", kind="ICEBERG"))
    assert fake.requests("/v2/orders") == []  # refused before sending
    fake.trading_blocked = True
    with pytest.raises(VenueRejected, match="trading is blocked"):
        await venue.submit(order("blk-1"))


async def test_wrong_keys_are_rejected(fake: FakeAlpaca) -> None:
    venue = make(fake, secret="wrong")
    try:
        with pytest.raises(VenueRejected, match="HTTP 401") as info:
            await venue.connect()
        assert info.value.code == "40110000"
        assert len(fake.requests("/v2/account")) == 1  # never retried
    finally:
        await venue.close()


async def test_reduce_only_is_checked_against_the_position(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    with pytest.raises(VenueRejected, match="would not reduce"):
        await venue.submit(order("ro-1", side="SELL", qty="5", reduce_only=True))
    await venue.submit(order("ro-buy", qty="10"))
    with pytest.raises(VenueRejected, match="would not reduce"):
        await venue.submit(order("ro-2", side="SELL", qty="11", reduce_only=True))
    with pytest.raises(VenueRejected, match="would not reduce"):
        await venue.submit(order("ro-3", side="BUY", qty="1", reduce_only=True))
    sold = await venue.submit(order("ro-4", side="SELL", qty="10", reduce_only=True))
    assert sold.status == "filled"
    again = await venue.submit(order("ro-4", side="SELL", qty="10", reduce_only=True))  # flat now
    assert again.venue_order_id == sold.venue_order_id and fake.accepted_count("ro-4") == 1


async def test_short_position_is_negative(venue: AlpacaVenue) -> None:
    await venue.submit(order("sh-1", symbol="MSFT", side="SELL", qty="5"))
    (position,) = await venue.positions()
    assert position.symbol == "MSFT" and position.quantity == -5


# ---- fills -------------------------------------------------------------------------------------


async def test_duplicated_and_reordered_fills_keep_stable_trade_ids(
    venue: AlpacaVenue, fake: FakeAlpaca
) -> None:
    price = below("5")
    await venue.submit(order("df-1", kind="LIMIT", limit_price=price))
    for _ in range(4):
        fake.trade("AAPL", price, qty=2)
    await venue.submit(order("df-2", symbol="MSFT", qty="3"))
    clean = await venue.fills()
    assert len(clean) == 5 and [f.ts_ns for f in clean] == sorted(f.ts_ns for f in clean)

    fake.duplicate_fills()
    assert await venue.fills() == clean
    fake.reorder_fills()
    assert await venue.fills() == clean
    fake.duplicate_fills()
    fake.reorder_fills()
    assert await venue.fills() == clean
    assert [f.client_order_id for f in clean] == ["df-1"] * 4 + ["df-2"]


async def test_fills_follow_the_page_token(fake: FakeAlpaca) -> None:
    venue = make(fake)
    price = below("5")
    await venue.submit(order("pg-1", kind="LIMIT", qty="150", limit_price=price))
    for _ in range(150):
        fake.trade("AAPL", price, qty=1)
    await venue.close()
    fresh = make(fake)  # a new adapter: client ids come from GET /v2/orders/{id}
    try:
        fills = await fresh.fills()
        assert len(fills) == 150 and len({f.trade_id for f in fills}) == 150
        assert {f.client_order_id for f in fills} == {"pg-1"}
        pages = fake.requests("/v2/account/activities/FILL")
        assert len(pages) == 2 and pages[1].query["page_token"] == fills[99].trade_id
        assert len(fake.requests("/v2/orders/")) == 1  # the client id is looked up once
    finally:
        await fresh.close()


async def test_malformed_numbers_are_data_errors(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    await venue.submit(order("mf-1"))
    for how in ("nan", "negative", "missing", "null", "text"):
        fake.faults.malformed(how, path="/v2/account/activities")
        with pytest.raises(VenueDataError):
            await venue.fills()
    fake.faults.malformed("nan", path="/v2/orders:by_client_order_id")
    with pytest.raises(VenueDataError, match="filled_qty"):
        await venue.fetch_order(client_order_id="mf-1", symbol="AAPL")
    fake.faults.malformed("negative", path="/v2/positions")
    with pytest.raises(VenueDataError, match="long AAPL position of -10"):
        await venue.positions()
    fake.faults.malformed("nan", path="/v2/account")
    with pytest.raises(VenueDataError, match="buying_power"):
        await venue.balances()
    fake.faults.malformed("text", path="/v2/assets")
    with pytest.raises(VenueDataError, match="price_increment"):
        await venue.instrument("SPY")
    fake.faults.malformed("negative", path="/v2/orders")  # the order is placed, its answer is bad
    with pytest.raises(VenueDataError, match="qty"):
        await venue.submit(order("mf-2"))
    found = await venue.fetch_order(client_order_id="mf-2", symbol="AAPL")
    assert found is not None and fake.accepted_count("mf-2") == 1


async def test_hidden_order_is_none_then_found(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    await venue.submit(order("hid-1", kind="LIMIT", limit_price=below("5")))
    fake.hide_orders(2)
    assert await venue.fetch_order(client_order_id="hid-1", symbol="AAPL") is None
    with pytest.raises(VenueAmbiguous, match="cannot find"):  # duplicate id, order not visible yet
        await venue.submit(order("hid-1", kind="LIMIT", limit_price=below("5")))
    found = await venue.fetch_order(client_order_id="hid-1", symbol="AAPL")
    assert found is not None and found.status == "submitted" and fake.accepted_count("hid-1") == 1


# ---- account, instruments ----------------------------------------------------------------------


async def test_permissions(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    perms = await venue.permissions()
    assert perms.can_trade is True and perms.can_withdraw is False
    assert "trading_blocked=False" in perms.detail and "cannot transfer" in perms.detail
    fake.trading_blocked = True
    perms = await venue.permissions()
    assert perms.can_trade is False and perms.can_withdraw is False
    fake.trading_blocked, fake.account_blocked = False, True
    assert (await venue.permissions()).can_trade is False


async def test_instrument_rules(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    aapl = await venue.instrument("AAPL")
    assert aapl is not None and (aapl.base, aapl.quote, aapl.tradable) == ("AAPL", "USD", True)
    assert aapl.quantity_step == Decimal("0.000000001") and aapl.tick_size == Decimal("0.01")
    msft = await venue.instrument("MSFT")
    assert msft is not None and msft.quantity_step == 1 and msft.min_quantity == 1
    goog = await venue.instrument("GOOG")
    assert goog is not None and (goog.min_quantity, goog.quantity_step, goog.tick_size) == (
        1,
        1,
        Decimal("0.01"),
    )
    btc = await venue.instrument("BTCUSD")
    assert btc is not None and (btc.symbol, btc.base, btc.quote) == ("BTCUSD", "BTC", "USD")
    assert (btc.min_quantity, btc.quantity_step, btc.tick_size) == (
        Decimal("0.0001"),
        Decimal("0.000000001"),
        1,
    )
    delisted = await venue.instrument("DELIST")
    assert delisted is not None and delisted.tradable is False
    assert await venue.instrument("ZZZZ") is None
    before = len(fake.requests("/v2/assets"))
    await venue.instrument("AAPL")  # cached
    assert len(fake.requests("/v2/assets")) == before


async def test_crypto_symbols_use_the_platform_spelling(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    placed = await venue.submit(order("btc-1", symbol="BTCUSD", qty="0.01", tif="GTC"))
    assert placed.symbol == "BTCUSD" and placed.status == "filled"
    assert fake.order("btc-1")["symbol"] == "BTC/USD"
    (fill,) = await venue.fills(symbol="BTCUSD")
    assert fill.symbol == "BTCUSD"
    (position,) = await venue.positions()
    assert position.symbol == "BTCUSD" and position.quantity == Decimal("0.01")


# ---- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("new", "0", "submitted"),
        ("accepted", "0", "submitted"),
        ("pending_new", "0", "submitted"),
        ("accepted_for_bidding", "0", "submitted"),
        ("held", "0", "submitted"),
        ("partially_filled", "4", "partial_fill"),
        ("done_for_day", "0", "submitted"),
        ("done_for_day", "4", "partial_fill"),
        ("pending_cancel", "4", "partial_fill"),
        ("pending_replace", "0", "submitted"),
        ("stopped", "0", "submitted"),
        ("suspended", "4", "partial_fill"),
        ("calculated", "10", "filled"),
        ("calculated", "4", "partial_fill"),
        ("filled", "10", "filled"),
        ("canceled", "0", "cancelled"),
        ("canceled", "4", "cancelled"),
        ("replaced", "0", "cancelled"),
        ("expired", "4", "expired"),
        ("rejected", "0", "rejected"),
    ],
)
def test_status_mapping(status: str, filled: str, expected: str) -> None:
    assert map_status(status, Decimal(filled), Decimal(10)) == expected
    assert expected in VENUE_STATUSES


def test_status_table_covers_alpacas_statuses() -> None:
    alpaca = {
        "new",
        "partially_filled",
        "filled",
        "done_for_day",
        "canceled",
        "expired",
        "replaced",
        "pending_cancel",
        "pending_replace",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "stopped",
        "rejected",
        "suspended",
        "calculated",
        "held",
    }
    assert set(STATUS_MAP) == alpaca
    with pytest.raises(VenueDataError, match="unknown order status"):
        map_status("borrowed", Decimal(0), Decimal(1))
    with pytest.raises(VenueDataError, match="filled order"):
        map_status("filled", Decimal(4), Decimal(10))


@pytest.mark.parametrize(
    ("alpaca", "ours"),
    [
        ("done_for_day", "partial_fill"),
        ("expired", "expired"),
        ("replaced", "cancelled"),
        ("held", "partial_fill"),
    ],
)
async def test_statuses_over_the_wire(venue: AlpacaVenue, fake: FakeAlpaca, alpaca: str, ours: str) -> None:
    price = below("5")
    await venue.submit(order("st-1", kind="LIMIT", limit_price=price))
    fake.trade("AAPL", price, qty=3)
    fake.set_status("st-1", alpaca)
    got = await venue.fetch_order(client_order_id="st-1", symbol="AAPL")
    assert got is not None and got.status == ours and got.filled_quantity == 3
    assert (got.reason is not None) == (alpaca == "replaced")


# ---- events ------------------------------------------------------------------------------------


async def test_events_yield_fills_and_order_changes(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    got: list[VenueEvent] = []

    async def consume() -> None:
        async for event in venue.events():
            got.append(event)

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(3):
            while not check():
                await asyncio.sleep(0.02)

    task = asyncio.create_task(consume())
    price = below("5")
    await venue.submit(order("ev-1", kind="LIMIT", limit_price=price))
    await until(lambda: any(isinstance(e, VenueOrder) and e.status == "submitted" for e in got))

    fake.trade("AAPL", price, qty=4)
    await until(lambda: any(isinstance(e, VenueOrder) and e.status == "partial_fill" for e in got))
    fake.duplicate_fills(times=5)  # repeated activities are reported once by this stream
    fake.trade("AAPL", price)
    await until(lambda: any(isinstance(e, VenueOrder) and e.status == "filled" for e in got))
    await asyncio.sleep(0.2)

    fills = [e for e in got if isinstance(e, VenueFill)]
    assert [(f.client_order_id, f.quantity) for f in fills] == [("ev-1", 4), ("ev-1", 6)]
    statuses = [e.status for e in got if isinstance(e, VenueOrder)]
    assert statuses == ["submitted", "partial_fill", "filled"]
    first_fill = got.index(fills[0])
    assert first_fill < next(
        i for i, e in enumerate(got) if isinstance(e, VenueOrder) and e.status == "partial_fill"
    )

    await venue.close()
    async with asyncio.timeout(2):
        await task  # the stream ends with close()


async def test_events_survive_a_failing_poll(venue: AlpacaVenue, fake: FakeAlpaca) -> None:
    await venue.submit(order("evf-1"))
    fake.faults.fail(500, path="/v2/orders", times=FAST.attempts)  # one poll fails entirely
    stream = venue.events()
    async with asyncio.timeout(3):
        event = await anext(stream)
    assert isinstance(event, VenueFill) and event.client_order_id == "evf-1"
    await stream.aclose()
