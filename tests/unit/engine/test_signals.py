from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import talib

from algotrendy.core.market import Bars
from algotrendy.engine import expr
from algotrendy.engine.expr import IndicatorCache
from algotrendy.engine.signals import (
    RiskParams,
    compute_signals,
    grid_size,
    param_grid,
    resolve_params,
    resolved_risk,
    resolved_rotation,
    rotation_scores,
    signal_warmup,
    validate_template,
)
from algotrendy.engine.template import (
    ParameterSpec,
    PositionSizing,
    RiskManagement,
    Rotation,
    StrategyTemplate,
    TemplateError,
)
from tests.unit.indicators.synthetic import walk

BARS = walk(500, seed=21)


def p_int(
    name: str, default: int | None, lo: float | None = 2, hi: float | None = 100, step: float | None = None
) -> ParameterSpec:
    return ParameterSpec(name=name, type="int", default=default, min_value=lo, max_value=hi, step=step)


def p_float(
    name: str,
    default: float | None,
    lo: float | None = 0.0,
    hi: float | None = 1.0,
    step: float | None = None,
) -> ParameterSpec:
    return ParameterSpec(name=name, type="float", default=default, min_value=lo, max_value=hi, step=step)


def p_choice(name: str, default: Any, choices: list[Any] | None) -> ParameterSpec:
    return ParameterSpec(name=name, type="choice", default=default, choices=choices)


def make(**changes: Any) -> StrategyTemplate:
    base: dict[str, Any] = {
        "name": "t",
        "parameters": {"fast": p_int("fast", 10, 5, 50, 5), "slow": p_int("slow", 30, 20, 100, 10)},
        "indicators": ["fast_ma = sma(close, fast)", "slow_ma = sma(close, slow)"],
        "entry_conditions": ["fast_ma crosses_above slow_ma"],
        "exit_conditions": ["fast_ma crosses_below slow_ma"],
    }
    base.update(changes)
    return StrategyTemplate(**base)


def bars_of(close: list[float], volume: list[float] | None = None) -> Bars:
    c = np.asarray(close, dtype=np.float64)
    v = np.asarray(volume if volume is not None else [1.0] * len(c), dtype=np.float64)
    return Bars(np.arange(len(c), dtype=np.int64), c, c, c, c, v)


# ---- resolve_params -----------------------------------------------------------------------------


def test_resolve_params_fills_defaults_and_checks_overrides() -> None:
    t = make(
        parameters={
            "fast": p_int("fast", 10, 5, 50),
            "x": p_float("x", 0.5),
            "mode": p_choice("mode", "a", ["a", "b", 3]),
        }
    )
    assert resolve_params(t) == {"fast": 10, "x": 0.5, "mode": "a"}
    out = resolve_params(t, {"fast": 12.0, "x": 1, "mode": 3})
    assert out == {"fast": 12, "x": 1.0, "mode": 3}
    assert isinstance(out["fast"], int) and isinstance(out["x"], float)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"fast": 12.5}, "params.fast", "parameter 'fast' must be an integer, got 12.5"),
        ({"fast": 4}, "params.fast", r"parameter 'fast' must be in \[5, 50\], got 4"),
        ({"fast": "10"}, "params.fast", "must be a finite number \\(int\\), got '10'"),
        ({"fast": True}, "params.fast", "must be a finite number"),
        ({"x": float("nan")}, "params.x", "must be a finite number"),
        ({"mode": "c"}, "params.mode", r"must be one of \['a', 'b', 3\], got 'c'"),
        ({"mode": "3"}, "params.mode", "must be one of"),
        ({"nope": 1}, "params.nope", "unknown parameter 'nope'; the template's parameters: fast, x, mode"),
    ]
    for overrides, field, message in cases:
        with pytest.raises(TemplateError, match=message) as info:
            resolve_params(t, overrides)
        assert info.value.field == field
    no_default = make(
        parameters={"n": p_int("n", None)}, indicators=[], entry_conditions=["close > n"], exit_conditions=[]
    )
    with pytest.raises(TemplateError, match="parameter 'n' has no default") as info:
        resolve_params(no_default)
    assert info.value.field == "params.n"
    assert resolve_params(no_default, {"n": 5}) == {"n": 5}


# ---- validate_template --------------------------------------------------------------------------


def _bad_templates() -> list[tuple[str, dict[str, Any], str, str]]:
    ps = {"fast": p_int("fast", 10, 5, 50), "slow": p_int("slow", 30, 20, 100)}
    return [
        (
            "key differs",
            {"parameters": {**ps, "fast": p_int("quick", 10)}},
            "parameters.fast.name",
            "differs from its name 'quick'",
        ),
        (
            "reserved param",
            {"parameters": {**ps, "close": p_int("close", 10)}},
            "parameters.close.name",
            "bar column or keyword",
        ),
        (
            "min > max",
            {"parameters": {**ps, "fast": p_int("fast", 10, 50, 5)}},
            "parameters.fast.min_value",
            "min_value 50 is greater than max_value 5",
        ),
        (
            "default outside",
            {"parameters": {**ps, "fast": p_int("fast", 60, 5, 50)}},
            "parameters.fast.default",
            r"must be in \[5, 50\], got 60",
        ),
        (
            "int bound",
            {"parameters": {**ps, "fast": p_int("fast", 10, 5, 50.5)}},
            "parameters.fast.max_value",
            "must be an integer, got 50.5",
        ),
        (
            "int step",
            {"parameters": {**ps, "fast": p_int("fast", 10, 5, 50, 2.5)}},
            "parameters.fast.step",
            "must be an integer",
        ),
        (
            "int default",
            {"parameters": {**ps, "fast": ParameterSpec(name="fast", type="int", default=10.5)}},
            "parameters.fast.default",
            "must be an integer",
        ),
        (
            "infinite bound",
            {"parameters": {**ps, "fast": p_int("fast", 10, 5, float("inf"))}},
            "parameters.fast.max_value",
            "must be finite",
        ),
        (
            "no choices",
            {"parameters": {**ps, "mode": p_choice("mode", None, None)}},
            "parameters.mode.choices",
            "needs choices",
        ),
        (
            "empty choices",
            {"parameters": {**ps, "mode": p_choice("mode", None, [])}},
            "parameters.mode.choices",
            "needs choices",
        ),
        (
            "default not a choice",
            {"parameters": {**ps, "mode": p_choice("mode", 3, [1, 2])}},
            "parameters.mode.default",
            r"must be one of \[1, 2\], got 3",
        ),
        (
            "choices on int",
            {"parameters": {**ps, "fast": ParameterSpec(name="fast", type="int", default=10, choices=[10])}},
            "parameters.fast.choices",
            "only apply to choice",
        ),
        (
            "bounds on choice",
            {
                "parameters": {
                    **ps,
                    "mode": ParameterSpec(name="mode", type="choice", choices=[1], min_value=0),
                }
            },
            "parameters.mode.min_value",
            "does not apply",
        ),
        (
            "line shape",
            {"indicators": ["sma(close, fast)"]},
            "indicators[0]",
            "an indicator line reads 'name = expression'",
        ),
        ("line ==", {"indicators": ["fast_ma == sma(close, fast)"]}, "indicators[0]", "name = expression"),
        (
            "duplicate",
            {"indicators": ["fast_ma = sma(close, fast)", "fast_ma = ema(close, 3)"]},
            "indicators[1]",
            "'fast_ma' is already defined in indicators\\[0\\]",
        ),
        (
            "named is a param",
            {"indicators": ["fast = sma(close, 3)"]},
            "indicators[0]",
            "'fast' is already a parameter",
        ),
        (
            "named is a column",
            {"indicators": ["close = sma(close, 3)"]},
            "indicators[0]",
            "'close' is a bar column or keyword",
        ),
        (
            "named is a keyword",
            {"indicators": ["and = sma(close, 3)"]},
            "indicators[0]",
            "bar column or keyword",
        ),
        (
            "line bad expr",
            {"indicators": ["fast_ma = smaa(close, fast)"]},
            "indicators[0]",
            "unknown indicator 'smaa' at column 11; did you mean sma",
        ),
        (
            "used before defined",
            {"indicators": ["slow_ma = sma(fast_ma, 3)", "fast_ma = sma(close, 3)"]},
            "indicators[0]",
            "unknown name 'fast_ma'",
        ),
        (
            "unknown name",
            {"entry_conditions": ["fast_ma > 1", "clsoe > slow_ma"]},
            "entry_conditions[1]",
            "unknown name 'clsoe' at column 1; did you mean close",
        ),
        (
            "not boolean",
            {"entry_conditions": ["close + 1"]},
            "entry_conditions[0]",
            "a condition must be true or false.*this is a series",
        ),
        ("number condition", {"exit_conditions": ["fast"]}, "exit_conditions[0]", "this is a number"),
        (
            "unknown output",
            {"exit_conditions": ["close > bbands(close).top"]},
            "exit_conditions[0]",
            "bbands has no output 'top'",
        ),
        (
            "syntax",
            {"entry_conditions": ["close > (open"]},
            "entry_conditions[0]",
            "expected '\\)' at column 14",
        ),
        (
            "literal out of range",
            {"entry_conditions": ["close > sma(close, 1)"]},
            "entry_conditions[0]",
            "sma: parameter period must be int in \\[2, 100000\\], got 1",
        ),
        (
            "macd at defaults",
            {"entry_conditions": ["macd(close, 30, 20).hist > 0"]},
            "entry_conditions[0]",
            "fast_period \\(30\\) must be less than slow_period \\(20\\)",
        ),
        (
            "param range vs indicator",
            {"parameters": {**ps, "fast": p_int("fast", 10, 1, 50)}},
            "parameters.fast.min_value",
            "parameter 'fast' min_value 1.0 is outside sma's period range \\[2, 100000\\]",
        ),
        (
            "float param into int",
            {"parameters": {**ps, "fast": p_float("fast", 10.0, 5, 50)}},
            "parameters.fast.type",
            "sma's period is an integer but parameter 'fast' is a float",
        ),
        (
            "negative shift param",
            {"parameters": {**ps, "n": p_int("n", 1, -2, 5)}, "exit_conditions": ["close < close[n]"]},
            "parameters.n.min_value",
            "shift's bar count range \\[0, 100000\\]",
        ),
        (
            "string choice used",
            {
                "parameters": {**ps, "mode": p_choice("mode", "a", ["a", "b"])},
                "exit_conditions": ["mode > 1"],
            },
            "exit_conditions[0]",
            "parameter 'mode' has non-numeric values",
        ),
        (
            "no entries",
            {"entry_conditions": [], "exit_conditions": []},
            "entry_conditions",
            "no entry conditions \\(long or short\\) and no rotation",
        ),
        (
            "exits without entries",
            {"short_exit_conditions": ["close > 1"]},
            "short_exit_conditions",
            "short_exit_conditions without short_entry_conditions",
        ),
        (
            "stop_loss range",
            {"risk_management": RiskManagement(stop_loss=1.5)},
            "risk_management.stop_loss",
            "stop_loss must be in \\(0, 1\\), got 1.5",
        ),
        (
            "stop_loss zero",
            {"risk_management": RiskManagement(stop_loss=0)},
            "risk_management.stop_loss",
            "got 0",
        ),
        (
            "trailing nan",
            {"risk_management": RiskManagement(trailing_stop=float("nan"))},
            "risk_management.trailing_stop",
            "trailing_stop must be in",
        ),
        (
            "take_profit range",
            {"risk_management": RiskManagement(take_profit=11)},
            "risk_management.take_profit",
            "take_profit must be in \\(0, 10\\]",
        ),
        (
            "unknown risk param",
            {"risk_management": RiskManagement(stop_loss="sl")},
            "risk_management.stop_loss",
            "names an unknown parameter 'sl'",
        ),
        (
            "risk param range",
            {
                "parameters": {**ps, "sl": p_float("sl", 0.05, 0.01, 1.2)},
                "risk_management": RiskManagement(stop_loss="sl"),
            },
            "risk_management.stop_loss",
            "got 1.2 \\(parameter 'sl' max_value\\)",
        ),
        (
            "risk string choice",
            {
                "parameters": {**ps, "sl": p_choice("sl", "x", ["x"])},
                "risk_management": RiskManagement(trailing_stop="sl"),
            },
            "risk_management.trailing_stop",
            "is not a number",
        ),
        (
            "sizing leverage",
            {"risk_management": RiskManagement(position_sizing=PositionSizing(value=2.0))},
            "risk_management.position_sizing.value",
            "must be in \\(0, 1\\], got 2",
        ),
        (
            "vol target",
            {
                "risk_management": RiskManagement(
                    position_sizing=PositionSizing(method="volatility_target", value=20)
                )
            },
            "risk_management.position_sizing.value",
            "\\(0, 10\\]",
        ),
        (
            "fixed qty",
            {
                "risk_management": RiskManagement(
                    position_sizing=PositionSizing(method="fixed_quantity", value=0)
                )
            },
            "risk_management.position_sizing.value",
            "must be in > 0",
        ),
    ]


@pytest.mark.parametrize(
    ("case", "changes", "field", "message"), _bad_templates(), ids=[c[0] for c in _bad_templates()]
)
def test_validate_template_names_the_field(
    case: str, changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        validate_template(make(**changes))
    assert info.value.field == field


def _rotation(**changes: Any) -> StrategyTemplate:
    base: dict[str, Any] = {
        "name": "rot",
        "parameters": {"lookback": p_int("lookback", 20, 5, 100)},
        "rotation": Rotation(score="roc(close, lookback)", top_n=1, rebalance_every=21),
    }
    base.update(changes)
    return StrategyTemplate(**base)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"rotation": Rotation(score="roc(close, lookbak)")},
            "rotation.score",
            "unknown name 'lookbak'.*did you mean lookback",
        ),
        ({"rotation": Rotation(score="close > 1")}, "rotation.score", "must be a number, not a condition"),
        (
            {"rotation": Rotation(score="roc(close)", top_n="n")},
            "rotation.top_n",
            "names an unknown parameter 'n'",
        ),
        (
            {"rotation": Rotation(score="roc(close)", top_n=0)},
            "rotation.top_n",
            "must be an integer in \\[1, 1000\\], got 0",
        ),
        (
            {
                "rotation": Rotation(score="roc(close)", rebalance_every="lookback"),
                "parameters": {"lookback": p_int("lookback", 20, 0, 100)},
            },
            "rotation.rebalance_every",
            "got 0",
        ),
        ({"rotation": Rotation(score="roc(close)", min_score=float("inf"))}, "rotation.min_score", "finite"),
        (
            {"entry_conditions": ["close > 1"]},
            "entry_conditions",
            "a rotation template trades the top ranked symbols",
        ),
    ],
)
def test_validate_rotation(changes: dict[str, Any], field: str, message: str) -> None:
    validate_template(_rotation())
    with pytest.raises(TemplateError, match=message) as info:
        validate_template(_rotation(**changes))
    assert info.value.field == field


def test_valid_templates_pass() -> None:
    validate_template(make())
    validate_template(
        make(
            parameters={
                "fast": p_int("fast", 10, 5, 50),
                "k": p_float("k", 2.0, 1.0, 3.0, 0.5),
                "sl": p_choice("sl", 0.05, [0.02, 0.05]),
                "n": p_int("n", None, 1, 5),
            },
            indicators=[
                "up = close > sma(close, fast)",
                "band = bbands(close, 20, k).upper",
                "w = band - band[n]",
            ],
            entry_conditions=["up and w > 0"],
            exit_conditions=["not up", "close crosses_below band"],
            short_entry_conditions=["close < lowest(low, 20)[1]"],
            risk_management=RiskManagement(stop_loss="sl", take_profit=2.0, trailing_stop=0.1),
        )
    )
    validate_template(
        make(entry_conditions=[], exit_conditions=[], short_entry_conditions=["rsi(close) > 70"])
    )


# ---- compute_signals ----------------------------------------------------------------------------


def test_entries_are_anded_exits_ored_and_nan_is_false() -> None:
    bars = bars_of([1, 5, 5, np.nan, 5, 1, 9], volume=[1, 1, 0, 1, 1, 1, 1])
    t = StrategyTemplate(
        name="t",
        entry_conditions=["close > 2", "volume > 0"],
        exit_conditions=["close < 2", "close > 8"],
    )
    s = compute_signals(t, bars, {})
    assert s.long_entry.tolist() == [False, True, False, False, True, False, True]
    assert s.long_exit.tolist() == [True, False, False, False, False, True, True]
    assert not s.short_entry.any() and not s.short_exit.any()
    assert s.warmup == 0 and len(s) == 7
    assert all(a.dtype == np.bool_ for a in (s.long_entry, s.long_exit, s.short_entry, s.short_exit))
    never = compute_signals(StrategyTemplate(name="t", entry_conditions=["close > 2"]), bars, {})
    assert not never.long_exit.any()


def test_signals_match_the_expressions_and_warmup_masks() -> None:
    t = make(short_entry_conditions=["rsi(close, 14) > 70"], short_exit_conditions=["rsi(close, 14) < 50"])
    params = resolve_params(t)
    s = compute_signals(t, BARS, params)
    fast, slow = talib.SMA(BARS.close, 10), talib.SMA(BARS.close, 30)
    up = (fast > slow) & (np.r_[np.nan, fast[:-1]] <= np.r_[np.nan, slow[:-1]])
    np.testing.assert_array_equal(s.long_entry, up)
    assert s.warmup == 30 == signal_warmup(t, params)
    rsi = talib.RSI(BARS.close, 14)
    short = rsi > 70
    short[:30] = False  # before the warm-up of every condition
    np.testing.assert_array_equal(s.short_entry, short)
    assert s.long_entry.any() and s.long_exit.any() and s.short_entry.any() and s.short_exit.any()
    # too short a series: no signals, warm-up says why
    tiny = compute_signals(t, BARS.slice(0, 20), params)
    assert tiny.warmup == 30 and not tiny.long_entry.any() and len(tiny) == 20


def test_named_indicators_chain_and_unused_ones_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = getattr(expr.evaluation, "compute_resolved")

    def counting(spec: Any, bars: Bars, params: Any, sessions: Any = None) -> Any:
        calls.append(spec.name)
        return real(spec, bars, params, sessions)

    monkeypatch.setattr("algotrendy.engine.expr.evaluation.compute_resolved", counting)
    t = make(
        indicators=["r = rsi(close, 14)", "smooth = sma(r, 5)", "unused = adx(14)", "hot = smooth > 60"],
        entry_conditions=["not hot and r < 40"],
        exit_conditions=["hot"],
    )
    validate_template(t)
    s = compute_signals(t, BARS, resolve_params(t))
    assert sorted(calls) == ["rsi", "sma"]
    smooth = talib.SMA(talib.RSI(BARS.close, 14), 5)
    assert s.warmup == 18
    np.testing.assert_array_equal(s.long_exit[18:], (smooth > 60)[18:])


def test_compute_time_parameter_errors_name_the_field() -> None:
    t = make()
    with pytest.raises(TemplateError, match="from parameter 'fast'") as info:
        compute_signals(t, BARS, {"fast": 1, "slow": 30})
    assert info.value.field == "params.fast"
    with pytest.raises(TemplateError, match="use rotation_scores") as info:
        compute_signals(_rotation(), BARS, {"lookback": 20})
    assert info.value.field == "rotation"


def test_cache_shares_indicators_across_a_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[object, ...]]] = []
    real = getattr(expr.evaluation, "compute_resolved")

    def counting(spec: Any, bars: Bars, params: Any, sessions: Any = None) -> Any:
        calls.append((spec.name, tuple(params.values())))
        return real(spec, bars, params, sessions)

    monkeypatch.setattr("algotrendy.engine.expr.evaluation.compute_resolved", counting)
    t = make(
        parameters={"slow": p_int("slow", 30, 20, 30, 10)},
        indicators=["fast_ma = sma(close, 10)", "slow_ma = sma(close, slow)"],
    )
    cache = IndicatorCache()
    results = [compute_signals(t, BARS, resolve_params(t, combo), cache) for combo in param_grid(t, ["slow"])]
    assert len(results) == 2
    assert calls.count(("sma", (10,))) == 1
    assert sorted(calls) == [("sma", (10,)), ("sma", (20,)), ("sma", (30,))]
    # a second pass is all hits
    for combo in param_grid(t, ["slow"]):
        compute_signals(t, BARS, resolve_params(t, combo), cache)
    assert len(calls) == 3


# ---- risk and rotation --------------------------------------------------------------------------


def test_resolved_risk_substitutes_parameters() -> None:
    t = make(
        parameters={
            **make().parameters,
            "sl": p_float("sl", 0.05, 0.01, 0.5, 0.01),
            "size": p_float("size", 0.5, 0.1, 1.0),
        },
        risk_management=RiskManagement(
            stop_loss="sl",
            take_profit=0.2,
            position_sizing=PositionSizing(method="percent_equity", value="size", max_leverage=1.0),
        ),
    )
    validate_template(t)
    risk = resolved_risk(t, resolve_params(t, {"sl": 0.03}))
    assert risk == RiskParams(0.03, 0.2, None, "percent_equity", 0.5, 20, 1.0)
    with pytest.raises(
        TemplateError, match=r"stop_loss must be in \(0, 1\), got 1.5 \(parameter 'sl'\)"
    ) as info:
        resolved_risk(t, {"sl": 1.5, "size": 0.5})
    assert info.value.field == "risk_management.stop_loss"
    with pytest.raises(TemplateError, match="names an unknown parameter 'sl'"):
        resolved_risk(t, {"size": 0.5})


def test_rotation_scores_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    t = _rotation(
        parameters={"lookback": p_int("lookback", 20, 5, 100), "every": p_int("every", 10, 1, 50)},
        indicators=["mom = roc(close, lookback)"],
        rotation=Rotation(score="mom / 100", top_n=2, rebalance_every="every", min_score=0.0),
    )
    validate_template(t)
    syms = {s: walk(300, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC"])}
    calls: list[str] = []
    real = getattr(expr.evaluation, "compute_resolved")

    def counting(spec: Any, bars: Bars, params: Any, sessions: Any = None) -> Any:
        calls.append(spec.name)
        return real(spec, bars, params, sessions)

    monkeypatch.setattr("algotrendy.engine.expr.evaluation.compute_resolved", counting)
    cache = IndicatorCache()
    params = resolve_params(t)
    scores = rotation_scores(t, syms, params, cache)
    assert list(scores) == ["AAA", "BBB", "CCC"]
    for s, b in syms.items():
        np.testing.assert_allclose(scores[s], talib.ROC(b.close, 20) / 100)
    rotation_scores(t, syms, params, cache)
    assert calls == ["roc"] * 3  # once per symbol, across both calls
    rp = resolved_rotation(t, params)
    assert (rp.top_n, rp.rebalance_every, rp.min_score, rp.warmup) == (2, 10, 0.0, 20)
    with pytest.raises(TemplateError) as info:
        resolved_rotation(t, {"lookback": 20, "every": 0})
    assert info.value.field == "rotation.rebalance_every"
    with pytest.raises(ValueError, match="bar counts differ"):
        rotation_scores(t, {"A": walk(10), "B": walk(11)}, params)


# ---- parameter grids ----------------------------------------------------------------------------


def test_param_grid_values_order_and_sizes() -> None:
    t = make(
        parameters={
            "fast": p_int("fast", 10, 5, 50, 5),
            "slow": p_int("slow", 20, 20, 23),
            "k": p_float("k", 2.0, 1.0, 3.0, 0.5),
            "sl": p_float("sl", 0.02, 0.02, 0.2, 0.02),
            "mode": p_choice("mode", "a", ["a", "b"]),
            "loose": p_float("loose", 0.5),
            "open_ended": p_int("open_ended", 5, 1, None),
        },
        indicators=[],
        entry_conditions=["close > 1"],
        exit_conditions=[],
    )
    assert [c["fast"] for c in param_grid(t, ["fast"])] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert [c["slow"] for c in param_grid(t, ["slow"])] == [20, 21, 22, 23]
    assert [c["k"] for c in param_grid(t, ["k"])] == [1.0, 1.5, 2.0, 2.5, 3.0]
    sl = [c["sl"] for c in param_grid(t, ["sl"])]
    assert len(sl) == 10 and sl[0] == 0.02 and sl[-1] == 0.2 and sl[2] == 0.06
    assert list(param_grid(t, ["mode", "slow"]))[:3] == [
        {"mode": "a", "slow": 20},
        {"mode": "a", "slow": 21},
        {"mode": "a", "slow": 22},
    ]
    assert (
        grid_size(t, ["fast", "slow", "k", "mode"])
        == 10 * 4 * 5 * 2
        == len(list(param_grid(t, ["fast", "slow", "k", "mode"])))
    )
    assert list(param_grid(t, [])) == [{}] and grid_size(t, []) == 1
    for combo in param_grid(t, ["fast", "k", "sl", "mode"]):
        resolve_params(t, combo)  # every grid point is a valid value
    cases: list[tuple[list[str], str, str]] = [
        (["loose"], "parameters.loose.step", "float parameter 'loose' needs a step"),
        (["open_ended"], "parameters.open_ended", "needs min_value and max_value"),
        (["nope"], "params.nope", "unknown parameter 'nope'"),
        (["fast", "fast"], "params.fast", "named twice"),
    ]
    for names, field, message in cases:
        with pytest.raises(TemplateError, match=message) as info:
            param_grid(t, names)
        assert info.value.field == field


def test_param_grid_refuses_too_many_combinations_before_iterating() -> None:
    t = make(
        parameters={"a": p_int("a", 2, 2, 100_000), "b": p_int("b", 2, 2, 100_000)},
        indicators=[],
        entry_conditions=["close > a + b"],
        exit_conditions=[],
    )
    assert grid_size(t, ["a", "b"]) == 99_999**2
    with pytest.raises(
        TemplateError, match="the grid has 9999800001 combinations, more than the limit of 10000"
    ) as info:
        param_grid(t, ["a", "b"])
    assert info.value.field == "params"
    assert len(list(param_grid(t, ["a"], max_combinations=100_000))) == 99_999
