"""An in-memory ``BarStore`` that records every read, to check how feeds read the store."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algotrendy.core.market import AssetType, Bars, SeriesInfo, SeriesKey, Timeframe

M1 = Timeframe.parse("1m")
M5 = Timeframe.parse("5m")
H1 = Timeframe.parse("1h")
MINUTE_NS = 60 * 1_000_000_000
T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Read:
    key: SeriesKey
    start: int | None
    end: int | None
    limit: int | None
    rows: int


class MemoryBarStore:
    def __init__(self) -> None:
        self._data: dict[SeriesKey, Bars] = {}
        self.reads: list[Read] = []

    async def upsert(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        old = self._data.get(key, Bars.empty())
        merged = {int(t): i for i, t in enumerate(old.ts)}
        cols = {name: list(getattr(old, name)) for name in ("open", "high", "low", "close", "volume")}
        ts = [int(t) for t in old.ts]
        for j, t in enumerate(bars.ts):
            values = {name: float(getattr(bars, name)[j]) for name in cols}
            if int(t) in merged:
                for name, value in values.items():
                    cols[name][merged[int(t)]] = value
            else:
                merged[int(t)] = len(ts)
                ts.append(int(t))
                for name, value in values.items():
                    cols[name].append(value)
        order = np.argsort(np.array(ts, dtype=np.int64))
        self._data[key] = Bars(
            np.array(ts, dtype=np.int64)[order],
            *(
                np.array(cols[name], dtype=np.float64)[order]
                for name in ("open", "high", "low", "close", "volume")
            ),
        )
        return len(bars)

    def put(self, key: SeriesKey, bars: Bars) -> None:
        """Store ``bars`` as they are (fast path for big synthetic series)."""
        self._data[key] = bars

    async def read(
        self, key: SeriesKey, *, start: int | None = None, end: int | None = None, limit: int | None = None
    ) -> Bars:
        bars = self._data.get(key, Bars.empty())
        lo = 0 if start is None else int(np.searchsorted(bars.ts, start, side="left"))
        hi = len(bars) if end is None else int(np.searchsorted(bars.ts, end, side="left"))
        if limit is not None:
            lo = max(lo, hi - limit)
        out = bars.slice(lo, hi)
        self.reads.append(Read(key, start, end, limit, len(out)))
        return out

    async def series(self, *, symbol: str | None = None) -> list[SeriesInfo]:
        return [
            SeriesInfo(key, AssetType.CRYPTO, int(b.ts[0]), int(b.ts[-1]), len(b))
            for key, b in self._data.items()
            if len(b) and (symbol is None or key.symbol == symbol)
        ]

    async def delete(self, key: SeriesKey) -> int:
        return len(self._data.pop(key, Bars.empty()))

    async def last_ts(self, key: SeriesKey) -> int | None:
        bars = self._data.get(key)
        return int(bars.ts[-1]) if bars is not None and len(bars) else None

    async def ping(self) -> None:
        return None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None


def make_bars(n: int, *, tf: Timeframe = M1, start: int = T0, base: float = 100.0) -> Bars:
    """``n`` contiguous bars; bar i has open ``base + i`` and close ``base + i + 0.5`` (or - for odd i)."""
    i = np.arange(n, dtype=np.float64)
    ts = start + np.arange(n, dtype=np.int64) * tf.nanos
    o = base + i
    c = o + np.where(np.arange(n) % 2 == 0, 0.5, -0.5)
    return Bars(ts, o, np.maximum(o, c) + 1.0, np.minimum(o, c) - 1.0, c, 10.0 + i)
