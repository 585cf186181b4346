"""Speed of the data-quality report (``services/marketdata/quality.assess``).

Times ``assess`` on the real sample files and on large synthetic series (1M 1-minute crypto
bars with gaps and a halt; 5 years of XNYS 1-minute session bars; 10 years of FX hours), and
reports the median of several runs. The exchange calendar is built once per range (its first
build, about 0.1 s, is excluded: exchange_calendars caches it).

    uv run python bench/quality_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import algotrendy
from algotrendy.core.market import AssetType, Bars, Timeframe
from algotrendy.services.marketdata import _calendars
from algotrendy.services.marketdata.quality import assess

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
FILES = [
    ("BTCUSDT_1h_binance.csv.gz", "1h", AssetType.CRYPTO),
    ("BTCUSDT_1m_binance.csv.gz", "1m", AssetType.CRYPTO),
    ("EURUSD_1h.csv", "1h", AssetType.FX),
    ("SPY_1d.csv", "1d", AssetType.ETF),
]


def load(name: str) -> Bars:
    frame = pd.read_csv(SAMPLES / name)
    ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).as_unit("ns").asi8
    cols = (frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume"))
    return Bars(ts.astype(np.int64), *cols)


def random_walk(ts: np.ndarray, seed: int = 7) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(ts))))
    spread = np.abs(rng.normal(0, 5e-4, len(ts))) * close
    volume = rng.uniform(1, 10, len(ts))
    return Bars(ts.astype(np.int64), close, close + spread, close - spread, close, volume)


def synthetic() -> list[tuple[str, Bars, Timeframe, AssetType]]:
    minute = 60 * 10**9
    start = pd.Timestamp("2020-01-01T00:00:00Z").value
    crypto = np.arange(1_000_000, dtype=np.int64) * minute + start
    crypto = np.delete(crypto, np.s_[500_000:500_080])  # an 80-minute gap
    bars = random_walk(crypto)
    bars.volume[200_000:200_072] = 0.0
    for col in (bars.open, bars.high, bars.low, bars.close):
        col[200_000:200_072] = bars.close[199_999]
    tf1m, tf1h = Timeframe.parse("1m"), Timeframe.parse("1h")
    stock_ts = _calendars.expected(
        pd.Timestamp("2015-01-02T14:30:00Z").value,
        pd.Timestamp("2019-12-31T20:59:00Z").value,
        timeframe=tf1m,
        calendar="XNYS",
        present=np.empty(0, dtype=np.int64),
    )
    fx_ts = _calendars.expected(
        pd.Timestamp("2010-01-04T00:00:00Z").value,
        pd.Timestamp("2019-12-31T00:00:00Z").value,
        timeframe=tf1h,
        calendar="FX",
        present=np.empty(0, dtype=np.int64),
    )
    return [
        ("synthetic crypto 1m, 1M bars", bars, tf1m, AssetType.CRYPTO),
        (
            f"synthetic XNYS 1m, 5 years ({len(stock_ts):,} bars)",
            random_walk(stock_ts),
            tf1m,
            AssetType.STOCK,
        ),
        (f"synthetic FX 1h, 10 years ({len(fx_ts):,} bars)", random_walk(fx_ts), tf1h, AssetType.FX),
    ]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: builds and caches the exchange calendar
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cases = [(name, load(name), Timeframe.parse(tf), at) for name, tf, at in FILES] + synthetic()
    versions = f"numpy {np.__version__}, pandas {pd.__version__}"
    print(f"Python {sys.version.split()[0]}, {platform.machine()}, {versions}")
    print("| series | bars | median | min | score |\n| --- | --- | --- | --- | --- |")
    for label, bars, tf, asset_type in cases:
        times = timed(functools.partial(assess, bars, timeframe=tf, asset_type=asset_type), args.runs)
        score = assess(bars, timeframe=tf, asset_type=asset_type).summary.score
        median, best = statistics.median(times) * 1000, min(times) * 1000
        print(f"| {label} | {len(bars):,} | {median:.1f} ms | {best:.1f} ms | {score} |")


if __name__ == "__main__":
    main()
