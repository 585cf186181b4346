"""CcxtWebsocketFeed against a fake Binance (tests/fakes/ws_exchange.py) on 127.0.0.1.

ccxt.pro's own binance implementation runs unmodified; only its URLs point at the fake: the spot
websocket base (``urls.api.ws.spot``) and the public REST base (``urls.api.public``, for the one
``exchangeInfo`` call of ``load_markets``), with ``options.fetchMarkets.types = ["spot"]`` so it
does not also ask the futures REST hosts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import ccxt.pro
import pytest
from structlog.testing import capture_logs

from algotrendy.adapters.feeds.ccxt_ws import CcxtWebsocketFeed
from algotrendy.core.errors import Invalid, NotFound
from algotrendy.core.market import BarUpdate, SeriesKey, Timeframe, Trade
from tests.fakes.ws_exchange import FakeBinanceWs, kline_event

M1 = Timeframe.parse("1m")
BTC = SeriesKey("BTCUSDT", "binance", M1)
ETH = SeriesKey("ETHUSDT", "binance", M1)
MIN = 60_000
STREAM = "btcusdt@kline_1m"


def this_minute() -> int:
    return int(time.time() * 1000) // MIN * MIN


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinanceWs]:
    async with FakeBinanceWs() as server:
        yield server


def make_feed(fake: FakeBinanceWs, **kwargs: Any) -> CcxtWebsocketFeed:
    return CcxtWebsocketFeed(
        "binance",
        urls=fake.ccxt_urls(),
        options={"fetchMarkets": {"types": ["spot"]}},
        reconnect_delay=0.05,
        **kwargs,
    )


@pytest.fixture
async def feed(fake: FakeBinanceWs) -> AsyncIterator[CcxtWebsocketFeed]:
    async with make_feed(fake) as f:
        yield f


class Collector:
    """Consumes an iterator in the background; ``next()`` waits for the next item."""

    def __init__(self, it: AsyncIterator[Any]) -> None:
        self.items: list[Any] = []
        self.times: list[float] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(it))

    async def _run(self, it: AsyncIterator[Any]) -> None:
        async with aclosing(it) as items:  # type: ignore[type-var]
            async for item in items:
                self.times.append(time.perf_counter())
                self.items.append(item)
                self._queue.put_nowait(item)

    async def next(self, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def nothing_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self._queue.empty(), (
            f"unexpected: {[self._queue.get_nowait() for _ in range(self._queue.qsize())]}"
        )

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def bar(u: BarUpdate) -> tuple[int, float, float, float, float, float, bool]:
    return (u.ts // 1_000_000, u.open, u.high, u.low, u.close, u.volume, u.closed)


async def test_klines_become_partial_then_closed_bars(fake: FakeBinanceWs, feed: CcxtWebsocketFeed) -> None:
    t = this_minute() - 2 * MIN
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    assert fake.rest_requests == ["/api/v3/exchangeInfo"]

    await fake.send_kline("BTCUSDT", "1m", t, "100.0", "101.5", "99.5", "101.0", "3.25")
    first = await got.next()
    assert first.key == BTC and bar(first) == (t, 100.0, 101.5, 99.5, 101.0, 3.25, False)

    await fake.send_kline("BTCUSDT", "1m", t, "100.0", "102.0", "99.5", "101.8", "4.0", closed=True)
    assert bar(await got.next()) == (t, 100.0, 102.0, 99.5, 101.8, 4.0, False)

    await fake.send_kline("BTCUSDT", "1m", t + MIN, "101.8", "101.9", "101.7", "101.9", "0.1")
    assert bar(await got.next()) == (t, 100.0, 102.0, 99.5, 101.8, 4.0, True)  # closed by the next bar
    assert bar(await got.next()) == (t + MIN, 101.8, 101.9, 101.7, 101.9, 0.1, False)
    await got.stop()


async def test_repeated_kline_is_emitted_once(fake: FakeBinanceWs, feed: CcxtWebsocketFeed) -> None:
    t = this_minute()
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    for _ in range(3):
        await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 2)
    assert bar(await got.next())[4] == 100.5
    await got.nothing_more()
    await got.stop()


async def test_two_series_on_one_connection(fake: FakeBinanceWs, feed: CcxtWebsocketFeed) -> None:
    t = this_minute()
    got = Collector(feed.bars([BTC, ETH]))
    await fake.wait_subscribed(STREAM)
    await fake.wait_subscribed("ethusdt@kline_1m")
    await fake.send_kline("ETHUSDT", "1m", t, 10, 11, 9, 10.5, 1)
    await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1)
    keys = {(await got.next()).key, (await got.next()).key}
    assert keys == {BTC, ETH}
    assert fake.connections_total == 1
    await got.stop()


@pytest.mark.parametrize("abrupt", [True, False], ids=["network-loss", "server-close"])
async def test_reconnects_after_a_drop_without_duplicate_closed_bars(
    fake: FakeBinanceWs, feed: CcxtWebsocketFeed, abrupt: bool
) -> None:
    t = this_minute() - 3 * MIN
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1)
    await fake.send_kline("BTCUSDT", "1m", t + MIN, 100.5, 102, 100, 101, 1)
    assert [bar(await got.next())[-1] for _ in range(3)] == [False, True, False]

    with capture_logs() as logs:
        assert await fake.drop(abrupt=abrupt) == 1
        await fake.wait_subscribed(STREAM, timeout=10)  # ccxt redialled and resubscribed
        # as Binance does, the forming bar comes again after the resubscription; worse than
        # Binance, so does the bar that already closed
        await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1, closed=True)
        await fake.send_kline("BTCUSDT", "1m", t + MIN, 100.5, 102, 100, 101, 1)
        await fake.send_kline("BTCUSDT", "1m", t + MIN, 100.5, 103, 100, 102, 2)
        await fake.send_kline("BTCUSDT", "1m", t + 2 * MIN, 102, 102, 102, 102, 1)
        after = [bar(await got.next()) for _ in range(3)]
    assert after == [
        (t + MIN, 100.5, 103, 100, 102, 2, False),
        (t + MIN, 100.5, 103, 100, 102, 2, True),
        (t + 2 * MIN, 102, 102, 102, 102, 1, False),
    ]
    await got.nothing_more()
    closed = [u.ts for u in got.items if u.closed]
    assert len(closed) == len(set(closed)) == 2
    assert feed.reconnects == 1 and fake.connections_total == 2
    events = [entry["event"] for entry in logs]
    assert "feeds.ccxt_stream_lost" in events and "feeds.ccxt_reconnected" in events
    await got.stop()


async def test_reconnect_keeps_retrying_while_the_venue_is_down(fake: FakeBinanceWs) -> None:
    feed = make_feed(fake)
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    with capture_logs() as logs:
        await fake.stop()  # connections closed, new ones refused
        await asyncio.sleep(1.0)
        await fake.start()  # back on the same port
        await fake.wait_subscribed(STREAM, timeout=15)
    await fake.send_kline("BTCUSDT", "1m", this_minute(), 100, 101, 99, 100.5, 1)
    assert bar(await got.next())[4] == 100.5
    lost = [e for e in logs if e["event"] == "feeds.ccxt_stream_lost"]
    assert len(lost) >= 2  # the drop, then at least one refused redial
    assert feed.reconnects == 1
    await got.stop()
    await feed.close()


MALFORMED: list[Any] = [
    "garbage{",
    "[1, 2, 3]",
    {"e": "kline"},
    {"e": "kline", "s": "BTCUSDT", "k": [1]},
    {"e": "kline", "s": "BTCUSDT", "k": {"t": 0, "i": "1m", "s": "BTCUSDT"}},
    {"e": "trade", "s": "BTCUSDT"},
    {"result": None, "id": 424242},
]


def bad_klines(t: int) -> list[dict[str, Any]]:
    k = kline_event("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1)

    def mutate(**fields: Any) -> dict[str, Any]:
        return {**k, "k": {key: v for key, v in {**k["k"], **fields}.items() if v is not ...}}

    return [
        mutate(o="NaN"),
        mutate(c="Infinity"),
        mutate(h="abc"),
        mutate(l="-5"),
        mutate(v="-1"),
        mutate(c=...),  # missing close
        mutate(t="soon"),
        mutate(t=t + 1),
        mutate(h="98"),  # high below the close
        mutate(t=t + 60 * MIN),  # an hour in the future
        mutate(o=True),
    ]


async def test_malformed_messages_are_dropped_with_a_warning_and_the_stream_lives_on(
    fake: FakeBinanceWs, feed: CcxtWebsocketFeed
) -> None:
    t = this_minute() - MIN
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1)
    assert bar(await got.next())[4] == 100.5
    bad = bad_klines(t)
    with capture_logs() as logs:
        for message in [*MALFORMED, *bad]:
            await fake.send_raw(message, stream=STREAM)
        await fake.send_kline("BTCUSDT", "1m", t + MIN, 100.5, 101, 100, 100.7, 1)
        assert bar(await got.next()) == (t, 100, 101, 99, 100.5, 1, True)  # the last GOOD state of bar t
        assert bar(await got.next()) == (t + MIN, 100.5, 101, 100, 100.7, 1, False)
    await got.nothing_more()
    assert all(u.close in (100.5, 100.7) for u in got.items)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    unparseable = [e for e in warnings if e["event"] == "feeds.ccxt_message_dropped"]
    rejected = [e for e in warnings if e["event"] == "feeds.ccxt_data_rejected"]
    assert len(unparseable) == 4  # the first four of MALFORMED make ccxt's parser raise
    assert len(rejected) == len(bad) + 1  # every bad kline, and the t=0 one of MALFORMED
    assert {e["reason"] for e in rejected} >= {
        "open missing, NaN or infinite",
        "price not positive",
        "volume negative",
        "timestamp in the future",
        "high/low inconsistent with open/close",
    }
    assert feed.dropped == len(unparseable) + len(rejected)
    await got.stop()


async def test_trades_each_print_once_malformed_dropped(fake: FakeBinanceWs, feed: CcxtWebsocketFeed) -> None:
    now = int(time.time() * 1000)
    got = Collector(feed.trades(["BTCUSDT"]))
    await fake.wait_subscribed("btcusdt@trade")
    await fake.send_trade("BTCUSDT", 1, "100.5", "0.25", now - 10)
    first: Trade = await got.next()
    assert (first.symbol, first.venue, first.trade_id, first.price, first.size, first.ts) == (
        "BTCUSDT",
        "binance",
        "1",
        100.5,
        0.25,
        (now - 10) * 1_000_000,
    )
    await fake.send_trade("BTCUSDT", 1, "100.5", "0.25", now - 10)  # a repeat
    await fake.send_raw(
        {"e": "trade", "s": "BTCUSDT", "t": 2, "p": "NaN", "q": "1", "T": now}, stream="btcusdt@trade"
    )
    await fake.send_raw(
        {"e": "trade", "s": "BTCUSDT", "t": 3, "p": "100", "q": "-1", "T": now}, stream="btcusdt@trade"
    )
    await fake.send_trade("BTCUSDT", 4, "100.6", "1", now - 5)
    assert (await got.next()).trade_id == "4"
    await fake.drop()
    await fake.wait_subscribed("btcusdt@trade", timeout=10)
    await fake.send_trade("BTCUSDT", 4, "100.6", "1", now - 5)  # re-sent after the reconnect
    await fake.send_trade("BTCUSDT", 5, "100.7", "1", now)
    assert (await got.next()).trade_id == "5"
    await got.nothing_more()
    assert [t.trade_id for t in got.items] == ["1", "4", "5"]
    await got.stop()


async def test_subscribers_of_one_series_share_one_subscription(
    fake: FakeBinanceWs, feed: CcxtWebsocketFeed
) -> None:
    t = this_minute()
    a = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.5, 1)
    await a.next()
    b = Collector(feed.bars([BTC]))
    assert bar(await b.next())[4] == 100.5  # a late subscriber first gets the forming bar
    await fake.send_kline("BTCUSDT", "1m", t, 100, 101, 99, 100.6, 2)
    assert bar(await a.next()) == bar(await b.next())
    subscribes = [m for m in fake.received if m.get("method") == "SUBSCRIBE" and STREAM in m["params"]]
    assert len(subscribes) == 1
    await a.stop()
    await b.stop()


async def test_given_markets_skip_the_rest_call(fake: FakeBinanceWs) -> None:
    exchange = ccxt.pro.binance({"urls": fake.ccxt_urls(), "options": {"fetchMarkets": {"types": ["spot"]}}})
    markets = await exchange.load_markets()  # e.g. cached from an earlier run
    await exchange.close()
    assert fake.rest_requests == ["/api/v3/exchangeInfo"]
    async with make_feed(fake, markets=markets) as feed:
        got = Collector(feed.bars([BTC]))
        await fake.wait_subscribed(STREAM)
        await fake.send_kline("BTCUSDT", "1m", this_minute(), 100, 101, 99, 100.5, 1)
        assert bar(await got.next())[4] == 100.5
        await got.stop()
    assert fake.rest_requests == ["/api/v3/exchangeInfo"]  # none more


async def test_unknown_market_timeframe_or_venue_is_refused(feed: CcxtWebsocketFeed) -> None:
    with pytest.raises(NotFound, match="DOGEUSDT"):
        await anext(feed.bars([SeriesKey("DOGEUSDT", "binance", M1)]))
    with pytest.raises(Invalid, match="venue"):
        await anext(feed.bars([SeriesKey("BTCUSDT", "kraken", M1)]))
    with pytest.raises(Invalid, match="7m"):
        await anext(feed.bars([SeriesKey("BTCUSDT", "binance", Timeframe.parse("7m"))]))


async def test_close_ends_every_iterator(fake: FakeBinanceWs) -> None:
    feed = make_feed(fake)
    a, b = Collector(feed.bars([BTC])), Collector(feed.trades(["BTC/USDT"]))
    await fake.wait_subscribed(STREAM)
    await fake.wait_subscribed("btcusdt@trade")
    await feed.close()
    async with asyncio.timeout(5):
        await asyncio.gather(a._task, b._task)
    await fake.wait_disconnected()
    assert [x async for x in feed.bars([BTC])] == []


async def test_freshness_p99_under_one_second(fake: FakeBinanceWs, feed: CcxtWebsocketFeed) -> None:
    """Spec: a bar update reaches the consumer < 1 s after the venue sends it (p99 of 200)."""
    t = this_minute()
    got = Collector(feed.bars([BTC]))
    await fake.wait_subscribed(STREAM)
    sent: list[tuple[float, float]] = []
    for i in range(200):
        close = round(100 + 0.01 * (i + 1), 2)
        sent.append((close, time.perf_counter()))
        await fake.send_kline("BTCUSDT", "1m", t, 100, 1000, 1, close, i + 1)
        await asyncio.sleep(0.005)
    async with asyncio.timeout(10):
        while not got.items or got.items[-1].close < sent[-1][0]:
            await got.next()
    delays = []
    for close, at in sent:  # the first update showing this message's data (or newer: coalesced)
        i = next(i for i, u in enumerate(got.items) if u.close >= close)
        delays.append(got.times[i] - at)
    delays.sort()
    p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]
    print(f"\nfreshness over {len(delays)} klines: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert p99 < 1.0
    await got.stop()
