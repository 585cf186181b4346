"""``StoreQuotes.stream``: readers of one symbol share one feed, see the same updates in the same
order, the feed stops when the last reader leaves, and a feed failure reaches every reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from algotrendy.app.trading import StoreQuotes
from algotrendy.core.market import AssetType, BarUpdate, SeriesInfo, SeriesKey, Timeframe

KEY = SeriesKey("AAPL", "nasdaq", Timeframe.parse("1m"))


class Store:
    async def series(self, symbol: str) -> list[SeriesInfo]:
        return [SeriesInfo(KEY, AssetType.STOCK, 0, 60_000_000_000, 2)] if symbol == "AAPL" else []


class Feed:
    def __init__(self, gate: asyncio.Queue[float | Exception]) -> None:
        self.gate = gate
        self.closed = False

    async def bars(self, keys: list[SeriesKey]) -> AsyncIterator[BarUpdate]:
        while True:
            item = await self.gate.get()
            if isinstance(item, Exception):
                raise item
            yield BarUpdate(KEY, 0, item, item, item, item, 1.0, False)

    async def close(self) -> None:
        self.closed = True


async def _take(quotes: StoreQuotes, n: int, out: list[float]) -> None:
    async for update in quotes.stream("AAPL"):
        out.append(update.close)
        if len(out) == n:
            return


async def test_readers_share_one_feed_and_it_stops_with_the_last() -> None:
    gate: asyncio.Queue[float | Exception] = asyncio.Queue()
    feeds: list[Feed] = []

    def feed_for(_info: Any) -> Feed:
        feeds.append(Feed(gate))
        return feeds[-1]

    quotes = StoreQuotes(Store(), feed_for)  # type: ignore[arg-type]
    a: list[float] = []
    b: list[float] = []
    ta = asyncio.create_task(_take(quotes, 3, a))
    tb = asyncio.create_task(_take(quotes, 2, b))
    await asyncio.sleep(0.01)
    for price in (1.0, 2.0, 3.0):
        gate.put_nowait(price)
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(ta, tb), 2)
    assert len(feeds) == 1 and a == [1.0, 2.0, 3.0] and b == [1.0, 2.0]
    await asyncio.sleep(0.01)
    assert feeds[0].closed and (await quotes.last("MSFT")) is None
    # A new reader starts a new feed.
    c: list[float] = []
    tc = asyncio.create_task(_take(quotes, 1, c))
    await asyncio.sleep(0.01)
    gate.put_nowait(4.0)
    await asyncio.wait_for(tc, 2)
    assert len(feeds) == 2 and c == [4.0]


async def test_a_feed_failure_reaches_every_reader() -> None:
    gate: asyncio.Queue[float | Exception] = asyncio.Queue()
    quotes = StoreQuotes(Store(), lambda _info: Feed(gate))  # type: ignore[arg-type]
    readers = [asyncio.create_task(_take(quotes, 5, [])) for _ in range(2)]
    await asyncio.sleep(0.01)
    gate.put_nowait(RuntimeError("exchange went away"))
    for reader in readers:
        with pytest.raises(RuntimeError, match="went away"):
            await asyncio.wait_for(reader, 2)
