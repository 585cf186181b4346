"""Fixtures for the source adapter tests: fake vendors on 127.0.0.1, a fast retry policy, and a
tiny in-memory ``BarStore`` for the download orchestrator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from algotrendy.adapters.sources._http import RetryPolicy
from algotrendy.core.market import AssetType, Bars, SeriesInfo, SeriesKey
from tests.fakes import (
    FakeAlpaca,
    FakeBinance,
    FakeCoinbase,
    FakeCovalent,
    FakeKraken,
    FakePolygon,
    FakeYahoo,
)

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
"""Retries in milliseconds, so fault tests stay fast (Retry-After is still honoured)."""


def assert_bars_equal(got: Bars, want: Bars) -> None:
    assert len(got) == len(want), f"{len(got)} bars, expected {len(want)}"
    np.testing.assert_array_equal(got.ts, want.ts)
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, col), getattr(want, col), err_msg=col)


class MemoryBarStore:
    """Just enough of ``BarStore``: idempotent upserts keyed by ts, reads in time order."""

    def __init__(self) -> None:
        self.data: dict[SeriesKey, dict[int, tuple[float, float, float, float, float]]] = {}
        self.asset_types: dict[SeriesKey, AssetType] = {}
        self.upserts = 0

    async def upsert(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        self.upserts += 1
        rows = self.data.setdefault(key, {})
        self.asset_types[key] = asset_type
        changed = 0
        for k in range(len(bars)):
            value = (
                float(bars.open[k]),
                float(bars.high[k]),
                float(bars.low[k]),
                float(bars.close[k]),
                float(bars.volume[k]),
            )
            ts = int(bars.ts[k])
            if rows.get(ts) != value:
                rows[ts] = value
                changed += 1
        return changed

    async def read(
        self, key: SeriesKey, *, start: int | None = None, end: int | None = None, limit: int | None = None
    ) -> Bars:
        rows = self.data.get(key, {})
        ts = sorted(t for t in rows if (start is None or t >= start) and (end is None or t < end))
        if limit is not None:
            ts = ts[-limit:]
        if not ts:
            return Bars.empty()
        cols = np.array([rows[t] for t in ts], dtype=np.float64)
        return Bars(
            np.array(ts, dtype=np.int64),
            cols[:, 0].copy(),
            cols[:, 1].copy(),
            cols[:, 2].copy(),
            cols[:, 3].copy(),
            cols[:, 4].copy(),
        )

    async def series(self, *, symbol: str | None = None) -> list[SeriesInfo]:
        return [
            SeriesInfo(key=k, asset_type=self.asset_types[k], first_ts=min(v), last_ts=max(v), count=len(v))
            for k, v in self.data.items()
            if v and (symbol is None or k.symbol == symbol)
        ]

    async def delete(self, key: SeriesKey) -> int:
        return len(self.data.pop(key, {}))

    async def last_ts(self, key: SeriesKey) -> int | None:
        rows = self.data.get(key)
        return max(rows) if rows else None

    async def ping(self) -> None:
        return None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def store() -> MemoryBarStore:
    return MemoryBarStore()


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as fake:
        yield fake


@pytest.fixture
async def kraken() -> AsyncIterator[FakeKraken]:
    async with FakeKraken() as fake:
        yield fake


@pytest.fixture
async def coinbase() -> AsyncIterator[FakeCoinbase]:
    async with FakeCoinbase() as fake:
        yield fake


@pytest.fixture
async def yahoo() -> AsyncIterator[FakeYahoo]:
    async with FakeYahoo() as fake:
        yield fake


@pytest.fixture
async def alpaca() -> AsyncIterator[FakeAlpaca]:
    async with FakeAlpaca() as fake:
        yield fake


@pytest.fixture
async def polygon() -> AsyncIterator[FakePolygon]:
    async with FakePolygon() as fake:
        yield fake


@pytest.fixture
async def covalent() -> AsyncIterator[FakeCovalent]:
    async with FakeCovalent() as fake:
        yield fake
