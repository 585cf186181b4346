"""Static analysis over bars-free evaluation: constant values and warm-up lengths."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine.expr.cache import IndicatorCache
from algotrendy.engine.expr.evaluation import _Evaluator
from algotrendy.engine.expr.nodes import (
    COLUMNS,
    DERIVED,
    SPECS,
    Binary,
    Call,
    Name,
    Node,
    children,
    walk,
)
from algotrendy.engine.template import ParamValue, TemplateError


def constant(node: Node, params: Mapping[str, ParamValue]) -> float:
    """The value of a constant expression (literals and parameters only)."""
    if any(isinstance(n, Name) and n.id not in params for n in walk(node)):
        raise TemplateError(f"expected a constant at column {node.col}")
    with np.errstate(all="ignore"):
        return _Evaluator(Bars.empty(), params, {}, IndicatorCache()).const(node)


def _is_const(node: Node, params: Mapping[str, ParamValue], named: Mapping[str, int]) -> bool:
    return all(
        not (
            isinstance(n, Name)
            and (n.id not in params or n.id in named or n.id in COLUMNS or n.id in DERIVED)
        )
        and not (isinstance(n, Call) and n.func not in ("abs", "min", "max"))
        and not (isinstance(n, Binary) and n.op in ("crosses_above", "crosses_below"))
        for n in walk(node)
    )


def warmup(
    node: Node, params: Mapping[str, ParamValue] | None = None, named: Mapping[str, int] | None = None
) -> int:
    """Leading bars at which ``node`` is not defined yet (NaN/unknown), on bars without missing
    values, from the catalog's warm-ups plus shifts and rolling windows. ``named`` gives the
    warm-up of each named series. A constant side that decides an ``and``/``or`` cuts it short."""
    params = params or {}
    named = named or {}
    ev = _Evaluator(Bars.empty(), params, {}, IndicatorCache())

    def w(n: Node) -> int:
        if isinstance(n, Name):
            return named.get(n.id, 0)
        if isinstance(n, Binary) and n.op in ("and", "or"):
            for side, other in ((n.left, n.right), (n.right, n.left)):
                if _is_const(side, params, named):
                    with np.errstate(all="ignore"):
                        v = ev.const(side)
                    if v == (0.0 if n.op == "and" else 1.0):
                        return 0
                    if v == (1.0 if n.op == "and" else 0.0):
                        return w(other)
        if isinstance(n, Binary) and n.op in ("crosses_above", "crosses_below"):
            return max(w(n.left), w(n.right)) + 1
        if isinstance(n, Call) and n.func in SPECS:
            spec, single, resolved = ev.resolve(n)
            return spec.warmup(resolved) + (w(n.args[0]) if single else 0)
        if isinstance(n, Call) and n.func in ("shift", "highest", "lowest", "change", "pct_change"):
            k = ev.window(n, 0 if n.func == "shift" else 1)
            return w(n.args[0]) + (k - 1 if n.func in ("highest", "lowest") else k)
        return max((w(c) for c in children(n)), default=0)

    return w(node)
