"""``CcxtVenue`` against the fake Binance (signed spot trading) and the fake Kraken on 127.0.0.1.

ccxt is pointed at the fakes by overriding ``exchange.urls['api']`` (``rehost_api_urls``). The
fakes run in their own thread, so a fault that holds an answer (``delay``) or acts and then
drops it (``drop``) behaves as a real venue would: the order may exist although the client saw
no answer. Timeouts are 0.3 s, polling 0.05 s, ccxt's throttle is off: every test is fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from algotrendy.adapters.brokers.ccxt_markets import precision_step
from algotrendy.adapters.brokers.ccxt_venue import CcxtVenue
from algotrendy.adapters.sources.ccxt_source import rehost_api_urls
from algotrendy.core.venue import (
    OrderRequest,
    Venue,
    VenueAmbiguous,
    VenueDataError,
    VenueFill,
    VenueOrder,
    VenueRejected,
    VenueUnavailable,
)
from tests.fakes import FakeBinance, FakeKraken

TIMEOUT = 0.3
HELD = 0.8
"""How long a ``delay`` fault holds an answer: past the client's timeout."""
LAST = Decimal("64893.5")
"""The fake's last BTCUSDT price (the sample's last close)."""


def make_venue(fake: FakeBinance, **kwargs: Any) -> CcxtVenue:
    options: dict[str, Any] = {
        "exchange_id": "binance",
        "api_key": fake.api_key,
        "secret": fake.secret,
        "urls": rehost_api_urls("binance", fake.url),
        "timeout": TIMEOUT,
        "poll_interval": 0.05,
        "rate_limit": False,
    }
    options.update(kwargs)
    return CcxtVenue(**options)


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as fake:
        yield fake


@pytest.fixture
async def venue(binance: FakeBinance) -> AsyncIterator[CcxtVenue]:
    v = make_venue(binance)
    await v.connect()
    yield v
    await v.close()


def limit(cid: str, qty: str = "0.002", price: str = "60000", **kwargs: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": cid,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": Decimal(qty),
        "limit_price": Decimal(price),
    }
    fields.update(kwargs)
    return OrderRequest(**fields)


def market(cid: str, qty: str = "0.002", side: str = "BUY", **kwargs: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "client_order_id": cid,
        "symbol": "BTCUSDT",
        "side": side,
        "type": "MARKET",
        "quantity": Decimal(qty),
    }
    fields.update(kwargs)
    return OrderRequest(**fields)


def posts(fake: FakeBinance) -> int:
    return sum(1 for r in fake.requests("/api/v3/order") if r.method == "POST")


async def eventually(check: Callable[[], Any], *, within: float = 3.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# ---- metadata --------------------------------------------------------------------------------


async def test_is_a_venue_and_reads_the_instrument_rules(venue: CcxtVenue) -> None:
    assert isinstance(venue, CcxtVenue)
    typed: Venue = venue  # the protocol is satisfied structurally
    assert typed.name == "binance"
    rules = await venue.instrument("BTCUSDT")
    assert rules is not None
    assert (rules.symbol, rules.base, rules.quote) == ("BTCUSDT", "BTC", "USDT")
    assert rules.min_quantity == Decimal("0.00001")
    assert rules.quantity_step == Decimal("0.00001")
    assert rules.tick_size == Decimal("0.01")
    assert rules.min_notional == Decimal("5")
    assert rules.tradable
    assert await venue.instrument("BTC/USDT") == rules  # ccxt's spelling works too
    assert await venue.instrument("DOGEUSDT") is None


def test_precision_step_converts_every_precision_mode() -> None:
    assert precision_step(0.01, ccxt.TICK_SIZE, "tick") == Decimal("0.01")
    assert precision_step(1e-05, ccxt.TICK_SIZE, "step") == Decimal("0.00001")
    assert precision_step(2, ccxt.DECIMAL_PLACES, "tick") == Decimal("0.01")
    assert precision_step(0, ccxt.DECIMAL_PLACES, "tick") == Decimal("1")
    assert precision_step(5, ccxt.SIGNIFICANT_DIGITS, "tick") is None
    assert precision_step(None, ccxt.TICK_SIZE, "tick") is None
    with pytest.raises(VenueDataError):
        precision_step(float("nan"), ccxt.TICK_SIZE, "tick")
    with pytest.raises(VenueDataError):
        precision_step(2.5, ccxt.DECIMAL_PLACES, "tick")
    with pytest.raises(VenueDataError):
        precision_step(0, ccxt.TICK_SIZE, "tick")


# ---- round trips -----------------------------------------------------------------------------


async def test_submit_fetch_cancel_round_trip(venue: CcxtVenue, binance: FakeBinance) -> None:
    placed = await venue.submit(limit("rt-1"))
    assert placed.client_order_id == "rt-1"
    assert placed.status == "submitted"
    assert (placed.symbol, placed.side, placed.type) == ("BTCUSDT", "BUY", "LIMIT")
    assert placed.quantity == Decimal("0.002")
    assert placed.filled_quantity == 0
    assert placed.limit_price == Decimal("60000")
    assert placed.time_in_force == "GTC"
    assert placed.updated_ns > 0
    assert binance.free("USDT") == Decimal("100000") - Decimal("120")  # locked by the order

    fetched = await venue.fetch_order(client_order_id="rt-1", symbol="BTCUSDT")
    assert fetched is not None
    assert fetched.venue_order_id == placed.venue_order_id
    assert fetched.status == "submitted"
    lookup = [r for r in binance.requests("/api/v3/order") if r.method == "GET"][-1]
    assert lookup.query["origClientOrderId"] == "rt-1"  # asked by client id, not by venue id

    assert [o.client_order_id for o in await venue.open_orders()] == ["rt-1"]
    assert [o.client_order_id for o in await venue.open_orders(symbol="BTCUSDT")] == ["rt-1"]
    assert await venue.open_orders(symbol="ETHUSDT") == []

    cancelled = await venue.cancel(client_order_id="rt-1", symbol="BTCUSDT")
    assert cancelled.client_order_id == "rt-1"  # not the cancel request's own id
    assert cancelled.status == "cancelled"
    again = await venue.fetch_order(client_order_id="rt-1", symbol="BTCUSDT")
    assert again is not None and again.status == "cancelled"
    assert await venue.open_orders() == []
    assert binance.free("USDT") == Decimal("100000")
    assert len(binance.orders_for("rt-1")) == 1


async def test_market_order_fills_at_once_in_several_trades(venue: CcxtVenue, binance: FakeBinance) -> None:
    order = await venue.submit(market("mk-1"))
    assert order.status == "filled"
    assert order.filled_quantity == Decimal("0.002")
    assert order.average_price == (LAST + LAST + Decimal("0.01")) / 2
    assert order.limit_price is None

    fills = await venue.fills(symbol="BTCUSDT")
    assert [f.client_order_id for f in fills] == ["mk-1", "mk-1"]
    assert all(f.venue_order_id == order.venue_order_id for f in fills)
    assert [f.price for f in fills] == [LAST, LAST + Decimal("0.01")]
    assert sum(f.quantity for f in fills) == Decimal("0.002")
    assert all(f.trade_id.startswith("BTCUSDT:") for f in fills)
    assert all((f.side, f.liquidity, f.fee_currency) == ("BUY", "taker", "BTC") for f in fills)
    assert all(f.fee == Decimal("0.000001") for f in fills)
    balances = {b.currency: b for b in await venue.balances()}
    assert balances["BTC"].total == Decimal("1.001998")
    assert "BNB" not in balances  # zero balances are left out


async def test_limit_order_rests_then_fills_partially_then_fully(
    venue: CcxtVenue, binance: FakeBinance
) -> None:
    await venue.submit(limit("lp-1", qty="0.003"))
    assert binance.trade("BTCUSDT", "60100") == 0  # above the bid: nothing crosses
    assert binance.trade("BTCUSDT", "59990", qty="0.001") == 1
    partial = await venue.fetch_order(client_order_id="lp-1", symbol="BTCUSDT")
    assert partial is not None
    assert (partial.status, partial.filled_quantity) == ("partial_fill", Decimal("0.001"))
    assert partial.average_price == Decimal("60000")

    assert binance.trade("BTCUSDT", "59980") == 1
    full = await venue.fetch_order(client_order_id="lp-1", symbol="BTCUSDT")
    assert full is not None
    assert (full.status, full.filled_quantity) == ("filled", Decimal("0.003"))
    fills = await venue.fills(symbol="BTCUSDT")
    assert [(f.quantity, f.price, f.liquidity) for f in fills] == [
        (Decimal("0.001"), Decimal("60000"), "maker"),
        (Decimal("0.002"), Decimal("60000"), "maker"),
    ]
    # a filled order cannot be cancelled: the answer is the order as it stands
    still = await venue.cancel(client_order_id="lp-1", symbol="BTCUSDT")
    assert (still.status, still.filled_quantity) == ("filled", Decimal("0.003"))


async def test_ioc_limit_that_does_not_cross_expires(venue: CcxtVenue) -> None:
    order = await venue.submit(limit("ioc-1", time_in_force="IOC"))
    assert (order.status, order.time_in_force, order.filled_quantity) == ("expired", "IOC", 0)
    assert order.reason is not None


async def test_take_profit_is_a_resting_limit(venue: CcxtVenue, binance: FakeBinance) -> None:
    await venue.submit(market("tp-buy", qty="0.001"))
    order = await venue.submit(
        limit("tp-1", qty="0.001", price="70000", side="SELL", type="TAKE_PROFIT", time_in_force="GTC")
    )
    assert (order.type, order.status, order.limit_price) == ("TAKE_PROFIT", "submitted", Decimal("70000"))
    assert binance.orders_for("tp-1")[0].type == "LIMIT"
    binance.trade("BTCUSDT", "70010")
    done = await venue.fetch_order(client_order_id="tp-1", symbol="BTCUSDT")
    assert done is not None and done.status == "filled"


async def test_stop_limit_stop_and_trailing_stop(venue: CcxtVenue, binance: FakeBinance) -> None:
    stop_limit = await venue.submit(
        OrderRequest(
            client_order_id="sl-1",
            symbol="BTCUSDT",
            side="SELL",
            type="STOP_LIMIT",
            quantity=Decimal("0.001"),
            limit_price=Decimal("63900"),
            stop_price=Decimal("64000"),
        )
    )
    assert (stop_limit.type, stop_limit.status) == ("STOP_LIMIT", "submitted")
    assert stop_limit.stop_price == Decimal("64000")
    assert binance.orders_for("sl-1")[0].type == "STOP_LOSS_LIMIT"

    stop = await venue.submit(
        OrderRequest(
            client_order_id="st-1",
            symbol="BTCUSDT",
            side="BUY",
            type="STOP",
            quantity=Decimal("0.001"),
            stop_price=Decimal("65000"),
        )
    )
    assert (stop.type, stop.status, stop.stop_price) == ("STOP", "submitted", Decimal("65000"))
    assert binance.orders_for("st-1")[0].type == "STOP_LOSS"

    trailing = await venue.submit(
        OrderRequest(
            client_order_id="tr-1",
            symbol="BTCUSDT",
            side="SELL",
            type="TRAILING_STOP",
            quantity=Decimal("0.001"),
            trail_percent=Decimal("0.02"),
        )
    )
    assert (trailing.type, trailing.status) == ("TRAILING_STOP", "submitted")
    assert binance.orders_for("tr-1")[0].trailing_delta == 200  # basis points

    binance.trade("BTCUSDT", "66000")  # the buy stop triggers and takes; the trail moves up
    binance.trade("BTCUSDT", "63950")  # the sell stop triggers (its limit crosses); the trail too
    states = {
        cid: await venue.fetch_order(client_order_id=cid, symbol="BTCUSDT")
        for cid in ("sl-1", "st-1", "tr-1")
    }
    assert {cid: o.status for cid, o in states.items() if o is not None} == {
        "sl-1": "filled",
        "st-1": "filled",
        "tr-1": "filled",
    }
    assert states["st-1"] is not None and states["st-1"].average_price == Decimal("66000")
    assert states["sl-1"] is not None and states["sl-1"].average_price == Decimal("63900")
    assert states["tr-1"] is not None and states["tr-1"].type == "TRAILING_STOP"

    # a fresh adapter (no memory of the requests) reads the types from the venue
    other = make_venue(binance)
    try:
        seen = await other.fetch_order(client_order_id="tr-1", symbol="BTCUSDT")
        assert seen is not None and seen.type == "TRAILING_STOP"
        seen = await other.fetch_order(client_order_id="sl-1", symbol="BTCUSDT")
        assert seen is not None and seen.type == "STOP_LIMIT"
    finally:
        await other.close()


async def test_a_stop_that_would_trigger_at_once_is_rejected(venue: CcxtVenue) -> None:
    request = OrderRequest(
        client_order_id="st-now",
        symbol="BTCUSDT",
        side="BUY",
        type="STOP",
        quantity=Decimal("0.001"),
        stop_price=Decimal("60000"),  # below the last price: a buy stop fires at once
    )
    with pytest.raises(VenueRejected, match="trigger immediately") as caught:
        await venue.submit(request)
    assert caught.value.code == "-2010"


# ---- idempotency and ambiguity ---------------------------------------------------------------


async def test_resubmit_of_an_open_order_returns_it(venue: CcxtVenue, binance: FakeBinance) -> None:
    first = await venue.submit(limit("dup-1"))
    second = await venue.submit(limit("dup-1"))
    assert second.venue_order_id == first.venue_order_id
    assert second.status == "submitted"
    assert posts(binance) == 2  # the venue saw both, answered -2010 to the second
    assert len(binance.orders_for("dup-1")) == 1


async def test_timeout_after_accept_is_ambiguous_then_resolved(
    venue: CcxtVenue, binance: FakeBinance
) -> None:
    binance.faults.delay(HELD, path="/api/v3/order")
    started = time.monotonic()
    with pytest.raises(VenueAmbiguous) as caught:
        await venue.submit(limit("slow-1"))
    assert not isinstance(caught.value, VenueDataError)
    assert time.monotonic() - started < HELD
    await eventually(lambda: binance.orders_for("slow-1"))  # the venue acts once the hold ends
    found = await venue.fetch_order(client_order_id="slow-1", symbol="BTCUSDT")
    assert found is not None and found.status == "submitted"
    assert len(binance.orders_for("slow-1")) == 1


@pytest.mark.parametrize("status", [None, 502, 504])
async def test_dropped_answer_after_accept_is_ambiguous(
    venue: CcxtVenue, binance: FakeBinance, status: int | None
) -> None:
    binance.faults.drop(status, path="/api/v3/order")
    with pytest.raises(VenueAmbiguous):
        await venue.submit(market("drop-1"))
    found = await venue.fetch_order(client_order_id="drop-1", symbol="BTCUSDT")
    assert found is not None and found.status == "filled"
    assert len(binance.orders_for("drop-1")) == 1


async def test_5xx_is_ambiguous_and_resubmit_places_once(venue: CcxtVenue, binance: FakeBinance) -> None:
    binance.faults.fail(500, path="/api/v3/order")
    with pytest.raises(VenueAmbiguous) as caught:
        await venue.submit(limit("err-1"))
    assert caught.value.code == "-1000"
    assert await venue.fetch_order(client_order_id="err-1", symbol="BTCUSDT") is None
    placed = await venue.submit(limit("err-1"))
    assert placed.status == "submitted"
    assert len(binance.orders_for("err-1")) == 1


async def test_5xx_on_a_read_is_unavailable(venue: CcxtVenue, binance: FakeBinance) -> None:
    binance.faults.fail(503, path="/api/v3/openOrders")
    with pytest.raises(VenueUnavailable):
        await venue.open_orders()


async def test_429_is_unavailable_with_retry_after(venue: CcxtVenue, binance: FakeBinance) -> None:
    binance.faults.rate_limit(retry_after=2, path="/api/v3/order")
    with pytest.raises(VenueUnavailable) as caught:
        await venue.submit(limit("rl-1"))
    assert caught.value.retry_after == 2.0
    assert caught.value.code == "-1003"
    assert binance.orders_for("rl-1") == []


async def test_connection_refused_is_unavailable(binance: FakeBinance) -> None:
    venue = make_venue(binance)
    try:
        await venue.connect()
        await asyncio.to_thread(binance.stop)
        with pytest.raises(VenueUnavailable):
            await venue.submit(limit("down-1"))
    finally:
        await venue.close()


async def test_a_closed_adapter_sends_nothing(binance: FakeBinance) -> None:
    venue = make_venue(binance)
    await venue.connect()
    await venue.close()
    with pytest.raises(VenueUnavailable):
        await venue.submit(limit("closed-1"))
    assert posts(binance) == 0


async def test_unreachable_venue_is_unavailable_on_connect() -> None:
    venue = CcxtVenue(
        exchange_id="binance",
        api_key="k",
        secret="s",
        urls=rehost_api_urls("binance", "http://127.0.0.1:9"),
        timeout=TIMEOUT,
        rate_limit=False,
    )
    try:
        with pytest.raises(VenueUnavailable):
            await venue.connect()
    finally:
        await venue.close()


async def test_a_request_that_arrives_too_late_is_unavailable(binance: FakeBinance) -> None:
    # the venue refuses a timestamp outside recvWindow (-1021) before acting on the order
    venue = make_venue(binance, options={"recvWindow": 20})
    try:
        await venue.connect()
        binance.faults.delay(0.1, path="/api/v3/order")
        with pytest.raises(VenueUnavailable) as caught:
            await venue.submit(limit("late-1"))
        assert caught.value.code == "-1021"
        assert binance.orders_for("late-1") == []
    finally:
        await venue.close()


async def test_an_answer_that_is_not_json_is_a_data_error(venue: CcxtVenue, binance: FakeBinance) -> None:
    binance.faults.garbage(path="/api/v3/order")
    with pytest.raises(VenueDataError):
        await venue.submit(limit("html-1"))


# ---- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (limit("lot-1", qty="0.000015"), "lot size"),
        (limit("lot-2", qty="0.000001"), "lot size"),
        (limit("tick-1", price="60000.005"), "tick size"),
        (limit("notional-1", qty="0.00001"), "min notional"),
    ],
)
async def test_rule_violations_are_refused_before_sending(
    venue: CcxtVenue, binance: FakeBinance, request_: OrderRequest, words: str
) -> None:
    with pytest.raises(VenueRejected, match=words):
        await venue.submit(request_)
    assert posts(binance) == 0


async def test_venue_filter_failure_is_rejected_naming_it(venue: CcxtVenue, binance: FakeBinance) -> None:
    # a market order's notional is only known at the venue: 0.00001 BTC is about 0.65 USDT
    with pytest.raises(VenueRejected, match="NOTIONAL") as caught:
        await venue.submit(market("mn-1", qty="0.00001"))
    assert caught.value.code == "-1013"
    assert posts(binance) == 1
    assert binance.orders_for("mn-1") == []


async def test_insufficient_funds_is_rejected(venue: CcxtVenue, binance: FakeBinance) -> None:
    with pytest.raises(VenueRejected, match="insufficient balance"):
        await venue.submit(market("big-1", qty="100"))
    assert binance.orders_for("big-1") == []


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (limit("day-1", time_in_force="DAY"), "DAY"),
        (limit("gtd-1", time_in_force="GTD"), "time in force"),
        (market("ro-1", reduce_only=True), "reduce-only BUY"),
        (limit("np-1", limit_price=None), "limit price"),
        (market("side-1", side="HOLD"), "side"),
        (limit("sym-1", symbol="DOGEUSDT"), "no market"),
        (
            OrderRequest(
                client_order_id="trail-1",
                symbol="BTCUSDT",
                side="SELL",
                type="TRAILING_STOP",
                quantity=Decimal("0.001"),
                trail_percent=Decimal("0.00015"),
            ),
            "basis points",
        ),
    ],
)
async def test_bad_requests_are_refused_before_sending(
    venue: CcxtVenue, binance: FakeBinance, request_: OrderRequest, words: str
) -> None:
    with pytest.raises(VenueRejected, match=words):
        await venue.submit(request_)
    assert posts(binance) == 0


async def test_order_types_the_symbol_lacks_are_refused_before_sending() -> None:
    async with FakeBinance(order_types=("LIMIT", "LIMIT_MAKER", "MARKET")) as fake:
        venue = make_venue(fake)
        try:
            for kind, extra in (
                ("STOP", {"stop_price": Decimal("70000")}),
                ("STOP_LIMIT", {"stop_price": Decimal("70000"), "limit_price": Decimal("70100")}),
                ("TRAILING_STOP", {"trail_percent": Decimal("0.01")}),
            ):
                request = OrderRequest(
                    client_order_id=f"no-{kind.lower()}",
                    symbol="BTCUSDT",
                    side="BUY",
                    type=kind,
                    quantity=Decimal("0.001"),
                    **extra,
                )
                with pytest.raises(VenueRejected, match=f"does not support {kind} orders"):
                    await venue.submit(request)
            assert posts(fake) == 0
        finally:
            await venue.close()


async def test_a_sell_reduce_only_is_sent(venue: CcxtVenue) -> None:
    order = await venue.submit(market("ro-sell", side="SELL", qty="0.001", reduce_only=True))
    assert order.status == "filled"


async def test_bad_signature_is_rejected(binance: FakeBinance) -> None:
    venue = make_venue(binance, secret="not-the-secret")
    try:
        with pytest.raises(VenueRejected) as caught:
            await venue.submit(limit("sig-1"))
        assert caught.value.code == "-1022"
        assert binance.orders_for("sig-1") == []
    finally:
        await venue.close()


async def test_cancel_of_an_unknown_order_is_rejected(venue: CcxtVenue) -> None:
    with pytest.raises(VenueRejected, match="no order"):
        await venue.cancel(client_order_id="never-placed", symbol="BTCUSDT")


async def test_timeout_on_cancel_is_ambiguous(venue: CcxtVenue, binance: FakeBinance) -> None:
    await venue.submit(limit("cx-1"))
    binance.faults.delay(HELD, path="/api/v3/order")
    with pytest.raises(VenueAmbiguous):
        await venue.cancel(client_order_id="cx-1", symbol="BTCUSDT")
    await eventually(lambda: binance.orders_for("cx-1")[0].status == "CANCELED")
    found = await venue.fetch_order(client_order_id="cx-1", symbol="BTCUSDT")
    assert found is not None and found.status == "cancelled"


async def test_cancel_whose_answer_is_lost_answers_the_cancelled_order(
    venue: CcxtVenue, binance: FakeBinance
) -> None:
    # aiohttp resends an idempotent DELETE once when a kept-alive connection drops; the venue
    # then says "Unknown order sent." (-2011) and the adapter answers the order as it stands
    await venue.submit(limit("cx-2"))
    binance.faults.drop(path="/api/v3/order")
    try:
        cancelled = await venue.cancel(client_order_id="cx-2", symbol="BTCUSDT")
    except VenueAmbiguous:
        cancelled = await venue.fetch_order(client_order_id="cx-2", symbol="BTCUSDT")
    assert cancelled is not None and cancelled.status == "cancelled"


# ---- lookups ---------------------------------------------------------------------------------


async def test_an_order_hidden_for_a_while_is_none_then_found(venue: CcxtVenue, binance: FakeBinance) -> None:
    await venue.submit(limit("hid-1"))
    binance.hide_orders(2)
    assert await venue.fetch_order(client_order_id="hid-1", symbol="BTCUSDT") is None
    assert await venue.fetch_order(client_order_id="hid-1", symbol="BTCUSDT") is None
    found = await venue.fetch_order(client_order_id="hid-1", symbol="BTCUSDT")
    assert found is not None and found.client_order_id == "hid-1"


async def test_unknown_client_id_is_none(venue: CcxtVenue) -> None:
    assert await venue.fetch_order(client_order_id="nobody", symbol="BTCUSDT") is None


# ---- untrusted numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["nan", "negative", "missing", "null"])
async def test_malformed_order_answer_is_a_data_error(
    venue: CcxtVenue, binance: FakeBinance, how: str
) -> None:
    binance.faults.malformed(how, path="/api/v3/order")
    with pytest.raises(VenueDataError):
        await venue.submit(market(f"bad-{how}"))
    # the order was placed: a clean lookup resolves it
    found = await venue.fetch_order(client_order_id=f"bad-{how}", symbol="BTCUSDT")
    assert found is not None and (found.status, found.filled_quantity) == ("filled", Decimal("0.002"))


@pytest.mark.parametrize("how", ["nan", "negative"])
async def test_malformed_lookup_is_a_data_error(venue: CcxtVenue, binance: FakeBinance, how: str) -> None:
    await venue.submit(limit("bad-get"))
    binance.trade("BTCUSDT", "59990", qty="0.001")
    binance.faults.malformed(how, path="/api/v3/order")
    with pytest.raises(VenueDataError):
        await venue.fetch_order(client_order_id="bad-get", symbol="BTCUSDT")


@pytest.mark.parametrize("how", ["nan", "negative", "missing", "null"])
async def test_malformed_trade_is_a_data_error(venue: CcxtVenue, binance: FakeBinance, how: str) -> None:
    await venue.submit(market("mt-1"))
    binance.faults.malformed(how, row=1, path="/api/v3/myTrades")
    with pytest.raises(VenueDataError):
        await venue.fills(symbol="BTCUSDT")
    assert len(await venue.fills(symbol="BTCUSDT")) == 2


@pytest.mark.parametrize("how", ["nan", "negative", "missing"])
async def test_malformed_balance_is_a_data_error(venue: CcxtVenue, binance: FakeBinance, how: str) -> None:
    binance.faults.malformed(how, row=1, path="/api/v3/account")
    with pytest.raises(VenueDataError):
        await venue.balances()


# ---- fills -----------------------------------------------------------------------------------


async def _three_trades(venue: CcxtVenue, binance: FakeBinance) -> list[VenueFill]:
    await venue.submit(market("f-1"))
    await venue.submit(limit("f-2", qty="0.003"))
    binance.trade("BTCUSDT", "59990", qty="0.001")
    return await venue.fills(symbol="BTCUSDT")


async def test_duplicate_and_reordered_trades_keep_stable_ids(venue: CcxtVenue, binance: FakeBinance) -> None:
    baseline = await _three_trades(venue, binance)
    assert len(baseline) == 3
    assert [f.ts_ns for f in baseline] == sorted(f.ts_ns for f in baseline)
    binance.duplicate_trades(1)
    assert await venue.fills(symbol="BTCUSDT") == baseline
    binance.reorder_trades(1)
    assert await venue.fills(symbol="BTCUSDT") == baseline
    binance.duplicate_trades(1)
    binance.reorder_trades(1)
    assert await venue.fills() == baseline  # every traded symbol
    assert await venue.fills(symbol="ETHUSDT") == []


async def test_fills_since_is_inclusive(venue: CcxtVenue, binance: FakeBinance) -> None:
    baseline = await _three_trades(venue, binance)
    last = baseline[-1]
    assert await venue.fills(symbol="BTCUSDT", since_ns=last.ts_ns) == [
        f for f in baseline if f.ts_ns >= last.ts_ns
    ]
    assert await venue.fills(symbol="BTCUSDT", since_ns=last.ts_ns + 1_000_000) == []


async def test_a_fresh_adapter_resolves_client_ids_from_the_venue(
    venue: CcxtVenue, binance: FakeBinance
) -> None:
    baseline = await _three_trades(venue, binance)
    other = make_venue(binance, symbols=["BTCUSDT"])
    try:
        assert await other.fills() == baseline
    finally:
        await other.close()


# ---- events ----------------------------------------------------------------------------------


async def _collect(venue: CcxtVenue, into: list[VenueOrder | VenueFill]) -> None:
    async for event in venue.events():
        into.append(event)


async def test_events_yield_order_updates_and_fills(binance: FakeBinance) -> None:
    venue = make_venue(binance)
    await venue.connect()
    seen: list[VenueOrder | VenueFill] = []
    consumer = asyncio.create_task(_collect(venue, seen))
    try:
        await venue.submit(limit("ev-1", qty="0.003"))
        binance.duplicate_trades(3)
        binance.reorder_trades(3)
        binance.trade("BTCUSDT", "59990", qty="0.001")
        await eventually(
            lambda: (
                any(isinstance(e, VenueFill) for e in seen)
                and any(isinstance(e, VenueOrder) and e.status == "partial_fill" for e in seen)
            )
        )
        binance.trade("BTCUSDT", "59990")
        await eventually(
            lambda: (
                any(isinstance(e, VenueOrder) and e.status == "filled" for e in seen)
                and sum(isinstance(e, VenueFill) for e in seen) >= 2
            )
        )
        fills = await venue.fills(symbol="BTCUSDT")
    finally:
        await venue.close()
        await asyncio.wait_for(consumer, 2)  # the stream ends at close()
    got = [e for e in seen if isinstance(e, VenueFill)]
    assert sorted(f.trade_id for f in got) == sorted(f.trade_id for f in fills)
    assert all(f.client_order_id == "ev-1" for f in got)
    statuses = [(e.status, e.filled_quantity) for e in seen if isinstance(e, VenueOrder)]
    assert ("partial_fill", Decimal("0.001")) in statuses
    assert statuses[-1] == ("filled", Decimal("0.003"))


async def test_events_survive_failed_polls_and_quarantine_bad_trades(binance: FakeBinance) -> None:
    venue = make_venue(binance)
    await venue.connect()
    seen: list[VenueOrder | VenueFill] = []
    consumer = asyncio.create_task(_collect(venue, seen))
    try:
        binance.faults.fail(500, times=2, path="/api/v3/openOrders")
        binance.faults.malformed("nan", row=0, times=2, path="/api/v3/myTrades")
        await venue.submit(market("ev-2"))
        await eventually(lambda: sum(isinstance(e, VenueFill) for e in seen) >= 2)
    finally:
        await venue.close()
        await asyncio.wait_for(consumer, 2)
    got = [e for e in seen if isinstance(e, VenueFill)]
    assert len({f.trade_id for f in got}) == len(got) == 2
    assert all(f.price.is_finite() for f in got)


# ---- permissions -----------------------------------------------------------------------------


async def test_permissions_of_a_key_that_cannot_withdraw(venue: CcxtVenue) -> None:
    permissions = await venue.permissions()
    assert permissions.can_trade is True
    assert permissions.can_withdraw is False
    assert "apiRestrictions" in permissions.detail


async def test_permissions_of_a_key_that_can_withdraw() -> None:
    async with FakeBinance(withdrawals_enabled=True, trading_enabled=False) as fake:
        venue = make_venue(fake)
        try:
            permissions = await venue.permissions()
        finally:
            await venue.close()
    assert (permissions.can_trade, permissions.can_withdraw) == (False, True)


async def test_sandbox_keys_cannot_withdraw_without_asking(binance: FakeBinance) -> None:
    venue = make_venue(binance, sandbox=True)
    try:
        permissions = await venue.permissions()
    finally:
        await venue.close()
    assert (permissions.can_trade, permissions.can_withdraw) == (True, False)
    assert "testnet" in permissions.detail
    assert binance.requests("/sapi") == []


@pytest.mark.parametrize("how", ["missing", "null", "nan"])
async def test_malformed_permissions_are_a_data_error(
    venue: CcxtVenue, binance: FakeBinance, how: str
) -> None:
    binance.faults.malformed(how, path="/sapi/v1/account/apiRestrictions")
    with pytest.raises(VenueDataError):
        await venue.permissions()


# ---- another exchange ------------------------------------------------------------------------


@pytest.fixture
async def kraken() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as fake:
        yield fake


async def test_kraken_rules_symbols_and_unknown_permissions(kraken: FakeKraken) -> None:
    venue = CcxtVenue(
        exchange_id="kraken",
        api_key="kraken-key",
        secret="c2VjcmV0",
        urls=rehost_api_urls("kraken", kraken.url),
        timeout=5.0,  # no fault here: a busy machine's first request (load markets) may take > 0.3 s
        poll_interval=0.05,
        rate_limit=False,
    )
    try:
        rules = await venue.instrument("BTCUSDT")  # Kraken's XBTUSDT in the platform's spelling
        assert rules is not None
        assert (rules.symbol, rules.base, rules.quote) == ("BTCUSDT", "BTC", "USDT")
        assert rules.min_quantity == Decimal("0.00005")
        assert rules.quantity_step == Decimal("1E-8")
        assert rules.tick_size == Decimal("0.1")
        assert rules.min_notional == Decimal("0.5")
        assert await venue.instrument("XBTUSDT") == rules  # Kraken's own id
        assert await venue.instrument("DOGEUSDT") is None
        permissions = await venue.permissions()
        assert permissions.can_withdraw is None
        assert "kraken" in permissions.detail and "unknown" in permissions.detail
        assert await venue.positions() == []
        with pytest.raises(VenueRejected, match="DAY"):
            await venue.submit(limit("k-1", price="60000.0", time_in_force="DAY"))
        with pytest.raises(VenueRejected, match="tick size"):
            await venue.submit(limit("k-2", price="60000.05"))
    finally:
        await venue.close()
    assert [r.path for r in kraken.requests()] == ["/0/public/AssetPairs"]


def test_unknown_exchange_id_is_refused() -> None:
    with pytest.raises(ValueError, match="no exchange"):
        CcxtVenue(exchange_id="nope", api_key="k", secret="s")
