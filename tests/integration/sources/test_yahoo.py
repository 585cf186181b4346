"""The Yahoo v8 chart source against a fake Yahoo on 127.0.0.1 serving the real SPY daily file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.sources.yahoo import YahooSource
from algotrendy.core.errors import Invalid, NotFound, TemporaryError
from algotrendy.core.market import Timeframe
from tests.fakes import FakeYahoo
from tests.fakes.data import sample
from tests.integration.sources.conftest import FAST, assert_bars_equal

D1 = Timeframe.parse("1d")
SPY = sample("SPY_1d")


@pytest.fixture
async def source(yahoo: FakeYahoo) -> AsyncIterator[YahooSource]:
    async with YahooSource(base_url=yahoo.url, retry=FAST, timeout=1.0) as src:
        yield src


async def test_page_equals_the_sample_relabelled_to_session_dates(
    source: YahooSource, yahoo: FakeYahoo
) -> None:
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), end_ns=int(SPY.ts[300]))
    assert_bars_equal(page, SPY.bars(0, 300))
    (req,) = yahoo.requests("/v8/finance/chart/SPY")
    assert req.query["interval"] == "1d"
    assert req.query["period1"] == str(SPY.ts[0] // 1_000_000_000)


async def test_a_page_holds_at_most_page_limit_bars(source: YahooSource, yahoo: FakeYahoo) -> None:
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]))
    assert source.page_limit == 5000
    assert_bars_equal(page, SPY.bars(0, 5000))
    assert len(yahoo.requests()) == 1


async def test_pages_across_a_range_equal_the_file(source: YahooSource, yahoo: FakeYahoo) -> None:
    i, j = 1000, 3000
    pages, cursor = [], int(SPY.ts[i])
    while True:
        page = await source.fetch_bars("SPY", D1, start_ns=cursor, end_ns=int(SPY.ts[j]), limit=250)
        if not len(page):
            break
        assert len(page) <= 250
        pages.append(page)
        cursor = int(page.ts[-1]) + D1.nanos
    want = SPY.bars(i, j)
    np.testing.assert_array_equal(np.concatenate([p.ts for p in pages]), want.ts)
    np.testing.assert_array_equal(np.concatenate([p.volume for p in pages]), want.volume)
    assert len(pages) >= 8


async def test_a_window_without_bars_is_stepped_over(source: YahooSource, yahoo: FakeYahoo) -> None:
    # 40 days before the first bar: two empty 16-day windows, then bars
    start = int(SPY.ts[0]) - 40 * D1.nanos
    page = await source.fetch_bars("SPY", D1, start_ns=start, limit=10)
    assert_bars_equal(page, SPY.bars(0, len(page)))
    assert len(page) > 0
    assert len(yahoo.requests()) == 3


async def test_unknown_symbol_is_not_found(source: YahooSource) -> None:
    with pytest.raises(NotFound, match="NOPE"):
        await source.fetch_bars("NOPE", D1, start_ns=0)


async def test_symbol_with_path_characters_is_refused_before_any_request(
    source: YahooSource, yahoo: FakeYahoo
) -> None:
    with pytest.raises(Invalid):
        await source.fetch_bars("../v7/quote", D1, start_ns=0)
    assert yahoo.requests() == []


async def test_retries_500_then_succeeds(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.fail(500, times=2)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert_bars_equal(page, SPY.bars(0, 5))
    assert [r.status for r in yahoo.requests()] == [500, 500, 200]


async def test_429_with_http_date_retry_after_is_honoured(source: YahooSource, yahoo: FakeYahoo) -> None:
    import time
    from email.utils import formatdate

    yahoo.faults.rate_limit(retry_after=formatdate(time.time() + 2, usegmt=True))
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert len(page) == 5
    first, second = yahoo.requests()
    assert second.at - first.at >= 0.9  # HTTP dates have 1 s resolution


async def test_timeout_then_success(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.delay(2.0)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert len(page) == 5


async def test_persistent_failure_names_the_source(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.fail(502, times=None)
    with pytest.raises(TemporaryError, match=r"yahoo.*'SPY'.*HTTP 502"):
        await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]))
    assert len(yahoo.requests()) == FAST.attempts


async def test_retry_after_beyond_the_limit_fails_at_once(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.rate_limit(retry_after=3600)
    with pytest.raises(TemporaryError, match="3600s"):
        await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]))
    assert len(yahoo.requests()) == 1


@pytest.mark.parametrize("how", ["nan", "negative", "null", "high_lt_low"])
async def test_bad_row_is_rejected_with_its_date(source: YahooSource, yahoo: FakeYahoo, how: str) -> None:
    yahoo.faults.malformed(how, row=2)
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), end_ns=int(SPY.ts[6]))
    want = SPY.bars(0, 6)
    np.testing.assert_array_equal(page.ts, np.delete(want.ts, 2))
    assert [r.ts for r in page.rejected] == [int(SPY.ts[2])]


async def test_ragged_columns_refuse_the_page(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.malformed("ragged")
    with pytest.raises(TemporaryError, match="do not match") as err:
        await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert err.value.code == "bad_upstream_data"


async def test_html_body_is_retried(source: YahooSource, yahoo: FakeYahoo) -> None:
    yahoo.faults.garbage()
    page = await source.fetch_bars("SPY", D1, start_ns=int(SPY.ts[0]), limit=5)
    assert len(page) == 5
