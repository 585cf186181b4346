"""The real sample series shipped in ``algotrendy/sample_data``, loaded once per process.

A fake serves the file's own decimal strings (``Sample.rows``); a test compares against
``Sample.bars()``, the same strings parsed to float64, so equality is exact.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

import algotrendy
from algotrendy.core.market import Bars

SAMPLE_DIR = Path(algotrendy.__file__).parent / "sample_data"
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Sample:
    name: str
    ts: np.ndarray
    """int64 ns, UTC, ascending (the file's labels)."""
    rows: tuple[tuple[str, str, str, str, str], ...]
    """open, high, low, close, volume exactly as written in the file."""

    def __len__(self) -> int:
        return len(self.ts)

    def bars(self, start: int = 0, stop: int | None = None) -> Bars:
        rows = self.rows[start:stop]
        cols = np.array([[float(x) for x in r] for r in rows], dtype=np.float64).reshape(-1, 5)
        return Bars(
            self.ts[start:stop].copy(),
            cols[:, 0].copy(),
            cols[:, 1].copy(),
            cols[:, 2].copy(),
            cols[:, 3].copy(),
            cols[:, 4].copy(),
        )

    def index(self, ts_ns: int) -> int:
        """Position of the first bar at or after ``ts_ns``."""
        return int(np.searchsorted(self.ts, ts_ns, side="left"))


@cache
def sample(name: str) -> Sample:
    """``sample("SPY_1d")`` or ``sample("BTCUSDT_1h_binance")`` (``.csv`` or ``.csv.gz``)."""
    path = SAMPLE_DIR / f"{name}.csv"
    if not path.exists():
        path = SAMPLE_DIR / f"{name}.csv.gz"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        raw = list(reader)
    ts = np.array([r[0].rstrip("Z") for r in raw], dtype="datetime64[s]").astype(np.int64) * NS_PER_S
    rows = tuple((r[1], r[2], r[3], r[4], r[5]) for r in raw)
    return Sample(name=name, ts=ts, rows=rows)


STOCK_DAILY = {"SPY": "SPY_1d", "AAPL": "AAPL_1d", "MSFT": "MSFT_1d", "GOOG": "GOOG_1d", "^GSPC": "SPX_1d"}
"""US daily samples by ticker (Yahoo's ^GSPC is the SPX file)."""


def new_york_seconds(ts_ns: np.ndarray, hour: int = 0, minute: int = 0) -> np.ndarray:
    """For session labels (00:00 UTC of a date): that date at ``hour:minute`` New York time,
    in epoch seconds (what Yahoo, Alpaca and Polygon stamp daily bars with)."""
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    out = np.empty(len(ts_ns), dtype=np.int64)
    for k, t in enumerate(ts_ns):
        day = datetime.fromtimestamp(int(t) // NS_PER_S, UTC).date()
        out[k] = int(datetime.combine(day, time(hour, minute), ny).timestamp())
    return out


@cache
def stock_daily(symbol: str) -> tuple[Sample, np.ndarray, np.ndarray]:
    """(sample, midnight-New-York seconds, 09:30-New-York seconds) of a daily stock sample."""
    data = sample(STOCK_DAILY[symbol])
    return data, new_york_seconds(data.ts), new_york_seconds(data.ts, 9, 30)
