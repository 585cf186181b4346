"""Trading signals from a model's P(up) and three technical rules. Pure: no I/O, no clock.

**The snapshot** (``technical_snapshot``) is the last bar of ``bars``: its close, RSI(14),
MACD(12, 26, 9) histogram, ATR(14) and a fast and a slow SMA of the close, all computed by the
project's TA-Lib indicators over the whole series. The SMA pair is the first of SMA(50)/SMA(200),
SMA(20)/SMA(50), SMA(10)/SMA(30) whose slow period fits in the bars; ``Technical.to_dict`` gives
the periods used as ``sma_fast_period`` and ``sma_slow_period``. Fewer than ``MIN_BARS`` (34, what
MACD(12, 26, 9) needs) bars, a NaN or infinite high, low or close anywhere in the bars, or a
non-positive last close is a ``ValueError`` naming ``bars``.

**The rules** (``technical_score``) each vote -1, 0 or +1 with equal weight; the rules' score is
the sum of the votes divided by 3, so one of -1, -2/3, -1/3, 0, 1/3, 2/3, 1:

- trend: +1 when close > slow SMA and fast SMA > slow SMA; -1 when close < slow SMA and
  fast SMA < slow SMA; otherwise 0;
- momentum: +1 when the MACD histogram is > 0, -1 when it is < 0, 0 when it is 0;
- mean reversion: +1 when RSI < 30 (oversold), -1 when RSI > 70 (overbought), otherwise 0.

**Combining** (``combine``). The model's score is ``2 * p_up - 1``. The combined score ``s`` is
``ml_weight * model score + (1 - ml_weight) * rules' score`` when both take part, else the score
of the one that does (neither is a ``ValueError``). The rules take part when ``technical`` is
given and ``use_rules`` is true; the model takes part when ``p_up`` is given. Then:

- signal type, with the model: ``buy`` when ``p_up >= threshold_long`` and ``s > 0``; ``sell``
  when ``p_up <= threshold_short`` and ``s < 0``; otherwise ``hold`` (rules that outweigh the
  model can veto its call, never make one). A None ``threshold_short`` is ``1 - threshold_long``
  rounded to 12 decimals (so 0.55 gives 0.45, not 0.44999999999999996);
- signal type, rules only: ``buy`` when ``s >= 1/3``, ``sell`` when ``s <= -1/3``, else ``hold``;
- ``strength = |s|``;
- ``confidence`` of a buy or sell: the model's ``max(p_up, 1 - p_up)`` and the share of the
  three rules voting in the signal's direction (+1 for buy, -1 for sell), blended with the same
  weights as the score (or whichever of the two takes part); of a hold: ``1 - strength``;
- levels, from the snapshot's close and ATR (None for a hold or without a snapshot): a buy has
  ``stop_loss = close - stop_atr * atr`` and ``take_profit = close + take_profit_atr * atr``, a
  sell ``stop_loss = close + stop_atr * atr`` and ``take_profit = close - take_profit_atr * atr``;
- ``price_target``: with ``expected_move`` (a fraction, e.g. 0.02), ``close * (1 + |m|)`` for a
  buy and ``close * (1 - |m|)`` for a sell; without it, the take-profit; None for a hold;
- ``price`` is the snapshot's close (None without a snapshot);
- prices are never below 0 (a level that would be is 0); strength and confidence are within
  [0, 1]; nothing is NaN;
- ``source`` is ``ml+technical``, ``ml`` or ``technical``: which of the two took part;
- ``ml_predictions`` is ``model`` (UUID values as strings) plus ``p_up``, ``model_score`` and the
  two thresholds applied, when the model takes part; ``technical_indicators`` is the snapshot's
  ``to_dict()`` whenever a snapshot is given (also when its rules do not vote).

A NaN ``p_up`` (the model's features are not available on the latest bar), or one outside
[0, 1], is a ``ValueError`` naming ``model``, as is a ``model`` without ``p_up``; ``ml_weight``
and the thresholds outside [0, 1], a non-positive ``stop_atr`` or ``take_profit_atr``, and a
snapshot with a non-finite value, a non-positive close or a negative ATR are ``ValueError`` too.
``reasoning`` names the model (``name vN``), its P(up) and both thresholds, each rule's verdict
with its numbers, the combined score with the weights, and why a model's call was vetoed.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.indicators import compute, warmup

SignalKind = Literal["buy", "sell", "hold"]

RSI_PERIOD = 14
ATR_PERIOD = 14
MACD_PERIODS = (12, 26, 9)
SMA_TIERS = ((50, 200), (20, 50), (10, 30))
"""(fast, slow) SMA periods, longest first; the first whose slow period fits in the bars is used."""
OVERSOLD = 30.0
OVERBOUGHT = 70.0
MIN_BARS = (
    max(
        warmup(
            "macd", fast_period=MACD_PERIODS[0], slow_period=MACD_PERIODS[1], signal_period=MACD_PERIODS[2]
        ),
        warmup("rsi", period=RSI_PERIOD),
        warmup("atr", period=ATR_PERIOD),
        warmup("sma", period=SMA_TIERS[-1][1]),
    )
    + 1
)
"""Fewest bars ``technical_snapshot`` accepts (34)."""

_RULES_THRESHOLD = 1 / 3


# --- the snapshot --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Technical:
    """The last bar's indicator values (``technical_snapshot``)."""

    close: float
    rsi: float
    macd_hist: float
    sma_fast: float
    sma_slow: float
    atr: float
    fast_period: int = SMA_TIERS[0][0]
    slow_period: int = SMA_TIERS[0][1]

    def to_dict(self) -> dict[str, float]:
        return {
            "close": self.close,
            "rsi": self.rsi,
            "macd_hist": self.macd_hist,
            "sma_fast": self.sma_fast,
            "sma_slow": self.sma_slow,
            "atr": self.atr,
            "sma_fast_period": self.fast_period,
            "sma_slow_period": self.slow_period,
        }


def technical_snapshot(bars: Bars) -> Technical:
    """RSI(14), MACD(12, 26, 9) histogram, the SMA pair the length allows and ATR(14) on the last bar."""
    n = len(bars)
    if n < MIN_BARS:
        raise ValueError(f"bars: {n} bars, the technical rules need at least {MIN_BARS}")
    for column in ("high", "low", "close"):
        if not np.isfinite(getattr(bars, column)).all():
            raise ValueError(f"bars: the {column} column has missing or infinite values")
    fast, slow = next((f, s) for f, s in SMA_TIERS if n >= s)
    macd_fast, macd_slow, macd_signal = MACD_PERIODS
    values = {
        "close": float(bars.close[-1]),
        f"RSI({RSI_PERIOD})": _last(compute("rsi", bars, period=RSI_PERIOD)["rsi"]),
        f"MACD({macd_fast}, {macd_slow}, {macd_signal}) histogram": _last(
            compute("macd", bars, fast_period=macd_fast, slow_period=macd_slow, signal_period=macd_signal)[
                "macd_hist"
            ]
        ),
        f"SMA({fast})": _last(compute("sma", bars, period=fast)["sma"]),
        f"SMA({slow})": _last(compute("sma", bars, period=slow)["sma"]),
        f"ATR({ATR_PERIOD})": _last(compute("atr", bars, period=ATR_PERIOD)["atr"]),
    }
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"bars: {name} is not a finite number on the last bar")
    close, rsi, hist, sma_fast, sma_slow, atr = values.values()
    if close <= 0:
        raise ValueError(f"bars: the last close is {close}, it must be positive")
    return Technical(close, rsi, hist, sma_fast, sma_slow, atr, fast_period=fast, slow_period=slow)


def _last(column: F64) -> float:
    return float(column[-1])


# --- the rules -----------------------------------------------------------------------------------


def technical_score(t: Technical) -> tuple[float, list[str]]:
    """The rules' score in [-1, 1] (the mean of three -1/0/+1 votes) and one reason per rule."""
    votes, reasons = _votes(t)
    return sum(votes) / 3, reasons


def _votes(t: Technical) -> tuple[tuple[int, int, int], list[str]]:
    _check_technical(t)
    trend, trend_why = _trend(t)
    momentum, momentum_why = _momentum(t)
    reversion, reversion_why = _mean_reversion(t)
    return (trend, momentum, reversion), [trend_why, momentum_why, reversion_why]


def _check_technical(t: Technical) -> None:
    for name, value in t.to_dict().items():
        if not math.isfinite(value):
            raise ValueError(f"technical: {name} is {value}, it must be a finite number")
    if t.close <= 0:
        raise ValueError(f"technical: close is {t.close}, it must be positive")
    if t.atr < 0:
        raise ValueError(f"technical: atr is {t.atr}, it must not be negative")


def _trend(t: Technical) -> tuple[int, str]:
    fast, slow = f"SMA({t.fast_period})", f"SMA({t.slow_period})"
    detail = (
        f"close {_px(t.close)} {_side(t.close, t.sma_slow)} {slow} {_px(t.sma_slow)}, "
        f"{fast} {_px(t.sma_fast)} {_side(t.sma_fast, t.sma_slow)} it"
    )
    if t.close > t.sma_slow and t.sma_fast > t.sma_slow:
        return 1, f"trend bullish ({detail})"
    if t.close < t.sma_slow and t.sma_fast < t.sma_slow:
        return -1, f"trend bearish ({detail})"
    return 0, f"trend neutral ({detail})"


def _momentum(t: Technical) -> tuple[int, str]:
    detail = f"MACD({MACD_PERIODS[0]}, {MACD_PERIODS[1]}, {MACD_PERIODS[2]}) histogram {t.macd_hist:.4g}"
    if t.macd_hist > 0:
        return 1, f"momentum bullish ({detail} > 0)"
    if t.macd_hist < 0:
        return -1, f"momentum bearish ({detail} < 0)"
    return 0, f"momentum neutral ({detail})"


def _mean_reversion(t: Technical) -> tuple[int, str]:
    detail = f"RSI({RSI_PERIOD}) {t.rsi:.1f}"
    if t.rsi < OVERSOLD:
        return 1, f"mean reversion bullish ({detail} < {OVERSOLD:.0f}, oversold)"
    if t.rsi > OVERBOUGHT:
        return -1, f"mean reversion bearish ({detail} > {OVERBOUGHT:.0f}, overbought)"
    return 0, f"mean reversion neutral ({detail} within {OVERSOLD:.0f}..{OVERBOUGHT:.0f})"


def _side(a: float, b: float) -> str:
    return "above" if a > b else "below" if a < b else "at"


def _px(x: float) -> str:
    return f"{x:.6g}"


# --- combining -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalDraft:
    """A signal before it is stored: ``SignalRead`` without id, symbol and times."""

    signal_type: SignalKind
    strength: float
    confidence: float
    price: float | None
    price_target: float | None
    stop_loss: float | None
    take_profit: float | None
    reasoning: str
    technical_indicators: dict[str, float] | None
    ml_predictions: dict[str, Any] | None
    source: str


@dataclass(frozen=True)
class _Model:
    p_up: float
    score: float
    label: str
    threshold_long: float
    threshold_short: float


@dataclass(frozen=True)
class _Rules:
    score: float
    votes: tuple[int, int, int]
    reasons: list[str]


def combine(
    *,
    technical: Technical | None,
    p_up: float | None,
    model: dict[str, Any] | None,
    ml_weight: float,
    threshold_long: float,
    threshold_short: float | None,
    stop_atr: float,
    take_profit_atr: float,
    expected_move: float | None = None,
    use_rules: bool = True,
) -> SignalDraft:
    """A signal from the model's ``p_up`` and/or the snapshot's rules (the module docstring's rules).

    ``model`` describes the model version (``model_id``, ``name``, ``version``, ``horizon``, ...);
    ``use_rules=False`` keeps the snapshot for the price, levels and indicators but not the vote.
    """
    _check_settings(ml_weight=ml_weight, stop_atr=stop_atr, take_profit_atr=take_profit_atr)
    m = _model(p_up=p_up, model=model, threshold_long=threshold_long, threshold_short=threshold_short)
    r = _rules(technical) if technical is not None and use_rules else None
    if m is None and r is None:
        raise ValueError("model: neither a model prediction nor the technical rules were given")
    if technical is not None:
        _check_technical(technical)
    weight = ml_weight if m is not None and r is not None else 1.0 if m is not None else 0.0
    s = weight * (m.score if m else 0.0) + (1 - weight) * (r.score if r else 0.0)
    kind = _signal_type(s, m)
    strength = _unit(abs(s))
    confidence = 1 - strength if kind == "hold" else _confidence(kind, m, r, weight)
    stop, take, target = _levels(
        kind, technical, stop_atr=stop_atr, take_profit_atr=take_profit_atr, expected_move=expected_move
    )
    return SignalDraft(
        signal_type=kind,
        strength=strength,
        confidence=_unit(confidence),
        price=technical.close if technical is not None else None,
        price_target=target,
        stop_loss=stop,
        take_profit=take,
        reasoning=_reasoning(kind, s, m, r, weight),
        technical_indicators=technical.to_dict() if technical is not None else None,
        ml_predictions=_ml_predictions(m, model),
        source="ml+technical" if m and r else "ml" if m else "technical",
    )


def _check_settings(*, ml_weight: float, stop_atr: float, take_profit_atr: float) -> None:
    if not 0.0 <= ml_weight <= 1.0:
        raise ValueError(f"ml_weight: {ml_weight} is not within [0, 1]")
    for name, value in (("stop_atr", stop_atr), ("take_profit_atr", take_profit_atr)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {value} must be a positive number")


def _model(
    *, p_up: float | None, model: dict[str, Any] | None, threshold_long: float, threshold_short: float | None
) -> _Model | None:
    for name, value in (("threshold_long", threshold_long), ("threshold_short", threshold_short)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: {value} is not within [0, 1]")
    if p_up is None:
        if model is not None:
            raise ValueError("model: given without its prediction p_up")
        return None
    if math.isnan(p_up):
        raise ValueError("model: its P(up) is NaN (the model's features are not available on the latest bar)")
    if not 0.0 <= p_up <= 1.0:
        raise ValueError(f"model: P(up) {p_up} is not within [0, 1]")
    short = threshold_short if threshold_short is not None else round(1 - threshold_long, 12)
    return _Model(p_up, 2 * p_up - 1, _model_label(model), threshold_long, short)


def _model_label(model: dict[str, Any] | None) -> str:
    name = (model or {}).get("name")
    version = (model or {}).get("version")
    if name is None:
        return "the model"
    return f"model {name} v{version}" if version is not None else f"model {name}"


def _rules(technical: Technical) -> _Rules:
    votes, reasons = _votes(technical)
    return _Rules(sum(votes) / 3, votes, reasons)


def _signal_type(s: float, m: _Model | None) -> SignalKind:
    if m is not None:
        if m.p_up >= m.threshold_long and s > 0:
            return "buy"
        if m.p_up <= m.threshold_short and s < 0:
            return "sell"
        return "hold"
    if s >= _RULES_THRESHOLD:
        return "buy"
    if s <= -_RULES_THRESHOLD:
        return "sell"
    return "hold"


def _confidence(kind: SignalKind, m: _Model | None, r: _Rules | None, weight: float) -> float:
    direction = 1 if kind == "buy" else -1
    model_part = max(m.p_up, 1 - m.p_up) if m else 0.0
    rules_part = sum(v == direction for v in r.votes) / 3 if r else 0.0
    return weight * model_part + (1 - weight) * rules_part


def _levels(
    kind: SignalKind,
    technical: Technical | None,
    *,
    stop_atr: float,
    take_profit_atr: float,
    expected_move: float | None,
) -> tuple[float | None, float | None, float | None]:
    """(stop_loss, take_profit, price_target)."""
    if kind == "hold" or technical is None:
        return None, None, None
    if expected_move is not None and not math.isfinite(expected_move):
        raise ValueError(f"expected_move: {expected_move} must be a finite number")
    direction = 1 if kind == "buy" else -1
    close, atr = technical.close, technical.atr
    stop = _price(close - direction * stop_atr * atr)
    take = _price(close + direction * take_profit_atr * atr)
    target = take if expected_move is None else _price(close * (1 + direction * abs(expected_move)))
    return stop, take, target


def _price(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"technical: a price level came out as {x} (close or atr out of range)")
    return max(0.0, x)


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))


def _ml_predictions(m: _Model | None, model: dict[str, Any] | None) -> dict[str, Any] | None:
    if m is None:
        return None
    out = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in (model or {}).items()}
    out.update(
        p_up=m.p_up, model_score=m.score, threshold_long=m.threshold_long, threshold_short=m.threshold_short
    )
    return out


def _reasoning(kind: SignalKind, s: float, m: _Model | None, r: _Rules | None, weight: float) -> str:
    parts = []
    if m is not None:
        parts.append(
            f"{m.label} gives P(up) {m.p_up:.3f} (buys at >= {m.threshold_long:.3f}, "
            f"sells at <= {m.threshold_short:.3f})"
        )
    if r is not None:
        parts.append("rules: " + "; ".join(r.reasons))
    first = f"{kind.capitalize()}: " + "; ".join(parts) + "."
    if m is not None and r is not None:
        mix = f"{weight:.0%} model, {1 - weight:.0%} rules"
    else:
        mix = "model only" if m is not None else "rules only, buy at >= +0.333, sell at <= -0.333"
    return f"{first} Combined score {s:+.3f} ({mix}){_veto(kind, s, m)}."


def _veto(kind: SignalKind, s: float, m: _Model | None) -> str:
    if kind != "hold" or m is None:
        return ""
    if m.p_up >= m.threshold_long:
        return "; the model's buy is vetoed because the combined score is not positive"
    if m.p_up <= m.threshold_short:
        return "; the model's sell is vetoed because the combined score is not negative"
    return "; P(up) is between the thresholds"
