"""The Alpaca v2 bars source against a fake Alpaca on 127.0.0.1 serving the real SPY daily file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.sources.alpaca import AlpacaSource
from algotrendy.core.errors import ConfigurationError, Invalid, TemporaryError
from algotrendy.core.market import Timeframe
from tests.fakes import FakeAlpaca
from tests.fakes.alpaca import KEY_ID, SECRET
from tests.fakes.data import sample
from tests.integration.sources.conftest import FAST, assert_bars_equal

D1 = Timeframe.parse("1d")
SPY = sample("SPY_1d")


@pytest.fixture
async def source(alpaca: FakeAlpaca) -> AsyncIterator[AlpacaSource]:
    async with AlpacaSource(key_id=KEY_ID, secret_key=SECRET, base_url=alpaca.url, retry=FAST) as src:
        yield src


async def test_page_equals_the_sample(source: AlpacaSource, alpaca: FakeAlpaca) -> None:
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[10]), limit=100)
    assert_bars_equal(page, SPY.bars(10, 110))
    (req,) = alpaca.requests()
    assert req.query["timeframe"] == "1Day" and req.query["limit"] == "100"
    assert req.headers["APCA-API-KEY-ID"] == KEY_ID


async def test_pages_follow_alpacas_page_token(source: AlpacaSource, alpaca: FakeAlpaca) -> None:
    i, j = 500, 2700
    end = int(SPY.ts[j])
    pages, cursor = [], int(SPY.ts[i])
    while True:
        page = await source.fetch_bars("SPY", D1, start_ns=cursor, end_ns=end, limit=300)
        if not len(page):
            break
        pages.append(page)
        cursor = int(page.ts[-1]) + D1.nanos
    want = SPY.bars(i, j)
    np.testing.assert_array_equal(np.concatenate([p.ts for p in pages]), want.ts)
    np.testing.assert_array_equal(np.concatenate([p.high for p in pages]), want.high)
    requests = alpaca.requests()
    assert "page_token" not in requests[0].query
    assert all("page_token" in r.query for r in requests[1:8])
    assert {r.query["start"] for r in requests[:8]} == {requests[0].query["start"]}  # original query kept


async def test_wrong_keys_are_a_configuration_error(alpaca: FakeAlpaca) -> None:
    async with AlpacaSource(key_id="nope", secret_key="nope", base_url=alpaca.url, retry=FAST) as src:
        with pytest.raises(ConfigurationError, match="alpaca"):
            await src.fetch_bars("SPY", D1, start_ns=0)
    assert len(alpaca.requests()) == 1


async def test_unknown_symbol_is_an_empty_page(source: AlpacaSource) -> None:
    page = await source.fetch_bars("ZZZZ", D1, start_ns=0)
    assert len(page) == 0


async def test_bad_symbol_is_refused_before_any_request(source: AlpacaSource, alpaca: FakeAlpaca) -> None:
    with pytest.raises(Invalid):
        await source.fetch_bars("SPY/../../v1", D1, start_ns=0)
    assert alpaca.requests() == []


async def test_429_then_500_then_success(source: AlpacaSource, alpaca: FakeAlpaca) -> None:
    alpaca.faults.rate_limit(retry_after=1)
    alpaca.faults.fail(500)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=10)
    assert_bars_equal(page, SPY.bars(0, 10))
    statuses = [r.status for r in alpaca.requests()]
    assert statuses == [429, 500, 200]
    first, second, _ = alpaca.requests()
    assert second.at - first.at >= 0.95


async def test_persistent_failure_names_the_source(source: AlpacaSource, alpaca: FakeAlpaca) -> None:
    alpaca.faults.fail(503, times=None)
    with pytest.raises(TemporaryError, match=r"alpaca.*'SPY'"):
        await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]))


@pytest.mark.parametrize("how", ["nan", "negative", "missing", "null", "high_lt_low"])
async def test_bad_bar_is_rejected_and_the_rest_kept(
    source: AlpacaSource, alpaca: FakeAlpaca, how: str
) -> None:
    alpaca.faults.malformed(how, row=1)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    np.testing.assert_array_equal(page.ts, np.delete(SPY.ts[:5], 1))
    assert [r.ts for r in page.rejected] == [int(SPY.ts[1])]


async def test_a_page_with_rejections_does_not_follow_the_token(
    source: AlpacaSource, alpaca: FakeAlpaca
) -> None:
    alpaca.faults.malformed("nan", row=4)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert len(page) == 4
    await source.fetch_bars("SPY", D1, start_ns=int(page.ts[-1]) + D1.nanos, limit=5)
    assert "page_token" not in alpaca.requests()[1].query
