"""One suite, two implementations: ``MarketDataService`` in-process and ``MarketDataClient``
over HTTP (httpx.ASGITransport to the same app)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from algotrendy.core.errors import Invalid, NotFound
from algotrendy.services.marketdata.client import MarketDataClient
from algotrendy.services.marketdata.interface import BarsQuery, BatchRequest, TransformRequest
from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path_factory.mktemp("mdc"), marketdata={"load_samples": True})
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(params=["service", "client"], loop_scope="module")
async def md(request: pytest.FixtureRequest, app: Api) -> AsyncIterator[Any]:
    if request.param == "service":
        yield app.app.state.services["marketdata"]
        return
    _u, headers, _ = await app.user()
    transport = httpx.ASGITransport(app=app.app, client=("127.0.0.1", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield MarketDataClient(http, token=headers["Authorization"].split()[1])


async def test_bars_with_indicators(md: Any) -> None:
    s = await md.get_bars(query=BarsQuery(symbol="SPY", interval="1d", limit=30, indicators=["rsi,sma:10"]))
    assert s.count == 30 and s.columns[-2:] == ["rsi", "sma_10"] and s.data["rsi"][0] is not None


async def test_resampled_and_styled(md: Any) -> None:
    s = await md.get_bars(
        query=BarsQuery(
            symbol="BTC/USDT", venue="BINANCE", interval="1d", limit=10, chart_style="heikin_ashi"
        )
    )
    assert s.source_interval == "1h" and s.count == 10 and s.chart_style == "heikin_ashi"


async def test_catalogs_agree(md: Any, app: Api) -> None:
    local = app.app.state.services["marketdata"]
    assert [x.name for x in await md.indicators()] == [x.name for x in await local.indicators()]
    assert [x.name for x in await md.chart_styles()] == [x.name for x in await local.chart_styles()]
    assert {(x.symbol, x.interval) for x in await md.symbols()} >= {("SPY", "1d"), ("BTCUSDT", "1m")}
    assert [x.symbol for x in await md.symbols(symbol="msft")] == ["MSFT"]


async def test_errors_map_to_the_same_classes(md: Any) -> None:
    with pytest.raises(NotFound) as missing:
        await md.get_bars(query=BarsQuery(symbol="NOPE"))
    assert missing.value.code == "unknown_symbol"
    with pytest.raises(Invalid) as bad:
        await md.get_bars(query=BarsQuery(symbol="SPY", indicators=["rsi:1"]))
    assert bad.value.field == "indicators"


async def test_batch_transform_quality(md: Any) -> None:
    b = await md.batch(request=BatchRequest(symbols=["AAPL", "NOPE"], period="1mo"))
    assert set(b.results) == {"AAPL"} and set(b.errors) == {"NOPE"}
    t = await md.transform(
        request=TransformRequest(
            data={
                "timestamp": [1_700_000_000_000, 1_700_086_400_000],
                "open": [1, 2],
                "high": [2, 3],
                "low": [0.5, 1],
                "close": [1.5, 2.5],
                "volume": [10, 20],
            },
            chart_style="heikin_ashi",
        )
    )
    assert t.count == 2
    q = await md.quality(symbol="MSFT", venue=None, interval=None)
    assert q["violations"]["total"] == 2


async def test_read_bars_returns_whole_series_as_numpy(
    md: Any, app: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    import numpy as np

    from algotrendy.services.marketdata import client

    monkeypatch.setattr(client, "PAGE_BARS", 200)  # several pages on the client side
    local = app.app.state.services["marketdata"]
    start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    got = await md.read_bars(symbol="aapl", interval="1d", start=start, end=end)
    want = await local.read_bars(symbol="AAPL", interval="1d", start=start, end=end)
    assert got.symbol == "AAPL" and got.interval == "1d" and len(got.bars) == len(want.bars) > 700
    np.testing.assert_array_equal(got.bars.ts, want.bars.ts)
    np.testing.assert_array_equal(got.bars.close, want.bars.close)
    whole = await md.read_bars(symbol="BTC/USDT", venue="BINANCE", interval="4h")
    assert whole.interval == "4h" and len(whole.bars) > 1000
    with pytest.raises(NotFound):
        await md.read_bars(symbol="NOPE")
    with pytest.raises(Invalid) as bad:
        await md.read_bars(symbol="AAPL", start=end, end=start)
    assert bad.value.field == "end_date"
