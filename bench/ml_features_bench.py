"""ML feature benchmark: the "standard" set, batch vs the single-row path, and batch on 100k bars.

    uv run python bench/ml_features_bench.py [--runs 5000] [--big-runs 7]

Data: a seeded random walk of hourly OHLCV bars (float64 ``Bars``). Cases, each after a warm-up:

- ``compute(bars, plan)`` on 300 bars: every feature at every bar (what training does);
- ``compute_last(bars, plan)`` on the last ``window(plan)`` bars: the latest row only (what
  inference does), with the plan parsed once as a hot path would;
- ``compute(bars, plan)`` on 100,000 bars, median of ``--big-runs``.

Each call is timed alone with ``perf_counter_ns``; the figures are the median and the 99th
percentile of ``--runs`` calls, garbage collector on. Prints a Markdown table and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine.ml.features import compute, compute_last, parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cpu_model, timings_us


def random_walk(n: int, seed: int = 42) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1, 10_000, n).astype(np.float64)
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 3600) * 1_000_000_000
    return Bars(ts, open_, high, low, close, volume)


def summary(xs: list[float]) -> tuple[float, float]:
    return statistics.median(xs), float(np.percentile(xs, 99))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--big-runs", type=int, default=7)
    args = ap.parse_args()

    plan = parse("standard")
    big = random_walk(100_000)
    bars300 = big.slice(len(big) - 300, len(big))
    window = big.slice(len(big) - plan.window, len(big))
    load_before = os.getloadavg()

    batch300 = summary(timings_us(lambda: compute(bars300, plan), args.runs))
    last = summary(timings_us(lambda: compute_last(window, plan), args.runs))
    last300 = summary(timings_us(lambda: compute_last(bars300, plan), args.runs))
    big_ms = statistics.median(
        t / 1e3 for t in timings_us(lambda: compute(big, plan), args.big_runs, warmup=1)
    )
    assert np.allclose(compute_last(window, plan), compute(window, plan).values[-1], rtol=1e-6, atol=1e-6)

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python "
        f"{platform.python_version()}, numpy {np.__version__}; load average before "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    print(
        f"Plan: {len(plan.specs)} features (standard), warm-up {plan.warmup} bars, "
        f"window {plan.window} bars\n"
    )
    print("| case | median | p99 |")
    print("| --- | ---: | ---: |")
    print(f"| `compute`, 300 bars (all rows) | {batch300[0]:.0f} µs | {batch300[1]:.0f} µs |")
    print(
        f"| `compute_last`, {plan.window} bars (the window; last row) "
        f"| **{last[0]:.0f} µs** | **{last[1]:.0f} µs** |"
    )
    print(f"| `compute_last`, 300 bars (last row) | {last300[0]:.0f} µs | {last300[1]:.0f} µs |")
    print(f"| `compute`, 100,000 bars (median of {args.big_runs}) | {big_ms:.1f} ms | |")


if __name__ == "__main__":
    main()
