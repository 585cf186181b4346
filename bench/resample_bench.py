"""Speed of resampling and chart-style transforms on 1M seeded synthetic 1m bars.

Target: resample 1,000,000 1m bars to 1h in <= 100 ms (median of 7 runs). Also reports the
session-aware paths (1m -> 1d in New York sessions, 1m -> 1w) and each chart style, for the
figures table in bench/README.md. Every function is called once before timing (numba JIT).

    uv run python bench/resample_bench.py [--bars 1000000] [--runs 7] [--no-charts]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from algotrendy.core.market import Bars, Timeframe
from algotrendy.indicators.charts import apply_chart_style
from algotrendy.indicators.resample import SessionSpec, resample

MIN_NS = 60 * 1_000_000_000
TARGET_MS = 100.0


def synthetic_minutes(n: int, seed: int = 20240101) -> Bars:
    """A seeded random walk of ``n`` 1m bars from 2020-01-01 with ~0.1 % of minutes missing."""
    rng = np.random.default_rng(seed)
    steps = np.ones(n, dtype=np.int64)
    steps[rng.random(n) < 0.001] = 2  # gaps
    ts = np.int64(1_577_836_800) * 1_000_000_000 + np.cumsum(steps) * MIN_NS
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.0004, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.gamma(2.0, 5.0, n)
    return Bars(ts, open_, high, low, close, volume)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    fn()  # warm-up (numba compiles on the first call)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), max(times)


def _chart_case(bars: Bars, name: str, params: dict[str, object]) -> Callable[[], object]:
    return lambda: apply_chart_style(bars, name, params)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-charts", action="store_true")
    args = ap.parse_args()

    bars = synthetic_minutes(args.bars)
    m1, h1, d1, w1 = (Timeframe.parse(t) for t in ("1m", "1h", "1d", "1w"))
    print(
        f"{args.bars:,} 1m bars, median of {args.runs} runs; Python {platform.python_version()}, "
        f"numpy {np.__version__}, {platform.machine()}"
    )
    cases: list[tuple[str, Callable[[], object]]] = [
        ("resample 1m -> 1h (UTC epoch)", lambda: resample(bars, source=m1, target=h1)),
        ("resample 1m -> 1d (UTC days)", lambda: resample(bars, source=m1, target=d1)),
        (
            "resample 1m -> 1d (New York sessions)",
            lambda: resample(bars, source=m1, target=d1, session=SessionSpec.us_equity()),
        ),
        (
            "resample 1m -> 1w (FX sessions)",
            lambda: resample(bars, source=m1, target=w1, session=SessionSpec.fx()),
        ),
    ]
    if not args.no_charts:
        styles: list[tuple[str, dict[str, object]]] = [
            ("heikin_ashi", {}),
            ("renko", {"brick": "atr"}),
            ("range", {"size": "atr"}),
            ("three_line_break", {}),
            ("kagi", {"reversal": 1.0}),
            ("point_figure", {"box": "atr"}),
            ("volume", {"threshold": 500.0}),
            ("dollar", {"threshold": 15_000_000.0}),
        ]
        for name, params in styles:
            cases.append((f"chart {name} {params or ''}".strip(), _chart_case(bars, name, params)))
    failed = False
    for label, fn in cases:
        med, lo, hi = timed(fn, args.runs)
        mark = ""
        if label.startswith("resample 1m -> 1h"):
            ok = med <= TARGET_MS
            failed = not ok
            mark = f"  target <= {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}"
        print(f"{label:48s} {med:8.1f} ms  (min {lo:.1f}, max {hi:.1f}){mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
