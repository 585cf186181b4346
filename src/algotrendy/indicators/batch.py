"""Batch computation: thin TA-Lib calls, and our kernels for what TA-Lib lacks.

TA-Lib gets float64 C-contiguous columns (no copy when they already are, as ``Bars`` columns
are) and returns float64 columns with NaN over its lookback; there is no per-bar Python here.
Candlestick patterns come back from TA-Lib as int32 with 0 over the lookback; they are returned
as float64 with NaN there instead, so that "not known yet" never reads as "no pattern".

Leading bars that are NaN in any input are skipped (TA-Lib does this itself; our kernels are run on
the complete part). If no bar is complete every output is NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import talib

from algotrendy.core.market import F64, I64, NS_PER_SECOND, Bars
from algotrendy.indicators import kernels

DAY_NS = 86_400 * NS_PER_SECOND
_TALIB: dict[str, Callable[..., Any]] = {}


def _fn(name: str) -> Callable[..., Any]:
    fn = _TALIB.get(name)
    if fn is None:
        fn = _TALIB[name] = getattr(talib, name)
    return fn


def _f64(x: F64) -> F64:
    return np.ascontiguousarray(x, dtype=np.float64)


def first_complete(arrays: tuple[F64, ...]) -> int:
    """Index of the first bar with no NaN in any of ``arrays``; -1 if there is none (0 if empty)."""
    if len(arrays[0]) == 0 or not any(a[0] != a[0] for a in arrays):
        return 0
    bad = np.zeros(len(arrays[0]), dtype=np.bool_)
    for a in arrays:
        bad |= np.isnan(a)
    good = np.flatnonzero(~bad)
    return int(good[0]) if len(good) else -1


def _nan(n: int) -> F64:
    return np.full(n, np.nan)


def talib_call(name: str, arrays: tuple[F64, ...], args: tuple[float, ...]) -> tuple[F64, ...]:
    """``talib.<name>(*arrays, *args)`` as a tuple of float64 columns."""
    cols = tuple(_f64(a) for a in arrays)
    n = len(cols[0])
    if n == 0 or first_complete(cols) < 0:
        width = _width(name)
        return tuple(_nan(n) for _ in range(width))
    out = _fn(name)(*cols, *args)
    return out if isinstance(out, tuple) else (out,)


def _width(name: str) -> int:
    return {"MACD": 3, "BBANDS": 3, "STOCH": 2, "STOCHRSI": 2}.get(name, 1)


def talib_pattern(name: str, arrays: tuple[F64, ...], args: tuple[float, ...], lookback: int) -> F64:
    """A candlestick pattern as float64 (+-100, +-200 or 0), NaN over the warm-up."""
    cols = tuple(_f64(a) for a in arrays)
    n = len(cols[0])
    begin = first_complete(cols)
    if n == 0 or begin < 0:
        return _nan(n)
    out: F64 = _fn(name)(*cols, *args).astype(np.float64)
    out[: min(n, begin + lookback)] = np.nan
    return out


# ---- our own indicators (kernels.py holds the loops) -------------------------------------------


def _own_vwap(bars: Bars, p: Mapping[str, float], sessions: I64 | None) -> tuple[F64, ...]:
    ids = sessions if sessions is not None else day_sessions(bars.ts, int(p["offset_minutes"]))
    return (
        kernels.vwap(
            _f64(bars.high),
            _f64(bars.low),
            _f64(bars.close),
            _f64(bars.volume),
            np.ascontiguousarray(ids, dtype=np.int64),
        ),
    )


def day_sessions(ts: I64, offset_minutes: int = 0) -> I64:
    """Session id of each bar for a session that starts every day at 00:00 UTC + offset."""
    shifted = np.asarray(ts, dtype=np.int64) - np.int64(offset_minutes * 60 * NS_PER_SECOND)
    return shifted // np.int64(DAY_NS)


def _own_supertrend(bars: Bars, p: Mapping[str, float], _: I64 | None) -> tuple[F64, ...]:
    h, lo, c = _f64(bars.high), _f64(bars.low), _f64(bars.close)
    atr: F64 = talib.ATR(h, lo, c, int(p["period"]))
    return kernels.supertrend(h, lo, c, atr, float(p["multiplier"]))


def _own_ichimoku(bars: Bars, p: Mapping[str, float], _: I64 | None) -> tuple[F64, ...]:
    return kernels.ichimoku(
        _f64(bars.high),
        _f64(bars.low),
        _f64(bars.close),
        int(p["tenkan_period"]),
        int(p["kijun_period"]),
        int(p["senkou_period"]),
        int(p["displacement"]),
    )


def _own_keltner(bars: Bars, p: Mapping[str, float], _: I64 | None) -> tuple[F64, ...]:
    h, lo, c = _f64(bars.high), _f64(bars.low), _f64(bars.close)
    middle: F64 = talib.EMA(c, int(p["period"]))
    atr: F64 = talib.ATR(h, lo, c, int(p["atr_period"]))
    width = float(p["multiplier"]) * atr
    return middle + width, middle, middle - width


def _own_donchian(bars: Bars, p: Mapping[str, float], _: I64 | None) -> tuple[F64, ...]:
    return kernels.donchian(_f64(bars.high), _f64(bars.low), int(p["period"]))


def _own_heikin_ashi(bars: Bars, p: Mapping[str, float], _: I64 | None) -> tuple[F64, ...]:
    return kernels.heikin_ashi(_f64(bars.open), _f64(bars.high), _f64(bars.low), _f64(bars.close))


_OWN: dict[
    str, tuple[tuple[str, ...], Callable[[Bars, Mapping[str, float], I64 | None], tuple[F64, ...]]]
] = {
    "vwap": (("high", "low", "close", "volume"), _own_vwap),
    "supertrend": (("high", "low", "close"), _own_supertrend),
    "ichimoku": (("high", "low", "close"), _own_ichimoku),
    "keltner": (("high", "low", "close"), _own_keltner),
    "donchian": (("high", "low"), _own_donchian),
    "heikin_ashi": (("open", "high", "low", "close"), _own_heikin_ashi),
}
_OWN_WIDTH = {"vwap": 1, "supertrend": 2, "ichimoku": 5, "keltner": 3, "donchian": 3, "heikin_ashi": 4}


def own(name: str, bars: Bars, params: Mapping[str, float], sessions: I64 | None) -> tuple[F64, ...]:
    """One of our kernels over ``bars``, skipping leading bars that are NaN in an input."""
    columns, fn = _OWN[name]
    n = len(bars)
    begin = first_complete(tuple(getattr(bars, c) for c in columns)) if n else 0
    if n == 0 or begin < 0:
        return tuple(_nan(n) for _ in range(_OWN_WIDTH[name]))
    if begin == 0:
        return fn(bars, params, sessions)
    part = fn(bars.slice(begin, n), params, None if sessions is None else sessions[begin:])
    out = []
    for col in part:
        full = _nan(n)
        full[begin:] = col
        out.append(full)
    return tuple(out)


def heikin_ashi_bars(bars: Bars) -> Bars:
    """The Heikin-Ashi candles of ``bars`` as ``Bars`` (same ts and volume), to feed any indicator."""
    ha_open, ha_high, ha_low, ha_close = own("heikin_ashi", bars, {}, None)
    return Bars(bars.ts, ha_open, ha_high, ha_low, ha_close, bars.volume)
