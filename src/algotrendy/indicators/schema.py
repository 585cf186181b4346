"""Catalog schema: a parameter, an indicator entry, and the error raised for a bad request.

``IndicatorSpec.to_dict()`` / ``ParamSpec.to_dict()`` are the JSON the market-data API serves:

    {"name": "macd", "title": ..., "description": ..., "group": "momentum",
     "inputs": ["close"],
     "params": [{"name": "fast_period", "type": "int", "default": 12, "min_value": 2,
                 "max_value": 100000, "description": ...}, ...],
     "outputs": ["macd", "macd_signal", "macd_hist"], "warmup": 33, "engine": "talib",
     "talib_function": "MACD"}

``warmup`` there is the warm-up at the default parameters; ``IndicatorSpec.warmup(params)`` gives
it for any.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Number = int | float
Params = Mapping[str, Number]
ParamType = Literal["int", "float"]
Column = Literal["ts", "open", "high", "low", "close", "volume"]


class IndicatorError(ValueError):
    """A request the catalog refuses. ``param`` names the offending parameter, when there is one."""

    def __init__(self, message: str, *, indicator: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.indicator = indicator
        self.param = param


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One numeric parameter: ``default`` and the inclusive range ``[min_value, max_value]``."""

    name: str
    type: ParamType
    default: Number
    min_value: Number
    max_value: Number
    description: str = ""

    def check(self, indicator: str, value: object) -> Number:
        """``value`` as this parameter's type, or IndicatorError naming the parameter and its range."""
        allowed = f"{self.type} in [{self.min_value}, {self.max_value}]"
        where = f"{indicator}: parameter {self.name}"
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise IndicatorError(
                f"{where} must be {allowed}, got {value!r}", indicator=indicator, param=self.name
            )
        number: Number
        if self.type == "int":
            if isinstance(value, float | np.floating) and not float(value).is_integer():
                raise IndicatorError(
                    f"{where} must be an integer ({allowed}), got {value!r}",
                    indicator=indicator,
                    param=self.name,
                )
            number = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise IndicatorError(
                    f"{where} must be {allowed}, got {value!r}", indicator=indicator, param=self.name
                )
        if not self.min_value <= number <= self.max_value:
            raise IndicatorError(
                f"{where} must be {allowed}, got {number!r}", indicator=indicator, param=self.name
            )
        return number

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """A catalog entry. ``warmup(params)`` is the number of leading NaN bars of a complete series
    (the largest over the outputs; an output such as ``kc_middle`` may start earlier)."""

    name: str
    title: str
    description: str
    group: str
    inputs: tuple[Column, ...]
    params: tuple[ParamSpec, ...]
    outputs: tuple[str, ...]
    engine: Literal["talib", "numba"]
    warmup: Callable[[Params], int] = field(repr=False, compare=False)
    talib_name: str | None = None
    talib_args: Callable[[Params], tuple[Number, ...]] | None = field(default=None, repr=False, compare=False)
    check: Callable[[Params], None] | None = field(default=None, repr=False, compare=False)

    @property
    def defaults(self) -> dict[str, Number]:
        return {p.name: p.default for p in self.params}

    def resolve(self, params: Mapping[str, object]) -> dict[str, Number]:
        """Validated parameters with defaults filled in (declared order)."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            names = ", ".join(p.name for p in self.params) or "none"
            raise IndicatorError(
                f"{self.name}: unknown parameter {unknown[0]!r} (parameters: {names})",
                indicator=self.name,
                param=unknown[0],
            )
        out = {
            p.name: p.check(self.name, params[p.name]) if p.name in params else p.default for p in self.params
        }
        if self.check is not None:
            self.check(out)
        return out

    def args(self, params: Params) -> tuple[Number, ...]:
        """Positional arguments of the TA-Lib function (and of its ``talib.stream`` handle)."""
        if self.talib_args is not None:
            return self.talib_args(params)
        return tuple(params[p.name] for p in self.params)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "group": self.group,
            "inputs": list(self.inputs),
            "params": [p.to_dict() for p in self.params],
            "outputs": list(self.outputs),
            "warmup": self.warmup(self.defaults),
            "engine": self.engine,
            "talib_function": self.talib_name,
        }
