"""The Covalent source against a fake Covalent on 127.0.0.1 (prices derived from real samples)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from algotrendy.adapters.sources.covalent import CovalentSource
from algotrendy.core.errors import ConfigurationError, Invalid, TemporaryError
from algotrendy.core.market import Timeframe
from tests.fakes import FakeCovalent
from tests.fakes.covalent import API_KEY, NATIVE, SPAM, WALLET, WBTC, daily_prices
from tests.fakes.data import NS_PER_S
from tests.integration.sources.conftest import FAST

D1 = Timeframe.parse("1d")


def _expected(first: date, last: date) -> tuple[np.ndarray, np.ndarray]:
    days = [(d, p) for d, p in sorted(daily_prices(WBTC).items()) if first <= d <= last]
    ts = np.array([int(np.datetime64(d, "s").astype(np.int64)) * NS_PER_S for d, _ in days], dtype=np.int64)
    return ts, np.array([p for _, p in days])


@pytest.fixture
async def source(covalent: FakeCovalent) -> AsyncIterator[CovalentSource]:
    async with CovalentSource(api_key=API_KEY, base_url=covalent.url, retry=FAST) as src:
        yield src


async def test_blockchain_data_is_the_daily_price_series(
    source: CovalentSource, covalent: FakeCovalent
) -> None:
    series = await source.get_blockchain_data(1, WBTC, date(2020, 1, 1), date(2020, 3, 31))
    ts, price = _expected(date(2020, 1, 1), date(2020, 3, 31))
    np.testing.assert_array_equal(series.ts, ts)
    np.testing.assert_array_equal(series.price, price)
    assert len(series) == 91 and series.quote_currency == "USD"
    (req,) = covalent.requests()
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.query == {"from": "2020-01-01", "to": "2020-03-31", "prices-at-asc": "true"}


async def test_fetch_bars_pages_by_windows_of_days(source: CovalentSource) -> None:
    start = int(np.datetime64("2019-01-01", "s").astype(np.int64)) * NS_PER_S
    end = int(np.datetime64("2019-07-01", "s").astype(np.int64)) * NS_PER_S
    pages, cursor = [], start
    while True:
        page = await source.fetch_bars(f"1:{WBTC}", D1, start_ns=cursor, end_ns=end, limit=30)
        if not len(page):
            break
        pages.append(page)
        cursor = int(page.ts[-1]) + D1.nanos
    ts, price = _expected(date(2019, 1, 1), date(2019, 6, 30))
    np.testing.assert_array_equal(np.concatenate([p.ts for p in pages]), ts)
    np.testing.assert_array_equal(np.concatenate([p.close for p in pages]), price)
    assert all((p.open == p.close).all() and (p.volume == 0).all() for p in pages)


async def test_wallet_balances(source: CovalentSource) -> None:
    balances = await source.get_wallet_balances(1, WALLET)
    assert set(balances) == {NATIVE, WBTC, SPAM}
    wbtc = balances[WBTC]
    assert wbtc.symbol == "WBTC" and wbtc.decimals == 8
    assert wbtc.balance == Decimal("0.25") and wbtc.raw_balance == 25_000_000
    assert wbtc.quote_rate == daily_prices(WBTC)[max(daily_prices(WBTC))]
    assert balances[NATIVE].native and balances[NATIVE].balance == Decimal("1.5")
    assert balances[SPAM].spam and balances[SPAM].quote_rate is None


async def test_a_bad_balance_item_is_left_out(source: CovalentSource, covalent: FakeCovalent) -> None:
    covalent.faults.malformed("negative", row=1)
    balances = await source.get_wallet_balances(1, WALLET)
    assert set(balances) == {NATIVE, SPAM}


async def test_bad_price_is_rejected_with_its_date(source: CovalentSource, covalent: FakeCovalent) -> None:
    covalent.faults.malformed("negative", row=5)
    series = await source.get_blockchain_data(1, WBTC, date(2020, 1, 1), date(2020, 1, 10))
    ts, _ = _expected(date(2020, 1, 1), date(2020, 1, 10))
    np.testing.assert_array_equal(series.ts, np.delete(ts, 5))
    assert [r.ts for r in series.rejected] == [int(ts[5])]
    assert "price" in series.rejected[0].reason


async def test_addresses_are_checked_before_any_request(
    source: CovalentSource, covalent: FakeCovalent
) -> None:
    with pytest.raises(Invalid, match="address"):
        await source.get_wallet_balances(1, "0x123/../../v2")
    with pytest.raises(Invalid):
        await source.get_blockchain_data(0, WBTC, date(2020, 1, 1), date(2020, 1, 2))
    assert covalent.requests() == []


async def test_wrong_key_is_a_configuration_error(covalent: FakeCovalent) -> None:
    async with CovalentSource(api_key="nope", base_url=covalent.url, retry=FAST) as src:
        with pytest.raises(ConfigurationError, match="Authentication failed"):
            await src.get_wallet_balances(1, WALLET)


async def test_retries_then_succeeds_and_persistent_failure_names_the_source(
    source: CovalentSource, covalent: FakeCovalent
) -> None:
    covalent.faults.rate_limit(retry_after=0.2)
    covalent.faults.fail(500)
    assert len(await source.get_wallet_balances(1, WALLET)) == 3
    covalent.faults.fail(500, times=None)
    with pytest.raises(TemporaryError, match="covalent"):
        await source.get_wallet_balances(1, WALLET)
