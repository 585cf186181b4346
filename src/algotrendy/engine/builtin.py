"""The built-in strategy templates, keyed by slug: classic, well-known rules a user can run as they
are, tune with a parameter sweep (every parameter has a range and a grid step), or copy and edit.

Every template here passes ``signals.validate_template`` (tested), and trades on a random walk.
"""

from __future__ import annotations

from typing import Final

from algotrendy.engine.template import (
    ParameterSpec,
    ParamValue,
    PositionSizing,
    RiskManagement,
    Rotation,
    StrategyTemplate,
)


def _int(name: str, default: int, lo: int, hi: int, step: int, description: str) -> ParameterSpec:
    return ParameterSpec(
        name=name,
        type="int",
        default=default,
        min_value=lo,
        max_value=hi,
        step=step,
        description=description,
    )


def _float(name: str, default: float, lo: float, hi: float, step: float, description: str) -> ParameterSpec:
    return ParameterSpec(
        name=name,
        type="float",
        default=default,
        min_value=lo,
        max_value=hi,
        step=step,
        description=description,
    )


def _choice(name: str, default: ParamValue, choices: list[ParamValue], description: str) -> ParameterSpec:
    return ParameterSpec(name=name, type="choice", default=default, choices=choices, description=description)


def _params(*specs: ParameterSpec) -> dict[str, ParameterSpec]:
    return {s.name: s for s in specs}


def _crossover(kind: str, title: str, fast: int, slow: int) -> StrategyTemplate:
    return StrategyTemplate(
        name=f"{title} Crossover",
        description=(
            f"Trend following: go long when the fast {title} crosses above the slow {title}, exit "
            f"when it crosses back below."
        ),
        asset_class="any",
        parameters=_params(
            _int("fast", fast, 5, 50, 1, f"fast {title} period"),
            _int("slow", slow, 20, 200, 5, f"slow {title} period"),
        ),
        indicators=[f"fast_ma = {kind}(close, fast)", f"slow_ma = {kind}(close, slow)"],
        entry_conditions=["fast_ma crosses_above slow_ma"],
        exit_conditions=["fast_ma crosses_below slow_ma"],
    )


BUILTIN_TEMPLATES: Final[dict[str, StrategyTemplate]] = {
    "sma_crossover": _crossover("sma", "SMA", 10, 30),
    "ema_crossover": _crossover("ema", "EMA", 12, 26),
    "rsi_mean_reversion": StrategyTemplate(
        name="RSI Mean Reversion",
        description=(
            "Buy an oversold market (RSI below `oversold`) and sell once RSI recovers above "
            "`exit_level`. With `trend_filter` = 1 it only buys above the `trend_period` SMA "
            "(pullbacks in an uptrend). A stop-loss caps a reversion that keeps falling."
        ),
        parameters=_params(
            _int("rsi_period", 14, 2, 30, 1, "RSI period"),
            _int("oversold", 30, 10, 40, 5, "buy when RSI is below this"),
            _int("exit_level", 55, 40, 80, 5, "sell when RSI is above this"),
            _choice("trend_filter", 0, [0, 1], "1: only buy above the trend SMA"),
            _int("trend_period", 200, 50, 300, 50, "trend filter SMA period"),
            _float("stop_loss", 0.08, 0.02, 0.2, 0.02, "stop-loss, fraction of the entry price"),
        ),
        indicators=["rsi = rsi(close, rsi_period)"],
        entry_conditions=["rsi < oversold", "trend_filter == 0 or close > sma(close, trend_period)"],
        exit_conditions=["rsi > exit_level"],
        risk_management=RiskManagement(stop_loss="stop_loss"),
    ),
    "macd_signal": StrategyTemplate(
        name="MACD Signal Cross",
        description=(
            "Momentum: go long when the MACD line crosses above its signal line, exit when it "
            "crosses back below."
        ),
        parameters=_params(
            _int("fast", 12, 4, 18, 2, "fast EMA period"),
            _int("slow", 26, 20, 40, 2, "slow EMA period"),
            _int("signal_period", 9, 3, 15, 1, "signal line EMA period"),
        ),
        indicators=[
            "macd_line = macd(close, fast, slow, signal_period).macd",
            "signal_line = macd(close, fast, slow, signal_period).signal",
        ],
        entry_conditions=["macd_line crosses_above signal_line"],
        exit_conditions=["macd_line crosses_below signal_line"],
    ),
    "bollinger_breakout": StrategyTemplate(
        name="Bollinger Band Breakout",
        description=(
            "Volatility breakout: go long when the close crosses above the upper Bollinger band, "
            "exit when it crosses back below the middle band."
        ),
        parameters=_params(
            _int("period", 20, 10, 50, 5, "band SMA period"),
            _float("nbdev", 2.0, 1.0, 3.0, 0.5, "band width in standard deviations"),
        ),
        indicators=[
            "upper = bbands(close, period, nbdev).upper",
            "middle = bbands(close, period, nbdev).middle",
        ],
        entry_conditions=["close crosses_above upper"],
        exit_conditions=["close crosses_below middle"],
    ),
    "bollinger_reversion": StrategyTemplate(
        name="Bollinger Band Reversion",
        description=(
            "Mean reversion: buy when the close crosses below the lower Bollinger band, sell when "
            "it gets back to the middle band; a stop-loss caps the trades that keep falling."
        ),
        parameters=_params(
            _int("period", 20, 10, 50, 5, "band SMA period"),
            _float("nbdev", 2.0, 1.0, 3.0, 0.5, "band width in standard deviations"),
        ),
        indicators=[
            "lower = bbands(close, period, nbdev).lower",
            "middle = bbands(close, period, nbdev).middle",
        ],
        entry_conditions=["close crosses_below lower"],
        exit_conditions=["close >= middle"],
        risk_management=RiskManagement(stop_loss=0.05),
    ),
    "donchian_breakout": StrategyTemplate(
        name="Donchian Channel Breakout",
        description=(
            "Turtle-style breakout: go long when the close exceeds the highest high of the "
            "previous `entry_period` bars, exit when it falls below the lowest low of the previous "
            "`exit_period` bars."
        ),
        parameters=_params(
            _int("entry_period", 20, 10, 60, 5, "breakout window, bars"),
            _int("exit_period", 10, 5, 30, 5, "exit window, bars"),
        ),
        entry_conditions=["close > highest(high, entry_period)[1]"],
        exit_conditions=["close < lowest(low, exit_period)[1]"],
    ),
    "momentum_rotation": StrategyTemplate(
        name="Momentum Rotation",
        description=(
            "Relative momentum across the chosen symbols: every `rebalance_every` bars hold the "
            "`top_n` symbols with the highest rate of change over `lookback` bars, equally weighted."
        ),
        parameters=_params(
            _int("lookback", 63, 21, 252, 21, "momentum window, bars"),
            _int("rebalance_every", 21, 5, 63, 1, "bars between rebalances"),
        ),
        rotation=Rotation(score="roc(close, lookback)", top_n=1, rebalance_every="rebalance_every"),
        risk_management=RiskManagement(position_sizing=PositionSizing(method="percent_equity", value=1.0)),
    ),
}
