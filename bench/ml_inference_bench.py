"""ML inference benchmark: ``services.ml.inference.Predictor`` on a 500-tree, 50-feature LightGBM model.

    uv run python bench/ml_inference_bench.py [--runs 20000] [--repeats 3] [--batch-runs 7]

The model: ``pipeline.train`` on a seeded random walk of 30,000 hourly bars (synthetic: the model
has nothing to find, but its 500 trees are fully grown), LightGBM with its defaults except 500
trees (15 leaves, one thread), features = the ``standard`` set (36) plus 14 lags = 50, next-bar
direction, purged 2-fold CV (the CV is not what is measured). Cases, each after a warm-up:

- ``Predictor.predict_row``: one feature row, cycling through 2,000 hold-out rows;
- ``TrainedModel.predict_proba_row``: the same rows through the sklearn wrapper, for comparison;
- ``Predictor.predict_bars``: features (``compute_last``) + model, on real BTCUSDT 1h sample bars,
  a ``window``-bar slice (355 bars) cycling through 256 different end bars; and
  ``compute_last`` alone on the same windows (the features' share);
- ``FeatureStream.update`` + ``Predictor.predict_row``: the streaming path, one call per new bar of
  the same real series, ``--runs`` consecutive bars after a fresh stream was warmed on every bar
  before them (and 500 untimed bars); and ``FeatureStream.update`` alone. The streamed rows are
  checked against ``compute`` on the whole series (max relative difference printed);
- ``Predictor.predict_matrix`` on 10,000 rows (and the sklearn wrapper on the same rows), median
  of ``--batch-runs``.

Each single call is timed alone with ``perf_counter_ns`` (garbage collector on); a round is
``--runs`` calls; the figures are the median over ``--repeats`` rounds of each round's median and
99th percentile (the p99 range over rounds is printed too). Prints a Markdown table and the machine.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import algotrendy
from algotrendy.core.market import Bars
from algotrendy.engine.ml.features import FeaturePlan, compute, compute_last, parse
from algotrendy.engine.ml.pipeline import TrainedModel, TrainingConfig, train
from algotrendy.engine.ml.streaming import FeatureStream
from algotrendy.engine.ml.trees import CompiledTrees
from algotrendy.services.ml.inference import Predictor, _FastRow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cpu_model, timings_us

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
FEATURES = (
    "standard",
    "lag(ret_1,3..6)",
    "lag(rsi_14,1..3)",
    "lag(volume_z_20,1..2)",
    "lag(vol_20,1..2)",
    "lag(bb_pctb_20,1..3)",
)


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


def load(name: str) -> Bars:
    df = pd.read_csv(SAMPLES / name, parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts), *cols)


def rounds(fn: Callable[[], object], runs: int, repeats: int) -> tuple[float, float, float, float]:
    """Median over rounds of (median, p99); and the p99's min and max over rounds."""
    meds, p99s = [], []
    for _ in range(repeats):
        xs = timings_us(fn, runs, warmup=500)
        meds.append(statistics.median(xs))
        p99s.append(float(np.percentile(xs, 99)))
    return statistics.median(meds), statistics.median(p99s), min(p99s), max(p99s)


def stream_timings_us(
    plan: FeaturePlan, bars: Bars, runs: int, predictor: Predictor | None, warmup: int = 500
) -> tuple[list[float], list[Any]]:
    """A fresh ``FeatureStream`` warmed on all bars but the last ``runs + warmup``, then each of
    those bars timed alone: ``update`` (+ ``predict_row`` if a predictor is given). Also the rows."""
    start = len(bars) - runs - warmup
    if start <= plan.warmup:
        raise SystemExit(f"--runs {runs} leaves {start} bars of history; the features need {plan.warmup + 1}")
    stream = FeatureStream(plan)
    stream.warm(bars.slice(0, start))
    ts, o, h, lo, c, v = (
        x.tolist() for x in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    )
    update = stream.update
    predict = predictor.predict_row if predictor is not None else None
    for i in range(start, start + warmup):
        row = update(ts[i], o[i], h[i], lo[i], c[i], v[i])
        if predict is not None:
            predict(row)
    gc.collect()
    out, rows = [], []
    clock = time.perf_counter_ns
    for i in range(start + warmup, len(bars)):
        t = clock()
        row = update(ts[i], o[i], h[i], lo[i], c[i], v[i])
        if predict is not None:
            predict(row)
        out.append((clock() - t) / 1e3)
        rows.append(row)
    return out, rows


def stream_rounds(
    plan: FeaturePlan, bars: Bars, runs: int, repeats: int, predictor: Predictor | None
) -> tuple[tuple[float, float, float, float], list[Any]]:
    """As ``rounds``, for the streaming path; and the rows of the last round."""
    meds: list[float] = []
    p99s: list[float] = []
    rows: list[Any] = []
    for _ in range(repeats):
        xs, rows = stream_timings_us(plan, bars, runs, predictor)
        meds.append(statistics.median(xs))
        p99s.append(float(np.percentile(xs, 99)))
    return (statistics.median(meds), statistics.median(p99s), min(p99s), max(p99s)), rows


def max_relative_diff(got: np.ndarray, want: np.ndarray) -> float:
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        raise SystemExit("streamed rows: NaN positions differ from compute")
    ok = ~np.isnan(want)
    return float(np.max(np.abs(got[ok] - want[ok]) / np.maximum(np.abs(want[ok]), 1e-12), initial=0.0))


def cycling(items: list[Any]) -> Callable[[], Any]:
    it = itertools.cycle(items)
    return lambda: next(it)


def tree_depths(trained: TrainedModel) -> float:
    def depth(node: dict[str, Any]) -> int:
        if "split_index" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    info = trained.model.booster_.dump_model()["tree_info"]
    return statistics.mean(depth(t["tree_structure"]) for t in info)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-runs", type=int, default=7)
    args = ap.parse_args()

    plan = parse(FEATURES)
    synthetic = random_walk(30_000)
    config = TrainingConfig(
        features=FEATURES, hyperparams={"n_estimators": 500}, cv_splits=2, embargo=5, n_jobs=1
    )
    t = time.perf_counter()
    trained = train(synthetic, config)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    predictor = Predictor(trained)
    build_ms = (time.perf_counter() - t) * 1e3

    X = compute(synthetic, plan).values
    X = X[np.isfinite(X).all(axis=1)]
    rows = [np.ascontiguousarray(r) for r in X[-2000:]]
    batch = np.ascontiguousarray(X[-10_000:])
    exact = float(np.max(np.abs(predictor.predict_matrix(batch) - trained.predict_proba(batch))))
    if exact > 1e-12:
        raise SystemExit(f"predict_matrix differs from predict_proba by {exact}")

    real = load("BTCUSDT_1h_binance.csv.gz")
    w = plan.window
    windows = [real.slice(end - w, end) for end in range(len(real) - 255, len(real) + 1)]

    load_before = os.getloadavg()
    next_row, next_row2, next_row3, next_win, next_win2 = (
        cycling(rows),
        cycling(rows),
        cycling(rows),
        cycling(windows),
        cycling(windows),
    )
    c_row = _FastRow(trained.model.booster_, len(trained.feature_names), -1)
    cases = {
        "row": rounds(lambda: predictor.predict_row(next_row()), args.runs, args.repeats),
        "c_row": rounds(lambda: c_row(next_row3()), args.runs, args.repeats),
        "sklearn_row": rounds(lambda: trained.predict_proba_row(next_row2()), args.runs // 4, args.repeats),
        "bars": rounds(lambda: predictor.predict_bars(next_win()), args.runs, args.repeats),
        "features": rounds(lambda: compute_last(next_win2(), plan), args.runs, args.repeats),
    }
    cases["stream"], streamed = stream_rounds(plan, real, args.runs, args.repeats, predictor)
    cases["stream_features"], _ = stream_rounds(plan, real, args.runs, args.repeats, None)
    batch_ms = [
        t / 1e3 for t in timings_us(lambda: predictor.predict_matrix(batch), args.batch_runs, warmup=1)
    ]
    sk_ms = [t / 1e3 for t in timings_us(lambda: trained.predict_proba(batch), args.batch_runs, warmup=1)]
    booster = trained.model.booster_
    lgb_ms = [
        t / 1e3 for t in timings_us(lambda: booster.predict(batch, num_threads=1), args.batch_runs, warmup=1)
    ]
    trees = CompiledTrees.from_lightgbm(booster)
    one_ms = [
        t / 1e3
        for t in timings_us(lambda: trees.predict(batch, finite=True, threads=1), args.batch_runs, warmup=1)
    ]
    load_after = os.getloadavg()
    want = compute(real, plan).values[len(real) - len(streamed) :]
    stream_diff = max_relative_diff(np.array(streamed), want)
    if stream_diff > 1e-9:
        raise SystemExit(f"streamed rows differ from compute by {stream_diff:.1e} (relative)")

    import lightgbm

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python "
        f"{platform.python_version()}, numpy {np.__version__}, lightgbm {lightgbm.__version__}; load "
        f"average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print(
        f"Model: {trained.model.booster_.num_trees()} trees (mean depth {tree_depths(trained):.1f}), "
        f"{len(trained.feature_names)} features, path {predictor.path!r}; trained in {train_s:.1f} s, "
        f"Predictor built in {build_ms:.0f} ms; batch max |diff| vs predict_proba {exact:.1e}; "
        f"windows of {w} bars; streamed rows vs compute: max relative diff {stream_diff:.1e} over "
        f"{len(streamed):,} bars\n"
    )
    print(f"| case | median | p99 (median of {args.repeats} rounds) | p99 range |")
    print("| --- | ---: | ---: | ---: |")
    labels = {
        "row": "`Predictor.predict_row` (compiled walk)",
        "c_row": "LightGBM's C single-row entry (the fallback), for comparison",
        "sklearn_row": "`TrainedModel.predict_proba_row` (sklearn wrapper)",
        "bars": f"`Predictor.predict_bars`, {w}-bar window (features + model)",
        "features": f"`compute_last` alone, same windows ({len(plan.specs)} features)",
        "stream": f"`FeatureStream.update` + `Predictor.predict_row`, per new bar ({args.runs:,} bars)",
        "stream_features": "`FeatureStream.update` alone, same bars",
    }
    for key, label in labels.items():
        med, p99, lo, hi = cases[key]
        print(f"| {label} | {med:.1f} µs | {p99:.1f} µs | {lo:.1f}–{hi:.1f} µs |")
    print(
        f"| `Predictor.predict_matrix`, 10,000 rows (median of {args.batch_runs}) "
        f"| {statistics.median(batch_ms):.1f} ms | | {min(batch_ms):.1f}–{max(batch_ms):.1f} ms |"
    )
    for label, ms in (
        ("`CompiledTrees.predict` on one thread", one_ms),
        ("LightGBM `Booster.predict`, one thread", lgb_ms),
        ("`TrainedModel.predict_proba`", sk_ms),
    ):
        print(
            f"| {label}, 10,000 rows (median of {args.batch_runs}) "
            f"| {statistics.median(ms):.1f} ms | | {min(ms):.1f}–{max(ms):.1f} ms |"
        )


if __name__ == "__main__":
    main()
