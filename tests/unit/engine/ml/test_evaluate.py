"""Evaluation: scores equal sklearn/scipy on hand inputs, baselines, the signal backtest, real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn import metrics

from algotrendy.core.market import Bars
from algotrendy.engine.ml.evaluate import (
    baselines,
    classification_scores,
    information_coefficient,
    previous_direction,
    report,
    signal_backtest,
)
from algotrendy.engine.ml.pipeline import TrainingConfig, train
from tests.golden.indicator_samples import SAMPLES

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1], dtype=np.float64)
P = np.array([0.9, 0.2, 0.6, 0.4, 0.5, 0.1, 0.7, 0.65, 0.3, 0.55])
R = np.array([0.02, -0.01, 0.005, 0.001, -0.003, -0.02, 0.01, -0.004, 0.002, 0.006])


def test_scores_equal_sklearn_on_hand_inputs() -> None:
    s = classification_scores(Y, P, R)
    yb = Y.astype(int)
    pred = (P >= 0.5).astype(int)
    assert s["n"] == 10
    assert s["positive_rate"] == pytest.approx(0.6)
    assert s["predicted_positive_rate"] == pytest.approx(pred.mean())
    assert s["accuracy"] == pytest.approx(metrics.accuracy_score(yb, pred))
    assert s["accuracy"] == pytest.approx(0.6)  # by hand: wrong at p = 0.4, 0.5, 0.65 and 0.3
    assert s["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(yb, pred))
    assert s["auc"] == pytest.approx(metrics.roc_auc_score(yb, P))
    assert s["log_loss"] == pytest.approx(metrics.log_loss(yb, P))
    assert s["log_loss"] == pytest.approx(-np.mean(yb * np.log(P) + (1 - yb) * np.log(1 - P)))
    assert s["brier"] == pytest.approx(metrics.brier_score_loss(yb, P))
    assert s["brier"] == pytest.approx(np.mean((P - yb) ** 2))
    assert s["ic"] == pytest.approx(spearmanr(P, R).statistic)


def test_nan_forecasts_are_not_scored_and_undefined_is_none() -> None:
    p = P.copy()
    p[[0, 3]] = np.nan
    s = classification_scores(Y, p, R)
    keep = ~np.isnan(p)
    assert s["n"] == 8
    assert s["auc"] == pytest.approx(metrics.roc_auc_score(Y[keep], p[keep]))
    one_class = classification_scores(np.ones(4), np.array([0.2, 0.6, 0.7, 0.9]))
    assert one_class["auc"] is None and one_class["balanced_accuracy"] is None and one_class["ic"] is None
    assert one_class["accuracy"] == pytest.approx(0.75)
    empty = classification_scores(np.zeros(0), np.zeros(0))
    assert empty["n"] == 0 and empty["accuracy"] is None
    with pytest.raises(ValueError, match="0/1"):
        classification_scores(np.array([2.0, 0.0]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="probabilities"):
        classification_scores(np.array([1.0, 0.0]), np.array([1.5, 0.5]))


def test_information_coefficient_is_spearman() -> None:
    rng = np.random.default_rng(0)
    p, r = rng.uniform(size=200), rng.normal(size=200)
    r[::7] = np.nan
    m = ~np.isnan(r)
    assert information_coefficient(p, r) == pytest.approx(spearmanr(p[m], r[m]).statistic)
    assert information_coefficient(np.full(5, 0.5), np.arange(5.0)) is None
    assert information_coefficient(np.arange(2.0), np.arange(2.0)) is None


def test_previous_direction_and_baselines_on_hand_inputs() -> None:
    close = np.array([10.0, 11.0, 10.5, 10.5, 12.0, 11.0])
    prev = previous_direction(close, np.array([0, 1, 2, 3, 4, 5]))
    np.testing.assert_array_equal(prev, [np.nan, 1.0, 0.0, 0.0, 1.0, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])  # next-bar directions of the same samples, say
    b = baselines(y, prev, train_positive_rate=0.6)
    maj, pv = b["majority"], b["previous_direction"]
    assert maj["accuracy"] == pytest.approx(0.5)  # always 1 (rate 0.6 >= 0.5): 3 of 6
    assert maj["brier"] == pytest.approx(np.mean((0.6 - y) ** 2))
    assert maj["log_loss"] == pytest.approx(metrics.log_loss(y, np.full(6, 0.6)))
    assert maj["auc"] == pytest.approx(0.5)
    # previous direction, scored where known (samples 1..5): forecasts 1,0,0,1,0 vs 0,0,1,0,1
    assert pv["n"] == 5
    assert pv["accuracy"] == pytest.approx(1 / 5)
    assert pv["log_loss"] is None
    assert baselines(y, prev)["majority"]["predicted_positive_rate"] == 1.0  # own rate 0.5 >= 0.5
    assert baselines(y, prev, train_positive_rate=0.4)["majority"]["accuracy"] == pytest.approx(0.5)


def _walk(n: int = 400, seed: int = 0) -> Bars:
    rng = np.random.default_rng(seed)
    open_ = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close = np.r_[open_[1:], open_[-1]]  # close = next open: no gaps
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 86_400) * 1_000_000_000
    return Bars(ts, open_, high, low, close, np.ones(n))


def test_a_perfect_signal_beats_buy_and_hold() -> None:
    bars = _walk()
    o = bars.open
    # decided at bar i's close, filled at bar i + 1's open, held while bar i + 1 rises
    p = np.zeros(len(bars))
    p[:-2] = (o[2:] > o[1:-1]).astype(float)
    bt = signal_backtest(bars, p)
    st, bh = bt["strategy"], bt["buy_and_hold"]
    assert st["total_return"] > bh["total_return"] + 1.0
    assert st["win_rate"] > 0.8  # small rises do not cover the costs
    assert bt["excess_return"] == pytest.approx(st["total_return"] - bh["total_return"])
    assert bh["number_of_trades"] == 0 and bh["exposure"] > 0.99  # bought at bar 1, never sold
    assert st["fees_paid"] > 0
    free = signal_backtest(bars, p, fee_rate=0.0, slippage=0.0)["strategy"]
    assert free["win_rate"] == 1.0
    assert free["total_return"] > st["total_return"]  # costs are charged
    shorts = signal_backtest(bars, p, threshold_short=0.5)["strategy"]
    assert shorts["total_return"] > st["total_return"]  # shorting the falls as well


def test_no_signal_does_not_trade() -> None:
    bars = _walk()
    for p in (np.zeros(len(bars)), np.full(len(bars), np.nan), np.full(len(bars), 0.55)):
        st = signal_backtest(bars, p)["strategy"]
        assert st["number_of_trades"] == 0 and st["exposure"] == 0.0
        assert st["total_return"] == 0.0 and st["fees_paid"] == 0.0
    with pytest.raises(ValueError, match="threshold_short"):
        signal_backtest(bars, np.zeros(len(bars)), threshold_short=0.6)
    with pytest.raises(ValueError, match="shape"):
        signal_backtest(bars, np.zeros(3))


def test_report_is_json_ready() -> None:
    bars = _walk(10)
    rep = report(Y, P, forward_ret=R, prev_direction=previous_direction(bars.close, np.arange(10)),
                 train_positive_rate=0.45, bars=bars, p_bars=P)  # fmt: skip
    text = json.dumps(rep, allow_nan=False)
    assert set(json.loads(text)) == {"model", "baselines", "vs_baselines", "backtest"}
    vs = rep["vs_baselines"]
    assert vs["accuracy_minus_majority"] == pytest.approx(0.6 - 0.4)  # majority: always 0
    assert vs["brier_skill_vs_majority"] == pytest.approx(
        1 - rep["model"]["brier"] / rep["baselines"]["majority"]["brier"]
    )
    bare = report(Y, P)
    assert bare["baselines"] is None and bare["backtest"] is None


def _load(name: str) -> Bars:
    df = pd.read_csv(SAMPLES / name, parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts), *cols)


def test_real_data_aapl_daily_is_near_a_coin_flip_and_compared_with_the_baselines() -> None:
    """The default model on AAPL daily: hold-out accuracy is reported next to the baselines (the
    figures quoted in ``evaluate``'s docstring). No claim that it is high: a sane band only."""
    bars = _load("AAPL_1d.csv")
    m = train(bars, TrainingConfig(features="standard", seed=0))
    ho = m.metrics["holdout"]
    acc = ho["model"]["accuracy"]
    print(
        "\nAAPL 1d hold-out: "
        + ", ".join(
            f"{k} {ho['model'][k]:.4f}" for k in ("accuracy", "balanced_accuracy", "auc", "log_loss", "ic")
        )
        + f"; majority {ho['baselines']['majority']['accuracy']:.4f}, previous bar "
        f"{ho['baselines']['previous_direction']['accuracy']:.4f}; CV accuracy "
        f"{m.metrics['cv']['model']['accuracy']:.4f}, AUC {m.metrics['cv']['model']['auc']:.4f}; "
        f"strategy {ho['backtest']['strategy']['total_return']:.4f} vs buy-and-hold "
        f"{ho['backtest']['buy_and_hold']['total_return']:.4f}"
    )
    assert 0.4 <= acc <= 0.65
    assert 0.4 <= m.metrics["cv"]["model"]["accuracy"] <= 0.65
    assert 0.35 <= ho["model"]["auc"] <= 0.65
    base = ho["baselines"]
    assert base["majority"]["n"] == base["previous_direction"]["n"] == ho["model"]["n"] > 600
    assert abs(ho["vs_baselines"]["accuracy_minus_majority"]) < 0.1  # no miracle
    assert ho["backtest"]["buy_and_hold"]["total_return"] is not None
    assert m.holdout_range["end_ts"] == bars.ts[-2]
