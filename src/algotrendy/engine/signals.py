"""From a ``StrategyTemplate`` to what an engine acts on: parameter values, validation, signal
arrays, resolved risk numbers, rotation scores, and the parameter grid of a sweep.

    validate_template(t)                          # TemplateError(field=...) if it cannot run
    params = resolve_params(t, {"fast": 12})      # defaults filled in, overrides checked
    cache = IndicatorCache()                      # one per sweep: indicators computed once
    sig = compute_signals(t, bars, params, cache) # Signals(long_entry, long_exit, ..., warmup)
    risk = resolved_risk(t, params)               # RiskParams with parameter names substituted
    for overrides in param_grid(t, ["fast", "slow"], max_combinations=500): ...

Signals are decided on a bar's close from data up to and including that bar. Entry conditions are
ANDed, exit conditions ORed; a condition that is unknown (NaN inputs, see ``engine.expr``) counts
as False; every signal before ``Signals.warmup`` (the first bar at which every condition is
defined) is False. An empty exit list never exits by signal; empty short lists never go short.

Validation is static (no bars): parameter specs, the ``name = expression`` indicator lines (a
name is defined once, before use, and is not a bar column, keyword or parameter), every
expression parsed and type-checked (conditions must be boolean), indicator parameters and bar
counts checked against the ranges of the template parameters feeding them, risk limits
(stop_loss and trailing_stop in (0, 1), take_profit in (0, 10], percent_equity sizing in
(0, max_leverage], volatility_target in (0, 10], fixed_quantity > 0) and the rotation fields.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine import expr
from algotrendy.engine.expr import IndicatorCache, Kind, Node, Series
from algotrendy.engine.result import B8
from algotrendy.engine.template import (
    ParameterSpec,
    ParamValue,
    SizingMethod,
    StrategyTemplate,
    TemplateError,
)

RESERVED: Final = frozenset((*expr.COLUMNS, *expr.DERIVED, *expr.KEYWORDS))
CONDITION_LISTS: Final = (
    "entry_conditions",
    "exit_conditions",
    "short_entry_conditions",
    "short_exit_conditions",
)
RISK_LIMITS: Final[dict[str, tuple[float, float, bool]]] = {  # (exclusive low, high, high included)
    "stop_loss": (0.0, 1.0, False),
    "take_profit": (0.0, 10.0, True),
    "trailing_stop": (0.0, 1.0, False),
}
VOL_TARGET_MAX: Final = 10.0
TOP_N_MAX: Final = 1000
_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_MODEL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.*)$", re.DOTALL)


@contextmanager
def _at(field: str) -> Iterator[None]:
    """Give a TemplateError raised inside without a field this one."""
    try:
        yield
    except TemplateError as exc:
        if exc.field is None:
            raise TemplateError(str(exc), field=field) from None
        raise


# ---- parameter values ---------------------------------------------------------------------------


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_value(spec: ParameterSpec, value: object, field: str) -> ParamValue:
    """``value`` for parameter ``spec`` (ints as int, floats as float, a choice as listed)."""
    what = f"parameter {spec.name!r}"
    if spec.type == "choice":
        for choice in spec.choices or []:
            if value == choice and not isinstance(value, bool) and _is_number(value) == _is_number(choice):
                return choice
        raise TemplateError(f"{what} must be one of {spec.choices}, got {value!r}", field=field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TemplateError(f"{what} must be a finite number ({spec.type}), got {value!r}", field=field)
    number = float(value)
    if spec.type == "int" and not number.is_integer():
        raise TemplateError(f"{what} must be an integer, got {value!r}", field=field)
    lo = -math.inf if spec.min_value is None else spec.min_value
    hi = math.inf if spec.max_value is None else spec.max_value
    if not lo <= number <= hi:
        raise TemplateError(f"{what} must be in [{_fmt(lo)}, {_fmt(hi)}], got {value!r}", field=field)
    return int(number) if spec.type == "int" else number


def _fmt(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and float(v).is_integer() else str(v)


def resolve_params(
    template: StrategyTemplate, overrides: Mapping[str, ParamValue] | None = None
) -> dict[str, ParamValue]:
    """Every parameter's value: the override if given (type and range checked), else the default."""
    overrides = overrides or {}
    for name in overrides:
        if name not in template.parameters:
            known = ", ".join(template.parameters) or "none"
            raise TemplateError(
                f"unknown parameter {name!r}; the template's parameters: {known}", field=f"params.{name}"
            )
    out: dict[str, ParamValue] = {}
    for name, spec in template.parameters.items():
        if name in overrides:
            out[name] = check_value(spec, overrides[name], f"params.{name}")
        elif spec.default is not None:
            out[name] = check_value(spec, spec.default, f"parameters.{name}.default")
        else:
            raise TemplateError(f"parameter {name!r} has no default: give a value", field=f"params.{name}")
    return out


# ---- compiling a template -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Program:
    named: tuple[tuple[str, str, Node], ...]  # (name, field, node), in definition order
    models: tuple[str, ...]  # aliases of model series read from ``Bars.series``
    kinds: dict[str, Kind]
    conditions: dict[str, tuple[tuple[str, Node], ...]]  # list -> ((field, node), ...)
    score: Node | None


_PROGRAMS: dict[int, tuple[StrategyTemplate, _Program]] = {}
_PROGRAMS_MAX = 256


def _compile(template: StrategyTemplate) -> _Program:
    """``_build`` once per template object (a sweep calls this per combination). Templates are
    frozen, so the program cannot go stale; the entry keeps the template alive, so its id is not
    reused while cached."""
    hit = _PROGRAMS.get(id(template))
    if hit is not None and hit[0] is template:
        return hit[1]
    program = _build(template)
    if len(_PROGRAMS) >= _PROGRAMS_MAX:
        _PROGRAMS.clear()
    _PROGRAMS[id(template)] = (template, program)
    return program


def _build(template: StrategyTemplate) -> _Program:
    """Parse and type-check every expression; TemplateError naming the field."""
    params = template.parameters
    kinds: dict[str, Kind] = {}
    named: list[tuple[str, str, Node]] = []
    defined: dict[str, str] = {}
    for alias, ref in template.models.items():
        field = f"models.{alias}"
        if not _ALIAS.match(alias) or alias in RESERVED or alias in params:
            raise TemplateError(
                f"{alias!r} cannot name a model series (a parameter, bar column or keyword, or not a name)",
                field=field,
            )
        if not _MODEL_REF.match(ref):
            raise TemplateError("give a model's name or a model version id", field=field)
        kinds[alias] = Kind.SERIES
        defined[alias] = field
    for i, line in enumerate(template.indicators):
        field = f"indicators[{i}]"
        m = _LINE.match(line)
        if m is None:
            raise TemplateError(
                "an indicator line reads 'name = expression', e.g. 'fast_ma = sma(close, fast)'", field=field
            )
        name = m.group(1)
        if name in RESERVED:
            raise TemplateError(
                f"{name!r} is a bar column or keyword and cannot name an indicator", field=field
            )
        if name in params:
            raise TemplateError(f"{name!r} is already a parameter", field=field)
        if name in defined:
            raise TemplateError(f"{name!r} is already defined in {defined[name]}", field=field)
        if len(name) > 40:
            raise TemplateError(f"indicator name {name[:40]!r}... is longer than 40 characters", field=field)
        with _at(field):
            node = expr.parse(" " * m.start(2) + m.group(2))  # columns as in the line
            kinds[name] = expr.infer(node, expr.scope(params, kinds))
        defined[name] = field
        named.append((name, field, node))
    names = expr.scope(params, kinds)
    conditions: dict[str, tuple[tuple[str, Node], ...]] = {}
    for lst in CONDITION_LISTS:
        items = []
        for i, text in enumerate(getattr(template, lst)):
            field = f"{lst}[{i}]"
            with _at(field):
                node = expr.parse(text)
                kind = expr.infer(node, names)
            if not kind.is_bool:
                raise TemplateError(
                    "a condition must be true or false (e.g. 'close > sma(close, 20)'); "
                    f"this is a {kind.value}",
                    field=field,
                )
            items.append((field, node))
        conditions[lst] = tuple(items)
    score = None
    if template.rotation is not None:
        with _at("rotation.score"):
            score = expr.parse(template.rotation.score)
            if expr.infer(score, names).is_bool:
                raise TemplateError("the rotation score must be a number, not a condition")
    return _Program(tuple(named), tuple(template.models), kinds, conditions, score)


def _needed(prog: _Program, nodes: Sequence[Node]) -> set[str]:
    need = {n for node in nodes for n in expr.references(node).names}
    for name, _, node in reversed(prog.named):
        if name in need:
            need |= expr.references(node).names
    return need


def _named(
    prog: _Program,
    nodes: Sequence[Node],
    bars: Bars,
    params: Mapping[str, ParamValue],
    cache: IndicatorCache,
) -> tuple[dict[str, Series], dict[str, int]]:
    need = _needed(prog, nodes)
    values: dict[str, Series] = {}
    warm: dict[str, int] = {}
    for alias in prog.models:
        if alias in need:
            if alias not in bars.series:
                raise TemplateError(
                    f"the model series {alias!r} was not computed for these bars", field=f"models.{alias}"
                )
            values[alias] = Series(np.asarray(bars.series[alias], dtype=np.float64), Kind.SERIES, None)
            warm[alias] = 0
    for name, field, node in prog.named:
        if name in need:
            with _at(field):
                values[name] = expr.evaluate_series(node, bars, params=params, named=values, cache=cache)
                warm[name] = expr.warmup(node, params, warm)
    return values, warm


# ---- signals ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signals:
    """Bool arrays of len(bars); ``warmup`` is the first bar at which every condition is defined."""

    long_entry: B8
    long_exit: B8
    short_entry: B8
    short_exit: B8
    warmup: int

    def __len__(self) -> int:
        return len(self.long_entry)


def compute_signals(
    template: StrategyTemplate,
    bars: Bars,
    params: Mapping[str, ParamValue],
    cache: IndicatorCache | None = None,
) -> Signals:
    """The template's signals over ``bars`` for resolved ``params`` (see ``resolve_params``).
    Pass one ``cache`` across a sweep so each indicator is computed once per bars object."""
    prog = _compile(template)
    if prog.score is not None:
        raise TemplateError(
            "a rotation template has no entry/exit signals: use rotation_scores", field="rotation"
        )
    cache = cache if cache is not None else IndicatorCache()
    nodes = [node for items in prog.conditions.values() for _, node in items]
    named, named_warm = _named(prog, nodes, bars, params, cache)
    n = len(bars)
    warm = 0
    combined: dict[str, B8] = {}
    for lst, items in prog.conditions.items():
        acc = np.ones(n, dtype=np.bool_) if lst.endswith("entry_conditions") else np.zeros(n, dtype=np.bool_)
        for field, node in items:
            with _at(field):
                true = expr.evaluate_series(node, bars, params=params, named=named, cache=cache).as_bool()
                warm = max(warm, expr.warmup(node, params, named_warm))
            acc = acc & true if lst.endswith("entry_conditions") else acc | true
        combined[lst] = acc if items else np.zeros(n, dtype=np.bool_)
    for arr in combined.values():
        arr[: min(warm, n)] = False
    return Signals(
        combined["entry_conditions"],
        combined["exit_conditions"],
        combined["short_entry_conditions"],
        combined["short_exit_conditions"],
        warm,
    )


def signal_warmup(template: StrategyTemplate, params: Mapping[str, ParamValue]) -> int:
    """``Signals.warmup`` (or the rotation score's warm-up) without bars: a backtest refuses a
    series no longer than this ("series too short for the indicators' warm-up")."""
    prog = _compile(template)
    nodes = [node for items in prog.conditions.values() for _, node in items]
    if prog.score is not None:
        nodes.append(prog.score)
    need = _needed(prog, nodes)
    warm: dict[str, int] = dict.fromkeys(prog.models, 0)
    for name, field, node in prog.named:
        if name in need:
            with _at(field):
                warm[name] = expr.warmup(node, params, warm)
    return max((expr.warmup(node, params, warm) for node in nodes), default=0)


# ---- risk and rotation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskParams:
    stop_loss: float | None
    take_profit: float | None
    trailing_stop: float | None
    sizing_method: SizingMethod
    sizing_value: float
    vol_lookback: int
    max_leverage: float


def _limits(template: StrategyTemplate, what: str) -> tuple[float, float, bool]:
    if what != "position_sizing.value":
        return RISK_LIMITS[what]
    sizing = template.risk_management.position_sizing
    if sizing.method == "percent_equity":
        return 0.0, sizing.max_leverage, True
    if sizing.method == "volatility_target":
        return 0.0, VOL_TARGET_MAX, True
    return 0.0, math.inf, False


def _check_limit(template: StrategyTemplate, what: str, value: float, source: str = "") -> None:
    lo, hi, hi_in = _limits(template, what)
    ok = math.isfinite(value) and lo < value and (value < hi or (hi_in and value == hi))
    if not ok:
        bound = f"({_fmt(lo)}, {_fmt(hi)}{']' if hi_in else ')'}" if math.isfinite(hi) else f"> {_fmt(lo)}"
        raise TemplateError(
            f"{what} must be in {bound}, got {_fmt(value)}{source}", field=f"risk_management.{what}"
        )


def _number(value: float | str, params: Mapping[str, ParamValue], field: str) -> tuple[float, str]:
    if not isinstance(value, str):
        return float(value), ""
    if value not in params:
        raise TemplateError(f"{field} names an unknown parameter {value!r}", field=field)
    v = params[value]
    if not _is_number(v):
        raise TemplateError(f"{field}: parameter {value!r} is {v!r}, not a number", field=field)
    return float(v), f" (parameter {value!r})"


def resolved_risk(template: StrategyTemplate, params: Mapping[str, ParamValue]) -> RiskParams:
    """The risk-management numbers with parameter names replaced by their values, range checked."""
    rm = template.risk_management
    out: dict[str, float | None] = {}
    for what in RISK_LIMITS:
        raw = getattr(rm, what)
        if raw is None:
            out[what] = None
            continue
        value, source = _number(raw, params, f"risk_management.{what}")
        _check_limit(template, what, value, source)
        out[what] = value
    sizing = rm.position_sizing
    value, source = _number(sizing.value, params, "risk_management.position_sizing.value")
    _check_limit(template, "position_sizing.value", value, source)
    return RiskParams(
        out["stop_loss"],
        out["take_profit"],
        out["trailing_stop"],
        sizing.method,
        value,
        sizing.vol_lookback,
        sizing.max_leverage,
    )


@dataclass(frozen=True, slots=True)
class RotationParams:
    top_n: int
    rebalance_every: int
    min_score: float | None
    warmup: int  # leading bars where the score is not defined


def _count(value: float | str, params: Mapping[str, ParamValue], field: str, hi: int) -> int:
    number, source = _number(value, params, field)
    if not (number.is_integer() and 1 <= number <= hi):
        raise TemplateError(
            f"{field} must be an integer in [1, {hi}], got {_fmt(number)}{source}", field=field
        )
    return int(number)


def resolved_rotation(template: StrategyTemplate, params: Mapping[str, ParamValue]) -> RotationParams:
    rot = template.rotation
    if rot is None:
        raise TemplateError("the template has no rotation", field="rotation")
    return RotationParams(
        _count(rot.top_n, params, "rotation.top_n", TOP_N_MAX),
        _count(rot.rebalance_every, params, "rotation.rebalance_every", expr.MAX_WINDOW),
        rot.min_score,
        signal_warmup(template, params),
    )


def rotation_scores(
    template: StrategyTemplate,
    bars_by_symbol: Mapping[str, Bars],
    params: Mapping[str, ParamValue],
    cache: IndicatorCache | None = None,
) -> dict[str, F64]:
    """The score series of each symbol (NaN where not defined). The caller aligns the symbols on
    the same timestamps; one ``cache`` serves every symbol and every combination of a sweep."""
    prog = _compile(template)
    if prog.score is None:
        raise TemplateError("the template has no rotation", field="rotation")
    lengths = {len(b) for b in bars_by_symbol.values()}
    if len(lengths) > 1:
        raise ValueError(f"rotation needs aligned symbols; bar counts differ: {sorted(lengths)}")
    cache = cache if cache is not None else IndicatorCache()
    out: dict[str, F64] = {}
    for symbol, bars in bars_by_symbol.items():
        named, _ = _named(prog, [prog.score], bars, params, cache)
        with _at("rotation.score"):
            s = expr.evaluate_series(prog.score, bars, params=params, named=named, cache=cache)
        out[symbol] = s.values.copy()
    return out


# ---- validation ---------------------------------------------------------------------------------


def _check_parameters(template: StrategyTemplate) -> None:
    for key, spec in template.parameters.items():
        f = f"parameters.{key}"
        if key != spec.name:
            raise TemplateError(
                f"parameter key {key!r} differs from its name {spec.name!r}", field=f"{f}.name"
            )
        if key in RESERVED:
            raise TemplateError(
                f"{key!r} is a bar column or keyword and cannot name a parameter", field=f"{f}.name"
            )
        bounds = {"min_value": spec.min_value, "max_value": spec.max_value, "step": spec.step}
        if spec.type == "choice":
            if not spec.choices:
                raise TemplateError(f"choice parameter {key!r} needs choices", field=f"{f}.choices")
            for attr, v in bounds.items():
                if v is not None:
                    raise TemplateError(f"{attr} does not apply to a choice parameter", field=f"{f}.{attr}")
            if any(isinstance(c, float) and not math.isfinite(c) for c in spec.choices):
                raise TemplateError(f"parameter {key!r} has a non-finite choice", field=f"{f}.choices")
        else:
            if spec.choices is not None:
                raise TemplateError(
                    f"choices only apply to choice parameters, {key!r} is {spec.type}", field=f"{f}.choices"
                )
            for attr, v in bounds.items():
                if v is not None and not math.isfinite(v):
                    raise TemplateError(f"{attr} must be finite, got {v}", field=f"{f}.{attr}")
                if v is not None and spec.type == "int" and not float(v).is_integer():
                    raise TemplateError(
                        f"{attr} of int parameter {key!r} must be an integer, got {v}", field=f"{f}.{attr}"
                    )
            if spec.min_value is not None and spec.max_value is not None and spec.min_value > spec.max_value:
                raise TemplateError(
                    f"min_value {_fmt(spec.min_value)} is greater than max_value {_fmt(spec.max_value)}",
                    field=f"{f}.min_value",
                )
        if spec.default is not None:
            check_value(spec, spec.default, f"{f}.default")


def _param_values(spec: ParameterSpec) -> list[tuple[str, ParamValue]]:
    """The values a parameter can take at its extremes: (attribute, value)."""
    if spec.type == "choice":
        return [("choices", c) for c in spec.choices or []]
    items = [("min_value", spec.min_value), ("max_value", spec.max_value), ("default", spec.default)]
    return [(attr, v) for attr, v in items if v is not None]


def _check_param_args(template: StrategyTemplate, node: Node) -> None:
    """Template parameters passed to indicators or bar counts must fit their ranges."""
    params = template.parameters
    for n in expr.walk(node):
        if not isinstance(n, expr.Call):
            continue
        checks: list[tuple[expr.Node, str, float, float, bool]] = []  # (arg, what, lo, hi, integer)
        if n.func in expr.SPECS:
            spec = expr.SPECS[n.func]
            pargs = n.args[1:] if expr.single_input(spec) else n.args
            for p, arg in zip(spec.params, pargs, strict=False):
                checks.append((arg, f"{n.func}'s {p.name}", p.min_value, p.max_value, p.type == "int"))
        elif n.func in ("shift", "highest", "lowest", "change", "pct_change") and len(n.args) > 1:
            checks.append(
                (n.args[1], f"{n.func}'s bar count", 0 if n.func == "shift" else 1, expr.MAX_WINDOW, True)
            )
        for arg, what, lo, hi, integer in checks:
            if not (isinstance(arg, expr.Name) and arg.id in params):
                continue
            pspec = params[arg.id]
            if integer and pspec.type == "float":
                raise TemplateError(
                    f"{what} is an integer but parameter {arg.id!r} is a float",
                    field=f"parameters.{arg.id}.type",
                )
            for attr, v in _param_values(pspec):
                if not _is_number(v) or not lo <= float(v) <= hi:
                    raise TemplateError(
                        f"parameter {arg.id!r} {attr} {v!r} is outside {what} range [{_fmt(lo)}, {_fmt(hi)}]",
                        field=f"parameters.{arg.id}.{attr}",
                    )


def _check_structure(template: StrategyTemplate) -> None:
    if template.rotation is not None:
        for lst in CONDITION_LISTS:
            if getattr(template, lst):
                raise TemplateError(
                    "a rotation template trades the top ranked symbols by rotation.score; entry and exit "
                    "conditions do not apply (filter with rotation.min_score or inside the score)",
                    field=lst,
                )
        return
    if not template.entry_conditions and not template.short_entry_conditions:
        raise TemplateError(
            "the template has no entry conditions (long or short) and no rotation", field="entry_conditions"
        )
    for entries, exits in (
        ("entry_conditions", "exit_conditions"),
        ("short_entry_conditions", "short_exit_conditions"),
    ):
        if getattr(template, exits) and not getattr(template, entries):
            raise TemplateError(f"{exits} without {entries}", field=exits)


def _check_risk(template: StrategyTemplate) -> None:
    rm = template.risk_management
    refs: list[tuple[str, float | str | None]] = [(w, getattr(rm, w)) for w in RISK_LIMITS]
    refs.append(("position_sizing.value", rm.position_sizing.value))
    for what, raw in refs:
        field = f"risk_management.{what}"
        if raw is None:
            continue
        if not isinstance(raw, str):
            _check_limit(template, what, float(raw))
            continue
        spec = template.parameters.get(raw)
        if spec is None:
            raise TemplateError(f"{field} names an unknown parameter {raw!r}", field=field)
        for attr, v in _param_values(spec):
            if not _is_number(v):
                raise TemplateError(f"{field}: parameter {raw!r} {attr} {v!r} is not a number", field=field)
            _check_limit(template, what, float(v), f" (parameter {raw!r} {attr})")


def _check_rotation(template: StrategyTemplate) -> None:
    rot = template.rotation
    if rot is None:
        return
    if rot.min_score is not None and not math.isfinite(rot.min_score):
        raise TemplateError("min_score must be finite", field="rotation.min_score")
    for what, raw, hi in (
        ("top_n", rot.top_n, TOP_N_MAX),
        ("rebalance_every", rot.rebalance_every, expr.MAX_WINDOW),
    ):
        field = f"rotation.{what}"
        if not isinstance(raw, str):
            _count(raw, {}, field, hi)
            continue
        spec = template.parameters.get(raw)
        if spec is None:
            raise TemplateError(f"{field} names an unknown parameter {raw!r}", field=field)
        for attr, v in _param_values(spec):
            if not _is_number(v):
                raise TemplateError(f"{field}: parameter {raw!r} {attr} {v!r} is not a number", field=field)
            _count(float(v), {}, field, hi)


def validate_template(template: StrategyTemplate) -> None:
    """Refuse a template that cannot run, naming the field; needs no bars (static checks only)."""
    _check_parameters(template)
    _check_structure(template)
    prog = _compile(template)
    non_numeric = {
        k for k, s in template.parameters.items() if any(not _is_number(v) for _, v in _param_values(s))
    }
    fields: list[tuple[str, Node]] = [(f, node) for _, f, node in prog.named]
    fields += [item for items in prog.conditions.values() for item in items]
    if prog.score is not None:
        fields.append(("rotation.score", prog.score))
    for field, node in fields:
        used = expr.references(node).names & non_numeric
        if used:
            name = sorted(used)[0]
            raise TemplateError(
                f"parameter {name!r} has non-numeric values and cannot be used in an expression", field=field
            )
        _check_param_args(template, node)
    if all(s.default is not None for s in template.parameters.values()):
        defaults = resolve_params(template)
        warm: dict[str, int] = dict.fromkeys(prog.models, 0)
        for name, field, node in prog.named:
            with _at(field):
                warm[name] = expr.warmup(node, defaults, warm)
        for field, node in fields[len(prog.named) :]:
            with _at(field):
                expr.warmup(node, defaults, warm)  # resolves every indicator's parameters
    _check_risk(template)
    _check_rotation(template)


# ---- parameter grids ----------------------------------------------------------------------------


def _axis(template: StrategyTemplate, name: str) -> tuple[int, list[ParamValue] | None, ParameterSpec]:
    spec = template.parameters.get(name)
    if spec is None:
        known = ", ".join(template.parameters) or "none"
        raise TemplateError(
            f"unknown parameter {name!r}; the template's parameters: {known}", field=f"params.{name}"
        )
    f = f"parameters.{name}"
    if spec.type == "choice":
        return len(spec.choices or []), list(spec.choices or []), spec
    if spec.min_value is None or spec.max_value is None:
        raise TemplateError(f"parameter {name!r} needs min_value and max_value for a grid", field=f)
    if spec.step is None and spec.type == "float":
        raise TemplateError(f"float parameter {name!r} needs a step for a grid", field=f"{f}.step")
    step = spec.step or 1.0
    if spec.type == "int" and not (float(step).is_integer() and float(spec.min_value).is_integer()):
        raise TemplateError(f"int parameter {name!r} needs an integer min_value and step", field=f"{f}.step")
    span = spec.max_value - spec.min_value
    count = 0 if span < 0 else math.floor(span / step + 1e-9) + 1
    return count, None, spec


def _values(count: int, spec: ParameterSpec) -> list[ParamValue]:
    lo, step = float(spec.min_value or 0.0), float(spec.step or 1.0)
    if spec.type == "int":
        return [int(lo) + k * int(step) for k in range(count)]
    return [round(lo + k * step, 12) + 0.0 for k in range(count)]


def grid_size(template: StrategyTemplate, names: Sequence[str]) -> int:
    """How many combinations ``param_grid`` yields, without enumerating them."""
    return math.prod(_axis(template, n)[0] for n in names)


def param_grid(
    template: StrategyTemplate, names: Sequence[str], *, max_combinations: int = 10_000
) -> Iterator[dict[str, ParamValue]]:
    """The grid of the named parameters as override dicts (pass each to ``resolve_params``), in
    ``itertools.product`` order (the last name varies fastest). int: min..max by ``step`` (1 if
    none); float: min..max by ``step`` (required); choice: every choice. No constraints between
    parameters are applied. Raises at once (not on iteration) if the grid is too large."""
    names = list(names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TemplateError(f"parameter {dup[0]!r} is named twice", field=f"params.{dup[0]}")
    size = grid_size(template, names)
    if size > max_combinations:
        raise TemplateError(
            f"the grid has {size} combinations, more than the limit of {max_combinations}", field="params"
        )
    axes: list[list[ParamValue]] = []
    for n in names:
        count, choices, spec = _axis(template, n)
        axes.append(choices if choices is not None else _values(count, spec))
    return (dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes))


__all__ = [
    "CONDITION_LISTS",
    "RESERVED",
    "RiskParams",
    "RotationParams",
    "Signals",
    "check_value",
    "compute_signals",
    "grid_size",
    "param_grid",
    "resolve_params",
    "resolved_risk",
    "resolved_rotation",
    "rotation_scores",
    "signal_warmup",
    "validate_template",
]
