"""Our numba kernels, for the indicators TA-Lib does not have.

Each loop here has a streaming twin in ``streaming_own.py`` doing the same float operations in the
same order, so the two agree bit for bit. Definitions (see also the catalog descriptions):

- **VWAP, anchored per session**: typical price ``(h+l+c)/3`` weighted by volume, summed from the
  session's first bar. Sessions are int64 ids, one per bar; a new session starts wherever the id
  changes. ``batch.day_sessions`` makes the default ids (UTC day, optionally shifted by an offset);
  exchange sessions come from the caller. NaN while the session's volume is still 0.
- **SuperTrend** (TradingView's definition): ``hl2 +- multiplier * ATR`` (TA-Lib's Wilder ATR).
  The upper band only moves down, and the lower band only up, unless the previous close crossed
  it. In a downtrend (dir -1) the line is the upper band and a close above it turns the trend up;
  in an uptrend (dir +1) the line is the lower band and a close below it turns it down. The first
  bar with an ATR starts in a downtrend.
- **Ichimoku**: ``tenkan``/``kijun`` = (highest high + lowest low)/2 over their windows;
  ``senkou_a`` = (tenkan + kijun)/2 and ``senkou_b`` = the senkou window midpoint, each taken from
  ``displacement`` bars back, so bar t holds the cloud a chart draws at t (known at t's close: no
  look-ahead); ``chikou`` = the close of bar t (a chart draws it ``displacement`` bars back).
- **Donchian**: highest high / lowest low of the last ``period`` bars including this one, and
  their midpoint.
- **Heikin-Ashi**: ``ha_close = (o+h+l+c)/4``, ``ha_open = (ha_open[t-1] + ha_close[t-1])/2``
  seeded with ``(o+c)/2``, ``ha_high = max(h, ha_open, ha_close)``, ``ha_low`` likewise.

Rolling extremes use a monotonic deque: O(1) amortised per bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

from algotrendy.core.market import F64, I64

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@_jit
def rolling_max(x: F64, period: int) -> F64:
    """Max of the last ``period`` values; NaN for the first ``period - 1``."""
    n = len(x)
    out = np.full(n, np.nan)
    dq = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(n):
        v = x[i]
        while tail > head and x[dq[tail - 1]] <= v:
            tail -= 1
        dq[tail] = i
        tail += 1
        if dq[head] <= i - period:
            head += 1
        if i >= period - 1:
            out[i] = x[dq[head]]
    return out


@_jit
def rolling_min(x: F64, period: int) -> F64:
    """Min of the last ``period`` values; NaN for the first ``period - 1``."""
    n = len(x)
    out = np.full(n, np.nan)
    dq = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(n):
        v = x[i]
        while tail > head and x[dq[tail - 1]] >= v:
            tail -= 1
        dq[tail] = i
        tail += 1
        if dq[head] <= i - period:
            head += 1
        if i >= period - 1:
            out[i] = x[dq[head]]
    return out


@_jit
def vwap(high: F64, low: F64, close: F64, volume: F64, sessions: I64) -> F64:
    n = len(close)
    out = np.empty(n)
    pv = 0.0
    vol = 0.0
    for i in range(n):
        if i == 0 or sessions[i] != sessions[i - 1]:
            pv = 0.0
            vol = 0.0
        tp = (high[i] + low[i] + close[i]) / 3.0
        pv += tp * volume[i]
        vol += volume[i]
        out[i] = pv / vol if vol > 0.0 else np.nan
    return out


@_jit
def _supertrend(high: F64, low: F64, close: F64, atr: F64, multiplier: float) -> tuple[F64, F64]:
    n = len(close)
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    started = False
    upper = 0.0
    lower = 0.0
    trend = -1.0
    for i in range(n):
        a = atr[i]
        if np.isnan(a):
            continue
        hl2 = (high[i] + low[i]) / 2.0
        basic_upper = hl2 + multiplier * a
        basic_lower = hl2 - multiplier * a
        if not started:
            started = True
            upper = basic_upper
            lower = basic_lower
            trend = -1.0
        else:
            prev_close = close[i - 1]
            if basic_upper < upper or prev_close > upper:
                upper = basic_upper
            if basic_lower > lower or prev_close < lower:
                lower = basic_lower
            if trend < 0.0:  # noqa: SIM108
                trend = 1.0 if close[i] > upper else -1.0
            else:
                trend = -1.0 if close[i] < lower else 1.0
        line[i] = lower if trend > 0.0 else upper
        direction[i] = trend
    return line, direction


def supertrend(high: F64, low: F64, close: F64, atr: F64, multiplier: float) -> tuple[F64, F64]:
    """(line, direction) from a precomputed ATR column (NaN over its warm-up)."""
    line, direction = _supertrend(high, low, close, atr, multiplier)
    return line, direction


@_jit
def _midpoint(high: F64, low: F64, period: int) -> F64:
    return (rolling_max(high, period) + rolling_min(low, period)) / 2.0


@_jit
def _shift(x: F64, by: int) -> F64:
    n = len(x)
    out = np.full(n, np.nan)
    if by < n:
        out[by:] = x[: n - by]
    return out


@_jit
def _ichimoku(
    high: F64,
    low: F64,
    close: F64,
    tenkan_period: int,
    kijun_period: int,
    senkou_period: int,
    displacement: int,
) -> tuple[F64, F64, F64, F64, F64]:
    tenkan = _midpoint(high, low, tenkan_period)
    kijun = _midpoint(high, low, kijun_period)
    senkou_a = _shift((tenkan + kijun) / 2.0, displacement)
    senkou_b = _shift(_midpoint(high, low, senkou_period), displacement)
    return tenkan, kijun, senkou_a, senkou_b, close.copy()


def ichimoku(
    high: F64,
    low: F64,
    close: F64,
    tenkan_period: int,
    kijun_period: int,
    senkou_period: int,
    displacement: int,
) -> tuple[F64, F64, F64, F64, F64]:
    """(tenkan, kijun, senkou_a, senkou_b, chikou), point-in-time aligned (module docstring)."""
    out: tuple[F64, F64, F64, F64, F64] = _ichimoku(
        high, low, close, tenkan_period, kijun_period, senkou_period, displacement
    )
    return out


@_jit
def _donchian(high: F64, low: F64, period: int) -> tuple[F64, F64, F64]:
    upper = rolling_max(high, period)
    lower = rolling_min(low, period)
    return upper, (upper + lower) / 2.0, lower


def donchian(high: F64, low: F64, period: int) -> tuple[F64, F64, F64]:
    """(upper, middle, lower) over the last ``period`` bars including the current one."""
    out: tuple[F64, F64, F64] = _donchian(high, low, period)
    return out


@_jit
def _heikin_ashi(open_: F64, high: F64, low: F64, close: F64) -> tuple[F64, F64, F64, F64]:
    n = len(close)
    ha_open = np.empty(n)
    ha_high = np.empty(n)
    ha_low = np.empty(n)
    ha_close = np.empty(n)
    for i in range(n):
        c = (open_[i] + high[i] + low[i] + close[i]) / 4.0
        o = (open_[i] + close[i]) / 2.0 if i == 0 else (ha_open[i - 1] + ha_close[i - 1]) / 2.0
        hi = high[i]
        if o > hi:  # noqa: PLR1730 (numba: explicit compare, NaN-safe)
            hi = o
        if c > hi:  # noqa: PLR1730 (numba: explicit compare, NaN-safe)
            hi = c
        lo = low[i]
        if o < lo:  # noqa: PLR1730 (numba: explicit compare, NaN-safe)
            lo = o
        if c < lo:  # noqa: PLR1730 (numba: explicit compare, NaN-safe)
            lo = c
        ha_open[i] = o
        ha_high[i] = hi
        ha_low[i] = lo
        ha_close[i] = c
    return ha_open, ha_high, ha_low, ha_close


def heikin_ashi(open_: F64, high: F64, low: F64, close: F64) -> tuple[F64, F64, F64, F64]:
    """(ha_open, ha_high, ha_low, ha_close)."""
    out: tuple[F64, F64, F64, F64] = _heikin_ashi(open_, high, low, close)
    return out
