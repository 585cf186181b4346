"""Every TA-Lib-backed catalog indicator equals a direct TA-Lib call on real data.

The expected values come from calling TA-Lib by its own argument names, written out here, so the
test pins our parameter mapping, output order and NaN warm-up, not only "TA-Lib runs". Candlestick
patterns: TA-Lib's int output as float, NaN over TA-Lib's lookback (where TA-Lib reports 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import talib
import talib.abstract

from algotrendy.core.market import Bars
from algotrendy.indicators import catalog, compute, get_spec
from tests.golden.indicator_samples import load

SERIES = ("SPY_1d", "BTCUSDT_1h")
RTOL = 1e-9

Expected = Callable[[Bars, dict[str, Any]], tuple[np.ndarray, ...]]


def _one(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (x,)


EXPECTED: dict[str, tuple[Expected, list[dict[str, Any]]]] = {
    "sma": (lambda b, p: _one(talib.SMA(b.close, timeperiod=p["period"])), [{}, {"period": 50}]),
    "ema": (lambda b, p: _one(talib.EMA(b.close, timeperiod=p["period"])), [{}, {"period": 9}]),
    "wma": (lambda b, p: _one(talib.WMA(b.close, timeperiod=p["period"])), [{}, {"period": 7}]),
    "dema": (lambda b, p: _one(talib.DEMA(b.close, timeperiod=p["period"])), [{}, {"period": 5}]),
    "tema": (lambda b, p: _one(talib.TEMA(b.close, timeperiod=p["period"])), [{}, {"period": 5}]),
    "rsi": (lambda b, p: _one(talib.RSI(b.close, timeperiod=p["period"])), [{}, {"period": 2}]),
    "macd": (
        lambda b, p: talib.MACD(
            b.close, fastperiod=p["fast_period"], slowperiod=p["slow_period"], signalperiod=p["signal_period"]
        ),
        [{}, {"fast_period": 5, "slow_period": 35, "signal_period": 5}],
    ),
    "bbands": (
        lambda b, p: talib.BBANDS(
            b.close, timeperiod=p["period"], nbdevup=p["nbdev"], nbdevdn=p["nbdev"], matype=0
        ),
        [{}, {"period": 10, "nbdev": 1.5}],
    ),
    "atr": (
        lambda b, p: _one(talib.ATR(b.high, b.low, b.close, timeperiod=p["period"])),
        [{}, {"period": 1}],
    ),
    "natr": (
        lambda b, p: _one(talib.NATR(b.high, b.low, b.close, timeperiod=p["period"])),
        [{}, {"period": 5}],
    ),
    "stoch": (
        lambda b, p: talib.STOCH(
            b.high,
            b.low,
            b.close,
            fastk_period=p["fastk_period"],
            slowk_period=p["slowk_period"],
            slowk_matype=0,
            slowd_period=p["slowd_period"],
            slowd_matype=0,
        ),
        [{}, {"fastk_period": 14, "slowk_period": 1, "slowd_period": 5}],
    ),
    "stochrsi": (
        lambda b, p: talib.STOCHRSI(
            b.close,
            timeperiod=p["period"],
            fastk_period=p["fastk_period"],
            fastd_period=p["fastd_period"],
            fastd_matype=0,
        ),
        [{}, {"period": 14, "fastk_period": 14, "fastd_period": 3}],
    ),
    "adx": (
        lambda b, p: _one(talib.ADX(b.high, b.low, b.close, timeperiod=p["period"])),
        [{}, {"period": 7}],
    ),
    "cci": (
        lambda b, p: _one(talib.CCI(b.high, b.low, b.close, timeperiod=p["period"])),
        [{}, {"period": 20}],
    ),
    "mfi": (
        lambda b, p: _one(talib.MFI(b.high, b.low, b.close, b.volume, timeperiod=p["period"])),
        [{}, {"period": 3}],
    ),
    "willr": (
        lambda b, p: _one(talib.WILLR(b.high, b.low, b.close, timeperiod=p["period"])),
        [{}, {"period": 30}],
    ),
    "obv": (lambda b, p: _one(talib.OBV(b.close, b.volume)), [{}]),
    "roc": (lambda b, p: _one(talib.ROC(b.close, timeperiod=p["period"])), [{}, {"period": 1}]),
    "mom": (lambda b, p: _one(talib.MOM(b.close, timeperiod=p["period"])), [{}, {"period": 3}]),
    "sar": (
        lambda b, p: _one(talib.SAR(b.high, b.low, acceleration=p["acceleration"], maximum=p["maximum"])),
        [{}, {"acceleration": 0.01, "maximum": 0.1}],
    ),
}

REQUIRED = {
    "sma",
    "ema",
    "wma",
    "dema",
    "tema",
    "rsi",
    "macd",
    "bbands",
    "atr",
    "natr",
    "stoch",
    "stochrsi",
    "adx",
    "cci",
    "mfi",
    "willr",
    "obv",
    "roc",
    "mom",
    "sar",
}


def _assert_same(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape, name
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{name}: NaN positions differ"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0.0, equal_nan=True, err_msg=name)


def test_every_talib_entry_is_covered_here() -> None:
    talib_entries = {s.name for s in catalog() if s.engine == "talib" and s.group != "pattern"}
    assert talib_entries >= REQUIRED
    assert talib_entries == set(EXPECTED)
    assert len([s for s in catalog() if s.group == "pattern"]) == len(
        talib.get_function_groups()["Pattern Recognition"]
    )


@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_indicator_equals_talib(series: str, name: str) -> None:
    bars = load(series)
    spec = get_spec(name)
    expected_fn, param_sets = EXPECTED[name]
    for params in param_sets:
        full = {**spec.defaults, **params}
        got = compute(name, bars, **params)
        want = expected_fn(bars, full)
        assert list(got) == list(spec.outputs)
        for output, w in zip(spec.outputs, want, strict=True):
            _assert_same(f"{series} {name}{params} {output}", got[output], w)
        first = min(int(np.flatnonzero(~np.isnan(got[o]))[0]) for o in spec.outputs)
        assert (
            first
            == spec.warmup(full)
            == talib.abstract.Function(spec.talib_name, **_talib_kwargs(name, full)).lookback
        )


def _talib_kwargs(name: str, p: dict[str, Any]) -> dict[str, Any]:
    renames = {
        "period": "timeperiod",
        "fast_period": "fastperiod",
        "slow_period": "slowperiod",
        "signal_period": "signalperiod",
    }
    if name == "bbands":
        return {"timeperiod": p["period"], "nbdevup": p["nbdev"], "nbdevdn": p["nbdev"]}
    return {renames.get(k, k): v for k, v in p.items()}


PATTERNS = [s.name for s in catalog() if s.group == "pattern"]


@pytest.mark.parametrize("series", SERIES)
def test_candlestick_patterns_equal_talib(series: str) -> None:
    bars = load(series)
    fired = 0
    for name in PATTERNS:
        spec = get_spec(name)
        fn = getattr(talib, spec.talib_name or "")
        param_sets: list[dict[str, Any]] = [{}] + ([{"penetration": 0.1}] if spec.params else [])
        for params in param_sets:
            raw = fn(bars.open, bars.high, bars.low, bars.close, **params)
            lookback = talib.abstract.Function(spec.talib_name).lookback
            assert not raw[:lookback].any() and spec.warmup(spec.defaults) == lookback
            want = raw.astype(np.float64)
            want[:lookback] = np.nan
            got = compute(name, bars, **params)[name]
            _assert_same(f"{series} {name}{params}", got, want)
            fired += int(np.count_nonzero(raw))
    assert fired > 1000  # the real data does show patterns
