from __future__ import annotations

import math

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.indicators import catalog, compute, stream
from algotrendy.indicators.streaming import ATR, BBANDS, EMA, MACD, RSI, SMA, STOCH, CandlePattern
from algotrendy.indicators.streaming_own import VWAP, Ichimoku, SuperTrend
from tests.unit.indicators.synthetic import walk

NAMES = [s.name for s in catalog()]


def feed(name: str, bars: Bars, **params: object) -> np.ndarray:
    s = stream(name, **params)
    rows = [
        s.update_bar(
            int(bars.ts[i]),
            float(bars.open[i]),
            float(bars.high[i]),
            float(bars.low[i]),
            float(bars.close[i]),
            float(bars.volume[i]),
        )
        for i in range(len(bars))
    ]
    return np.array(rows, dtype=np.float64).reshape(len(bars), len(s.outputs))


def assert_stream_equals_batch(name: str, bars: Bars, **params: object) -> None:
    batch = compute(name, bars, **params)
    rows = feed(name, bars, **params)
    for j, output in enumerate(batch):
        assert np.array_equal(rows[:, j], batch[output], equal_nan=True), f"{name}.{output}"


@pytest.mark.parametrize("name", NAMES)
def test_streaming_equals_batch(name: str) -> None:
    assert_stream_equals_batch(name, walk(1500))


@pytest.mark.parametrize("name", NAMES)
def test_leading_nan_bars_are_skipped_like_batch(name: str) -> None:
    bars = walk(400, seed=3)
    cols = [c.copy() for c in (bars.open, bars.high, bars.low, bars.close, bars.volume)]
    for c in cols:
        c[:4] = np.nan
    cols[1][4:6] = np.nan  # high missing a little longer: only indicators reading high skip these
    nan_bars = Bars(bars.ts, *cols)
    assert_stream_equals_batch(name, nan_bars)
    batch = compute(name, nan_bars)
    assert all(np.isnan(v[:4]).all() for v in batch.values())


@pytest.mark.parametrize("name", ["sma", "macd", "atr", "cdl_engulfing", "supertrend", "ichimoku", "vwap"])
def test_interior_nan_bar_is_refused_and_changes_nothing(name: str) -> None:
    bars = walk(200)
    s, reference = stream(name), stream(name)
    bar = (int(bars.ts[0]), 1.0, 1.0, 1.0, 1.0, 1.0)
    for i in range(120):
        bar = (int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        s.update_bar(*bar)
        reference.update_bar(*bar)
    with pytest.raises(ValueError, match="bar rejected"):
        s.update_bar(bar[0] + 1, math.nan, math.nan, math.nan, math.nan, math.nan)
    with pytest.raises(ValueError, match="bar rejected"):
        s.update_bar(bar[0] + 1, math.inf, math.inf, math.inf, math.inf, math.inf)
    for i in range(120, 200):
        bar = (int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        assert s.update_bar(*bar) == pytest.approx(reference.update_bar(*bar), nan_ok=True)


def test_typed_classes_return_floats_and_tuples() -> None:
    bars = walk(300)
    sma, ema, rsi, atr, macd, bb, st = (
        SMA(10),
        EMA(10),
        RSI(),
        ATR(),
        MACD(5, 10, 3),
        BBANDS(10, 1.5),
        STOCH(),
    )
    out = {}
    for i in range(len(bars)):
        h, lo, c = float(bars.high[i]), float(bars.low[i]), float(bars.close[i])
        out = {
            "sma": sma.update(c),
            "ema": ema.update(c),
            "rsi": rsi.update(c),
            "atr": atr.update(h, lo, c),
            "macd": macd.update(c),
            "bb": bb.update(c),
            "stoch": st.update(h, lo, c),
        }
    assert isinstance(out["sma"], float) and out["sma"] == compute("sma", bars, period=10)["sma"][-1]
    assert out["rsi"] == compute("rsi", bars)["rsi"][-1] and out["atr"] == compute("atr", bars)["atr"][-1]
    assert isinstance(out["macd"], tuple) and len(out["macd"]) == 3
    assert out["bb"] == tuple(v[-1] for v in compute("bbands", bars, period=10, nbdev=1.5).values())
    assert out["stoch"] == tuple(v[-1] for v in compute("stoch", bars).values())
    assert math.isnan(SMA(10).update(1.0)) and SMA(10).warmup == 9 and MACD().outputs[1] == "macd_signal"


def test_streams_validate_parameters() -> None:
    with pytest.raises(ValueError, match=r"sma: parameter period must be int in \[2, 100000\], got 1"):
        SMA(1)
    with pytest.raises(ValueError, match="not a candlestick pattern"):
        CandlePattern("rsi")
    with pytest.raises(ValueError, match="unknown indicator"):
        stream("nope")


def test_candle_pattern_with_penetration_streams_like_batch() -> None:
    bars = walk(2000, seed=11)
    for name in ("cdl_morningstar", "cdl_eveningstar", "cdl_darkcloudcover", "cdl_mathold"):
        assert_stream_equals_batch(name, bars, penetration=0.1)
    pat = CandlePattern("cdl_engulfing")
    last = math.nan
    for i in range(len(bars)):
        last = pat.update(float(bars.open[i]), float(bars.high[i]), float(bars.low[i]), float(bars.close[i]))
    assert isinstance(last, float) and last == compute("cdl_engulfing", bars)["cdl_engulfing"][-1]


def test_patterns_fire_on_the_synthetic_data() -> None:
    bars = walk(1500)
    fired = [n for n in NAMES if n.startswith("cdl_") and np.nanmax(np.abs(compute(n, bars)[n])) > 0]
    assert len(fired) >= 25


def test_vwap_stream_with_sessions_and_offset() -> None:
    bars = walk(500)
    sessions = (np.arange(500) // 7).astype(np.int64)
    want = compute("vwap", bars, sessions=sessions)["vwap"]
    v = VWAP()
    got = [
        v.update(
            int(bars.ts[i]),
            bars.high[i],
            bars.low[i],
            bars.close[i],
            bars.volume[i],
            session=int(sessions[i]),
        )
        for i in range(500)
    ]
    assert np.array_equal(np.array(got), want, equal_nan=True)
    assert_stream_equals_batch("vwap", bars, offset_minutes=-90)


def test_own_indicators_with_other_parameters() -> None:
    bars = walk(1200, seed=5)
    assert_stream_equals_batch("supertrend", bars, period=1, multiplier=0.5)
    assert_stream_equals_batch(
        "ichimoku", bars, tenkan_period=3, kijun_period=5, senkou_period=8, displacement=0
    )
    assert_stream_equals_batch("keltner", bars, period=30, multiplier=1.0, atr_period=5)
    assert_stream_equals_batch("donchian", bars, period=1)
    st, ich = SuperTrend(), Ichimoku()
    for i in range(300):
        _line, direction = st.update(bars.high[i], bars.low[i], bars.close[i])
        row = ich.update(bars.high[i], bars.low[i], bars.close[i])
    assert direction in (-1.0, 1.0) and len(row) == 5 and row[4] == bars.close[299]


def test_short_series_streams_nan_like_batch() -> None:
    for name in NAMES:
        spec = stream(name)
        w = spec.warmup
        if w:
            assert_stream_equals_batch(name, walk(w))


@pytest.mark.parametrize("name", ["rsi", "macd", "cdl_doji", "vwap", "supertrend", "ichimoku", "heikin_ashi"])
def test_peek_shows_the_forming_bar_without_committing_it(name: str) -> None:
    bars = walk(300)
    s, reference = stream(name), stream(name)
    for i in range(len(bars)):
        bar = (int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        forming = (bar[0], bar[1], bar[2] + 5.0, bar[3] - 5.0, bar[4] + 1.0, bar[5] / 2)
        s.peek_bar(*forming)
        peeked = s.peek_bar(*bar)
        assert peeked == pytest.approx(s.update_bar(*bar), nan_ok=True)
        assert peeked == pytest.approx(reference.update_bar(*bar), nan_ok=True)
