"""Signals from a model's P(up) and the technical rules: hand-computed cases for every branch,
the snapshot against TA-Lib on real sample bars, and bounds that hold on any input (hypothesis)."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from algotrendy.core.market import Bars
from algotrendy.services.ml.signals import (
    MIN_BARS,
    SignalDraft,
    Technical,
    combine,
    technical_score,
    technical_snapshot,
)
from tests.fakes.data import sample

# votes: trend +1, momentum +1, mean reversion 0 -> 2/3
BULL = Technical(close=110.0, rsi=55.0, macd_hist=0.5, sma_fast=105.0, sma_slow=100.0, atr=2.0)
# votes: -1, -1, -1 -> -1
BEAR = Technical(close=90.0, rsi=75.0, macd_hist=-0.5, sma_fast=95.0, sma_slow=100.0, atr=2.0)
# votes: 0 (close above, fast below), 0, 0 -> 0
FLAT = Technical(close=101.0, rsi=50.0, macd_hist=0.0, sma_fast=99.0, sma_slow=100.0, atr=1.0)
MODEL = {"model_id": uuid.UUID(int=7), "name": "spy-daily", "version": 3, "horizon": 5}


def _combine(**kw: Any) -> SignalDraft:
    args: dict[str, Any] = {
        "technical": None,
        "p_up": None,
        "model": None,
        "ml_weight": 0.6,
        "threshold_long": 0.55,
        "threshold_short": None,
        "stop_atr": 2.0,
        "take_profit_atr": 3.0,
    }
    return combine(**(args | kw))


# --- the rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "score", "verdicts"),
    [
        (BULL, 2 / 3, ("trend bullish", "momentum bullish", "mean reversion neutral")),
        (BEAR, -1.0, ("trend bearish", "momentum bearish", "mean reversion bearish")),
        (FLAT, 0.0, ("trend neutral", "momentum neutral", "mean reversion neutral")),
        (
            Technical(close=95.0, rsi=25.0, macd_hist=-1.0, sma_fast=101.0, sma_slow=100.0, atr=1.0),
            0.0,
            ("trend neutral", "momentum bearish", "mean reversion bullish"),
        ),
        (
            Technical(close=120.0, rsi=29.9, macd_hist=2.0, sma_fast=110.0, sma_slow=100.0, atr=1.0),
            1.0,
            ("trend bullish", "momentum bullish", "mean reversion bullish"),
        ),
        (
            Technical(close=100.0, rsi=70.0, macd_hist=0.0, sma_fast=100.0, sma_slow=100.0, atr=1.0),
            0.0,
            ("trend neutral", "momentum neutral", "mean reversion neutral"),
        ),
    ],
)
def test_technical_score(t: Technical, score: float, verdicts: tuple[str, ...]) -> None:
    got, reasons = technical_score(t)
    assert got == pytest.approx(score)
    assert len(reasons) == 3
    for reason, verdict in zip(reasons, verdicts, strict=True):
        assert reason.startswith(verdict)


def test_technical_score_reasons_name_the_numbers() -> None:
    _, reasons = technical_score(BULL)
    assert reasons[0] == "trend bullish (close 110 above SMA(200) 100, SMA(50) 105 above it)"
    assert reasons[1] == "momentum bullish (MACD(12, 26, 9) histogram 0.5 > 0)"
    assert reasons[2] == "mean reversion neutral (RSI(14) 55.0 within 30..70)"


def test_technical_score_refuses_nan() -> None:
    with pytest.raises(ValueError, match=r"technical: rsi"):
        technical_score(Technical(100.0, math.nan, 0.0, 100.0, 100.0, 1.0))


# --- combining: each branch ----------------------------------------------------------------------


def test_buy_by_model_and_rules() -> None:
    d = _combine(technical=BULL, p_up=0.7, model=MODEL)
    s = 0.6 * 0.4 + 0.4 * (2 / 3)  # 0.50667
    assert d.signal_type == "buy"
    assert d.strength == pytest.approx(s)
    assert d.confidence == pytest.approx(0.6 * 0.7 + 0.4 * (2 / 3))
    assert d.price == 110.0
    assert d.stop_loss == pytest.approx(110 - 2 * 2)
    assert d.take_profit == pytest.approx(110 + 3 * 2)
    assert d.price_target == d.take_profit
    assert d.source == "ml+technical"
    assert d.technical_indicators == BULL.to_dict()
    assert d.ml_predictions == {
        "model_id": str(uuid.UUID(int=7)),
        "name": "spy-daily",
        "version": 3,
        "horizon": 5,
        "p_up": 0.7,
        "model_score": pytest.approx(0.4),
        "threshold_long": 0.55,
        "threshold_short": 0.45,
    }
    assert d.reasoning.startswith(
        "Buy: model spy-daily v3 gives P(up) 0.700 (buys at >= 0.550, sells at <= 0.450)"
    )
    assert "trend bullish" in d.reasoning and "mean reversion neutral" in d.reasoning
    assert "Combined score +0.507 (60% model, 40% rules)." in d.reasoning


def test_model_buy_vetoed_by_bearish_rules() -> None:
    d = _combine(technical=BEAR, p_up=0.6, model=MODEL, ml_weight=0.5)
    # s = 0.5 * 0.2 + 0.5 * -1 = -0.4: P(up) clears 0.55 but s is not > 0
    assert d.signal_type == "hold"
    assert d.strength == pytest.approx(0.4)
    assert d.confidence == pytest.approx(0.6)
    assert (d.stop_loss, d.take_profit, d.price_target) == (None, None, None)
    assert d.price == 90.0
    assert "buy is vetoed" in d.reasoning


def test_sell_by_model_and_rules() -> None:
    d = _combine(technical=BEAR, p_up=0.2, model=MODEL)
    # s = 0.6 * -0.6 + 0.4 * -1 = -0.76
    assert d.signal_type == "sell"
    assert d.strength == pytest.approx(0.76)
    assert d.confidence == pytest.approx(0.6 * 0.8 + 0.4 * 1.0)
    assert d.stop_loss == pytest.approx(90 + 2 * 2)
    assert d.take_profit == pytest.approx(90 - 3 * 2)
    assert d.price_target == d.take_profit
    assert d.reasoning.startswith("Sell: ")


def test_sell_needs_the_explicit_threshold_short() -> None:
    d = _combine(technical=BEAR, p_up=0.2, model=MODEL, threshold_short=0.1)
    assert d.signal_type == "hold"
    assert d.ml_predictions is not None and d.ml_predictions["threshold_short"] == 0.1
    assert _combine(technical=BEAR, p_up=0.1, model=MODEL, threshold_short=0.1).signal_type == "sell"


def test_model_sell_vetoed_by_bullish_rules() -> None:
    d = _combine(technical=BULL, p_up=0.4, model=MODEL, ml_weight=0.5)
    # s = 0.5 * -0.2 + 0.5 * 2/3 > 0
    assert d.signal_type == "hold"
    assert "sell is vetoed" in d.reasoning


def test_hold_between_thresholds() -> None:
    d = _combine(technical=FLAT, p_up=0.5, model=MODEL)
    assert d.signal_type == "hold"
    assert d.strength == 0.0
    assert d.confidence == 1.0
    assert "between the thresholds" in d.reasoning
    d = _combine(technical=BULL, p_up=0.52, model=MODEL)  # s > 0 but P(up) below 0.55
    assert d.signal_type == "hold"
    assert d.confidence == pytest.approx(1 - (0.6 * 0.04 + 0.4 * (2 / 3)))


def test_thresholds_are_inclusive() -> None:
    assert _combine(p_up=0.55).signal_type == "buy"
    assert _combine(p_up=0.45).signal_type == "sell"  # 1 - 0.55 rounded, not 0.44999999999999996
    assert _combine(p_up=0.5499).signal_type == "hold"
    assert _combine(p_up=0.4501).signal_type == "hold"


@pytest.mark.parametrize(
    ("t", "kind", "strength", "confidence"),
    [
        (BULL, "buy", 2 / 3, 2 / 3),
        (BEAR, "sell", 1.0, 1.0),
        (FLAT, "hold", 0.0, 1.0),
        # one bullish vote: exactly 1/3 buys
        (Technical(101.0, 50.0, 0.1, 99.0, 100.0, 1.0), "buy", 1 / 3, 1 / 3),
        # one bearish vote: exactly -1/3 sells
        (Technical(101.0, 50.0, -0.1, 99.0, 100.0, 1.0), "sell", 1 / 3, 1 / 3),
        # bullish trend, bearish momentum: 0
        (Technical(110.0, 50.0, -0.1, 105.0, 100.0, 1.0), "hold", 0.0, 1.0),
    ],
)
def test_rules_only(t: Technical, kind: str, strength: float, confidence: float) -> None:
    d = _combine(technical=t)
    assert d.signal_type == kind
    assert d.strength == pytest.approx(strength)
    assert d.confidence == pytest.approx(confidence)
    assert d.source == "technical"
    assert d.ml_predictions is None
    assert "rules only" in d.reasoning
    assert "model" not in d.reasoning.split("Combined")[0]


def test_model_only_without_snapshot() -> None:
    d = _combine(p_up=0.8, model=MODEL, ml_weight=0.1)  # the weight does not apply to one source
    assert d.signal_type == "buy"
    assert d.strength == pytest.approx(0.6)
    assert d.confidence == pytest.approx(0.8)
    assert d.source == "ml"
    assert (d.price, d.stop_loss, d.take_profit, d.price_target) == (None, None, None, None)
    assert d.technical_indicators is None
    assert d.ml_predictions is not None and d.ml_predictions["p_up"] == 0.8
    assert "model only" in d.reasoning and "rules:" not in d.reasoning


def test_model_only_with_snapshot_for_levels() -> None:
    d = _combine(technical=BEAR, p_up=0.8, model=MODEL, use_rules=False)  # bearish rules do not vote
    assert d.signal_type == "buy"
    assert d.strength == pytest.approx(0.6)
    assert d.confidence == pytest.approx(0.8)
    assert d.source == "ml"
    assert d.stop_loss == pytest.approx(90 - 4) and d.take_profit == pytest.approx(96)
    assert d.technical_indicators == BEAR.to_dict()


def test_model_without_description() -> None:
    d = _combine(p_up=0.2)
    assert d.signal_type == "sell"
    assert d.reasoning.startswith("Sell: the model gives P(up) 0.200")
    assert d.ml_predictions == {
        "p_up": 0.2,
        "model_score": pytest.approx(-0.6),
        "threshold_long": 0.55,
        "threshold_short": 0.45,
    }


# --- levels --------------------------------------------------------------------------------------


def test_levels_arithmetic() -> None:
    t = Technical(close=250.0, rsi=50.0, macd_hist=1.0, sma_fast=240.0, sma_slow=200.0, atr=4.5)
    buy = _combine(technical=t, stop_atr=1.5, take_profit_atr=2.5)
    assert buy.signal_type == "buy"
    assert buy.stop_loss == pytest.approx(250 - 1.5 * 4.5)  # 243.25
    assert buy.take_profit == pytest.approx(250 + 2.5 * 4.5)  # 261.25
    assert buy.price_target == pytest.approx(261.25)
    bear = Technical(close=250.0, rsi=50.0, macd_hist=-1.0, sma_fast=260.0, sma_slow=300.0, atr=4.5)
    sell = _combine(technical=bear, stop_atr=1.5, take_profit_atr=2.5)
    assert sell.signal_type == "sell"
    assert sell.stop_loss == pytest.approx(256.75)
    assert sell.take_profit == pytest.approx(238.75)


@pytest.mark.parametrize("move", [0.04, -0.04])
def test_price_target_from_expected_move(move: float) -> None:
    buy = _combine(technical=BULL, p_up=0.7, model=MODEL, expected_move=move)
    assert buy.price_target == pytest.approx(110 * 1.04)
    assert buy.take_profit == pytest.approx(116)
    sell = _combine(technical=BEAR, p_up=0.2, model=MODEL, expected_move=move)
    assert sell.price_target == pytest.approx(90 * 0.96)
    hold = _combine(technical=FLAT, p_up=0.5, model=MODEL, expected_move=move)
    assert hold.price_target is None


def test_levels_never_below_zero() -> None:
    t = Technical(close=1.0, rsi=50.0, macd_hist=1.0, sma_fast=0.9, sma_slow=0.8, atr=2.0)
    assert _combine(technical=t).stop_loss == 0.0
    bear = Technical(close=1.0, rsi=50.0, macd_hist=-1.0, sma_fast=1.1, sma_slow=1.2, atr=2.0)
    d = _combine(technical=bear, expected_move=1.5)
    assert (d.take_profit, d.price_target) == (0.0, 0.0)


# --- refusals ------------------------------------------------------------------------------------


def test_nan_p_up_names_model() -> None:
    with pytest.raises(ValueError, match=r"^model: .*NaN"):
        _combine(technical=BULL, p_up=math.nan, model=MODEL)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "^model: neither"),
        ({"technical": BULL, "use_rules": False}, "^model: neither"),
        ({"model": MODEL}, "^model: given without"),
        ({"p_up": 1.2}, "^model: P\\(up\\)"),
        ({"p_up": 0.5, "ml_weight": 1.5}, "^ml_weight"),
        ({"p_up": 0.5, "threshold_long": -0.1}, "^threshold_long"),
        ({"p_up": 0.5, "threshold_short": 2.0}, "^threshold_short"),
        ({"p_up": 0.5, "stop_atr": 0.0}, "^stop_atr"),
        ({"p_up": 0.5, "take_profit_atr": math.inf}, "^take_profit_atr"),
        ({"technical": Technical(-1.0, 50.0, 0.0, 1.0, 1.0, 1.0)}, "^technical: close"),
        ({"technical": Technical(1.0, 50.0, 0.0, 1.0, 1.0, -1.0)}, "^technical: atr"),
        ({"technical": BULL, "expected_move": math.nan}, "^expected_move"),
    ],
)
def test_refusals(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _combine(**kw)


# --- the snapshot --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stop", "fast", "slow"), [("SPY_1d", None, 50, 200), ("SPY_1d", 120, 20, 50)]
)
def test_snapshot_equals_talib(name: str, stop: int | None, fast: int, slow: int) -> None:
    bars = sample(name).bars(0, stop)
    h, lo, c = bars.high, bars.low, bars.close
    t = technical_snapshot(bars)
    assert t.close == c[-1]
    assert t.rsi == talib.RSI(c, 14)[-1]
    assert t.macd_hist == talib.MACD(c, 12, 26, 9)[2][-1]
    assert t.sma_fast == talib.SMA(c, fast)[-1]
    assert t.sma_slow == talib.SMA(c, slow)[-1]
    assert t.atr == talib.ATR(h, lo, c, 14)[-1]
    assert (t.fast_period, t.slow_period) == (fast, slow)
    d = t.to_dict()
    assert (d["sma_fast_period"], d["sma_slow_period"]) == (fast, slow)
    assert set(d) == {
        "close",
        "rsi",
        "macd_hist",
        "sma_fast",
        "sma_slow",
        "atr",
        "sma_fast_period",
        "sma_slow_period",
    }


def test_snapshot_on_crypto_hourly() -> None:
    bars = sample("BTCUSDT_1h_binance").bars(0, 5000)
    t = technical_snapshot(bars)
    assert t.rsi == talib.RSI(bars.close, 14)[-1]
    assert t.atr == talib.ATR(bars.high, bars.low, bars.close, 14)[-1]
    assert (t.fast_period, t.slow_period) == (50, 200)


def test_snapshot_tiers_by_length() -> None:
    spy = sample("SPY_1d")
    assert (technical_snapshot(spy.bars(0, 200)).slow_period) == 200
    assert (technical_snapshot(spy.bars(0, 199)).slow_period) == 50
    assert (technical_snapshot(spy.bars(0, 50)).slow_period) == 50
    t = technical_snapshot(spy.bars(0, 49))
    assert (t.fast_period, t.slow_period) == (10, 30)
    t = technical_snapshot(spy.bars(0, MIN_BARS))
    assert MIN_BARS == 34
    assert math.isfinite(t.macd_hist)
    assert t.sma_slow == talib.SMA(spy.bars(0, MIN_BARS).close, 30)[-1]


def test_snapshot_refuses_short_bars() -> None:
    with pytest.raises(ValueError, match=r"^bars: 33 bars"):
        technical_snapshot(sample("SPY_1d").bars(0, MIN_BARS - 1))
    with pytest.raises(ValueError, match=r"^bars: 0 bars"):
        technical_snapshot(Bars.empty())


@pytest.mark.parametrize("column", ["high", "low", "close"])
@pytest.mark.parametrize("at", [0, 150, -1])
def test_snapshot_refuses_missing_values(column: str, at: int) -> None:
    b = sample("SPY_1d").bars(0, 300)
    cols = {c: getattr(b, c).copy() for c in ("open", "high", "low", "close", "volume")}
    cols[column][at] = np.nan
    with pytest.raises(ValueError, match=rf"^bars: the {column} column has missing"):
        technical_snapshot(Bars(b.ts, **cols))


def test_snapshot_refuses_non_positive_close() -> None:
    b = sample("SPY_1d").bars(0, 100)
    close = b.close.copy()
    close[-1] = 0.0
    with pytest.raises(ValueError, match=r"^bars: the last close is 0.0"):
        technical_snapshot(Bars(b.ts, b.open, b.high, b.low, close, b.volume))


def test_snapshot_feeds_combine() -> None:
    t = technical_snapshot(sample("SPY_1d").bars())
    d = _combine(technical=t, p_up=0.6, model=MODEL)
    votes, _ = technical_score(t)
    assert d.technical_indicators == t.to_dict()
    assert d.strength == pytest.approx(abs(0.6 * 0.2 + 0.4 * votes))


# --- any input -----------------------------------------------------------------------------------

_price = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)
_technical = st.builds(
    Technical,
    close=_price,
    rsi=st.floats(min_value=0.0, max_value=100.0),
    macd_hist=st.floats(min_value=-1e6, max_value=1e6),
    sma_fast=_price,
    sma_slow=_price,
    atr=st.floats(min_value=0.0, max_value=1e9),
    fast_period=st.sampled_from([10, 20, 50]),
    slow_period=st.sampled_from([30, 50, 200]),
)
_unit = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=300, deadline=None)
@given(
    technical=st.none() | _technical,
    p_up=st.none() | _unit,
    ml_weight=_unit,
    threshold_long=_unit,
    threshold_short=st.none() | _unit,
    stop_atr=st.floats(min_value=1e-3, max_value=50.0),
    take_profit_atr=st.floats(min_value=1e-3, max_value=50.0),
    expected_move=st.none() | st.floats(min_value=-10.0, max_value=10.0),
    use_rules=st.booleans(),
)
def test_any_input_gives_bounded_finite_numbers(
    technical: Technical | None,
    p_up: float | None,
    ml_weight: float,
    threshold_long: float,
    threshold_short: float | None,
    stop_atr: float,
    take_profit_atr: float,
    expected_move: float | None,
    use_rules: bool,
) -> None:
    if p_up is None and (technical is None or not use_rules):
        return
    d = combine(
        technical=technical,
        p_up=p_up,
        model=MODEL if p_up is not None else None,
        ml_weight=ml_weight,
        threshold_long=threshold_long,
        threshold_short=threshold_short,
        stop_atr=stop_atr,
        take_profit_atr=take_profit_atr,
        expected_move=expected_move,
        use_rules=use_rules,
    )
    assert d.signal_type in ("buy", "sell", "hold")
    assert 0.0 <= d.strength <= 1.0
    assert 0.0 <= d.confidence <= 1.0
    for level in (d.price, d.price_target, d.stop_loss, d.take_profit):
        assert level is None or (math.isfinite(level) and level >= 0.0)
    if d.signal_type == "hold" or technical is None:
        assert (d.stop_loss, d.take_profit, d.price_target) == (None, None, None)
    elif d.signal_type == "buy":
        assert d.stop_loss is not None and d.take_profit is not None
        assert d.stop_loss <= technical.close <= d.take_profit
    else:
        assert d.stop_loss is not None and d.take_profit is not None
        assert d.take_profit <= technical.close <= d.stop_loss
    if d.ml_predictions is not None:
        assert all(
            not isinstance(v, float) or math.isfinite(v) for v in d.ml_predictions.values() if v is not None
        )
    if d.technical_indicators is not None:
        assert all(math.isfinite(v) for v in d.technical_indicators.values())
    assert d.reasoning and "nan" not in d.reasoning.lower()
