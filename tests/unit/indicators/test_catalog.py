from __future__ import annotations

import json
import re

import numpy as np
import pytest
import talib
import talib.abstract

from algotrendy.core.market import Bars
from algotrendy.indicators import IndicatorError, catalog, compute, get_spec, warmup
from tests.unit.indicators.synthetic import walk

REQUIRED = [
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
    "vwap",
    "supertrend",
    "ichimoku",
    "keltner",
    "donchian",
    "heikin_ashi",
]


def test_catalog_has_the_required_indicators_and_every_talib_pattern() -> None:
    names = [s.name for s in catalog()]
    assert len(names) == len(set(names))
    assert set(REQUIRED) <= set(names)
    patterns = [s for s in catalog() if s.group == "pattern"]
    assert {s.talib_name for s in patterns} == set(talib.get_function_groups()["Pattern Recognition"])
    assert all(re.fullmatch(r"cdl_[a-z0-9]+", s.name) for s in patterns)
    assert get_spec("cdl_doji").outputs == ("cdl_doji",)


def test_output_names_follow_the_spec() -> None:
    assert get_spec("macd").outputs == ("macd", "macd_signal", "macd_hist")
    assert get_spec("bbands").outputs == ("bb_upper", "bb_middle", "bb_lower")
    assert get_spec("ichimoku").outputs == ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou")
    for name in ("rsi", "atr", "vwap"):
        assert get_spec(name).outputs == (name,)


def test_output_names_are_unique_and_no_suffix_can_collide() -> None:
    outputs = [o for s in catalog() for o in s.outputs]
    assert len(outputs) == len(set(outputs))
    suffixed = re.compile(r"^(?P<base>.+?)(_-?[0-9][0-9.e+-]*)+$")
    for out in outputs:
        m = suffixed.match(out)
        assert m is None or m.group("base") not in outputs, out


def test_catalog_serialises_to_json() -> None:
    doc = json.loads(json.dumps([s.to_dict() for s in catalog()]))
    macd = next(d for d in doc if d["name"] == "macd")
    assert macd["outputs"] == ["macd", "macd_signal", "macd_hist"] and macd["warmup"] == 33
    assert [p["name"] for p in macd["params"]] == ["fast_period", "slow_period", "signal_period"]
    assert macd["params"][0] == {
        "name": "fast_period",
        "type": "int",
        "default": 12,
        "min_value": 2,
        "max_value": 100_000,
        "description": "fast EMA period",
    }
    assert next(d for d in doc if d["name"] == "vwap")["inputs"] == ["ts", "high", "low", "close", "volume"]


@pytest.mark.parametrize("spec", [s for s in catalog() if s.engine == "talib"], ids=lambda s: s.name)
def test_warmup_is_talib_lookback(spec) -> None:  # type: ignore[no-untyped-def]
    sets = [spec.defaults] + [
        {**spec.defaults, p.name: p.default + 3} for p in spec.params if p.type == "int"
    ]
    for params in sets:
        if spec.name == "macd" and params["fast_period"] >= params["slow_period"]:
            continue
        fn = talib.abstract.Function(spec.talib_name)
        fn.set_parameters(dict(zip(fn.info["parameters"], spec.args(params), strict=True)))
        assert spec.warmup(params) == fn.lookback, (spec.name, params)


def test_parameter_validation_names_the_parameter_and_its_range() -> None:
    with pytest.raises(
        IndicatorError, match=r"rsi: parameter period must be int in \[2, 100000\], got 1"
    ) as e:
        compute("rsi", walk(50), period=1)
    assert e.value.param == "period" and isinstance(e.value, ValueError)
    with pytest.raises(ValueError, match="must be an integer"):
        compute("sma", walk(50), period=2.5)
    with pytest.raises(ValueError, match=r"bbands: parameter nbdev must be float in \[0.0, 100.0\]"):
        compute("bbands", walk(50), nbdev=-1.0)
    with pytest.raises(ValueError, match="got True"):
        compute("sma", walk(50), period=True)
    with pytest.raises(ValueError, match="got nan"):
        compute("sar", walk(50), acceleration=float("nan"))
    with pytest.raises(ValueError, match=r"unknown parameter 'timeperiod' \(parameters: period\)"):
        compute("sma", walk(50), timeperiod=3)
    with pytest.raises(ValueError, match=r"fast_period \(30\) must be less than slow_period \(26\)"):
        compute("macd", walk(50), fast_period=30)
    with pytest.raises(ValueError, match="unknown indicator 'rsx'; did you mean rsi"):
        compute("rsx", walk(50))


def test_integral_floats_and_numpy_numbers_are_accepted() -> None:
    bars = walk(100)
    want = compute("sma", bars, period=10)["sma"]
    assert np.array_equal(compute("sma", bars, period=10.0)["sma"], want, equal_nan=True)
    assert np.array_equal(compute("sma", bars, period=np.int64(10))["sma"], want, equal_nan=True)
    assert np.array_equal(compute("SMA", bars, period=10)["sma"], want, equal_nan=True)
    assert np.array_equal(
        compute("CDLDOJI", bars)["cdl_doji"], compute("cdl_doji", bars)["cdl_doji"], equal_nan=True
    )


def test_sessions_apply_to_vwap_only() -> None:
    bars = walk(10)
    with pytest.raises(ValueError, match="sessions only apply to vwap"):
        compute("sma", bars, sessions=np.zeros(10, dtype=np.int64))
    with pytest.raises(ValueError, match="sessions has 3 rows, bars has 10"):
        compute("vwap", bars, sessions=np.zeros(3, dtype=np.int64))


def test_warmup_function() -> None:
    assert warmup("macd") == 33 and warmup("macd", fast_period=5, slow_period=10, signal_period=3) == 11
    assert warmup("ichimoku") == 51 + 26 and warmup("keltner", period=5, atr_period=20) == 20
    assert warmup("cdl_morningstar", penetration=0.5) == 12


@pytest.mark.parametrize("spec", catalog(), ids=lambda s: s.name)
def test_empty_and_short_series(spec) -> None:  # type: ignore[no-untyped-def]
    empty = compute(spec.name, Bars.empty())
    assert list(empty) == list(spec.outputs) and all(
        len(v) == 0 and v.dtype == np.float64 for v in empty.values()
    )
    w = spec.warmup(spec.defaults)
    if w == 0:
        return
    short = compute(spec.name, walk(w))
    assert all(len(v) == w for v in short.values())
    assert any(np.isnan(v[-1]) for v in short.values())  # warm-up: not every output defined yet
    if spec.engine == "talib":
        assert all(np.isnan(v).all() for v in short.values())
    longer = compute(spec.name, walk(w + 1))
    assert not any(np.isnan(v[-1]) for v in longer.values())
