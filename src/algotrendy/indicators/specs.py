"""The catalog's entries: TA-Lib indicators, our own kernels, and the candlestick patterns.

Defaults are TA-Lib's, except the moving averages (period 20, as the spec's ``sma_20``/``ema_20``)
and Bollinger Bands (20, 2). Ranges follow TA-Lib's (periods up to 100,000); float ranges are
bounded to sensible values.
"""

from __future__ import annotations

from collections.abc import Callable

from algotrendy.indicators.patterns import PATTERNS
from algotrendy.indicators.schema import (
    Column,
    IndicatorError,
    IndicatorSpec,
    Number,
    Params,
    ParamSpec,
)


def _period(
    default: int, minimum: int = 2, name: str = "period", what: str = "bars in the window"
) -> ParamSpec:
    return ParamSpec(name, "int", default, minimum, 100_000, what)


def _real(name: str, default: float, lo: float, hi: float, what: str) -> ParamSpec:
    return ParamSpec(name, "float", default, lo, hi, what)


def _int(params: Params, name: str) -> int:
    return int(params[name])


def _macd_check(p: Params) -> None:
    if p["fast_period"] >= p["slow_period"]:
        raise IndicatorError(
            f"macd: parameter fast_period ({p['fast_period']}) must be less than "
            f"slow_period ({p['slow_period']})",
            indicator="macd",
            param="fast_period",
        )


_C: tuple[Column, ...] = ("close",)
_HL: tuple[Column, ...] = ("high", "low")
_HLC: tuple[Column, ...] = ("high", "low", "close")
_HLCV: tuple[Column, ...] = ("high", "low", "close", "volume")
_OHLC: tuple[Column, ...] = ("open", "high", "low", "close")


def _ta(
    name: str,
    title: str,
    group: str,
    inputs: tuple[Column, ...],
    params: tuple[ParamSpec, ...],
    outputs: tuple[str, ...],
    warmup: Callable[[Params], int],
    description: str,
    talib_args: Callable[[Params], tuple[Number, ...]] | None = None,
    check: Callable[[Params], None] | None = None,
) -> IndicatorSpec:
    return IndicatorSpec(
        name,
        title,
        description,
        group,
        inputs,
        params,
        outputs,
        "talib",
        warmup,
        name.upper(),
        talib_args,
        check,
    )


_TALIB: tuple[IndicatorSpec, ...] = (
    _ta(
        "sma",
        "Simple Moving Average",
        "overlap",
        _C,
        (_period(20),),
        ("sma",),
        lambda p: _int(p, "period") - 1,
        "Arithmetic mean of the last `period` closes.",
    ),
    _ta(
        "ema",
        "Exponential Moving Average",
        "overlap",
        _C,
        (_period(20),),
        ("ema",),
        lambda p: _int(p, "period") - 1,
        "EMA with k = 2/(period+1), seeded with the SMA of the first `period` closes (TA-Lib).",
    ),
    _ta(
        "wma",
        "Weighted Moving Average",
        "overlap",
        _C,
        (_period(20),),
        ("wma",),
        lambda p: _int(p, "period") - 1,
        "Linearly weighted mean: newest close weighs `period`.",
    ),
    _ta(
        "dema",
        "Double Exponential Moving Average",
        "overlap",
        _C,
        (_period(20),),
        ("dema",),
        lambda p: 2 * (_int(p, "period") - 1),
        "2*EMA - EMA(EMA).",
    ),
    _ta(
        "tema",
        "Triple Exponential Moving Average",
        "overlap",
        _C,
        (_period(20),),
        ("tema",),
        lambda p: 3 * (_int(p, "period") - 1),
        "3*EMA - 3*EMA(EMA) + EMA(EMA(EMA)).",
    ),
    _ta(
        "rsi",
        "Relative Strength Index",
        "momentum",
        _C,
        (_period(14),),
        ("rsi",),
        lambda p: _int(p, "period"),
        "Wilder's RSI, 0..100 (TA-Lib seeding: mean of the first `period` gains and losses).",
    ),
    _ta(
        "macd",
        "Moving Average Convergence/Divergence",
        "momentum",
        _C,
        (
            _period(12, name="fast_period", what="fast EMA period"),
            _period(26, name="slow_period", what="slow EMA period"),
            _period(9, 1, "signal_period", "signal EMA period"),
        ),
        ("macd", "macd_signal", "macd_hist"),
        lambda p: _int(p, "slow_period") - 1 + _int(p, "signal_period") - 1,
        "fast EMA - slow EMA (both aligned on the slow EMA's first bar, as TA-Lib does), its EMA "
        "signal line, and their difference.",
        check=_macd_check,
    ),
    _ta(
        "bbands",
        "Bollinger Bands",
        "volatility",
        _C,
        (_period(20), _real("nbdev", 2.0, 0.0, 100.0, "band width in population standard deviations")),
        ("bb_upper", "bb_middle", "bb_lower"),
        lambda p: _int(p, "period") - 1,
        "SMA middle band +- nbdev population standard deviations.",
        talib_args=lambda p: (p["period"], p["nbdev"], p["nbdev"], 0),
    ),
    _ta(
        "atr",
        "Average True Range",
        "volatility",
        _HLC,
        (_period(14, 1),),
        ("atr",),
        lambda p: _int(p, "period"),
        "Wilder-smoothed true range, seeded with the mean of the "
        "first `period` true ranges (the first bar has none).",
    ),
    _ta(
        "natr",
        "Normalized Average True Range",
        "volatility",
        _HLC,
        (_period(14, 1),),
        ("natr",),
        lambda p: _int(p, "period"),
        "ATR as a percentage of the close.",
    ),
    _ta(
        "stoch",
        "Stochastic",
        "momentum",
        _HLC,
        (
            _period(5, 1, "fastk_period", "raw %K window"),
            _period(3, 1, "slowk_period", "%K SMA"),
            _period(3, 1, "slowd_period", "%D SMA"),
        ),
        ("stoch_k", "stoch_d"),
        lambda p: _int(p, "fastk_period") + _int(p, "slowk_period") + _int(p, "slowd_period") - 3,
        "Slow stochastic: SMA-smoothed %K and its SMA %D.",
        talib_args=lambda p: (p["fastk_period"], p["slowk_period"], 0, p["slowd_period"], 0),
    ),
    _ta(
        "stochrsi",
        "Stochastic RSI",
        "momentum",
        _C,
        (
            _period(14),
            _period(5, 1, "fastk_period", "stochastic window over the RSI"),
            _period(3, 1, "fastd_period", "%D SMA"),
        ),
        ("stochrsi_k", "stochrsi_d"),
        lambda p: _int(p, "period") + _int(p, "fastk_period") + _int(p, "fastd_period") - 2,
        "Fast stochastic of the RSI: %K and its SMA %D.",
        talib_args=lambda p: (p["period"], p["fastk_period"], p["fastd_period"], 0),
    ),
    _ta(
        "adx",
        "Average Directional Movement Index",
        "trend",
        _HLC,
        (_period(14),),
        ("adx",),
        lambda p: 2 * _int(p, "period") - 1,
        "Wilder's ADX.",
    ),
    _ta(
        "cci",
        "Commodity Channel Index",
        "momentum",
        _HLC,
        (_period(14),),
        ("cci",),
        lambda p: _int(p, "period") - 1,
        "(typical price - its SMA) / (0.015 * mean deviation).",
    ),
    _ta(
        "mfi",
        "Money Flow Index",
        "volume",
        _HLCV,
        (_period(14),),
        ("mfi",),
        lambda p: _int(p, "period"),
        "Volume-weighted RSI of the typical price.",
    ),
    _ta(
        "willr",
        "Williams' %R",
        "momentum",
        _HLC,
        (_period(14),),
        ("willr",),
        lambda p: _int(p, "period") - 1,
        "Close within the high-low range of the window, -100..0.",
    ),
    _ta(
        "obv",
        "On Balance Volume",
        "volume",
        ("close", "volume"),
        (),
        ("obv",),
        lambda p: 0,
        "Running volume, added on up closes and subtracted on down closes (starts at the first "
        "bar's volume).",
    ),
    _ta(
        "roc",
        "Rate of Change",
        "momentum",
        _C,
        (_period(10, 1),),
        ("roc",),
        lambda p: _int(p, "period"),
        "((close / close `period` bars ago) - 1) * 100.",
    ),
    _ta(
        "mom",
        "Momentum",
        "momentum",
        _C,
        (_period(10, 1),),
        ("mom",),
        lambda p: _int(p, "period"),
        "close - close `period` bars ago.",
    ),
    _ta(
        "sar",
        "Parabolic SAR",
        "trend",
        _HL,
        (
            _real("acceleration", 0.02, 0.0, 1.0, "acceleration factor step"),
            _real("maximum", 0.2, 0.0, 1.0, "acceleration factor cap"),
        ),
        ("sar",),
        lambda p: 1,
        "Wilder's parabolic stop and reverse.",
    ),
)


def _constant(value: int) -> Callable[[Params], int]:
    def warmup(_: Params) -> int:
        return value

    return warmup


def _pattern_specs() -> tuple[IndicatorSpec, ...]:
    specs = []
    for pat in PATTERNS:
        params = (
            ()
            if pat.penetration is None
            else (
                _real(
                    "penetration",
                    pat.penetration,
                    0.0,
                    100.0,
                    "how far a candle must reach into the previous body, as a fraction of it",
                ),
            )
        )
        specs.append(
            IndicatorSpec(
                pat.name,
                pat.title,
                f"TA-Lib {pat.talib_name}: +100 bullish, -100 bearish, 0 none.",
                "pattern",
                _OHLC,
                params,
                (pat.name,),
                "talib",
                _constant(pat.lookback),
                pat.talib_name,
            )
        )
    return tuple(specs)


def _ichimoku_warmup(p: Params) -> int:
    longest = max(_int(p, "tenkan_period"), _int(p, "kijun_period"), _int(p, "senkou_period"))
    return longest - 1 + _int(p, "displacement")


_OWN: tuple[IndicatorSpec, ...] = (
    IndicatorSpec(
        "vwap",
        "Anchored VWAP",
        "Volume-weighted average typical price (h+l+c)/3, restarted at every "
        "session: each UTC day shifted by offset_minutes (session start = 00:00 UTC + offset), or "
        "the caller's session ids. NaN while the session has traded no volume.",
        "volume",
        ("ts", "high", "low", "close", "volume"),
        (ParamSpec("offset_minutes", "int", 0, -1440, 1440, "session start relative to 00:00 UTC"),),
        ("vwap",),
        "numba",
        lambda p: 0,
    ),
    IndicatorSpec(
        "supertrend",
        "SuperTrend",
        "Bands hl2 +- multiplier*ATR(period) (TA-Lib ATR) that only "
        "tighten while the trend holds; the line is the lower band in an uptrend (dir +1) and the "
        "upper band in a downtrend (dir -1). The first bar starts in a downtrend (TradingView).",
        "trend",
        _HLC,
        (_period(10, 1), _real("multiplier", 3.0, 0.0, 100.0, "ATR multiple")),
        ("supertrend", "supertrend_dir"),
        "numba",
        lambda p: _int(p, "period"),
    ),
    IndicatorSpec(
        "ichimoku",
        "Ichimoku Kinko Hyo",
        "tenkan/kijun = midpoint of the high-low range over their "
        "windows; senkou_a = (tenkan+kijun)/2 and senkou_b = the senkou_period midpoint, both as "
        "computed `displacement` bars earlier, i.e. the cloud a chart draws under this bar; chikou "
        "= this bar's close (a chart draws it `displacement` bars back). Every value is known at "
        "its bar's close: no look-ahead.",
        "trend",
        _HLC,
        (
            _period(9, 1, "tenkan_period", "conversion line window"),
            _period(26, 1, "kijun_period", "base line window"),
            _period(52, 1, "senkou_period", "leading span B window"),
            ParamSpec("displacement", "int", 26, 0, 100_000, "cloud shift forward, in bars"),
        ),
        ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
        "numba",
        _ichimoku_warmup,
    ),
    IndicatorSpec(
        "keltner",
        "Keltner Channels",
        "EMA(period) middle (TA-Lib EMA) +- multiplier * ATR(atr_period) (TA-Lib ATR).",
        "volatility",
        _HLC,
        (
            _period(20),
            _real("multiplier", 2.0, 0.0, 100.0, "ATR multiple"),
            _period(10, 1, "atr_period", "ATR window"),
        ),
        ("kc_upper", "kc_middle", "kc_lower"),
        "numba",
        lambda p: max(_int(p, "period") - 1, _int(p, "atr_period")),
    ),
    IndicatorSpec(
        "donchian",
        "Donchian Channels",
        "Highest high and lowest low of the last `period` bars (this bar included) and their midpoint.",
        "volatility",
        _HL,
        (_period(20, 1),),
        ("dc_upper", "dc_middle", "dc_lower"),
        "numba",
        lambda p: _int(p, "period") - 1,
    ),
    IndicatorSpec(
        "heikin_ashi",
        "Heikin-Ashi",
        "ha_close = (o+h+l+c)/4; ha_open = (previous ha_open + "
        "previous ha_close)/2, seeded with (o+c)/2; ha_high/ha_low extend the bar's high/low to "
        "them. Feed them to any indicator with ``heikin_ashi_bars``.",
        "price",
        _OHLC,
        (),
        ("ha_open", "ha_high", "ha_low", "ha_close"),
        "numba",
        lambda p: 0,
    ),
)

SPECS: tuple[IndicatorSpec, ...] = (*_TALIB, *_OWN, *_pattern_specs())
