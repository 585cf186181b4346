"""Indicator benchmarks: batch through our API vs TA-Lib directly, streaming per update vs talipp.

    uv run python bench/indicators_bench.py [--bars 1000000] [--batch-runs 7]
                                            [--updates 200000] [--stream-runs 5]

Data: a seeded random walk (OHLCV, float64), built once. Batch: ``compute(name, bars)`` against
the same ``talib.<NAME>(...)`` call, median of ``--batch-runs`` after one warm-up call each.
Streaming: ``<Class>.update(...)`` per closed bar against talipp's ``Indicator.add(...)``, median
of ``--stream-runs`` runs of ``--updates`` updates each (a fresh object per run; talipp's OHLCV
inputs are built before the clock starts). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import talib
from talipp import indicators as tp
from talipp.ohlcv import OHLCV

from algotrendy.core.market import Bars
from algotrendy.indicators import compute
from algotrendy.indicators import streaming as ours


def random_walk(n: int, seed: int = 42) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(1, 10_000, n).astype(np.float64)
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 60) * 1_000_000_000
    return Bars(ts, open_, high, low, close, volume)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def bench_batch(bars: Bars, runs: int) -> list[tuple[str, float, float]]:
    c, h, lo = bars.close, bars.high, bars.low
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("SMA(20)", lambda: compute("sma", bars), lambda: talib.SMA(c, 20)),
        ("EMA(20)", lambda: compute("ema", bars), lambda: talib.EMA(c, 20)),
        ("RSI(14)", lambda: compute("rsi", bars), lambda: talib.RSI(c, 14)),
        ("MACD(12,26,9)", lambda: compute("macd", bars), lambda: talib.MACD(c, 12, 26, 9)),
        ("BBANDS(20,2)", lambda: compute("bbands", bars), lambda: talib.BBANDS(c, 20, 2.0, 2.0, 0)),
        ("ATR(14)", lambda: compute("atr", bars), lambda: talib.ATR(h, lo, c, 14)),
    ]
    out = []
    for name, our, direct in cases:
        # interleave so that a noisy neighbour hits both sides alike
        a, b = [], []
        for _ in range(runs):
            a.append(median_ms(our, 1))
            b.append(median_ms(direct, 1))
        out.append((name, statistics.median(a), statistics.median(b)))
    return out


def per_update_us(make: Callable[[], Any], feed: Callable[[Any], None], runs: int, n: int) -> float:
    times = []
    for _ in range(runs):
        obj = make()
        gc.collect()
        t = time.perf_counter()
        feed(obj)
        times.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(times)


def bench_streaming(bars: Bars, n: int, runs: int) -> list[tuple[str, float, float]]:
    closes = bars.close[:n].tolist()
    highs, lows = bars.high[:n].tolist(), bars.low[:n].tolist()
    hlc = list(zip(highs, lows, closes, strict=True))
    ohlcv = [
        OHLCV(o, h, lo, c, v)
        for o, h, lo, c, v in zip(
            bars.open[:n].tolist(), highs, lows, closes, bars.volume[:n].tolist(), strict=True
        )
    ]

    def close_feed(obj: Any) -> None:
        upd = obj.update
        for x in closes:
            upd(x)

    def hlc_feed(obj: Any) -> None:
        upd = obj.update
        for h, lo, c in hlc:
            upd(h, lo, c)

    def tp_close(obj: Any) -> None:
        add = obj.add
        for x in closes:
            add(x)

    def tp_ohlcv(obj: Any) -> None:
        add = obj.add
        for bar in ohlcv:
            add(bar)

    cases: list[
        tuple[str, Callable[[], Any], Callable[[Any], None], Callable[[], Any], Callable[[Any], None]]
    ] = [
        ("SMA(20)", lambda: ours.SMA(20), close_feed, lambda: tp.SMA(20), tp_close),
        ("EMA(20)", lambda: ours.EMA(20), close_feed, lambda: tp.EMA(20), tp_close),
        ("RSI(14)", lambda: ours.RSI(14), close_feed, lambda: tp.RSI(14), tp_close),
        ("ATR(14)", lambda: ours.ATR(14), hlc_feed, lambda: tp.ATR(14), tp_ohlcv),
        ("MACD(12,26,9)", lambda: ours.MACD(12, 26, 9), close_feed, lambda: tp.MACD(12, 26, 9), tp_close),
        ("BBANDS(20,2)", lambda: ours.BBANDS(20, 2.0), close_feed, lambda: tp.BB(20, 2.0), tp_close),
    ]
    out = []
    for name, make_ours, feed_ours, make_tp, feed_tp in cases:
        out.append(
            (name, per_update_us(make_ours, feed_ours, runs, n), per_update_us(make_tp, feed_tp, runs, n))
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--batch-runs", type=int, default=7)
    ap.add_argument("--updates", type=int, default=200_000)
    ap.add_argument("--stream-runs", type=int, default=5)
    args = ap.parse_args()
    bars = random_walk(args.bars)

    print(f"Batch, {args.bars:,} bars, median of {args.batch_runs} (ms)\n")
    print("| indicator | our API | TA-Lib direct | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, a, b in bench_batch(bars, args.batch_runs):
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")

    print(f"\nStreaming, {args.updates:,} updates, median of {args.stream_runs} (us per update)\n")
    print("| indicator | ours | talipp | ours / talipp |")
    print("| --- | ---: | ---: | ---: |")
    for name, a, b in bench_streaming(bars, args.updates, args.stream_runs):
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
