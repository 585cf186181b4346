"""The evaluator: an expression over bars as numpy float64 series (numba kernel for crosses)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numba as nb
import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine.expr.cache import IndicatorCache
from algotrendy.engine.expr.inference import _unknown_name, infer, scope
from algotrendy.engine.expr.nodes import (
    COLUMNS,
    DERIVED,
    MAX_WINDOW,
    SPECS,
    Binary,
    Bool,
    Call,
    Kind,
    Name,
    Node,
    Num,
    Unary,
    _canon,
    children,
    single_input,
    unparse,
)
from algotrendy.engine.result import B8
from algotrendy.engine.template import ParamValue, TemplateError
from algotrendy.indicators.batch import talib_call
from algotrendy.indicators.catalog import compute_resolved
from algotrendy.indicators.schema import IndicatorError, IndicatorSpec

# ---- evaluation ---------------------------------------------------------------------------------

Value = float | F64


@dataclass(frozen=True, slots=True)
class Series:
    """An evaluated expression: ``values`` float64 of len(bars) (a condition as 1.0 true, 0.0
    false, NaN unknown), its ``kind``, and ``key``, its canonical identity for the cache (None
    when unknown, e.g. a series given as a bare array)."""

    values: F64
    kind: Kind = Kind.SERIES
    key: str | None = None

    def as_bool(self) -> B8:
        return np.asarray(self.values == 1.0, dtype=np.bool_)


NamedValue = Series | F64 | B8


def _as_series(value: NamedValue, n: int, name: str) -> Series:
    if not isinstance(value, Series):
        arr = np.asarray(value)
        kind = Kind.CONDITION if arr.dtype == np.bool_ else Kind.SERIES
        value = Series(np.asarray(arr, dtype=np.float64), kind, None)
    if len(value.values) != n:
        raise TemplateError(f"named series {name!r} has {len(value.values)} values, the bars {n}")
    return value


def _lift(fn: Callable[..., Any], *args: Value) -> Value:
    out = fn(*args)
    if all(isinstance(a, float) for a in args):
        return float(out)
    return np.asarray(out, dtype=np.float64)


def _divide(a: Any, b: Any) -> Any:
    return np.where(np.equal(b, 0), np.nan, np.divide(a, b))


def _compare(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def cmp(a: Any, b: Any) -> Any:
        return np.where(np.isnan(a) | np.isnan(b), np.nan, fn(a, b))

    return cmp


def _and(a: Any, b: Any) -> Any:
    return np.where(np.equal(a, 0) | np.equal(b, 0), 0.0, np.minimum(a, b))


def _or(a: Any, b: Any) -> Any:
    return np.where(np.equal(a, 1) | np.equal(b, 1), 1.0, np.maximum(a, b))


_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": _divide,
    "<": _compare(np.less),
    "<=": _compare(np.less_equal),
    ">": _compare(np.greater),
    ">=": _compare(np.greater_equal),
    "==": _compare(np.equal),
    "!=": _compare(np.not_equal),
    "and": _and,
    "or": _or,
}


def shift(x: F64, n: int) -> F64:
    """``x`` n bars ago (NaN for the first n bars)."""
    if n == 0:
        return x
    out = np.full(len(x), np.nan)
    if n < len(x):
        out[n:] = x[:-n]
    return out


def _rolling(x: F64, n: int, highest: bool) -> F64:
    if n == 1:
        return x.copy()
    out = np.array(talib_call("MAX" if highest else "MIN", (x,), (n,))[0], dtype=np.float64)
    nans = np.concatenate(([0], np.cumsum(np.isnan(x))))
    out[n - 1 :][nans[n:] - nans[:-n] > 0] = np.nan  # NaN anywhere in the window -> NaN
    return out


def _crosses(a: Value, b: Value, above: bool, n: int) -> F64:
    out = np.full(n, np.nan)
    if n < 2:
        return out
    a, b = (x if isinstance(x, float) else np.asarray(x, dtype=np.float64) for x in (a, b))
    if not isinstance(a, float) and not isinstance(b, float):
        _cross_arrays(np.ascontiguousarray(a), np.ascontiguousarray(b), above, out)  # the sweep's hot path
        return out
    cur, prev = slice(1, None), slice(None, -1)

    def part(x: Value, s: slice) -> Any:
        return x if isinstance(x, float) else x[s]

    a1, a0, b1, b0 = part(a, cur), part(a, prev), part(b, cur), part(b, prev)
    hit = (a1 > b1) & (a0 <= b0) if above else (a1 < b1) & (a0 >= b0)
    body = np.asarray(hit, dtype=np.float64) if np.ndim(hit) else np.full(n - 1, float(hit))
    for x in (a, b):
        nan = np.isnan(x)
        if np.ndim(nan):
            body[nan[1:] | nan[:-1]] = np.nan
        elif nan:
            body[:] = np.nan
    out[1:] = body
    return out


@nb.njit(cache=True, nogil=True)
def _cross_arrays(a: F64, b: F64, above: bool, out: F64) -> None:
    """``out[i]`` = 1.0 where ``a`` crosses ``b`` at ``i``, 0.0 where not, NaN where unknown."""
    for i in range(1, len(a)):
        a1, a0, b1, b0 = a[i], a[i - 1], b[i], b[i - 1]
        if math.isnan(a1) or math.isnan(a0) or math.isnan(b1) or math.isnan(b0):
            continue
        hit = (a1 > b1 and a0 <= b0) if above else (a1 < b1 and a0 >= b0)
        out[i] = 1.0 if hit else 0.0


class _Evaluator:
    def __init__(
        self, bars: Bars, params: Mapping[str, ParamValue], named: Mapping[str, Series], cache: IndicatorCache
    ) -> None:
        self.bars, self.params, self.named, self.cache = bars, params, named, cache
        self.n = len(bars)
        self.slot = cache.slot(bars)
        self._keys: dict[int, str | None] = {}

    # values
    def value(self, node: Node) -> Value:
        if isinstance(node, Num):
            return float(node.value)
        if isinstance(node, Bool):
            return 1.0 if node.value else 0.0
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary):
            v = self.value(node.operand)
            return _lift(np.negative if node.op == "-" else (lambda x: 1.0 - x), v)
        if isinstance(node, Binary):
            left = self.value(node.left)
            if node.op in ("and", "or") and isinstance(left, float):
                decisive = 0.0 if node.op == "and" else 1.0
                if left == decisive:
                    return left
                if left == 1.0 - decisive:
                    return self.value(node.right)
            right = self.value(node.right)
            if node.op in ("crosses_above", "crosses_below"):
                return _crosses(left, right, node.op == "crosses_above", self.n)
            return _lift(_OPS[node.op], left, right)
        return self.call(node)

    def full(self, v: Value) -> F64:
        return np.full(self.n, v) if isinstance(v, float) else v

    def series(self, node: Node) -> F64:
        return self.full(self.value(node))

    def name(self, node: Name) -> Value:
        b, key = self.bars, node.id
        if key in COLUMNS:
            return np.asarray(getattr(b, key), dtype=np.float64)
        if key in DERIVED:
            h, lo, c = (np.asarray(x, dtype=np.float64) for x in (b.high, b.low, b.close))
            if key == "hl2":
                return (h + lo) / 2.0
            if key == "hlc3":
                return (h + lo + c) / 3.0
            return (np.asarray(b.open, dtype=np.float64) + h + lo + c) / 4.0
        if key in self.named:
            return self.named[key].values
        if key in self.params:
            return self.param(key)
        raise TemplateError(
            _unknown_name(node, scope(self.params, {k: v.kind for k, v in self.named.items()}))
        )

    def param(self, key: str) -> float:
        v = self.params[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TemplateError(f"parameter {key!r} is {v!r}, not a number", field=f"params.{key}")
        return float(v)

    def const(self, node: Node) -> float:
        v = self.value(node)
        if not isinstance(v, float):
            raise TemplateError(f"expected a constant at column {node.col}")
        return v

    def window(self, call: Call, minimum: int) -> int:
        arg = call.args[1] if len(call.args) > 1 else Num(1.0)
        v = self.const(arg)
        if not (v.is_integer() and minimum <= v <= MAX_WINDOW):
            extra = " (a negative shift would look into the future)" if call.func == "shift" and v < 0 else ""
            where = f" (parameter {arg.id!r})" if isinstance(arg, Name) else ""
            raise TemplateError(
                f"{call.func}: the bar count must be an integer in [{minimum}, {MAX_WINDOW}], "
                f"got {_canon(v)}{where}{extra}",
                field=f"params.{arg.id}" if isinstance(arg, Name) and arg.id in self.params else None,
            )
        return int(v)

    def call(self, node: Call) -> Value:
        f = node.func
        if f in ("abs", "min", "max"):
            fn: Callable[..., Any] = {"abs": np.abs, "min": np.minimum, "max": np.maximum}[f]
            return _lift(fn, *(self.value(a) for a in node.args))
        if f == "shift":
            return shift(self.series(node.args[0]), self.window(node, 0))
        if f in ("change", "pct_change"):
            k = self.window(node, 1)
            x = self.series(node.args[0])
            return x - shift(x, k) if f == "change" else _lift(_divide, x, shift(x, k)) - 1.0
        if f in ("highest", "lowest"):
            k = self.window(node, 1)
            return self.cached(f, node.args[0], (k,), lambda x: {f: _rolling(x(), k, f == "highest")})[f]
        return self.indicator(node)

    def resolve(self, node: Call) -> tuple[IndicatorSpec, bool, dict[str, Any]]:
        """The catalog spec of an indicator call, whether it takes one input series (its first
        argument) and its resolved parameters; a ``TemplateError`` naming the template parameter
        (or the column) that gives a bad value."""
        spec = SPECS[node.func]
        single = single_input(spec)
        pargs = node.args[1:] if single else node.args
        raw = {p.name: self.const(a) for p, a in zip(spec.params, pargs, strict=False)}
        try:
            return spec, single, spec.resolve(raw)
        except IndicatorError as exc:
            arg = next((a for p, a in zip(spec.params, pargs, strict=False) if p.name == exc.param), None)
            if isinstance(arg, Name) and arg.id in self.params:
                raise TemplateError(f"{exc} (from parameter {arg.id!r})", field=f"params.{arg.id}") from None
            raise TemplateError(f"{exc} (at column {node.col})") from None

    def indicator(self, node: Call) -> F64:
        spec, single, resolved = self.resolve(node)

        def compute(x: Callable[[], F64]) -> dict[str, F64]:
            xs = x()
            inbars = Bars(self.bars.ts, xs, xs, xs, xs, xs) if single else self.bars
            try:
                return compute_resolved(spec, inbars, resolved)
            except IndicatorError as exc:
                raise TemplateError(f"{exc} (at column {node.col})") from None

        params = tuple(resolved.values())
        outputs = self.cached(spec.name, node.args[0] if single else None, params, compute)
        return outputs[node.output or spec.outputs[0]]

    def cached(
        self,
        func: str,
        source: Node | None,
        params: tuple[float | int, ...],
        compute: Callable[[Callable[[], F64]], dict[str, F64]],
    ) -> dict[str, F64]:
        def load() -> F64:
            return (
                np.ascontiguousarray(self.series(source), dtype=np.float64) if source is not None else _EMPTY
            )

        ikey = "bars" if source is None else self.key(source)
        if ikey is None:
            return compute(load)
        return self.cache.get_or_compute((self.slot, func, ikey, params), lambda: compute(load))

    # canonical identity, parameters substituted
    def key(self, node: Node) -> str | None:
        nid = id(node)
        if nid not in self._keys:
            self._keys[nid] = self._key(node)
        return self._keys[nid]

    def _key(self, node: Node) -> str | None:
        if isinstance(node, Name):
            if node.id in COLUMNS or node.id in DERIVED:
                return node.id
            if node.id in self.named:
                return self.named[node.id].key
            v = self.params.get(node.id)
            return _canon(v) if isinstance(v, int | float) and not isinstance(v, bool) else repr(v)
        parts = [self.key(c) for c in children(node)]
        if any(p is None for p in parts):
            return None
        if isinstance(node, Unary):
            text = f"({node.op}{' ' if node.op == 'not' else ''}{parts[0]})"
        elif isinstance(node, Binary):
            text = f"({parts[0]} {node.op} {parts[1]})"
        elif isinstance(node, Call):
            text = f"{node.func}({', '.join(str(p) for p in parts)})" + (
                f".{node.output}" if node.output else ""
            )
        else:
            text = unparse(node)
        return text if len(text) <= 200 else "#" + hashlib.sha256(text.encode()).hexdigest()[:40]


_EMPTY: Final[F64] = np.empty(0, dtype=np.float64)


def evaluate_series(
    node: Node,
    bars: Bars,
    *,
    params: Mapping[str, ParamValue] | None = None,
    named: Mapping[str, NamedValue] | None = None,
    cache: IndicatorCache | None = None,
) -> Series:
    """``node`` over ``bars`` (checked with ``infer`` first) as a ``Series`` of len(bars)."""
    params = params or {}
    named_series = {k: _as_series(v, len(bars), k) for k, v in (named or {}).items()}
    kind = infer(node, scope(params, {k: s.kind for k, s in named_series.items()}))
    ev = _Evaluator(bars, params, named_series, cache if cache is not None else IndicatorCache())
    with np.errstate(all="ignore"):
        values = ev.series(node)
    return Series(values, kind, ev.key(node))


def evaluate(
    node: Node,
    bars: Bars,
    *,
    params: Mapping[str, ParamValue] | None = None,
    named: Mapping[str, NamedValue] | None = None,
    cache: IndicatorCache | None = None,
) -> F64 | B8:
    """``node`` over ``bars``: float64 for a number, bool for a condition (unknown -> False)."""
    s = evaluate_series(node, bars, params=params, named=named, cache=cache)
    return s.as_bool() if s.kind.is_bool else s.values.copy()
