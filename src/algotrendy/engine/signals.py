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

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine import expr
from algotrendy.engine.expr import IndicatorCache
from algotrendy.engine.result import B8
from algotrendy.engine.template import ParamValue, StrategyTemplate, TemplateError
from algotrendy.engine.template_params import (
    CONDITION_LISTS,
    RESERVED,
    TOP_N_MAX,
    RiskParams,
    _at,
    _count,
    check_value,
    grid_size,
    param_grid,
    resolve_params,
    resolved_risk,
)
from algotrendy.engine.template_program import _compile, _named, _needed, validate_template

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


# ---- rotation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RotationParams:
    top_n: int
    rebalance_every: int
    min_score: float | None
    warmup: int  # leading bars where the score is not defined


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
