"""ML accuracy on the sample data: the default model against naive baselines and buy-and-hold.

    uv run python bench/ml_accuracy.py [--max-bars 200000] [--n-jobs 1]

Not a speed benchmark: what ``pipeline.train`` reaches out of sample on the shipped sample bars.
The model is the platform's default: LightGBM with its default parameters, the ``standard``
feature set, the next bar's direction as the label (``LabelSpec("direction", horizon=1)``), no
Optuna, no feature selection, purged 5-fold CV (embargo 1 %), the last 20 % held out, seed 0,
the default costs (fee 0.1 % + slippage 0.05 % per fill) and signal (long while P(up) > 0.55,
flat otherwise). Markets: AAPL 1d, SPY 1d, BTCUSDT 1h and BTCUSDT 1m, each the whole shipped
series (at most the last ``--max-bars`` bars).

For every market it prints the hold-out block's accuracy next to the majority-class and
previous-direction baselines on the same samples, the AUC, and the hold-out signal backtest
(``evaluate.signal_backtest``: decided at a bar's close, filled at the next open) against
buy-and-hold of the same bars with the same costs. The signal is then backtested once more on the
same probabilities without costs, to show what the costs take (the script checks first that its
own recomputation of the probabilities reproduces the pipeline's backtest with costs). The purged
CV scores of the training part are printed below, for comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import algotrendy
from algotrendy.core.market import Bars
from algotrendy.engine.ml.evaluate import signal_backtest
from algotrendy.engine.ml.features import compute
from algotrendy.engine.ml.pipeline import LabelSpec, TrainedModel, TrainingConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import cpu_model

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
MARKETS: tuple[tuple[str, str, str], ...] = (
    ("AAPL", "1d", "AAPL_1d.csv"),
    ("SPY", "1d", "SPY_1d.csv"),
    ("BTCUSDT", "1h", "BTCUSDT_1h_binance.csv.gz"),
    ("BTCUSDT", "1m", "BTCUSDT_1m_binance.csv.gz"),
)


def load(name: str) -> Bars:
    df = pd.read_csv(SAMPLES / name, parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts), *cols)


def day(ts: int) -> str:
    return pd.Timestamp(ts, tz="UTC").strftime("%Y-%m-%d")


def pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def num(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def holdout_probabilities(bars: Bars, trained: TrainedModel) -> np.ndarray:
    """P(up) at every bar of the hold-out block (NaN where a feature is missing), recomputed."""
    split = trained.holdout_range["split_index"]
    X = compute(bars, trained.feature_spec).values[split:]
    p = np.full(len(X), np.nan)
    ok = np.flatnonzero(np.all(np.isfinite(X), axis=1))
    if len(ok):
        p[ok] = trained.predict_proba(X[ok])
    return p


def evaluate_market(bars: Bars, config: TrainingConfig) -> dict[str, Any]:
    t = time.perf_counter()
    trained = train(bars, config)
    seconds = time.perf_counter() - t
    hold = trained.metrics["holdout"]
    split = trained.holdout_range["split_index"]
    hold_bars = bars.slice(split, len(bars))
    p = holdout_probabilities(bars, trained)
    costs = {"threshold_long": config.threshold_long, "threshold_short": config.threshold_short}
    with_costs = signal_backtest(hold_bars, p, fee_rate=config.fee_rate, slippage=config.slippage, **costs)
    expected = hold["backtest"]["strategy"]["total_return"]
    got = with_costs["strategy"]["total_return"]
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12), (got, expected)
    gross = signal_backtest(hold_bars, p, fee_rate=0.0, slippage=0.0, **costs)
    return {"trained": trained, "seconds": seconds, "gross": gross, "hold_bars": hold_bars}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-bars", type=int, default=200_000)
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()

    config = TrainingConfig(
        features="standard",
        label=LabelSpec("direction", horizon=1),
        model_type="lightgbm",
        optimize_trials=0,
        cv_splits=5,
        seed=0,
        n_jobs=args.n_jobs,
    )
    import lightgbm

    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = []
    for symbol, interval, file in MARKETS:
        bars = load(file)
        if len(bars) > args.max_bars:
            bars = bars.slice(len(bars) - args.max_bars, len(bars))
        rows.append((f"{symbol} {interval}", bars, evaluate_market(bars, config)))
    total = time.perf_counter() - start
    load_after = os.getloadavg()

    per_market = ", ".join(f"{name} {r['seconds']:.1f} s" for name, _, r in rows)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), Python "
        f"{platform.python_version()}, lightgbm {lightgbm.__version__}; load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}; total {total:.1f} s "
        f"({per_market})"
    )
    print(
        f"Model: lightgbm defaults, features standard, label direction horizon 1, seed 0, purged "
        f"{config.cv_splits}-fold CV (embargo {config.embargo:.0%}), last {config.test_fraction:.0%} "
        f"held out; signal long while p > {config.threshold_long}, fee {config.fee_rate:.2%} + "
        f"slippage {config.slippage:.2%} per fill\n"
    )
    print(
        "| market | bars | hold-out (samples) | accuracy | majority | previous direction | AUC "
        "| signal, after costs (trades) | buy and hold, after costs | signal, no costs |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, bars, r in rows:
        tm: TrainedModel = r["trained"]
        hold = tm.metrics["holdout"]
        m, base, bt = hold["model"], hold["baselines"], hold["backtest"]
        period = f"{day(r['hold_bars'].ts[0])} .. {day(r['hold_bars'].ts[-1])}"
        st = bt["strategy"]
        print(
            f"| {name} | {len(bars):,} | {period} ({tm.metrics['n_holdout']:,}) | {num(m['accuracy'])} "
            f"| {num(base['majority']['accuracy'])} | {num(base['previous_direction']['accuracy'])} "
            f"| {num(m['auc'])} | {pct(st['total_return'])} ({st['number_of_trades']:,}) "
            f"| {pct(bt['buy_and_hold']['total_return'])} "
            f"| {pct(r['gross']['strategy']['total_return'])} |"
        )

    print("\nPurged CV of the training part (out-of-fold), for comparison\n")
    print("| market | samples | accuracy | majority | previous direction | AUC | IC (hold-out IC) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, _, r in rows:
        tm = r["trained"]
        cv = tm.metrics["cv"]
        m, base = cv["model"], cv["baselines"]
        print(
            f"| {name} | {int(m['n']):,} | {num(m['accuracy'])} | {num(base['majority']['accuracy'])} "
            f"| {num(base['previous_direction']['accuracy'])} | {num(m['auc'])} | {num(m['ic'])} "
            f"({num(tm.metrics['holdout']['model']['ic'])}) |"
        )


if __name__ == "__main__":
    main()
