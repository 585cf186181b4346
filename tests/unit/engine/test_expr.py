from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algotrendy.core.market import Bars
from algotrendy.engine import expr
from algotrendy.engine.expr import (
    IndicatorCache,
    Kind,
    evaluate,
    evaluate_series,
    infer,
    parse,
    references,
    scope,
    unparse,
    warmup,
)
from algotrendy.engine.template import TemplateError
from algotrendy.indicators import catalog, compute
from tests.unit.indicators.synthetic import walk

BARS = walk(400, seed=11)


def bars_of(close: list[float], **cols: list[float]) -> Bars:
    c = np.asarray(close, dtype=np.float64)
    n = len(c)

    def col(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray(cols.get(name, c), dtype=np.float64)

    return Bars(np.arange(n, dtype=np.int64), col("open"), col("high"), col("low"), c, col("volume"))


def ev(text: str, bars: Bars = BARS, **params: Any) -> Any:
    return evaluate(parse(text), bars, params=params)


def const(text: str, **params: Any) -> float:
    return expr.constant(parse(text), params)


def err(text: str, bars: Bars = BARS, **params: Any) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        evaluate(parse(text), bars, params=params)
    return info.value


# ---- syntax, precedence, associativity ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 - 2 - 3", -4.0),
        ("8 / 4 / 2", 1.0),
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("-2 * 3 + 1", -5.0),
        ("- -2", 2.0),
        ("2 * -3", -6.0),
        ("10 - 4 / 2 * 3", 4.0),
        ("1e-3 * 1000", 1.0),
        (".5 + 0.25", 0.75),
        ("abs(-3) + min(1, 2) * max(3, 4)", 7.0),
        ("not true and false", 0.0),
        ("true or false and false", 1.0),
        ("not 1 > 2", 1.0),
        ("1 < 2 and 2 <= 2 and 3 > 2 and 3 >= 3 and 1 == 1 and 1 != 2", 1.0),
        ("fast * 2 + slow", 50.0),
    ],
)
def test_constant_arithmetic_precedence_and_associativity(text: str, value: float) -> None:
    assert const(text, fast=10, slow=30) == value


def test_unparse_shows_the_tree() -> None:
    assert unparse(parse("a or b and not c < d + e * -f")) == "(a or (b and (not (c < (d + (e * (-f)))))))"
    assert unparse(parse("close[1][2]")) == "shift(shift(close, 1), 2)"
    assert unparse(parse("-close[1]")) == "(-shift(close, 1))"
    assert unparse(parse("macd(close, 12, 26, 9).hist")) == "macd(close, 12, 26, 9).macd_hist"
    for text in [
        "sma(close, fast) crosses_above sma(close, slow) and rsi(close, 14) < 30",
        "not (close > open) or highest(high, 20)[1] < close",
        "bbands(close, 20, 2.5).upper - 1e-3",
    ]:
        node = parse(text)
        assert parse(unparse(node)) == node


def test_comparisons_do_not_chain() -> None:
    with pytest.raises(TemplateError, match="comparisons cannot be chained"):
        parse("1 < close < 3")


def test_references() -> None:
    refs = references(parse("sma(close, fast) crosses_above slow_ma and abs(change(rsi(close), n)) > x[1]"))
    assert refs.names == {"close", "fast", "slow_ma", "n", "x"}
    assert refs.indicators == {"sma", "rsi"}
    assert refs.functions == {"abs", "change", "shift"}


# ---- kinds --------------------------------------------------------------------------------------


def test_infer_kinds() -> None:
    names = scope(["fast"], {"up": Kind.CONDITION})
    assert infer(parse("fast * 2"), names) is Kind.NUMBER
    assert infer(parse("close * fast"), names) is Kind.SERIES
    assert infer(parse("fast > 3"), names) is Kind.BOOL
    assert infer(parse("up and close > 3"), names) is Kind.CONDITION
    assert infer(parse("up[1]"), names) is Kind.CONDITION
    assert infer(parse("min(fast, 3)"), names) is Kind.NUMBER
    assert infer(parse("max(close, 3)"), names) is Kind.SERIES


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "close + (open > 1)",
            r"the right side of '\+' at column 10 must be number or series, got a condition",
        ),
        ("close and open", "the left side of 'and' at column 1 must be boolean or condition, got a series"),
        ("not close", "the operand of 'not' at column 5 must be boolean or condition"),
        ("-(close > 1)", "the operand of '-'"),
        ("sma(close, close)", r"argument 2 of sma \(a constant: a number or parameter\) at column 12"),
        ("sma(fast, 10)", r"argument 1 of sma \(its input series\) at column 5 must be series, got a number"),
        ("shift(3, 1)", "argument 1 of shift"),
        ("highest(close > 1, 3)", "argument 1 of highest"),
        ("close > open crosses_above 1", "comparisons cannot be chained"),
    ],
)
def test_type_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        infer(parse(text), scope(["fast"]))


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sma(clsoe, 5) > 1", "unknown name 'clsoe' at column 5; did you mean close?"),
        (
            "rsi < 30",
            "unknown name 'rsi' at column 1; rsi is a function, call it: rsi\\(series, period=14\\)",
        ),
        ("smaa(close, 5)", "unknown indicator 'smaa' at column 1; did you mean sma"),
        ("sma(close, 5, 6)", "sma takes at most 2 arguments, got 3 at column 1: sma\\(series, period=20\\)"),
        ("atr(close, 14)", "atr takes at most 1 argument, got 2"),
        ("sma()", "sma needs an input series first"),
        ("min(close)", "min needs 2 arguments"),
        ("(close > open and close > 1", "expected '\\)' at column 28, found end of expression"),
        ("sma(close, 5 > 1", "expected '\\)' or ',' at column 17"),
        ("sma(close 5)", "expected '\\)' or ',' at column 11, found '5'"),
        ("close[1", "expected '\\]' at column 8"),
        ("close >", "unexpected end of expression at column 8"),
        ("close > > 1", "unexpected '>' at column 9"),
        ("close open", "unexpected 'open' at column 7"),
        ("close # 1", "unexpected character '#' at column 7"),
        ("close ** 2", "unexpected '\\*' at column 8"),
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("1e999 > close", "number 1e999 at column 1 is out of range"),
        ("macd(close) > 0", "macd at column 1 has several outputs; select one.*macd_signal \\(signal\\)"),
        ("macd(close).foo > 0", "macd has no output 'foo' at column 13; outputs: macd, macd_signal"),
        ("macd(close). > 0", "macd has no output '>'"),
        ("rsi(close).rsi.x", "unexpected '.' at column 15"),
        ("abs(close).x", "unexpected '.' at column 11"),
    ],
)
def test_syntax_and_name_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        evaluate(parse(text), BARS, params={"fast": 10})
    assert info.value.field is None


def test_parameter_errors_name_the_parameter() -> None:
    e = err("sma(close, fast) > 1", fast=1)
    assert e.field == "params.fast"
    assert "sma: parameter period must be int in [2, 100000], got 1 (from parameter 'fast')" in str(e)
    e = err("sma(close, fast) > 1", fast=10.5)
    assert e.field == "params.fast" and "must be an integer" in str(e)
    e = err("sma(close, fast) > 1", fast="ten")
    assert e.field == "params.fast" and "parameter 'fast' is 'ten', not a number" in str(e)
    e = err("close[n] > 1", n=-1)
    assert e.field == "params.n" and "look into the future" in str(e)
    e = err("sma(close, 1)")
    assert e.field is None and "sma: parameter period must be int in [2, 100000], got 1 (at column 1)" in str(
        e
    )
    assert "fast_period (30) must be less than slow_period (20)" in str(err("macd(close, 30, 20).signal"))
    assert "the bar count must be an integer in [1, 100000], got 2.5" in str(err("highest(close, 2.5)"))
    assert "got 0" in str(err("change(close, 0)"))


# ---- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", 'unexpected character "\'" at column 12'),
        ("__import__(os).system(1)", "unknown indicator '__import__'"),
        ("close.__class__", "unexpected '.' at column 6; '.' selects an output"),
        ("().__class__.__bases__", "unexpected '\\)' at column 2"),
        ("sma(close, 5).__globals__", "sma has no output '__globals__'"),
        ("open(1)", "unknown indicator 'open'"),
        ("eval(close)", "unknown indicator 'eval'"),
        ("close; import os", "unexpected character ';'"),
        ("lambda: 1", "unexpected character ':'"),
        ("close if 1 else 2", "unexpected 'if'"),
        ("\x00", "unexpected character"),
        ("clöse > 1", "unexpected character 'ö'"),
        ("(" * 10_000 + "close" + ")" * 10_000, "expression too long: 20005 characters \\(limit 500\\)"),
        ("close + " * 100 + "1", "expression too long"),
        ("(" * 100 + "close" + ")" * 100, "nested too deeply at column 33 \\(limit 32 levels\\)"),
        ("-" * 200 + "1", "nested too deeply"),
        ("not " * 40 + "true", "nested too deeply"),
        ("abs(" * 40 + "close" + ")" * 40, "nested too deeply"),
        ("close" + "[1]" * 40, "nested too deeply"),
    ],
)
def test_hostile_input_is_refused_cleanly(text: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    seen: list[object] = []
    for name in ("eval", "exec", "compile"):
        original = getattr(builtins, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(args[0] if args else None)
            return _original(*args, **kwargs)

        monkeypatch.setattr(builtins, name, spy)
    with pytest.raises(TemplateError, match=message):
        evaluate(parse(text), BARS)
    monkeypatch.undo()
    assert not [s for s in seen if isinstance(s, str) and text in s]


def test_the_module_never_evaluates_text() -> None:
    files = sorted(Path(expr.__file__).parent.glob("*.py"))
    assert len(files) > 3
    for file in files:
        source = file.read_text()
        assert not re.search(r"(?<![.\w])(eval|exec|compile)\(|import ast\b|from ast\b|__import__", source), (
            file
        )


def test_deep_but_allowed_nesting_works() -> None:
    text = "(" * 31 + "close" + ")" * 31 + " > 0"
    assert ev(text).all()
    assert const("-" * 32 + "1") == 1.0


# ---- semantics ----------------------------------------------------------------------------------


def test_crosses_on_hand_made_arrays() -> None:
    bars = bars_of([1, 2, 3, 2, 1, 2, 3])
    named = {"b": np.full(7, 2.0)}
    up = evaluate(parse("close crosses_above b"), bars, named=named)
    down = evaluate(parse("close crosses_below b"), bars, named=named)
    assert up.tolist() == [False, False, True, False, False, False, True]
    assert down.tolist() == [False, False, False, False, True, False, False]
    # touching is not crossing; starting above is not crossing
    assert evaluate(parse("close crosses_above 2"), bars_of([3, 2, 2, 3])).tolist() == [
        False,
        False,
        False,
        True,
    ]
    # NaN on either bar of the pair: false
    a = bars_of([np.nan, 1, 3, np.nan, 3, 1, 3])
    assert evaluate(parse("close crosses_above 2"), a).tolist() == [
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert evaluate(parse("close crosses_below 2"), a).tolist() == [False] * 5 + [True, False]
    # series against series
    both = bars_of([1, 3, 3, 1], open=[2, 2, 2, 2])
    assert evaluate(parse("close crosses_above open"), both).tolist() == [False, True, False, False]
    assert evaluate(parse("open crosses_above close"), both).tolist() == [False, False, False, True]


def test_nan_comparisons_are_false_and_logic_is_three_valued() -> None:
    bars = bars_of([np.nan, 1.0, 5.0])
    assert ev("close > 2", bars).tolist() == [False, False, True]
    assert ev("close != 2", bars).tolist() == [False, True, True]
    assert ev("close == close", bars).tolist() == [False, True, True]
    assert ev("not (close > 2)", bars).tolist() == [False, True, False]  # unknown stays unknown
    assert ev("close > 2 or true", bars).tolist() == [True, True, True]
    assert ev("close > 2 and false", bars).tolist() == [False, False, False]
    assert ev("close > 2 or close < 2", bars).tolist() == [False, True, True]
    assert ev("not (close > 2 and false)", bars).tolist() == [True, True, True]
    assert np.isnan(ev("close + 1", bars)[0])


def test_division_by_zero_is_nan_without_warnings() -> None:
    bars = bars_of([0.0, 1.0, -2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ev("1 / close", bars)
        assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == -0.5
        assert np.isnan(ev("close / (close - close)", bars)).all()
        assert np.isnan(const("1 / 0")) and np.isnan(const("0 / 0"))
        assert ev("pct_change(close)", bars_of([0.0, 1.0, 2.0]))[1:].tolist()[1] == 1.0
        assert np.isnan(ev("pct_change(close)", bars_of([0.0, 1.0, 2.0]))[1])
        assert not ev("1 / close > 0", bars)[0]


def test_lag_syntax_and_helpers() -> None:
    c = BARS.close
    np.testing.assert_array_equal(ev("close[1]"), np.r_[np.nan, c[:-1]])
    np.testing.assert_array_equal(ev("close[1]"), ev("shift(close, 1)"))
    np.testing.assert_array_equal(ev("shift(close)"), ev("close[1]"))
    np.testing.assert_array_equal(ev("close[0]"), c)
    np.testing.assert_array_equal(ev("close[n]", n=3), np.r_[[np.nan] * 3, c[:-3]])
    np.testing.assert_array_equal(ev("(close - open)[2]"), np.r_[np.nan, np.nan, (c - BARS.open)[:-2]])
    np.testing.assert_array_equal(ev("close[1][2]"), ev("close[3]"))
    assert np.isnan(ev("close[1000]")).all()
    np.testing.assert_array_equal(ev("change(close, 5)"), c - np.r_[[np.nan] * 5, c[:-5]])
    np.testing.assert_allclose(ev("pct_change(close, 2)"), c / np.r_[np.nan, np.nan, c[:-2]] - 1)
    windows = np.lib.stride_tricks.sliding_window_view(BARS.high, 20)
    np.testing.assert_array_equal(ev("highest(high, 20)")[19:], windows.max(axis=1))
    np.testing.assert_array_equal(
        ev("lowest(low, 20)")[19:], np.lib.stride_tricks.sliding_window_view(BARS.low, 20).min(axis=1)
    )
    assert np.isnan(ev("highest(high, 20)")[:19]).all()
    np.testing.assert_array_equal(ev("highest(close, 1)"), c)
    np.testing.assert_array_equal(ev("abs(close - open)"), np.abs(c - BARS.open))
    np.testing.assert_array_equal(ev("min(close, open)"), np.minimum(c, BARS.open))
    np.testing.assert_array_equal(ev("max(close, 100)"), np.maximum(c, 100))
    np.testing.assert_array_equal(ev("hl2"), (BARS.high + BARS.low) / 2)
    np.testing.assert_array_equal(ev("hlc3"), (BARS.high + BARS.low + c) / 3)
    np.testing.assert_array_equal(ev("ohlc4"), (BARS.open + BARS.high + BARS.low + c) / 4)
    lagged = ev("(close > open)[1]")
    assert lagged.dtype == np.bool_ and not lagged[0] and (lagged[1:] == (c > BARS.open)[:-1]).all()


def test_rolling_window_with_a_nan_inside_is_nan() -> None:
    bars = bars_of([1, 5, 2, np.nan, 3, 1, 1, 1])
    out = ev("highest(close, 3)", bars)
    np.testing.assert_array_equal(out, [np.nan, np.nan, 5, np.nan, np.nan, np.nan, 3, 1])


def _catalog_expressions() -> list[tuple[str, str, str]]:
    out = []
    for spec in catalog():
        call = f"{spec.name}(close)" if expr.single_input(spec) else f"{spec.name}()"
        for o in spec.outputs:
            out.append((spec.name, o, call + (f".{o}" if len(spec.outputs) > 1 else "")))
    return out


@pytest.mark.parametrize(("name", "output", "text"), _catalog_expressions())
def test_every_catalog_indicator_equals_catalog_compute(name: str, output: str, text: str) -> None:
    np.testing.assert_array_equal(ev(text), compute(name, BARS)[output])


def test_multi_output_selection_and_parameters() -> None:
    m = compute("macd", BARS, fast_period=8, slow_period=21, signal_period=5)
    for sel, out in [
        ("signal", "macd_signal"),
        ("macd_signal", "macd_signal"),
        ("hist", "macd_hist"),
        ("macd", "macd"),
    ]:
        np.testing.assert_array_equal(ev(f"macd(close, 8, 21, 5).{sel}"), m[out])
    bb = compute("bbands", BARS, period=10, nbdev=2.5)
    for sel in ("upper", "middle", "lower"):
        np.testing.assert_array_equal(ev(f"bbands(close, n, k).{sel}", n=10, k=2.5), bb[f"bb_{sel}"])
    np.testing.assert_array_equal(
        ev("supertrend(7, 2).dir"), compute("supertrend", BARS, period=7, multiplier=2)["supertrend_dir"]
    )
    np.testing.assert_array_equal(ev("heikin_ashi().close"), compute("heikin_ashi", BARS)["ha_close"])
    np.testing.assert_array_equal(ev("stoch(9).k"), compute("stoch", BARS, fastk_period=9)["stoch_k"])
    np.testing.assert_array_equal(ev("rsi(close, 7).rsi"), compute("rsi", BARS, period=7)["rsi"])


def test_parameter_substitution_and_derived_inputs() -> None:
    c, h, lo = BARS.close, BARS.high, BARS.low
    np.testing.assert_array_equal(ev("sma(close, fast)", fast=10), talib.SMA(c, 10))
    np.testing.assert_array_equal(ev("sma(close, fast * 2)", fast=10), talib.SMA(c, 20))
    np.testing.assert_array_equal(ev("ema(hl2, fast)", fast=10), talib.EMA((h + lo) / 2, 10))
    np.testing.assert_array_equal(ev("sma(rsi(close, 14), 5)"), talib.SMA(talib.RSI(c, 14), 5))
    np.testing.assert_array_equal(ev("rsi(close - open)"), talib.RSI(c - BARS.open, 14))
    np.testing.assert_array_equal(ev("atr(14) / close"), talib.ATR(h, lo, c, 14) / c)
    np.testing.assert_array_equal(ev("sma(close)"), talib.SMA(c, 20))  # catalog default
    np.testing.assert_array_equal(ev("roc(close, 10)"), talib.ROC(c, 10))
    np.testing.assert_array_equal(ev("bbands(close, 20, 2).upper"), ev("bbands(close, 20.0, 2.0).upper"))


def test_named_series() -> None:
    fast = evaluate_series(parse("sma(close, fast)"), BARS, params={"fast": 10})
    assert fast.kind is Kind.SERIES and fast.key == "sma(close, 10)"
    named: dict[str, Any] = {"fast_ma": fast, "raw": talib.SMA(BARS.close, 30), "up": BARS.close > BARS.open}
    out = evaluate(parse("fast_ma > raw and up"), BARS, named=named)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, (fast.values > talib.SMA(BARS.close, 30)) & (BARS.close > BARS.open))
    np.testing.assert_array_equal(
        evaluate(parse("sma(fast_ma, 5)"), BARS, named=named), talib.SMA(fast.values, 5)
    )
    with pytest.raises(TemplateError, match="named series 'x' has 3 values, the bars 400"):
        evaluate(parse("x > 1"), BARS, named={"x": np.ones(3)})


def test_results_are_fresh_arrays_and_cached_ones_read_only() -> None:
    cache = IndicatorCache()
    out = evaluate(parse("sma(close, 10)"), BARS, cache=cache)
    out[:] = 0.0  # the caller's copy
    again = evaluate(parse("sma(close, 10)"), BARS, cache=cache)
    np.testing.assert_array_equal(again, talib.SMA(BARS.close, 10))
    stored = evaluate_series(parse("sma(close, 10)"), BARS, cache=cache).values
    assert not stored.flags.writeable
    assert BARS.close.flags.writeable
    evaluate(parse("highest(close, 1) + close"), BARS, cache=cache)
    assert BARS.close.flags.writeable


def test_const_and_empty_bars() -> None:
    assert ev("1 + 2").tolist() == [3.0] * len(BARS)
    assert ev("true").all()
    empty = Bars.empty()
    assert len(evaluate(parse("sma(close, 5) crosses_above highest(close, 3)[1]"), empty)) == 0


# ---- the cache ----------------------------------------------------------------------------------


def test_cache_computes_each_indicator_once_across_a_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []
    real = getattr(expr.evaluation, "compute_resolved")

    def counting(spec: Any, bars: Bars, params: Any, sessions: Any = None) -> Any:
        calls.append((spec.name, tuple(params.values())))
        return real(spec, bars, params, sessions)

    monkeypatch.setattr("algotrendy.engine.expr.evaluation.compute_resolved", counting)
    cache = IndicatorCache()
    node = parse("sma(close, 10) crosses_above sma(close, slow)")
    for slow in (20, 30):
        evaluate(node, BARS, params={"slow": slow}, cache=cache)
    assert sorted(calls) == [("sma", (10,)), ("sma", (20,)), ("sma", (30,))]
    assert cache.misses == 3 and cache.hits == 1
    # canonical keys: a parameter, an int and a float literal share one entry
    evaluate(parse("sma(close, p) + sma(close, 10.0) + sma(close, 10)"), BARS, params={"p": 10}, cache=cache)
    assert len(calls) == 3
    assert (0, "sma", "close", (10,)) in cache
    # derived inputs are keyed by their canonical text with parameters substituted
    node = parse("sma(ema(close, fast), 5)")
    for fast in (10, 10, 12):
        evaluate(node, BARS, params={"fast": fast}, cache=cache)
    assert calls[3:] == [("ema", (10,)), ("sma", (5,)), ("ema", (12,)), ("sma", (5,))]
    assert (0, "sma", "ema(close, 12)", (5,)) in cache
    # multi-output: one computation serves every output
    evaluate(parse("macd(close).macd crosses_above macd(close).signal"), BARS, cache=cache)
    assert [c for c in calls if c[0] == "macd"] == [("macd", (12, 26, 9))]
    # another bars object gets its own slot
    other = walk(100, seed=3)
    evaluate(parse("sma(close, 10)"), other, cache=cache)
    assert calls[-1] == ("sma", (10,)) and (1, "sma", "close", (10,)) in cache


def test_cache_bound_and_bare_arrays_are_not_cached() -> None:
    cache = IndicatorCache(max_entries=2)
    for p in (5, 6, 7):
        evaluate(parse("sma(close, p)"), BARS, params={"p": p}, cache=cache)
    assert len(cache) == 2 and (0, "sma", "close", (5,)) not in cache
    cache.clear()
    evaluate(parse("sma(x, 5)"), BARS, named={"x": BARS.close.copy()}, cache=cache)
    assert len(cache) == 0


# ---- warm-up ------------------------------------------------------------------------------------


def _first_defined(values: np.ndarray[Any, Any]) -> int:
    ok = np.flatnonzero(~np.isnan(values))
    return int(ok[0]) if len(ok) else len(values)


@pytest.mark.parametrize(
    "text",
    [
        "close",
        "sma(close, 20)",
        "ema(hl2, fast)",
        "sma(rsi(close, 14), 5)",
        "macd(close, 12, 26, 9).signal",
        "bbands(close, 20, 2).lower",
        "atr(14)",
        "adx(fast)",
        "stoch().d",
        "stochrsi(close).k",
        "highest(high, 20)[1]",
        "lowest(sma(close, 5), 3)",
        "change(close, 3) + close[7]",
        "pct_change(rsi(close), 2)",
        "close crosses_above sma(close, 20)",
        "sma(close, 5) > 1 and sma(close, 9) > 1",
        "not (rsi(close, fast) < 30)",
        "use == 0 or close > sma(close, 50)",
        "use == 1 and close > sma(close, 50)",
        "cdl_engulfing() != 0",
        "ichimoku().senkou_b",
        "supertrend().dir",
        "sma(close, fast)[2] crosses_below ema(close, 30)",
    ],
)
@pytest.mark.parametrize("use", [0, 1])
def test_warmup_is_the_first_defined_bar(text: str, use: int) -> None:
    params = {"fast": 10, "use": use}
    s = evaluate_series(parse(text), BARS, params=params)
    assert warmup(parse(text), params) == _first_defined(s.values)


def test_warmup_of_named_series_and_errors() -> None:
    assert warmup(parse("fast_ma crosses_above slow"), {}, {"fast_ma": 9, "slow": 29}) == 30
    assert warmup(parse("sma(fast_ma, 5)"), {}, {"fast_ma": 9}) == 13
    with pytest.raises(TemplateError, match=r"period must be int .* \(from parameter 'n'\)") as err:
        warmup(parse("sma(close, n)"), {"n": 1})
    assert err.value.field == "params.n"  # the same message and field as evaluating it
    with pytest.raises(TemplateError, match=r"period must be int .* \(at column 1\)"):
        warmup(parse("sma(close, 1)"))


# ---- property: well-formed expressions evaluate or raise TemplateError ---------------------------

_NAMES = ["close", "open", "high", "low", "volume", "hl2", "hlc3", "ohlc4", "fast", "x", "mode", "nope"]
_FUNCS = ["sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "roc", "cdl_doji", "vwap", "obv"]
_FUNCS += ["supertrend", "donchian", "sar", *expr.HELPERS]
_OUTS = ["", ".signal", ".upper", ".k", ".dir", ".bogus", ".macd_hist", ".lower"]


def _exprs() -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(_NAMES),
        st.sampled_from(["0", "1", "2", "14", "0.5", "-3", "1e9", "100000", "true", "false"]),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).map(
            lambda f: repr(abs(f))
        ),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        ops = [
            "+",
            "-",
            "*",
            "/",
            "<",
            "<=",
            ">",
            ">=",
            "==",
            "!=",
            "and",
            "or",
            "crosses_above",
            "crosses_below",
        ]
        return st.one_of(
            st.tuples(inner, st.sampled_from(ops), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["-", "not "]), inner).map(lambda t: f"{t[0]}{t[1]}"),
            st.tuples(inner, st.sampled_from(["0", "1", "3", "fast", "x", "-1", "close"])).map(
                lambda t: f"{t[0]}[{t[1]}]"
            ),
            st.tuples(st.sampled_from(_FUNCS), st.lists(inner, max_size=4), st.sampled_from(_OUTS)).map(
                lambda t: f"{t[0]}({', '.join(t[1])}){t[2]}"
            ),
        )

    return st.recursive(leaf, extend, max_leaves=12)


SMALL = walk(80, seed=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exprs())
def test_random_expressions_evaluate_or_raise_template_error(text: str) -> None:
    params: dict[str, int | float | str] = {"fast": 10, "x": 2.5, "mode": "abc"}
    try:
        node = parse(text)
        out = evaluate(node, SMALL, params=params, cache=IndicatorCache())
        w = warmup(node, params)
    except TemplateError:
        return
    assert len(out) == len(SMALL) and out.dtype in (np.float64, np.bool_)
    assert w >= 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("()[],.+-*/<>=! abcdelosrnt_0123456789'\"#")), max_size=60))
def test_random_text_parses_or_raises_template_error(text: str) -> None:
    try:
        node = parse(text)
    except TemplateError:
        return
    assert parse(unparse(node)) == node
