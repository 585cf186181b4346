"""Parameter values and numbers of a ``StrategyTemplate``: the names reserved for bars and
keywords, the risk limits, checking and resolving parameter values (``check_value``,
``resolve_params``), the risk-management numbers with parameter names substituted
(``resolved_risk``), the bar counts of rotation, and the parameter grid of a sweep
(``grid_size``, ``param_grid``), plus the ``_at`` helper that names the field of a
``TemplateError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from algotrendy.engine import expr
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


def _count(value: float | str, params: Mapping[str, ParamValue], field: str, hi: int) -> int:
    number, source = _number(value, params, field)
    if not (number.is_integer() and 1 <= number <= hi):
        raise TemplateError(
            f"{field} must be an integer in [1, {hi}], got {_fmt(number)}{source}", field=field
        )
    return int(number)


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
    "RISK_LIMITS",
    "TOP_N_MAX",
    "VOL_TARGET_MAX",
    "RiskParams",
    "check_value",
    "grid_size",
    "param_grid",
    "resolve_params",
    "resolved_risk",
]
