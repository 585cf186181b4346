"""Seeded synthetic bars for the indicator unit tests (no I/O)."""

from __future__ import annotations

import numpy as np

from algotrendy.core.market import Bars


def walk(n: int, seed: int = 7) -> Bars:
    """A random walk on a 0.01 tick grid, with some dojis and gaps, so candle patterns fire."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n)).round(2)
    open_ = (np.r_[close[0], close[:-1]] + rng.normal(0, 0.6, n)).round(2)
    doji = rng.random(n) < 0.08
    open_[doji] = close[doji]
    high = (np.maximum(open_, close) + rng.exponential(0.5, n)).round(2)
    low = (np.minimum(open_, close) - rng.exponential(0.5, n)).round(2)
    volume = rng.integers(0, 1000, n).astype(np.float64)
    ts = (1_700_000_000 + np.arange(n) * 3600) * 10**9
    return Bars(ts.astype(np.int64), open_, high, low, close, volume)
