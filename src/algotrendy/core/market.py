"""Market data vocabulary shared by every layer: asset types, timeframes, series keys, the
columnar ``Bars`` that research code works on, and the ``BarStore`` port.

Bars are float64 numpy columns with int64 timestamps in nanoseconds since the epoch, UTC,
labelled by the bar's *open* time (Binance klines do the same; daily bars are labelled with
the session date at 00:00 UTC).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NS_PER_SECOND = 1_000_000_000


class AssetType(StrEnum):
    STOCK = "stock"
    ETF = "etf"
    INDEX = "index"
    CRYPTO = "crypto"
    FX = "fx"
    FUTURES = "futures"


_TF = re.compile(r"^(\d+)(m|h|d|w)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True, slots=True, order=True)
class Timeframe:
    """A bar length such as ``1m``, ``15m``, ``4h``, ``1d`` or ``1w``."""

    seconds: int
    label: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        m = _TF.match(text.strip())
        if not m or int(m.group(1)) <= 0:
            raise ValueError(f"unknown timeframe {text!r}; use e.g. 1m, 5m, 15m, 1h, 4h, 1d, 1w")
        return cls(int(m.group(1)) * _UNIT_SECONDS[m.group(2)], f"{int(m.group(1))}{m.group(2)}")

    @property
    def nanos(self) -> int:
        return self.seconds * NS_PER_SECOND

    @property
    def intraday(self) -> bool:
        return self.seconds < 86_400

    def __str__(self) -> str:
        return self.label


STANDARD_TIMEFRAMES = tuple(Timeframe.parse(t) for t in ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"))


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """What identifies a bar series: symbol + venue + timeframe (the store's key with the time)."""

    symbol: str
    venue: str
    timeframe: Timeframe

    def __str__(self) -> str:
        return f"{self.symbol}@{self.venue}/{self.timeframe}"


@dataclass(frozen=True, slots=True)
class Bars:
    """A bar series as columns. All arrays have the same length; ``ts`` is strictly increasing.

    ``series`` carries extra per-bar float64 columns by name (e.g. a model's P(up) that a strategy
    template reads as ``models``); they follow the bars through ``slice``."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    series: Mapping[str, F64] = field(default_factory=dict, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, ts has {n}")
        for name, values in self.series.items():
            if len(values) != n:
                raise ValueError(f"series {name} has {len(values)} rows, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Bars:
        z = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), z, z.copy(), z.copy(), z.copy(), z.copy())

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            series={k: v[start:stop] for k, v in self.series.items()},
        )

    def with_series(self, series: Mapping[str, F64]) -> Bars:
        """These bars with ``series`` added (same arrays, no copy)."""
        return Bars(
            self.ts, self.open, self.high, self.low, self.close, self.volume, series={**self.series, **series}
        )


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """Catalog entry of a stored series."""

    key: SeriesKey
    asset_type: AssetType
    first_ts: int
    last_ts: int
    count: int


class BarStore(Protocol):
    """Where bars live: DuckDB (embedded) or PostgreSQL/TimescaleDB (split mode).

    ``upsert`` is idempotent on (symbol, venue, timeframe, ts): writing the same bars twice
    leaves one copy, and a changed bar (a venue revising a kline) replaces the old values.
    Reads return bars in time order, ``start`` inclusive and ``end`` exclusive (ns, UTC).
    """

    async def upsert(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        """Write bars; returns how many rows were inserted or changed."""
        ...

    async def read(
        self, key: SeriesKey, *, start: int | None = None, end: int | None = None, limit: int | None = None
    ) -> Bars:
        """Bars of ``key`` in [start, end); with ``limit``, the last ``limit`` of them."""
        ...

    async def series(self, *, symbol: str | None = None) -> list[SeriesInfo]:
        """The catalog: every stored series (optionally of one symbol)."""
        ...

    async def delete(self, key: SeriesKey) -> int: ...

    async def last_ts(self, key: SeriesKey) -> int | None:
        """Timestamp of the newest stored bar (for resuming downloads)."""
        ...

    async def ping(self) -> None: ...

    async def open(self) -> None:
        """Ready the store for use again after ``close`` (a no-op on an open store)."""
        ...

    async def close(self) -> None:
        """Release connections; the store refuses work until ``open`` is called."""
        ...


def to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return int(when.timestamp() * 1_000_000) * 1000


@dataclass(frozen=True, slots=True)
class BarUpdate:
    """A live bar: updated while it forms (``closed=False``), final once (``closed=True``)."""

    key: SeriesKey
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


@dataclass(frozen=True, slots=True)
class Trade:
    """One print from a venue (a tick)."""

    symbol: str
    venue: str
    ts: int
    price: float
    size: float
    trade_id: str | None = None


class LiveFeed(Protocol):
    """A source of live bars: the replay of stored bars (embedded default) or a venue's stream.

    ``bars`` yields updates for the requested series until the consumer stops iterating or the
    feed is closed; a feed that loses its connection reconnects by itself and says so in its log.
    """

    def bars(self, keys: list[SeriesKey]) -> AsyncIterator[BarUpdate]: ...

    async def close(self) -> None: ...
