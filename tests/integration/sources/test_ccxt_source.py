"""The ccxt source (binance, kraken, coinbaseexchange) against fake venues on 127.0.0.1.

ccxt is pointed at a fake by overriding ``exchange.urls['api']`` (``rehost_api_urls``); markets
are loaded from the fake's own market endpoint, or given with ``markets=``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.sources.ccxt_source import CcxtSource, rehost_api_urls
from algotrendy.core.errors import ConfigurationError, Invalid, NotFound, TemporaryError
from algotrendy.core.market import Timeframe
from tests.fakes import FakeBinance, FakeCoinbase, FakeKraken
from tests.fakes.data import sample
from tests.integration.sources.conftest import FAST, assert_bars_equal

H1 = Timeframe.parse("1h")
BTC = sample("BTCUSDT_1h_binance")


def make(exchange_id: str, url: str, **kwargs: object) -> CcxtSource:
    kwargs.setdefault("retry", FAST)
    return CcxtSource(exchange_id, urls=rehost_api_urls(exchange_id, url), **kwargs)


@pytest.fixture
async def source(binance: FakeBinance) -> AsyncIterator[CcxtSource]:
    src = make("binance", binance.url, timeout=1.0)
    yield src
    await src.close()


def test_rehost_keeps_the_path_and_moves_the_host() -> None:
    urls = rehost_api_urls("binance", "http://127.0.0.1:9")
    assert urls["public"] == "http://127.0.0.1:9/api/v3"
    assert urls["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"


async def test_binance_page_equals_the_sample(source: CcxtSource, binance: FakeBinance) -> None:
    i = 1000
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[i]), limit=500)
    assert_bars_equal(page, BTC.bars(i, i + 500))
    assert [r.path for r in binance.requests()] == ["/api/v3/exchangeInfo", "/api/v3/klines"]
    assert binance.requests("/api/v3/klines")[0].query["startTime"] == str(BTC.ts[i] // 1_000_000)


async def test_venue_id_is_accepted_as_symbol(source: CcxtSource) -> None:
    page = await source.fetch_bars("BTCUSDT", H1, start_ns=int(BTC.ts[0]), limit=3)
    assert_bars_equal(page, BTC.bars(0, 3))


async def test_binance_pages_across_a_range_equal_the_file(source: CcxtSource, binance: FakeBinance) -> None:
    i, j = 2000, 9000  # 7,000 bars, 8 pages of 1,000, bounded by end (exclusive)
    start, end = int(BTC.ts[i]), int(BTC.ts[j])
    pages, cursor = [], start
    while True:
        page = await source.fetch_bars("BTC/USDT", H1, start_ns=cursor, end_ns=end)
        if not len(page):
            break
        pages.append(page)
        cursor = int(page.ts[-1]) + H1.nanos
    ts = np.concatenate([p.ts for p in pages])
    close = np.concatenate([p.close for p in pages])
    want = BTC.bars(i, j)
    np.testing.assert_array_equal(ts, want.ts)
    np.testing.assert_array_equal(close, want.close)
    assert len(pages) == 7
    assert binance.requests("/api/v3/klines")[0].query["endTime"] == str(end // 1_000_000 - 1)


async def test_markets_given_means_no_market_request(binance: FakeBinance) -> None:
    market = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "baseId": "BTC",
        "quoteId": "USDT",
        "type": "spot",
        "spot": True,
        "active": True,
        "precision": {"amount": 1e-5, "price": 0.01},
        "limits": {},
    }
    src = make("binance", binance.url, markets=[market])
    try:
        page = await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[5]), limit=5)
    finally:
        await src.close()
    assert_bars_equal(page, BTC.bars(5, 10))
    assert [r.path for r in binance.requests()] == ["/api/v3/klines"]


async def test_unknown_market_is_not_found_naming_it(source: CcxtSource) -> None:
    with pytest.raises(NotFound, match="DOGE/USDT"):
        await source.fetch_bars("DOGE/USDT", H1, start_ns=int(BTC.ts[0]))


async def test_symbol_the_venue_refuses_is_not_found(binance: FakeBinance) -> None:
    # ccxt thinks the market exists (given markets); the venue answers -1121 Invalid symbol.
    market = {
        "id": "DOGEUSDT",
        "symbol": "DOGE/USDT",
        "base": "DOGE",
        "quote": "USDT",
        "baseId": "DOGE",
        "quoteId": "USDT",
        "type": "spot",
        "spot": True,
        "active": True,
        "precision": {"amount": 1, "price": 1e-5},
        "limits": {},
    }
    src = make("binance", binance.url, markets=[market])
    try:
        with pytest.raises((NotFound, Invalid), match="DOGE"):
            await src.fetch_bars("DOGE/USDT", H1, start_ns=int(BTC.ts[0]))
    finally:
        await src.close()
    assert len(binance.requests("/api/v3/klines")) == 1  # a 4xx is not retried


async def test_unsupported_timeframe_is_invalid(source: CcxtSource) -> None:
    with pytest.raises(Invalid, match="7m"):
        await source.fetch_bars("BTC/USDT", Timeframe.parse("7m"), start_ns=0)


def test_unknown_exchange_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="nosuchvenue"):
        CcxtSource("nosuchvenue")


# ---- faults --------------------------------------------------------------------------------


async def test_retries_a_500_then_succeeds(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.fail(500, times=2, path="/api/v3/klines")
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=10)
    assert_bars_equal(page, BTC.bars(0, 10))
    assert [r.status for r in binance.requests("/api/v3/klines")] == [500, 500, 200]


async def test_429_waits_the_retry_after(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.rate_limit(retry_after=1, path="/api/v3/klines")
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=10)
    assert len(page) == 10
    first, second = binance.requests("/api/v3/klines")
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95


async def test_timeout_is_retried(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.delay(3.0, path="/api/v3/klines")  # the source's timeout is 1 s
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=10)
    assert len(page) == 10
    assert len(binance.requests("/api/v3/klines")) == 2


async def test_persistent_failure_is_a_temporary_error_naming_the_source(
    source: CcxtSource, binance: FakeBinance
) -> None:
    binance.faults.fail(503, times=None, path="/api/v3/klines")
    with pytest.raises(TemporaryError, match="binance") as err:
        await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]))
    assert err.value.code == "source_unavailable"
    assert "BTC/USDT" in str(err.value)
    assert len(binance.requests("/api/v3/klines")) == FAST.attempts


@pytest.mark.parametrize("how", ["nan", "negative", "missing", "null", "high_lt_low", "zero"])
async def test_malformed_row_is_rejected_and_reported(
    source: CcxtSource, binance: FakeBinance, how: str
) -> None:
    binance.faults.malformed(how, row=3, path="/api/v3/klines")
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=10)
    want = BTC.bars(0, 10)
    keep = np.array([k != 3 for k in range(10)])
    np.testing.assert_array_equal(page.ts, want.ts[keep])
    np.testing.assert_array_equal(page.close, want.close[keep])
    rejected = page.rejected
    assert len(rejected) == 1
    assert rejected[0].reason
    if how not in ("missing",):
        assert rejected[0].ts == int(BTC.ts[3])


async def test_strict_source_refuses_a_page_with_a_bad_row(binance: FakeBinance) -> None:
    src = make("binance", binance.url, strict=True)
    binance.faults.malformed("nan", row=0, path="/api/v3/klines")
    try:
        with pytest.raises(TemporaryError, match="binance") as err:
            await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=10)
    finally:
        await src.close()
    assert err.value.code == "bad_upstream_data"


async def test_non_json_body_is_retried(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.garbage(path="/api/v3/klines")
    page = await source.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=5)
    assert len(page) == 5


# ---- trades and order book ------------------------------------------------------------------


async def test_trades_are_parsed(source: CcxtSource, binance: FakeBinance) -> None:
    trades = await source.fetch_trades("BTC/USDT", limit=20)
    raw = binance.synthetic_trades("BTCUSDT", 20)
    assert [t.trade_id for t in trades] == [str(r["id"]) for r in raw]
    assert [t.price for t in trades] == [float(r["price"]) for r in raw]
    assert [t.size for t in trades] == [float(r["qty"]) for r in raw]
    assert all(t.venue == "binance" and t.symbol == "BTC/USDT" for t in trades)
    assert trades[0].ts == raw[0]["time"] * 1_000_000
    assert binance.requests("/api/v3/trades")[0].query["limit"] == "20"


async def test_a_bad_trade_is_left_out(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.malformed("negative", row=4, path="/api/v3/trades")
    trades = await source.fetch_trades("BTC/USDT", limit=10)
    assert len(trades) == 9
    assert "3000000004" not in {t.trade_id for t in trades}


async def test_order_book_is_sorted_best_first(source: CcxtSource) -> None:
    book = await source.fetch_order_book("BTC/USDT", limit=10)
    assert len(book.bids) == len(book.asks) == 10
    assert book.bids[0][0] < book.asks[0][0]
    assert [b[0] for b in book.bids] == sorted((b[0] for b in book.bids), reverse=True)
    assert [a[0] for a in book.asks] == sorted(a[0] for a in book.asks)


async def test_crossed_book_is_refused(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.malformed("crossed", path="/api/v3/depth")
    with pytest.raises(TemporaryError, match="crossed"):
        await source.fetch_order_book("BTC/USDT", limit=10)


async def test_bad_book_level_is_left_out_and_reported(source: CcxtSource, binance: FakeBinance) -> None:
    binance.faults.malformed("negative", row=2, path="/api/v3/depth")
    book = await source.fetch_order_book("BTC/USDT", limit=10)
    assert len(book.bids) == 9 and len(book.rejected) == 1


# ---- other venues ----------------------------------------------------------------------------


async def test_kraken_serves_its_latest_720_bars(kraken: FakeKraken) -> None:
    src = make("kraken", kraken.url)
    try:
        i = len(BTC) - 300
        page = await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[i]))
    finally:
        await src.close()
    assert src.page_limit == 720
    assert_bars_equal(page, BTC.bars(i, len(BTC)))
    assert kraken.requests("/0/public/OHLC")[0].query["pair"] == "XBTUSDT"


async def test_kraken_unknown_pair_error_in_a_200_is_not_found(kraken: FakeKraken) -> None:
    market = {
        "id": "DOGEUSDT",
        "symbol": "DOGE/USDT",
        "base": "DOGE",
        "quote": "USDT",
        "baseId": "XDG",
        "quoteId": "USDT",
        "type": "spot",
        "spot": True,
        "active": True,
        "altname": "DOGEUSDT",
        "precision": {"amount": 1e-8, "price": 1e-7},
        "limits": {},
    }
    src = make("kraken", kraken.url, markets=[market])
    try:
        with pytest.raises(NotFound, match="DOGE/USDT"):
            await src.fetch_bars("DOGE/USDT", H1, start_ns=int(BTC.ts[-5]))
    finally:
        await src.close()


async def test_coinbase_windows_page_across_a_range(coinbase: FakeCoinbase) -> None:
    src = make("coinbaseexchange", coinbase.url)
    i, j = 100, 1000
    try:
        pages, cursor = [], int(BTC.ts[i])
        while True:
            page = await src.fetch_bars("BTC/USDT", H1, start_ns=cursor, end_ns=int(BTC.ts[j]))
            if not len(page):
                break
            pages.append(page)
            cursor = int(page.ts[-1]) + H1.nanos
    finally:
        await src.close()
    want = BTC.bars(i, j)
    np.testing.assert_array_equal(np.concatenate([p.ts for p in pages]), want.ts)
    np.testing.assert_array_equal(np.concatenate([p.open for p in pages]), want.open)
    assert all(r.status == 200 for r in coinbase.requests("/products/BTC-USDT/candles"))


async def test_coinbase_steps_over_a_gap_longer_than_a_window(coinbase: FakeCoinbase) -> None:
    gap = 4189  # 2018-02-08: 34 hours without bars in the sample
    assert BTC.ts[gap + 1] - BTC.ts[gap] == 34 * H1.nanos
    src = make("coinbaseexchange", coinbase.url, page_limit=10)
    try:
        page = await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[gap]) + H1.nanos)
    finally:
        await src.close()
    # windows of 10 h from the hour after the last bar: three are empty, the 4th holds 7 bars
    assert_bars_equal(page, BTC.bars(gap + 1, gap + 8))
    assert len(coinbase.requests("/products/BTC-USDT/candles")) == 4


async def test_coinbase_bad_row_is_rejected(coinbase: FakeCoinbase) -> None:
    src = make("coinbaseexchange", coinbase.url)
    coinbase.faults.malformed("negative", row=0, path="/products/BTC-USDT/candles")
    try:
        page = await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=20)
    finally:
        await src.close()
    # Coinbase answers newest first: row 0 is the newest bar of the window
    assert_bars_equal(page, BTC.bars(0, 19))
    assert [r.ts for r in page.rejected] == [int(BTC.ts[19])]


async def test_a_nan_token_makes_the_body_invalid_json_and_is_refused(coinbase: FakeCoinbase) -> None:
    # ccxt's JSON parser (orjson) refuses NaN and would carry on with an empty answer; the
    # adapter notices, retries, and refuses the page rather than report "no bars".
    src = make("coinbaseexchange", coinbase.url)
    coinbase.faults.malformed("nan", row=0, times=None, path="/products/BTC-USDT/candles")
    try:
        with pytest.raises(TemporaryError, match="not JSON"):
            await src.fetch_bars("BTC/USDT", H1, start_ns=int(BTC.ts[0]), limit=20)
    finally:
        await src.close()
    assert len(coinbase.requests("/products/BTC-USDT/candles")) == FAST.attempts
