"""The paper broker on a temp SQLite file: fills against pushed bar updates, durability, events.

Prices come from ``FakeQuotes``, a ``QuoteSource`` whose ``stream`` yields the ``BarUpdate``s the
test pushes; ``bar(...)`` returns once the exchange has processed the update (the stream is
resumed only after the consumer handled the previous item). Numbers are checked exactly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from algotrendy.adapters.brokers.paper import PaperExchange, PaperVenue
from algotrendy.core.clock import ManualClock
from algotrendy.core.market import BarUpdate, SeriesKey, Timeframe, to_ns
from algotrendy.core.venue import OrderRequest, Quote, Venue, VenueFill, VenueOrder, VenueRejected
from algotrendy.db.base import metadata
from algotrendy.db.engine import make_engine, make_sessionmaker

SYM = "BTCUSDT"
MIN = 60 * 10**9
START = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
T0 = to_ns(START)
FEE_RATE, FEE_FIXED, SLIP = D("0.001"), D("1"), D("0.0005")


@dataclass
class _Sub:
    queue: asyncio.Queue[BarUpdate] = field(default_factory=asyncio.Queue)
    pushed: int = 0
    done: int = 0


class FakeQuotes:
    """``last`` from a dict; ``stream`` from a queue per subscriber."""

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}
        self.subs: dict[str, list[_Sub]] = defaultdict(list)

    def set(self, symbol: str, price: str | int, volume: str | int | None = None, ts: int = T0) -> None:
        self.quotes[symbol] = Quote(symbol, ts, D(price), None if volume is None else D(volume))

    async def last(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)

    async def stream(self, symbol: str) -> AsyncIterator[BarUpdate]:
        sub = _Sub()
        self.subs[symbol].append(sub)
        try:
            while True:
                update = await sub.queue.get()
                yield update
                sub.done += 1
        finally:
            self.subs[symbol].remove(sub)

    async def bar(
        self, ts: int, o: float, h: float, lo: float, c: float, v: float = 1000, *, closed: bool = True
    ) -> None:
        """Push one update (after the exchange subscribed) and wait until it was processed."""
        symbol = SYM
        await _until(lambda: bool(self.subs[symbol]), "the exchange to subscribe")
        self.quotes[symbol] = Quote(symbol, ts, D(repr(c)), D(repr(v)))
        update = BarUpdate(SeriesKey(symbol, "test", Timeframe.parse("1m")), ts, o, h, lo, c, v, closed)
        for sub in self.subs[symbol]:
            sub.pushed += 1
            sub.queue.put_nowait(update)
        await _until(lambda: all(s.done >= s.pushed for s in self.subs[symbol]), "the update to be processed")


async def _until(cond: Any, what: str) -> None:
    for _ in range(5000):
        if cond():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


class Env:
    def __init__(self, path: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{path}"
        self.quotes = FakeQuotes()
        self.clock = ManualClock(START)
        self.engines: list[Any] = []
        self.exchanges: list[PaperExchange] = []

    async def exchange(self, **kw: Any) -> PaperExchange:
        engine = make_engine(self.url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        self.engines.append(engine)
        args: dict[str, Any] = {"fee_rate": FEE_RATE, "fee_fixed": FEE_FIXED, "slippage": SLIP} | kw
        x = PaperExchange(sessions=make_sessionmaker(engine), quotes=self.quotes, clock=self.clock, **args)
        await x.start()
        self.exchanges.append(x)
        return x

    async def venue(self, cash: str = "100000", **kw: Any) -> PaperVenue:
        x = await self.exchange(**kw)
        return await x.account("acct-1", initial_cash=D(cash))

    async def close(self) -> None:
        for x in self.exchanges:
            await x.close()
        for engine in self.engines:
            await engine.dispose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "paper.sqlite")
    e.quotes.set(SYM, 100, volume=None)
    yield e
    await e.close()


def req(cid: str, side: str, type_: str, qty: str, **kw: Any) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol=SYM, side=side, type=type_, quantity=D(qty), **kw)


async def order(v: PaperVenue, cid: str) -> VenueOrder:
    o = await v.fetch_order(client_order_id=cid, symbol=SYM)
    assert o is not None
    return o


def drain(v: PaperVenue) -> Any:
    """The events published so far on a stream opened now (what ``v.events()`` returns)."""
    stream = v.reports.subscribe()

    async def take() -> list[VenueOrder | VenueFill]:
        out: list[VenueOrder | VenueFill] = []
        while not stream.queue.empty():
            out.append(await anext(stream))
        return out

    return take


async def check_books(v: PaperVenue, initial: D) -> None:
    """Position = signed sum of fills; initial cash = cash + buys - sells + fees."""
    fills = await v.fills()
    buys = sum((f.quantity * f.price for f in fills if f.side == "BUY"), D(0))
    sells = sum((f.quantity * f.price for f in fills if f.side == "SELL"), D(0))
    fees = sum((f.fee for f in fills), D(0))
    (bal,) = await v.balances()
    assert initial == bal.total + buys - sells + fees
    net = sum((f.quantity if f.side == "BUY" else -f.quantity for f in fills), D(0))
    held = {p.symbol: p.quantity for p in await v.positions()}
    assert held.get(SYM, D(0)) == net
    assert len({f.trade_id for f in fills}) == len(fills)


async def test_market_order_fills_at_the_quote_with_slippage_and_fee(env: Env) -> None:
    v = await env.venue()
    events = drain(v)
    ack = await v.submit(req("m1", "BUY", "MARKET", "2"))
    # The answer is the order after the immediate match, as a venue answers a market order.
    assert (ack.status, ack.filled_quantity, ack.venue_order_id.startswith("paper-o-")) == (
        "filled",
        D(2),
        True,
    )
    (fill,) = await v.fills()
    assert (fill.price, fill.quantity, fill.fee, fill.fee_currency) == (D("100.05"), D(2), D("1.2001"), "USD")
    assert fill.trade_id.startswith("paper-") and fill.ts_ns == T0
    done = await order(v, "m1")
    assert (done.status, done.filled_quantity, done.average_price) == ("filled", D(2), D("100.05"))
    (bal,) = await v.balances()
    assert bal.total == bal.free == D("100000") - D("200.1") - D("1.2001")
    (pos,) = await v.positions()
    assert (pos.symbol, pos.quantity, pos.average_price) == (SYM, D(2), D("100.05"))
    seen = await events()
    assert [type(e).__name__ for e in seen] == ["VenueOrder", "VenueFill", "VenueOrder"]
    assert [getattr(e, "status", None) for e in seen] == ["submitted", None, "filled"]
    assert await v.open_orders() == [] and env.exchanges[0]._streams == {}
    await check_books(v, D("100000"))


async def test_participation_caps_each_bar_and_the_rest_keeps_working(env: Env) -> None:
    env.quotes.set(SYM, 100, volume=10)
    v = await env.venue(max_participation=D("0.1"))
    await v.submit(req("p1", "BUY", "MARKET", "5"))
    o = await order(v, "p1")
    assert (o.status, o.filled_quantity) == ("partial_fill", D(1))
    await env.quotes.bar(T0 + MIN, 101, 102, 100, 101, 20)
    assert (await order(v, "p1")).filled_quantity == D(3)
    await env.quotes.bar(T0 + 2 * MIN, 102, 103, 101, 102, 30)
    o = await order(v, "p1")
    assert (o.status, o.filled_quantity) == ("filled", D(5))
    fills = await v.fills()
    assert [(f.quantity, f.price) for f in fills] == [
        (D(1), D("100.05")),
        (D(2), D("101.0505")),
        (D(2), D("102.051")),
    ]
    assert o.average_price == sum((f.quantity * f.price for f in fills), D(0)) / 5
    await _until(lambda: env.exchanges[0]._streams == {}, "the stream to stop")
    await check_books(v, D("100000"))


async def test_forming_bar_high_fills_once_and_never_on_prices_before_the_order(env: Env) -> None:
    v = await env.venue(max_participation=D("0.5"))
    await v.submit(req("s1", "SELL", "LIMIT", "2", limit_price=D(105)))
    # the tape was seeded from the quote (100): this bar's earlier 106 is not trusted
    await env.quotes.bar(T0, 100, 106, 100, 101, 2, closed=False)
    assert (await order(v, "s1")).filled_quantity == 0
    await env.quotes.bar(T0, 100, 107, 100, 104, 4, closed=False)  # new high: 1 of 2 (volume +2)
    assert (await order(v, "s1")).filled_quantity == D(1)
    await env.quotes.bar(T0, 100, 107, 100, 103, 8, closed=False)  # same high again: nothing
    await env.quotes.bar(T0, 100, 107, 100, 102, 9, closed=True)
    assert (await order(v, "s1")).filled_quantity == D(1)
    await env.quotes.bar(T0, 100, 108, 100, 106, 12, closed=False)  # a late update: +3 volume
    o = await order(v, "s1")
    assert (o.status, o.filled_quantity, o.average_price) == ("filled", D(2), D(105))


async def test_resting_limit_buy_fills_at_the_limit_or_at_a_lower_open(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("l1", "BUY", "LIMIT", "1", limit_price=D(95)))
    await v.submit(req("l2", "BUY", "LIMIT", "1", limit_price=D(90)))
    assert [o.status for o in await v.open_orders()] == ["submitted", "submitted"]
    await env.quotes.bar(T0 + MIN, 99, 101, 96, 97)
    assert len(await v.fills()) == 0
    await env.quotes.bar(T0 + 2 * MIN, 97, 98, 94, 96)
    await env.quotes.bar(T0 + 3 * MIN, 88, 89, 87, 88.5)
    f1, f2 = await v.fills()
    assert (f1.client_order_id, f1.price, f1.fee) == ("l1", D(95), D("1.095"))
    assert (f2.client_order_id, f2.price, f2.fee) == ("l2", D(88), D("1.088"))
    assert f1.liquidity == "taker"
    await check_books(v, D("100000"))


async def test_stop_sell_triggers_with_slippage_in_the_bar_and_on_a_gap(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("b", "BUY", "MARKET", "2"))
    await v.submit(req("s95", "SELL", "STOP", "1", stop_price=D(95)))
    await v.submit(req("s90", "SELL", "STOP", "1", stop_price=D(90)))
    await env.quotes.bar(T0 + MIN, 97, 98, 94, 96)
    await env.quotes.bar(T0 + 2 * MIN, 85, 86, 84, 85)
    _, f1, f2 = await v.fills()
    assert (f1.client_order_id, f1.price) == ("s95", D("94.9525"))
    assert (f2.client_order_id, f2.price) == ("s90", D("84.9575"))
    assert (await order(v, "s95")).type == "STOP"
    assert await v.positions() == []
    await check_books(v, D("100000"))


async def test_stop_limit_fills_at_the_stop_or_rests_as_a_limit_after_a_gap(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("sl1", "BUY", "STOP_LIMIT", "1", stop_price=D(105), limit_price=D(106)))
    await env.quotes.bar(T0 + MIN, 101, 104, 100, 103)
    assert await v.fills() == []
    await env.quotes.bar(T0 + 2 * MIN, 104, 108, 103.5, 107)
    (f,) = await v.fills()
    assert (f.client_order_id, f.price) == ("sl1", D(105))
    await v.submit(req("sl2", "BUY", "STOP_LIMIT", "1", stop_price=D(108), limit_price=D(109)))
    await env.quotes.bar(T0 + 3 * MIN, 110, 112, 109.5, 111)  # gaps through both: armed, not filled
    assert (await order(v, "sl2")).status == "submitted"
    await env.quotes.bar(T0 + 4 * MIN, 110, 110, 108.5, 109)
    assert [(f.client_order_id, f.price) for f in await v.fills()][-1] == ("sl2", D(109))


async def test_trailing_stop_follows_the_highs_then_triggers(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("b", "BUY", "MARKET", "1"))
    await v.submit(req("t1", "SELL", "TRAILING_STOP", "1", trail_percent=D("0.1")))
    assert (await order(v, "t1")).stop_price == D(90)
    await env.quotes.bar(T0 + MIN, 101, 110, 100, 108)
    assert (await order(v, "t1")).stop_price == D(99)
    await env.quotes.bar(T0 + 2 * MIN, 108, 109, 100, 101)
    assert (await order(v, "t1")).status == "submitted"
    await env.quotes.bar(T0 + 3 * MIN, 101, 102, 98, 98.5)
    t = await order(v, "t1")
    assert (t.status, t.average_price, t.type) == ("filled", D("98.9505"), "TRAILING_STOP")
    await check_books(v, D("100000"))


async def test_day_order_expires_on_the_next_utc_day(env: Env) -> None:
    v = await env.venue()
    events = drain(v)
    await v.submit(req("d1", "BUY", "LIMIT", "1", limit_price=D(90), time_in_force="DAY"))
    await v.submit(req("g1", "BUY", "LIMIT", "1", limit_price=D(80)))
    await env.quotes.bar(T0 + MIN, 99, 100, 95, 96)
    env.clock.set(datetime(2024, 1, 3, 0, 0, 1, tzinfo=UTC))
    await env.quotes.bar(T0 + 2 * MIN, 95, 96, 85, 86)
    d = await order(v, "d1")
    assert (d.status, d.filled_quantity, d.reason) == ("expired", D(0), "day order not filled")
    assert (await order(v, "g1")).status == "submitted" and await v.fills() == []
    assert [getattr(e, "status", None) for e in await events()] == ["submitted", "submitted", "expired"]


async def test_ioc_fills_what_it_can_and_fok_all_or_nothing(env: Env) -> None:
    env.quotes.set(SYM, 100, volume=10)
    v = await env.venue(max_participation=D("0.1"))
    await v.submit(req("ioc", "BUY", "MARKET", "3", time_in_force="IOC"))
    await v.submit(req("fok", "BUY", "MARKET", "3", time_in_force="FOK"))
    await v.submit(req("fok1", "BUY", "MARKET", "1", time_in_force="FOK"))
    await v.submit(req("iocl", "BUY", "LIMIT", "1", limit_price=D(90), time_in_force="IOC"))
    states = [
        (o.status, o.filled_quantity) for o in [await order(v, c) for c in ("ioc", "fok", "fok1", "iocl")]
    ]
    assert states == [("expired", D(1)), ("expired", D(0)), ("filled", D(1)), ("expired", D(0))]
    assert [f.client_order_id for f in await v.fills()] == ["ioc", "fok1"]
    assert env.exchanges[0]._streams == {}


async def test_cancel_open_filled_and_unknown(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("open", "BUY", "LIMIT", "1", limit_price=D(90)))
    await v.submit(req("done", "BUY", "MARKET", "1"))
    c = await v.cancel(client_order_id="open", symbol=SYM)
    assert (c.status, c.reason) == ("cancelled", "cancelled on request")
    assert (await v.cancel(client_order_id="open", symbol=SYM)).status == "cancelled"
    assert (await v.cancel(client_order_id="done", symbol=SYM)).status == "filled"
    with pytest.raises(VenueRejected):
        await v.cancel(client_order_id="nope", symbol=SYM)
    with pytest.raises(VenueRejected):
        await v.cancel(client_order_id="done", symbol="ETHUSDT")
    assert await v.fetch_order(client_order_id="nope", symbol=SYM) is None
    assert await v.open_orders() == []
    await _until(lambda: env.exchanges[0]._streams == {}, "the stream to stop")


async def test_submit_is_idempotent_by_client_order_id(env: Env) -> None:
    v = await env.venue()
    first = await v.submit(req("same", "BUY", "MARKET", "1"))
    again = await asyncio.gather(*(v.submit(req("same", "BUY", "MARKET", "1")) for _ in range(10)))
    assert {a.venue_order_id for a in again} == {first.venue_order_id}
    assert {a.status for a in again} == {"filled"}
    assert len(await v.fills()) == 1
    with pytest.raises(VenueRejected) as err:
        await v.submit(req("same", "BUY", "MARKET", "2"))
    assert err.value.code == "duplicate_client_order_id"
    # another account may use the same client id
    other = await env.exchanges[0].account("acct-2", initial_cash=D(1000))
    assert (await other.submit(req("same", "BUY", "MARKET", "1"))).venue_order_id != first.venue_order_id


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (OrderRequest("x", "DOGEUSD", "BUY", "MARKET", D(1)), "unknown symbol"),
        (req("x", "BUY", "MARKET", "0"), "quantity"),
        (req("x", "BUY", "MARKET", "-1"), "quantity"),
        (req("x", "BUY", "LIMIT", "1"), "needs a limit price"),
        (req("x", "BUY", "MARKET", "1", limit_price=D(1)), "takes no limit price"),
        (req("x", "BUY", "STOP", "1"), "needs a stop price"),
        (req("x", "BUY", "LIMIT", "1", limit_price=D(1), stop_price=D(1)), "takes no stop price"),
        (req("x", "SELL", "TRAILING_STOP", "1"), "trail_percent"),
        (req("x", "SELL", "TRAILING_STOP", "1", trail_percent=D(2)), "below 1"),
        (req("x", "BUY", "STOP", "1", stop_price=D(1), time_in_force="IOC"), "IOC applies"),
        (req("x", "HOLD", "MARKET", "1"), "unsupported"),
        (req("", "BUY", "MARKET", "1"), "client_order_id"),
        (req("x", "BUY", "MARKET", "1", reduce_only=True), "reduce-only"),
        (req("x", "BUY", "MARKET", "2000"), "insufficient funds"),
        (req("x", "BUY", "LIMIT", "1010", limit_price=D(99)), "insufficient funds"),
    ],
)
async def test_bad_orders_are_rejected_and_nothing_is_placed(
    env: Env, request_: OrderRequest, reason: str
) -> None:
    v = await env.venue()
    with pytest.raises(VenueRejected, match=reason):
        await v.submit(request_)
    assert await v.fetch_order(client_order_id="x", symbol=request_.symbol) is None
    assert await v.open_orders() == [] and await v.fills() == []


async def test_free_cash_holds_back_open_buys(env: Env) -> None:
    v = await env.venue(cash="1000")
    await v.submit(req("l", "BUY", "LIMIT", "5", limit_price=D(90)))
    (bal,) = await v.balances()
    assert (bal.total, bal.free) == (D(1000), D(1000) - (D(450) + D("0.45") + 1))
    with pytest.raises(VenueRejected, match="insufficient funds"):
        await v.submit(req("m", "BUY", "MARKET", "6"))
    await v.cancel(client_order_id="l", symbol=SYM)
    await v.submit(req("m", "BUY", "MARKET", "6"))


async def test_reduce_only_is_capped_to_the_position(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("b", "BUY", "MARKET", "1"))
    await v.submit(req("r", "SELL", "LIMIT", "3", limit_price=D(101), reduce_only=True))
    await env.quotes.bar(T0 + MIN, 100, 102, 99, 101)
    r = await order(v, "r")
    assert (r.status, r.filled_quantity, r.reason) == ("cancelled", D(1), "reduce-only: position closed")
    assert await v.positions() == []
    # one that finds the position already closed when it triggers is cancelled without a fill
    await v.submit(req("b2", "BUY", "MARKET", "1"))
    await v.submit(req("r2", "SELL", "LIMIT", "1", limit_price=D(103), reduce_only=True))
    await v.submit(req("s2", "SELL", "MARKET", "1"))
    await env.quotes.bar(T0 + 2 * MIN, 101, 104, 100, 103)
    r2 = await order(v, "r2")
    assert (r2.status, r2.filled_quantity, r2.reason) == (
        "cancelled",
        D(0),
        "reduce-only: nothing left to reduce",
    )


async def test_a_restarted_exchange_keeps_its_book_and_resumes_matching(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("b", "BUY", "MARKET", "3"))
    await v.submit(req("rest", "SELL", "LIMIT", "1", limit_price=D(110)))
    await v.submit(req("trail", "SELL", "TRAILING_STOP", "1", trail_percent=D("0.05")))
    await env.quotes.bar(T0 + MIN, 101, 104, 100, 103)
    before = (await v.balances(), await v.positions(), await v.fills(), await v.open_orders())
    await env.exchanges.pop().close()  # gone; its database stays

    x2 = await env.exchange()
    v2 = await x2.account("acct-1", initial_cash=D(1))  # exists: keeps its 100000
    assert (await v2.balances(), await v2.positions(), await v2.fills(), await v2.open_orders()) == before
    assert (await order(v2, "trail")).stop_price == D("98.8")  # 5 % under the best high 104
    await env.quotes.bar(T0 + 2 * MIN, 103, 111, 102, 110)
    assert (await order(v2, "rest")).status == "filled"
    await env.quotes.bar(T0 + 3 * MIN, 110, 110, 104, 104.5)  # trail: best 111, level 105.45
    t = await order(v2, "trail")
    assert (t.status, t.average_price) == ("filled", D("105.45") * (1 - SLIP))
    await check_books(v2, D("100000"))


async def test_twenty_concurrent_market_orders_fill_exactly(env: Env) -> None:
    v = await env.venue()
    qty = [D(f"0.{i + 1:02d}") for i in range(20)]
    acks = await asyncio.gather(*(v.submit(req(f"c{i}", "BUY", "MARKET", str(q))) for i, q in enumerate(qty)))
    assert len({a.venue_order_id for a in acks}) == 20
    fills = await v.fills()
    assert len(fills) == 20 and sum((f.quantity for f in fills), D(0)) == sum(qty, D(0)) == D("2.10")
    assert {(await order(v, f"c{i}")).status for i in range(20)} == {"filled"}
    (pos,) = await v.positions()
    assert pos.quantity == D("2.10") and pos.average_price == D("100.05")
    await check_books(v, D("100000"))


async def test_latency_delays_the_order_until_the_clock_passed_it(env: Env) -> None:
    v = await env.venue(latency_ns=2 * 10**9)
    await v.submit(req("lat", "BUY", "MARKET", "1"))
    assert await v.fills() == []
    await env.quotes.bar(T0 + MIN, 101, 102, 100, 101)
    assert await v.fills() == []
    env.clock.advance(3)
    await env.quotes.bar(T0 + 2 * MIN, 102, 103, 101, 102)
    (f,) = await v.fills()
    assert f.price == D("102.051") and f.ts_ns == T0 + 3 * 10**9
    assert await v.fills(since_ns=f.ts_ns) == [f] and await v.fills(since_ns=f.ts_ns + 1) == []
    assert await v.fills(symbol=SYM) == [f] and await v.fills(symbol="ETHUSDT") == []


async def test_a_failed_commit_changes_nothing_and_publishes_nothing(env: Env) -> None:
    v = await env.venue()
    await v.submit(req("l", "BUY", "LIMIT", "1", limit_price=D(95)))
    events = drain(v)
    async with env.engines[-1].begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE trading_paper_fills RENAME TO broken_fills")
    await env.quotes.bar(T0 + MIN, 96, 97, 94, 95)  # reaches the limit: the fill cannot commit
    o = await order(v, "l")
    assert (o.status, o.filled_quantity, o.average_price) == ("submitted", D(0), None)
    assert await events() == [] and (await v.balances())[0].total == D(100000)
    async with env.engines[-1].begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE broken_fills RENAME TO trading_paper_fills")
    await env.quotes.bar(T0 + 2 * MIN, 95.5, 96, 93, 94)
    (f,) = await v.fills()
    assert (f.price, (await order(v, "l")).status) == (D(95), "filled")
    assert [type(e).__name__ for e in await events()] == ["VenueFill", "VenueOrder"]


async def test_every_consumer_gets_every_event_until_close(env: Env) -> None:
    v = await env.venue()
    one, two = drain(v), drain(v)
    await v.submit(req("m", "BUY", "MARKET", "1"))
    first, second = await one(), await two()
    assert first == second and len(first) == 3
    await v.close()
    assert [e async for e in v.events()] == []
    await v.connect()
    three = drain(v)
    await v.submit(req("m2", "SELL", "MARKET", "1"))
    assert len(await three()) == 3


async def test_venue_facts_and_event_stream_end(env: Env) -> None:
    v: Venue = await env.venue()
    assert v.name == "paper"
    perms = await v.permissions()
    assert (perms.can_trade, perms.can_withdraw, perms.detail) == (True, False, "paper account")
    rules = await v.instrument(SYM)
    assert rules is not None and (rules.base, rules.quote) == ("BTC", "USDT")
    assert await v.instrument("NOPE") is None
    stream = v.events()
    await v.close()
    assert [e async for e in stream] == []


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from decimal import Decimal as D
    from algotrendy.adapters.brokers.paper import PaperExchange
    from datetime import UTC, datetime
    from algotrendy.core.clock import ManualClock
    from algotrendy.core.venue import OrderRequest, Quote
    from algotrendy.db.base import metadata
    from algotrendy.db.engine import make_engine, make_sessionmaker

    class Quotes:
        async def last(self, symbol):
            return Quote(symbol, 0, D(100), None)
        async def stream(self, symbol):
            await asyncio.Event().wait()
            yield None

    async def main(url):
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        x = PaperExchange(sessions=make_sessionmaker(engine), quotes=Quotes(),
                          clock=ManualClock(datetime(2024, 1, 2, 10, tzinfo=UTC)),
                          fee_rate=D(0), fee_fixed=D(0), slippage=D(0))
        await x.start()
        v = await x.account("acct-1", initial_cash=D(1000))
        await v.submit(OrderRequest("crash", "BTCUSDT", "BUY", "LIMIT", D(1), limit_price=D(90)))
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_an_acknowledged_order_survives_kill_9(env: Env) -> None:
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", CHILD, env.url], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    v = await env.venue()
    (o,) = await v.open_orders()
    assert (o.client_order_id, o.status, o.limit_price) == ("crash", "submitted", D(90))
    assert (await v.balances())[0].total == D(1000)
    await env.quotes.bar(T0 + MIN, 91, 92, 89, 90)
    assert (await order(v, "crash")).status == "filled"
    assert os.path.exists(env.url.split("///", 1)[1])
