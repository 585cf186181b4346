"""ML training benchmark: ``pipeline.train`` end to end on 100k one-minute bars, per step.

    uv run python bench/ml_train_bench.py [--runs 3] [--bars 100000] [--data stitched|btc] [--n-jobs 1]

The "standard" model: LightGBM with its default parameters (200 trees, 15 leaves), the
``standard`` feature set (36 features), the next bar's direction as the label, no Optuna, no
feature selection, purged 5-fold CV (embargo 1 %), the last 20 % held out, one thread.

Data: the BTCUSDT 1-minute sample has 66,087 bars (2023-03-16 .. 2023-05-01). ``--data
stitched`` (the default) appends the ETHUSDT 1-minute sample of the same weeks, its prices scaled
so that its first open equals BTC's last close and its timestamps continuing after BTC's last
bar, and keeps the first ``--bars`` (real one-minute returns throughout, but the hold-out block is
then ETH's); ``--data btc`` uses the BTC bars alone (66,087).

Each run is timed from the ``progress`` callbacks (``perf_counter``): a step's time is from the
previous step's last report to its own. The libraries are imported before the first run (the
import time is printed apart). Prints the median of ``--runs`` per step and in total, and the
hold-out (and CV) metrics against the naive baselines.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import algotrendy
from algotrendy.core.market import Bars
from algotrendy.engine.ml.pipeline import STEPS, LabelSpec, TrainedModel, TrainingConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cpu_model

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"


def load(name: str) -> Bars:
    df = pd.read_csv(SAMPLES / name, parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts), *cols)


def stitched(n: int) -> Bars:
    btc = load("BTCUSDT_1m_binance.csv.gz")
    eth = load("ETHUSDT_1m_binance.csv.gz")
    scale = btc.close[-1] / eth.open[0]
    step = int(np.median(np.diff(btc.ts)))
    ts = np.concatenate([btc.ts, btc.ts[-1] + step + (eth.ts - eth.ts[0])])
    cols = [
        np.concatenate([getattr(btc, c), getattr(eth, c) * scale]) for c in ("open", "high", "low", "close")
    ]
    volume = np.concatenate([btc.volume, eth.volume / scale])  # keep the dollar volume
    bars = Bars(ts, *cols, volume)
    return bars.slice(0, min(n, len(bars)))


def timed_run(bars: Bars, config: TrainingConfig) -> tuple[dict[str, float], float, TrainedModel]:
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def progress(step: str, done: float) -> None:
        marks[step] = time.perf_counter()

    trained = train(bars, config, progress)
    total = time.perf_counter() - start
    per_step: dict[str, float] = {}
    prev = start
    for step in STEPS:
        per_step[step] = marks[step] - prev
        prev = marks[step]
    return per_step, total, trained


def fmt(x: Any, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--data", choices=("stitched", "btc"), default="stitched")
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()

    bars = stitched(args.bars) if args.data == "stitched" else load("BTCUSDT_1m_binance.csv.gz")
    config = TrainingConfig(
        features="standard",
        label=LabelSpec("direction", horizon=1),
        model_type="lightgbm",
        optimize_trials=0,
        cv_splits=5,
        n_jobs=args.n_jobs,
    )
    t = time.perf_counter()
    import lightgbm
    import sklearn.metrics  # noqa: F401

    import_s = time.perf_counter() - t
    load_before = os.getloadavg()
    runs = [timed_run(bars, config) for _ in range(args.runs)]
    load_after = os.getloadavg()
    trained = runs[-1][2]
    for _, _, other in runs[:-1]:  # deterministic: every run gives the same model
        assert other.metrics["holdout"]["model"] == trained.metrics["holdout"]["model"]

    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python "
        f"{platform.python_version()}, lightgbm {lightgbm.__version__}; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}; library imports {import_s:.2f} s"
    )
    print(
        f"Data: {args.data}, {len(bars):,} bars; {trained.metrics['n_train']:,} training samples, "
        f"{trained.metrics['n_holdout']:,} held out; n_jobs {args.n_jobs}\n"
    )
    print(f"| step | median of {args.runs} | runs |")
    print("| --- | ---: | --- |")
    for step in STEPS:
        xs = [r[0][step] for r in runs]
        print(f"| {step} | {statistics.median(xs):.2f} s | {', '.join(f'{x:.2f}' for x in xs)} |")
    totals = [r[1] for r in runs]
    print(f"| **total** (target ≤ 60 s) | **{statistics.median(totals):.2f} s** | "
          f"{', '.join(f'{x:.2f}' for x in totals)} |\n")  # fmt: skip

    for part in ("holdout", "cv"):
        rep = trained.metrics[part]
        m, base = rep["model"], rep["baselines"]
        print(f"{part} ({int(m['n']):,} samples)\n")
        print("| forecast | accuracy | balanced acc. | AUC | log loss | Brier | IC |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in (
            ("model", m),
            ("majority", base["majority"]),
            ("previous bar", base["previous_direction"]),
        ):
            cells = [fmt(s[k]) for k in ("accuracy", "balanced_accuracy", "auc", "log_loss", "brier", "ic")]
            print(f"| {name} | {' | '.join(cells)} |")
        bt = rep["backtest"]
        st, bh = bt["strategy"], bt["buy_and_hold"]
        print(
            f"\nbacktest over {bt['bars']:,} bars (long while p > {bt['threshold_long']}, fee "
            f"{bt['fee_rate']:.2%} + slippage {bt['slippage']:.2%} per fill): strategy total return "
            f"{fmt(st['total_return'])} ({st['number_of_trades']} trades, exposure "
            f"{fmt(st['exposure'], 3)}, Sharpe {fmt(st['sharpe_ratio'], 2)}), buy-and-hold "
            f"{fmt(bh['total_return'])} (Sharpe {fmt(bh['sharpe_ratio'], 2)})\n"
        )


if __name__ == "__main__":
    main()
