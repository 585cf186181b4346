"""The Polygon aggregates source against a fake Polygon on 127.0.0.1 serving the real SPY file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.sources.polygon import PolygonSource
from algotrendy.core.errors import ConfigurationError, TemporaryError
from algotrendy.core.market import Timeframe
from tests.fakes import FakePolygon
from tests.fakes.data import sample
from tests.fakes.polygon import API_KEY
from tests.integration.sources.conftest import FAST, assert_bars_equal

D1 = Timeframe.parse("1d")
SPY = sample("SPY_1d")


@pytest.fixture
async def source(polygon: FakePolygon) -> AsyncIterator[PolygonSource]:
    async with PolygonSource(api_key=API_KEY, base_url=polygon.url, retry=FAST) as src:
        yield src


async def test_page_equals_the_sample(source: PolygonSource, polygon: FakePolygon) -> None:
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[3]), end_ns=int(SPY.ts[800]))
    assert_bars_equal(page, SPY.bars(3, 800))
    (req,) = polygon.requests()
    assert req.path.endswith("/range/1/day/1999-11-04/" + _day(int(SPY.ts[800]) - 1))
    assert "apiKey" not in req.query  # the key travels in the Authorization header
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"


def _day(ts: int) -> str:
    return str(np.datetime64(ts, "ns").astype("datetime64[D]"))


async def test_pages_follow_next_url(source: PolygonSource, polygon: FakePolygon) -> None:
    pages, cursor = [], int(SPY.ts[0])
    while True:
        page = await source.fetch_bars("SPY", D1, start_ns=cursor, end_ns=int(SPY.ts[-1]) + 1, limit=700)
        if not len(page):
            break
        pages.append(page)
        cursor = int(page.ts[-1]) + D1.nanos
    want = SPY.bars()
    np.testing.assert_array_equal(np.concatenate([p.ts for p in pages]), want.ts)
    np.testing.assert_array_equal(np.concatenate([p.close for p in pages]), want.close)
    requests = polygon.requests()
    assert sum("cursor" in r.query for r in requests) == len(pages) - 1
    assert all("apiKey" not in r.query for r in requests)


async def test_next_url_to_another_host_is_refused(source: PolygonSource, polygon: FakePolygon) -> None:
    body = {
        "ticker": "SPY",
        "status": "OK",
        "resultsCount": 1,
        "request_id": "x",
        "results": [{"o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10, "t": 1_000_000_000_000}],
        "next_url": "https://evil.example/v2/aggs/ticker/SPY/range/1/day/1/2?cursor=x",
    }
    polygon.faults.fail(200, body=body)
    with pytest.raises(TemporaryError, match="another host"):
        await source.fetch_bars("SPY", D1, start_ns=0, limit=10)


async def test_missing_key_is_a_configuration_error(polygon: FakePolygon) -> None:
    async with PolygonSource(api_key="wrong", base_url=polygon.url, retry=FAST) as src:
        with pytest.raises(ConfigurationError, match="Unknown API Key"):
            await src.fetch_bars("SPY", D1, start_ns=0)


async def test_unknown_ticker_is_an_empty_page(source: PolygonSource) -> None:
    assert len(await source.fetch_bars("NOPE", D1, start_ns=0)) == 0


async def test_retries_then_succeeds(source: PolygonSource, polygon: FakePolygon) -> None:
    polygon.faults.fail(500)
    polygon.faults.rate_limit(retry_after=None)  # Polygon's 429 carries no Retry-After
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert_bars_equal(page, SPY.bars(0, 5))
    assert [r.status for r in polygon.requests()] == [500, 429, 200]


async def test_persistent_failure_names_the_source(source: PolygonSource, polygon: FakePolygon) -> None:
    polygon.faults.fail(500, times=None)
    with pytest.raises(TemporaryError, match=r"polygon.*'SPY'"):
        await source.fetch_bars("SPY", D1, start_ns=0)


@pytest.mark.parametrize("how", ["nan", "negative", "missing", "null", "high_lt_low"])
async def test_bad_aggregate_is_rejected(source: PolygonSource, polygon: FakePolygon, how: str) -> None:
    polygon.faults.malformed(how, row=0)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=4)
    np.testing.assert_array_equal(page.ts, SPY.ts[1:4])
    assert [r.ts for r in page.rejected] == [int(SPY.ts[0])]
