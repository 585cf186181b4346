"""Our own kernels (what TA-Lib lacks) against straightforward reference implementations, written
here with pandas and plain loops, on real data: equal to 1e-9 relative, same NaN positions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from algotrendy.core.market import Bars
from algotrendy.indicators import compute, heikin_ashi_bars
from tests.golden.indicator_samples import load

SERIES = ("SPY_1d", "BTCUSDT_1h", "BTCUSDT_1m", "EURUSD_1h")
DAY_NS = 86_400 * 10**9


def _same(name: str, got: np.ndarray, want: np.ndarray) -> None:
    want = np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name}: NaN positions differ"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True, err_msg=name)


def _frame(b: Bars) -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": b.ts, "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume}
    )


def ref_atr(b: Bars, period: int) -> np.ndarray:
    """Wilder's ATR: first value at bar `period` = mean of true ranges 1..period."""
    n = len(b)
    tr = [math.nan] + [
        max(b.high[i] - b.low[i], abs(b.high[i] - b.close[i - 1]), abs(b.low[i] - b.close[i - 1]))
        for i in range(1, n)
    ]
    out = np.full(n, np.nan)
    if n > period:
        atr = sum(tr[1 : period + 1]) / period
        out[period] = atr
        for i in range(period + 1, n):
            atr = (atr * (period - 1) + tr[i]) / period
            out[i] = atr
    return out


def ref_ema(x: np.ndarray, period: int) -> np.ndarray:
    """EMA seeded with the SMA of the first `period` values, alpha = 2/(period+1)."""
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        alpha = 2.0 / (period + 1)
        ema = float(np.mean(x[:period]))
        out[period - 1] = ema
        for i in range(period, len(x)):
            ema = alpha * x[i] + (1 - alpha) * ema
            out[i] = ema
    return out


@pytest.mark.parametrize("series", SERIES)
def test_vwap_anchored_per_utc_day(series: str) -> None:
    b = load(series)
    df = _frame(b)
    for offset in (0, -300):
        day = (df["ts"] - offset * 60 * 10**9) // DAY_NS
        pv = ((df["high"] + df["low"] + df["close"]) / 3 * df["volume"]).groupby(day).cumsum()
        vol = df["volume"].groupby(day).cumsum()
        want = (pv / vol).where(vol > 0)
        _same(
            f"{series} vwap offset={offset}",
            compute("vwap", b, offset_minutes=offset)["vwap"],
            want.to_numpy(),
        )


def test_vwap_with_caller_sessions() -> None:
    b = load("BTCUSDT_1h")
    df = _frame(b)
    week = pd.to_datetime(df["ts"], utc=True).dt.isocalendar()
    sessions = (week["year"].astype(np.int64) * 100 + week["week"].astype(np.int64)).to_numpy(np.int64)
    pv = ((df["high"] + df["low"] + df["close"]) / 3 * df["volume"]).groupby(sessions).cumsum()
    vol = df["volume"].groupby(sessions).cumsum()
    _same("weekly vwap", compute("vwap", b, sessions=sessions)["vwap"], (pv / vol).where(vol > 0).to_numpy())


def ref_supertrend(b: Bars, period: int, mult: float) -> tuple[np.ndarray, np.ndarray]:
    """TradingView's ta.supertrend, written as in its Pine source (direction +1 = up here)."""
    atr = ref_atr(b, period)
    n = len(b)
    line = np.full(n, np.nan)
    direction = np.full(n, np.nan)
    prev_up = prev_lo = prev_st = math.nan
    for i in range(n):
        if math.isnan(atr[i]):
            continue
        hl2 = (b.high[i] + b.low[i]) / 2
        up, lo = hl2 + mult * atr[i], hl2 - mult * atr[i]
        if math.isnan(prev_st):
            d = -1.0
        else:
            lo = lo if (lo > prev_lo or b.close[i - 1] < prev_lo) else prev_lo
            up = up if (up < prev_up or b.close[i - 1] > prev_up) else prev_up
            if prev_st == prev_up:  # noqa: SIM108 (as the Pine source reads)
                d = 1.0 if b.close[i] > up else -1.0
            else:
                d = -1.0 if b.close[i] < lo else 1.0
        st = lo if d > 0 else up
        line[i], direction[i] = st, d
        prev_up, prev_lo, prev_st = up, lo, st
    return line, direction


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize(("period", "mult"), [(10, 3.0), (7, 1.5)])
def test_supertrend(series: str, period: int, mult: float) -> None:
    b = load(series)
    got = compute("supertrend", b, period=period, multiplier=mult)
    line, direction = ref_supertrend(b, period, mult)
    _same(f"{series} supertrend", got["supertrend"], line)
    _same(f"{series} supertrend_dir", got["supertrend_dir"], direction)
    assert set(np.unique(direction[~np.isnan(direction)])) == {-1.0, 1.0}


@pytest.mark.parametrize("series", SERIES)
def test_ichimoku_point_in_time(series: str) -> None:
    b = load(series)
    df = _frame(b)

    def mid(n: int) -> pd.Series:
        return (df["high"].rolling(n).max() + df["low"].rolling(n).min()) / 2

    for t, k, s, d in ((9, 26, 52, 26), (7, 22, 44, 0)):
        got = compute("ichimoku", b, tenkan_period=t, kijun_period=k, senkou_period=s, displacement=d)
        _same("tenkan", got["tenkan"], mid(t).to_numpy())
        _same("kijun", got["kijun"], mid(k).to_numpy())
        _same("senkou_a", got["senkou_a"], ((mid(t) + mid(k)) / 2).shift(d).to_numpy())
        _same("senkou_b", got["senkou_b"], mid(s).shift(d).to_numpy())
        _same("chikou", got["chikou"], df["close"].to_numpy())


@pytest.mark.parametrize("series", SERIES)
def test_keltner(series: str) -> None:
    b = load(series)
    for period, mult, atr_period in ((20, 2.0, 10), (10, 1.0, 14)):
        got = compute("keltner", b, period=period, multiplier=mult, atr_period=atr_period)
        mid, atr = ref_ema(b.close, period), ref_atr(b, atr_period)
        _same("kc_middle", got["kc_middle"], mid)
        _same("kc_upper", got["kc_upper"], mid + mult * atr)
        _same("kc_lower", got["kc_lower"], mid - mult * atr)


@pytest.mark.parametrize("series", SERIES)
def test_donchian(series: str) -> None:
    b = load(series)
    df = _frame(b)
    for period in (20, 1, 55):
        got = compute("donchian", b, period=period)
        up, lo = df["high"].rolling(period).max(), df["low"].rolling(period).min()
        _same("dc_upper", got["dc_upper"], up.to_numpy())
        _same("dc_lower", got["dc_lower"], lo.to_numpy())
        _same("dc_middle", got["dc_middle"], ((up + lo) / 2).to_numpy())


@pytest.mark.parametrize("series", SERIES)
def test_heikin_ashi(series: str) -> None:
    b = load(series)
    n = len(b)
    ha_c = (b.open + b.high + b.low + b.close) / 4
    ha_o = np.empty(n)
    ha_o[0] = (b.open[0] + b.close[0]) / 2
    for i in range(1, n):
        ha_o[i] = (ha_o[i - 1] + ha_c[i - 1]) / 2
    got = compute("heikin_ashi", b)
    _same("ha_open", got["ha_open"], ha_o)
    _same("ha_close", got["ha_close"], ha_c)
    _same("ha_high", got["ha_high"], np.maximum.reduce([b.high, ha_o, ha_c]))
    _same("ha_low", got["ha_low"], np.minimum.reduce([b.low, ha_o, ha_c]))
    ha = heikin_ashi_bars(b)
    assert np.array_equal(ha.close, got["ha_close"]) and np.array_equal(ha.ts, b.ts)
