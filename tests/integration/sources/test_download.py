"""The download orchestrator: real adapters against fake vendors, into an in-memory BarStore.

Full history, interrupt and resume, rate limit measured at the fake, rejected rows, stop at
until/now; plus stub sources for the cases no vendor produces on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest

from algotrendy.adapters.sources.alpaca import AlpacaSource
from algotrendy.adapters.sources.base import RejectedRow, SourceBars
from algotrendy.adapters.sources.ccxt_source import CcxtSource, rehost_api_urls
from algotrendy.core.clock import ManualClock
from algotrendy.core.errors import Invalid, TemporaryError
from algotrendy.core.market import AssetType, Bars, SeriesKey, Timeframe
from algotrendy.services.marketdata.download import DownloadProgress, download
from tests.fakes import FakeAlpaca, FakeBinance
from tests.fakes.alpaca import KEY_ID, SECRET
from tests.fakes.data import sample
from tests.integration.sources.conftest import FAST, MemoryBarStore, assert_bars_equal

H1, D1 = Timeframe.parse("1h"), Timeframe.parse("1d")
BTC = sample("BTCUSDT_1h_binance")
SPY = sample("SPY_1d")
BTC_KEY = SeriesKey("BTC/USDT", "binance", H1)
SPY_KEY = SeriesKey("SPY", "alpaca", D1)
KLINES = "/api/v3/klines"


@pytest.fixture
async def ccxt_binance(binance: FakeBinance) -> AsyncIterator[CcxtSource]:
    src = CcxtSource("binance", urls=rehost_api_urls("binance", binance.url), retry=FAST, rate_limit=50)
    yield src
    await src.close()


def _ms(ts: int) -> str:
    return str(ts // 1_000_000)


async def test_full_history_equals_the_file(
    ccxt_binance: CcxtSource, binance: FakeBinance, store: MemoryBarStore
) -> None:
    events: list[DownloadProgress] = []
    result = await download(
        ccxt_binance,
        store,
        BTC_KEY,
        asset_type=AssetType.CRYPTO,
        since_ns=int(BTC.ts[0]),
        progress=events.append,
    )
    assert_bars_equal(await store.read(BTC_KEY), BTC.bars())
    assert result.bars == result.written == len(BTC)
    assert result.pages == len(binance.requests(KLINES)) == 60  # 59 full pages + the empty one
    assert result.first_ts == int(BTC.ts[0]) and result.last_ts == int(BTC.ts[-1])
    assert result.clean and result.resumed_from is None
    assert [e.pages for e in events[:-1]] == list(range(1, 60))
    assert events[-1].done and events[-1].fraction == 1.0
    assert 0 < events[10].fraction < events[40].fraction < 1


async def test_interrupted_download_resumes_from_the_last_stored_bar(
    ccxt_binance: CcxtSource, binance: FakeBinance, store: MemoryBarStore
) -> None:
    i, j = 10_000, 15_000
    since, until = int(BTC.ts[i]), int(BTC.ts[j])
    binance.faults.fail_after(4, 500, path=KLINES)  # the venue goes down after 4 pages
    with pytest.raises(TemporaryError, match="binance"):
        await download(
            ccxt_binance,
            store,
            BTC_KEY,
            asset_type=AssetType.CRYPTO,
            since_ns=since,
            until_ns=until,
            page_limit=500,
        )
    stored = await store.read(BTC_KEY)
    assert_bars_equal(stored, BTC.bars(i, i + 2000))  # every finished page is kept

    binance.faults.clear()
    before = len(binance.requests(KLINES))
    result = await download(
        ccxt_binance,
        store,
        BTC_KEY,
        asset_type=AssetType.CRYPTO,
        since_ns=since,
        until_ns=until,
        page_limit=500,
    )
    first_resumed = binance.requests(KLINES)[before]
    assert first_resumed.query["startTime"] == _ms(int(BTC.ts[i + 1999]))  # resumes at last_ts
    assert result.resumed_from == int(BTC.ts[i + 1999])
    assert_bars_equal(await store.read(BTC_KEY), BTC.bars(i, j))
    # exactly once: the first run wrote 2,000 rows, the second the other 3,000 (the re-fetched
    # last bar was unchanged, so it wrote nothing)
    assert result.written == (j - i) - 2000
    assert result.bars == (j - i) - 2000 + 1


async def test_rerun_of_a_complete_download_changes_nothing(
    ccxt_binance: CcxtSource, store: MemoryBarStore
) -> None:
    since, until = int(BTC.ts[0]), int(BTC.ts[3000])
    await download(ccxt_binance, store, BTC_KEY, asset_type=AssetType.CRYPTO, since_ns=since, until_ns=until)
    again = await download(
        ccxt_binance, store, BTC_KEY, asset_type=AssetType.CRYPTO, since_ns=since, until_ns=until
    )
    # one request: the last stored bar again, after which the cursor has reached the end
    assert again.written == 0 and again.bars == 1 and again.pages == 1
    assert_bars_equal(await store.read(BTC_KEY), BTC.bars(0, 3000))


async def test_rate_limit_is_respected_at_the_vendor(alpaca: FakeAlpaca, store: MemoryBarStore) -> None:
    rate = 8.0
    async with AlpacaSource(
        key_id=KEY_ID, secret_key=SECRET, base_url=alpaca.url, retry=FAST, rate_limit=rate
    ) as src:
        result = await download(
            src,
            store,
            SPY_KEY,
            asset_type=AssetType.ETF,
            since_ns=int(SPY.ts[0]),
            until_ns=int(SPY.ts[1200]),
            page_limit=100,
        )
    assert_bars_equal(await store.read(SPY_KEY), SPY.bars(0, 1200))
    arrivals = np.array([r.at for r in alpaca.requests()])
    assert len(arrivals) == result.pages == 12
    gaps = np.diff(arrivals)
    assert gaps.min() >= 1 / rate - 0.01, gaps  # loopback jitter only ever makes gaps longer
    assert (arrivals[-1] - arrivals[0]) >= (len(arrivals) - 1) / rate - 0.02


async def test_rejected_rows_are_counted_and_never_stored(
    ccxt_binance: CcxtSource, binance: FakeBinance, store: MemoryBarStore
) -> None:
    binance.faults.malformed("nan", row=7, after=1, path=KLINES)  # row 7 of the 2nd page
    result = await download(
        ccxt_binance,
        store,
        BTC_KEY,
        asset_type=AssetType.CRYPTO,
        since_ns=int(BTC.ts[0]),
        until_ns=int(BTC.ts[300]),
        page_limit=100,
    )
    bad = int(BTC.ts[107])
    assert not result.clean and result.rejected_count == 1
    assert result.rejected[0].ts == bad and "open" in result.rejected[0].reason
    stored = await store.read(BTC_KEY)
    assert bad not in set(stored.ts.tolist())
    np.testing.assert_array_equal(stored.ts, np.delete(BTC.ts[:300], 107))


async def test_stops_at_until_and_keeps_since(ccxt_binance: CcxtSource, store: MemoryBarStore) -> None:
    result = await download(
        ccxt_binance,
        store,
        BTC_KEY,
        asset_type=AssetType.CRYPTO,
        since_ns=int(BTC.ts[50]) - 1,
        until_ns=int(BTC.ts[250]) + 1,
    )
    assert_bars_equal(await store.read(BTC_KEY), BTC.bars(50, 251))
    assert result.end_ns == int(BTC.ts[250]) + 1


async def test_only_closed_bars_are_stored(binance: FakeBinance, store: MemoryBarStore) -> None:
    # "now" is 30 minutes into the bar at index 500: that bar is still forming
    now = datetime.fromtimestamp(int(BTC.ts[500]) / 1e9 + 1800, UTC)
    clock = ManualClock(now)

    async def sleep(seconds: float) -> None:
        clock.advance(0)  # time does not need to pass for the fake

    src = CcxtSource("binance", urls=rehost_api_urls("binance", binance.url), retry=FAST, clock=clock)
    try:
        result = await download(
            src,
            store,
            BTC_KEY,
            asset_type=AssetType.CRYPTO,
            since_ns=int(BTC.ts[0]),
            clock=clock,
            sleep=sleep,
        )
    finally:
        await src.close()
    assert result.last_ts == int(BTC.ts[499])
    assert_bars_equal(await store.read(BTC_KEY), BTC.bars(0, 500))


async def test_unsupported_timeframe_or_asset_type_is_invalid(
    ccxt_binance: CcxtSource, store: MemoryBarStore
) -> None:
    with pytest.raises(Invalid, match=r"timeframe|7m") as err:
        await download(
            ccxt_binance,
            store,
            SeriesKey("BTC/USDT", "binance", Timeframe.parse("7m")),
            asset_type=AssetType.CRYPTO,
            since_ns=0,
        )
    assert err.value.field == "timeframe"
    with pytest.raises(Invalid) as err:
        await download(ccxt_binance, store, BTC_KEY, asset_type=AssetType.STOCK, since_ns=0)
    assert err.value.field == "asset_type"


# ---- stub sources: behaviours no fake vendor produces on demand -----------------------------


class StubSource:
    """Serves scripted pages; records the starts it was asked for."""

    name = "stub"
    asset_types = frozenset({AssetType.CRYPTO})
    timeframes = frozenset({H1})
    page_limit = 1000
    rate_limit = 1000.0

    def __init__(self, pages: list[Bars]) -> None:
        self.pages = pages
        self.starts: list[int] = []

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> Bars:
        self.starts.append(start_ns)
        return self.pages.pop(0) if self.pages else Bars.empty()


def _bars(ts: list[int], rejected: tuple[RejectedRow, ...] = ()) -> SourceBars:
    n = len(ts)
    one = np.ones(n)
    return SourceBars(np.array(ts, dtype=np.int64), one, one * 2, one / 2, one, one, rejected=rejected)


async def test_a_page_out_of_order_is_refused_whole(store: MemoryBarStore) -> None:
    h = H1.nanos
    src = StubSource([_bars([10 * h, 12 * h, 11 * h])])
    with pytest.raises(TemporaryError, match="out of time order") as err:
        await download(
            src,
            store,
            SeriesKey("X", "stub", H1),
            asset_type=AssetType.CRYPTO,
            since_ns=10 * h,
            until_ns=100 * h,
        )
    assert err.value.code == "bad_upstream_data"
    assert store.data == {}


async def test_a_page_of_only_rejected_rows_is_stepped_over(store: MemoryBarStore) -> None:
    h = H1.nanos
    all_bad = _bars(
        [], rejected=(RejectedRow(ts=10 * h, reason="x", raw=""), RejectedRow(ts=11 * h, reason="x", raw=""))
    )
    src = StubSource([all_bad, _bars([12 * h, 13 * h])])
    key = SeriesKey("X", "stub", H1)
    result = await download(src, store, key, asset_type=AssetType.CRYPTO, since_ns=10 * h, until_ns=100 * h)
    assert src.starts == [10 * h, 12 * h, 14 * h]
    assert result.rejected_count == 2 and result.bars == 2
    assert (await store.read(key)).ts.tolist() == [12 * h, 13 * h]


async def test_bars_outside_the_asked_range_are_dropped(store: MemoryBarStore) -> None:
    h = H1.nanos
    src = StubSource([_bars([5 * h, 10 * h, 11 * h, 50 * h])])
    key = SeriesKey("X", "stub", H1)
    await download(src, store, key, asset_type=AssetType.CRYPTO, since_ns=10 * h, until_ns=20 * h)
    assert (await store.read(key)).ts.tolist() == [10 * h, 11 * h]


async def test_async_progress_callback_is_awaited(store: MemoryBarStore) -> None:
    h = H1.nanos
    seen: list[int] = []

    async def progress(event: DownloadProgress) -> None:
        seen.append(event.bars)

    src = StubSource([_bars([10 * h, 11 * h]), _bars([12 * h])])
    await download(
        src,
        store,
        SeriesKey("X", "stub", H1),
        asset_type=AssetType.CRYPTO,
        since_ns=10 * h,
        until_ns=100 * h,
        progress=progress,
    )
    assert seen == [2, 3, 3]
