"""A ``StrategyTemplate`` compiled and checked without bars: ``_compile`` parses and type-checks
the model aliases, the ``name = expression`` indicator lines, the conditions and the rotation score
into a cached ``_Program``, ``_named`` evaluates the named series a set of expressions needs, and
``validate_template`` runs every static check (parameter specs, structure, indicator arguments
against parameter ranges, risk limits, rotation fields), naming the field that fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine import expr
from algotrendy.engine.expr import IndicatorCache, Kind, Node, Series
from algotrendy.engine.template import ParameterSpec, ParamValue, StrategyTemplate, TemplateError
from algotrendy.engine.template_params import (
    CONDITION_LISTS,
    RESERVED,
    RISK_LIMITS,
    TOP_N_MAX,
    _at,
    _check_limit,
    _count,
    _fmt,
    _is_number,
    check_value,
    resolve_params,
)

_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_MODEL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)(.*)$", re.DOTALL)

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
        for attr, v in _named_numbers(template, field, raw):
            _check_limit(template, what, v, f" (parameter {raw!r} {attr})")


def _named_numbers(template: StrategyTemplate, field: str, raw: str) -> list[tuple[str, float]]:
    """The numbers parameter ``raw`` can take (default and range ends) for the check of ``field``."""
    spec = template.parameters.get(raw)
    if spec is None:
        raise TemplateError(f"{field} names an unknown parameter {raw!r}", field=field)
    out = []
    for attr, v in _param_values(spec):
        if not _is_number(v):
            raise TemplateError(f"{field}: parameter {raw!r} {attr} {v!r} is not a number", field=field)
        out.append((attr, float(v)))
    return out


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
        for _, v in _named_numbers(template, field, raw):
            _count(v, {}, field, hi)


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


__all__ = ["validate_template"]
