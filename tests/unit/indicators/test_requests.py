from __future__ import annotations

import numpy as np
import pytest

from algotrendy.indicators import (
    IndicatorError,
    column_names,
    compute,
    compute_request,
    parse_request,
    parse_spec,
)
from tests.unit.indicators.synthetic import walk


def test_bare_spec_takes_defaults_and_bare_column_names() -> None:
    req = parse_spec("rsi")
    assert (req.name, req.params, req.given, req.columns) == ("rsi", {"period": 14}, (), {"rsi": "rsi"})
    assert parse_spec(" MACD ").columns == {
        "macd": "macd",
        "macd_signal": "macd_signal",
        "macd_hist": "macd_hist",
    }


def test_positional_parameters_in_declared_order() -> None:
    macd = parse_spec("macd:12:26:9")
    assert macd.params == {"fast_period": 12, "slow_period": 26, "signal_period": 9}
    assert macd.columns == {
        "macd": "macd_12_26_9",
        "macd_signal": "macd_signal_12_26_9",
        "macd_hist": "macd_hist_12_26_9",
    }
    bb = parse_spec("bbands:20:2")
    assert bb.params == {"period": 20, "nbdev": 2.0} and isinstance(bb.params["nbdev"], float)
    assert bb.columns["bb_upper"] == "bb_upper_20_2" and parse_spec("bbands:20:2.5").suffix == "_20_2.5"
    partial = parse_spec("macd:5")
    assert (
        partial.params == {"fast_period": 5, "slow_period": 26, "signal_period": 9} and partial.suffix == "_5"
    )
    assert parse_spec("rsi:14").columns == {"rsi": "rsi_14"}
    assert parse_spec("vwap:-300").columns == {"vwap": "vwap_-300"}
    assert parse_spec("cdl_morningstar:0.5").columns == {"cdl_morningstar": "cdl_morningstar_0.5"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rsx", "unknown indicator 'rsx'; did you mean rsi"),
        ("rsi:abc", r"rsi: parameter period must be int in \[2, 100000\]: 'abc' is not an integer"),
        ("rsi:14.5", "'14.5' is not an integer"),
        ("rsi:1", r"rsi: parameter period must be int in \[2, 100000\], got 1"),
        ("rsi:", "rsi: parameter period is empty"),
        ("rsi:14:3", r"rsi takes at most 1 parameter\(s\) \(period\), got 2"),
        ("obv:3", "obv takes no parameters, got 1"),
        ("bbands:20:inf", "'inf' is not a finite number"),
        ("macd:26:12", r"fast_period \(26\) must be less than slow_period \(12\)"),
        (":14", "empty indicator name"),
    ],
)
def test_bad_specs_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(IndicatorError, match=message):
        parse_spec(text)


def test_request_list_and_unique_column_names() -> None:
    assert column_names("rsi,macd:12:26:9,sma:50") == [
        "rsi",
        "macd_12_26_9",
        "macd_signal_12_26_9",
        "macd_hist_12_26_9",
        "sma_50",
    ]
    assert column_names("sma:20,sma:50,sma") == ["sma_20", "sma_50", "sma"]
    assert column_names(["bbands:20:2", "bbands:20:2.0", "BBANDS:20:2"]) == [
        "bb_upper_20_2",
        "bb_middle_20_2",
        "bb_lower_20_2",
    ]
    assert [r.name for r in parse_request(" rsi , atr ")] == ["rsi", "atr"]
    with pytest.raises(IndicatorError, match="empty indicator spec at position 2"):
        parse_request("rsi,,atr")


def test_compute_request_matches_compute() -> None:
    bars = walk(300)
    out = compute_request("rsi,macd:5:10:3,sma:20,sma:50,supertrend:7:2", bars)
    assert list(out) == [
        "rsi",
        "macd_5_10_3",
        "macd_signal_5_10_3",
        "macd_hist_5_10_3",
        "sma_20",
        "sma_50",
        "supertrend_7_2",
        "supertrend_dir_7_2",
    ]
    assert np.array_equal(out["sma_50"], compute("sma", bars, period=50)["sma"], equal_nan=True)
    assert np.array_equal(
        out["macd_signal_5_10_3"],
        compute("macd", bars, fast_period=5, slow_period=10, signal_period=3)["macd_signal"],
        equal_nan=True,
    )
    sessions = np.repeat(np.arange(30), 10).astype(np.int64)
    assert np.array_equal(
        compute_request(["vwap"], bars, sessions=sessions)["vwap"],
        compute("vwap", bars, sessions=sessions)["vwap"],
        equal_nan=True,
    )
