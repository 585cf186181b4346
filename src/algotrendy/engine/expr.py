"""The strategy template expression language: parsed by hand, type-checked, evaluated with numpy.

User text is tokenized and parsed by a recursive-descent (Pratt) parser into an immutable AST; it
is never given to ``eval``, ``exec``, ``compile`` or Python's ``ast``. Expressions longer than
``MAX_LENGTH`` characters or nested deeper than ``MAX_DEPTH`` levels are refused before any work.

Grammar, loosest binding first (binary operators are left-associative, comparisons do not chain)::

    expr    := expr 'or' expr | expr 'and' expr | 'not' expr
             | sum (('<' | '<=' | '>' | '>=' | '==' | '!=' | 'crosses_above' | 'crosses_below') sum)?
    sum     := sum ('+' | '-') term ;  term := term ('*' | '/') unary ;  unary := '-' unary | postfix
    postfix := primary ('[' expr ']')*                      # x[n] is shift(x, n): x n bars ago
    primary := NUMBER | 'true' | 'false' | NAME | '(' expr ')'
             | FUNC '(' [expr (',' expr)*] ')' ['.' OUTPUT]

Names: the bar columns ``open high low close volume``, the derived ``hl2 hlc3 ohlc4``, the
template's parameters (numbers) and its named indicators. Functions:

- every catalog indicator by its API name (``catalog()``), parameters positional in the catalog's
  order and optional (catalog defaults). An indicator whose ``IndicatorSpec.inputs`` is exactly
  ``("close",)`` (sma ema wma dema tema rsi macd bbands stochrsi roc mom) reads ONE series, given
  as its first argument, and may be fed any numeric series: ``sma(rsi(close, 14), 5)``,
  ``ema(hl2, fast)``. Every other indicator (atr natr adx cci mfi willr stoch sar obv vwap
  supertrend ichimoku keltner donchian heikin_ashi cdl_*) reads the columns it names from the bars
  and takes numeric parameters only: ``atr(14)``, ``supertrend(10, 3).dir``. vwap restarts daily.
- a multi-output indicator needs a selector: the output's catalog name or its name without the
  prefix (``macd(close).signal`` = ``.macd_signal``, ``bbands(close, 20, 2).upper``, ``.hist``...).
- helpers: ``abs(x)``, ``min(a, b)``, ``max(a, b)``, ``shift(x, n=1)``, ``highest(x, n)`` and
  ``lowest(x, n)`` (over the last n bars, this one included), ``change(x, n=1)`` = x - x[n],
  ``pct_change(x, n=1)`` = x / x[n] - 1 (a fraction; the catalog's ``roc`` is in percent).
  Bar counts are integers in [0 or 1, MAX_WINDOW]; a negative shift (look-ahead) is refused.

Static types (``Kind``): a constant NUMBER (literals, parameters, arithmetic on them), a numeric
SERIES, a constant BOOL, a CONDITION (boolean series). Arithmetic, comparisons and crosses take
numbers; ``and or not`` take booleans; indicator parameters and bar counts must be constant;
an indicator's input series must be a series. ``infer`` checks this without bars.

Semantics: float64 throughout. A NaN operand makes a number NaN and a comparison *unknown*;
``and``/``or``/``not`` use three-valued (Kleene) logic (``false and unknown`` is false, ``true or
unknown`` is true) and an unknown final result reads as False. ``a crosses_above b`` at bar i is
``a[i] > b[i] and a[i-1] <= b[i-1]`` (unknown at i = 0 and where any of the four is NaN);
``crosses_below`` mirrors it. Division by zero gives NaN; no numpy warning escapes.

API::

    node = parse("sma(close, fast) crosses_above sma(close, slow)")   # Node; TemplateError if bad
    infer(node, scope(params=["fast", "slow"]))                     # Kind.CONDITION
    references(node)                           # names, indicators and helper functions used
    cache = IndicatorCache()                   # share across a parameter sweep
    evaluate(node, bars, params={"fast": 10, "slow": 30}, cache=cache)    # bool array
    evaluate_series(node, bars, ...)           # Series(values, kind, key): conditions as 1/0/NaN
    warmup(node, {"fast": 10, "slow": 30})     # leading bars that are not defined (here 30)

``IndicatorCache`` keys are ``(bars slot, function, input key, resolved params)``: the input key is
the canonical text of the input series with parameter values substituted (``"close"``,
``"rsi(close, 14)"``) and the params are ``IndicatorSpec.resolve``'s canonical ints/floats, so
``sma(close, fast)`` at fast=10 and ``sma(close, 10.0)`` share one computation, computed once per
bars object across every combination of a sweep. ``highest``/``lowest`` are cached the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Final

import numba as nb
import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine.result import B8
from algotrendy.engine.template import ParamValue, TemplateError
from algotrendy.indicators.batch import talib_call
from algotrendy.indicators.catalog import catalog, compute_resolved
from algotrendy.indicators.schema import IndicatorError, IndicatorSpec

MAX_LENGTH: Final = 500
MAX_DEPTH: Final = 32
MAX_WINDOW: Final = 100_000

COLUMNS: Final = ("open", "high", "low", "close", "volume")
DERIVED: Final = ("hl2", "hlc3", "ohlc4")
KEYWORDS: Final = frozenset({"and", "or", "not", "crosses_above", "crosses_below", "true", "false"})
# helper -> (min args, max args, signature)
HELPERS: Final[dict[str, tuple[int, int, str]]] = {
    "abs": (1, 1, "abs(x)"),
    "min": (2, 2, "min(a, b)"),
    "max": (2, 2, "max(a, b)"),
    "shift": (1, 2, "shift(x, n=1)"),
    "highest": (2, 2, "highest(x, n)"),
    "lowest": (2, 2, "lowest(x, n)"),
    "change": (1, 2, "change(x, n=1)"),
    "pct_change": (1, 2, "pct_change(x, n=1)"),
}
SPECS: Final[dict[str, IndicatorSpec]] = {s.name: s for s in catalog()}

# ---- AST ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / < <= > >= == != and or crosses_above crosses_below
    left: Node
    right: Node
    col: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """An indicator or helper call; ``output`` is the selected catalog output (multi-output only)."""

    func: str
    args: tuple[Node, ...]
    output: str | None = None
    col: int = field(default=0, compare=False)


Node = Num | Bool | Name | Unary | Binary | Call


class Kind(Enum):
    NUMBER = "number"
    SERIES = "series"
    BOOL = "boolean"
    CONDITION = "condition"

    @property
    def is_bool(self) -> bool:
        return self in (Kind.BOOL, Kind.CONDITION)

    @property
    def is_const(self) -> bool:
        return self in (Kind.NUMBER, Kind.BOOL)


def single_input(spec: IndicatorSpec) -> bool:
    """Whether the indicator reads one series (given as its first argument) rather than the bars."""
    return spec.inputs == ("close",)


def output_selectors(spec: IndicatorSpec) -> dict[str, str]:
    """Accepted selector -> catalog output: each output's name, and its name without the prefix."""
    table = {o: o for o in spec.outputs}
    for o in spec.outputs:
        if "_" in o:
            table.setdefault(o.split("_", 1)[1], o)
    return table


def signature(func: str) -> str:
    """``sma(series, period=20)``, ``atr(period=14)``, ``macd(...).{macd|signal|hist}``..."""
    if func in HELPERS:
        return HELPERS[func][2]
    spec = SPECS[func]
    args = (["series"] if single_input(spec) else []) + [f"{p.name}={_canon(p.default)}" for p in spec.params]
    text = f"{func}({', '.join(args)})"
    if len(spec.outputs) > 1:
        short = {v: k for k, v in output_selectors(spec).items() if k != v}
        text += ".{" + "|".join(short.get(o, o) for o in spec.outputs) + "}"
    return text


def _canon(v: float) -> str:
    v = float(v)
    if math.isfinite(v) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


# ---- tokenizer and parser -----------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<ws>\s+)|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/<>()\[\],.])"
)
_CMP_BP: Final = 40
_BP: Final = {
    "or": 10,
    "and": 20,
    **dict.fromkeys(("<", "<=", ">", ">=", "==", "!=", "crosses_above", "crosses_below"), _CMP_BP),
    "+": 50,
    "-": 50,
    "*": 60,
    "/": 60,
}
_NOT_BP: Final = 30
_NEG_BP: Final = 70


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num name kw op end
    text: str
    col: int

    def describe(self) -> str:
        return "end of expression" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TemplateError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = m.lastgroup or "ws"
        if kind != "ws":
            word = m.group()
            toks.append(_Tok("kw" if kind == "name" and word in KEYWORDS else kind, word, pos + 1))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, op: str, alt: str = "") -> _Tok:
        tok = self.peek
        if tok.kind != "op" or tok.text != op:
            raise TemplateError(f"expected {op!r}{alt} at column {tok.col}, found {tok.describe()}")
        return self.take()

    def enter(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TemplateError(f"expression nested too deeply at column {col} (limit {MAX_DEPTH} levels)")

    def expr(self, min_bp: int = 0) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek
            bp = _BP.get(tok.text) if tok.kind in ("op", "kw") else None
            if bp is None or bp <= min_bp:
                return left
            self.take()
            right = self.expr(bp)
            if bp == _CMP_BP and _BP.get(self.peek.text) == _CMP_BP and self.peek.kind in ("op", "kw"):
                raise TemplateError(
                    f"comparisons cannot be chained (column {self.peek.col}); combine them with 'and'"
                )
            left = Binary(tok.text, left, right, tok.col)

    def prefix(self) -> Node:
        tok = self.take()
        node: Node
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise TemplateError(f"number {tok.text} at column {tok.col} is out of range")
            node = Num(value, tok.col)
        elif tok.kind == "kw" and tok.text in ("true", "false"):
            node = Bool(tok.text == "true", tok.col)
        elif (tok.kind, tok.text) in (("kw", "not"), ("op", "-")):
            self.enter(tok.col)
            node = Unary(tok.text, self.expr(_NOT_BP if tok.text == "not" else _NEG_BP), tok.col)
            self.depth -= 1
        elif tok.kind == "op" and tok.text == "(":
            self.enter(tok.col)
            node = self.expr()
            self.expect(")")
            self.depth -= 1
        elif tok.kind == "name":
            node = self.call(tok) if self.peek.text == "(" else Name(tok.text, tok.col)
        else:
            raise TemplateError(f"unexpected {tok.describe()} at column {tok.col}")
        depth = self.depth
        while self.peek.kind == "op" and self.peek.text == "[":
            bracket = self.take()
            self.enter(bracket.col)
            index = self.expr()
            self.expect("]")
            node = Call("shift", (node, index), None, bracket.col)  # a lag chain nests: depth kept
        self.depth = depth
        return node

    def call(self, name: _Tok) -> Call:
        func = name.text
        spec = SPECS.get(func)
        if spec is None and func not in HELPERS:
            close = difflib.get_close_matches(func, [*SPECS, *HELPERS], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TemplateError(f"unknown indicator {func!r} at column {name.col}{hint}")
        self.enter(self.take().col)
        args: list[Node] = []
        if self.peek.text != ")":
            while True:
                args.append(self.expr())
                if self.peek.kind == "op" and self.peek.text == ",":
                    self.take()
                    continue
                break
        self.expect(")", " or ','")
        self.depth -= 1
        if spec is None:
            lo, hi, sig = HELPERS[func]
        else:
            lo = 1 if single_input(spec) else 0
            hi = lo + len(spec.params)
            sig = signature(func)
        if len(args) > hi:
            raise TemplateError(
                f"{func} takes at most {hi} argument{'' if hi == 1 else 's'}, got {len(args)} "
                f"at column {name.col}: {sig}"
            )
        if len(args) < lo:
            what = "an input series first" if spec is not None else f"{lo} argument{'' if lo == 1 else 's'}"
            raise TemplateError(f"{func} needs {what} at column {name.col}: {sig}")
        output = None
        if spec is not None and self.peek.kind == "op" and self.peek.text == ".":
            dot = self.take()
            sel = self.take()
            table = output_selectors(spec)
            if sel.kind not in ("name", "kw") or sel.text not in table:
                raise TemplateError(
                    f"{func} has no output {sel.describe()} at column {dot.col + 1}; "
                    f"outputs: {_outputs_text(spec)}"
                )
            output = table[sel.text]
        elif spec is not None and len(spec.outputs) > 1:
            raise TemplateError(
                f"{func} at column {name.col} has several outputs; select one, e.g. "
                f"{func}(...).{spec.outputs[1].split('_', 1)[-1]}; outputs: {_outputs_text(spec)}"
            )
        return Call(func, tuple(args), output, name.col)


def _outputs_text(spec: IndicatorSpec) -> str:
    short = {v: k for k, v in output_selectors(spec).items() if k != v}
    return ", ".join(f"{o} ({short[o]})" if o in short else o for o in spec.outputs)


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """Parse an expression; TemplateError naming the problem and its column if it is not valid."""
    if len(text) > MAX_LENGTH:
        raise TemplateError(f"expression too long: {len(text)} characters (limit {MAX_LENGTH})")
    if not text.strip():
        raise TemplateError("empty expression")
    parser = _Parser(text)
    node = parser.expr()
    tok = parser.peek
    if tok.kind != "end":
        hint = (
            "; '.' selects an output of a multi-output indicator call, e.g. macd(close).signal"
            if tok.text == "."
            else ""
        )
        raise TemplateError(f"unexpected {tok.describe()} at column {tok.col}{hint}")
    return node


# ---- inspection ---------------------------------------------------------------------------------


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node, parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


@dataclass(frozen=True, slots=True)
class References:
    names: frozenset[str]  # every bare name: columns, parameters, named indicators
    indicators: frozenset[str]
    functions: frozenset[str]  # helpers (abs, shift...; x[n] counts as shift)


def references(node: Node) -> References:
    nodes = list(walk(node))
    calls = [n.func for n in nodes if isinstance(n, Call)]
    return References(
        frozenset(n.id for n in nodes if isinstance(n, Name)),
        frozenset(c for c in calls if c in SPECS),
        frozenset(c for c in calls if c in HELPERS),
    )


def unparse(node: Node) -> str:
    """Canonical text (binary operations parenthesized); ``parse(unparse(n)) == n``."""
    if isinstance(node, Num):
        return _canon(node.value)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Unary):
        return f"({node.op}{' ' if node.op == 'not' else ''}{unparse(node.operand)})"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    text = f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    return text + (f".{node.output}" if node.output else "")


def scope(params: Iterable[str] = (), named: Mapping[str, Kind] | None = None) -> dict[str, Kind]:
    """Names visible to an expression and their kinds: bar columns, parameters, named series."""
    out = dict.fromkeys(params, Kind.NUMBER)
    out.update(named or {})
    out.update(dict.fromkeys((*COLUMNS, *DERIVED), Kind.SERIES))
    return out


def start(node: Node) -> int:
    """Column where ``node``'s text begins (a node's own ``col`` is its operator's, for binaries)."""
    if isinstance(node, Binary):
        return start(node.left)
    if isinstance(node, Call) and node.func == "shift" and node.args:  # x[n] is shift(x, n) at '['
        return min(node.col, start(node.args[0]))
    return node.col


def _need(node: Node, kind: Kind, allowed: tuple[Kind, ...], what: str) -> None:
    if kind not in allowed:
        col = start(node)
        raise TemplateError(
            f"{what} at column {col} must be {' or '.join(k.value for k in allowed)}, got a {kind.value}"
        )


_NUMERIC: Final = (Kind.NUMBER, Kind.SERIES)
_BOOLEAN: Final = (Kind.BOOL, Kind.CONDITION)


def infer(node: Node, names: Mapping[str, Kind]) -> Kind:
    """The static kind of ``node``; TemplateError for an unknown name or a type mismatch."""
    if isinstance(node, Num):
        return Kind.NUMBER
    if isinstance(node, Bool):
        return Kind.BOOL
    if isinstance(node, Name):
        kind = names.get(node.id)
        if kind is None:
            raise TemplateError(_unknown_name(node, names))
        return kind
    if isinstance(node, Unary):
        k = infer(node.operand, names)
        _need(node.operand, k, _BOOLEAN if node.op == "not" else _NUMERIC, f"the operand of '{node.op}'")
        return k
    if isinstance(node, Binary):
        left, right = infer(node.left, names), infer(node.right, names)
        const = left.is_const and right.is_const
        allowed = _BOOLEAN if node.op in ("and", "or") else _NUMERIC
        _need(node.left, left, allowed, f"the left side of '{node.op}'")
        _need(node.right, right, allowed, f"the right side of '{node.op}'")
        if node.op in ("and", "or"):
            return Kind.BOOL if const else Kind.CONDITION
        if node.op in ("crosses_above", "crosses_below"):
            return Kind.CONDITION
        if _BP[node.op] == _CMP_BP:
            return Kind.BOOL if const else Kind.CONDITION
        return Kind.NUMBER if const else Kind.SERIES
    kinds = [infer(a, names) for a in node.args]
    for i, (arg, k) in enumerate(zip(node.args, kinds, strict=True)):
        where = f"argument {i + 1} of {node.func}"
        if i == 0 and node.func == "shift":
            _need(arg, k, (Kind.SERIES, Kind.CONDITION), where)
        elif i == 0 and (node.func in HELPERS and node.func not in ("abs", "min", "max")):
            _need(arg, k, (Kind.SERIES,), where)
        elif i == 0 and node.func in SPECS and single_input(SPECS[node.func]):
            _need(arg, k, (Kind.SERIES,), f"{where} (its input series)")
        elif node.func in ("abs", "min", "max"):
            _need(arg, k, _NUMERIC, where)
        else:
            _need(arg, k, (Kind.NUMBER,), f"{where} (a constant: a number or parameter)")
    if node.func in ("abs", "min", "max"):
        return Kind.NUMBER if all(k.is_const for k in kinds) else Kind.SERIES
    if node.func == "shift" and kinds[0] == Kind.CONDITION:
        return Kind.CONDITION
    return Kind.SERIES


def _unknown_name(node: Name, names: Mapping[str, Kind]) -> str:
    msg = f"unknown name {node.id!r} at column {node.col}"
    close = difflib.get_close_matches(node.id, list(names), n=3)
    if close:
        return f"{msg}; did you mean {', '.join(close)}?"
    if node.id in SPECS or node.id in HELPERS:
        return f"{msg}; {node.id} is a function, call it: {signature(node.id)}"
    return msg


# ---- the cache ----------------------------------------------------------------------------------

CacheKey = tuple[int, str, str, tuple[float | int, ...]]


class IndicatorCache:
    """Indicator outputs keyed by ``(bars slot, function, input key, resolved params)``.

    One cache serves a whole sweep (and several symbols): each distinct ``Bars`` object gets a
    slot, and the cache holds a reference to it so its ``id`` cannot be reused while cached.
    Stored arrays are read-only. ``max_entries`` bounds it (least recently used dropped first).
    ``hits``/``misses`` count lookups; a miss is one computation.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[CacheKey, dict[str, F64]] = OrderedDict()
        self._slots: dict[int, tuple[Bars, int]] = {}
        self.hits = 0
        self.misses = 0

    def slot(self, bars: Bars) -> int:
        entry = self._slots.get(id(bars))
        if entry is None or entry[0] is not bars:
            entry = self._slots[id(bars)] = (bars, len(self._slots))
        return entry[1]

    def get_or_compute(self, key: CacheKey, compute: Callable[[], dict[str, F64]]) -> dict[str, F64]:
        found = self._data.get(key)
        if found is not None:
            self.hits += 1
            self._data.move_to_end(key)
            return found
        self.misses += 1
        value = compute()
        for arr in value.values():
            arr.flags.writeable = False
        self._data[key] = value
        if self.max_entries is not None and len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> list[CacheKey]:
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._slots.clear()


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

    def indicator(self, node: Call) -> F64:
        spec = SPECS[node.func]
        single = single_input(spec)
        pargs = node.args[1:] if single else node.args
        raw = {p.name: self.const(a) for p, a in zip(spec.params, pargs, strict=False)}
        try:
            resolved = spec.resolve(raw)
        except IndicatorError as exc:
            arg = next((a for p, a in zip(spec.params, pargs, strict=False) if p.name == exc.param), None)
            if isinstance(arg, Name) and arg.id in self.params:
                raise TemplateError(f"{exc} (from parameter {arg.id!r})", field=f"params.{arg.id}") from None
            raise TemplateError(f"{exc} (at column {node.col})") from None

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
            spec = SPECS[n.func]
            single = single_input(spec)
            pargs = n.args[1:] if single else n.args
            raw = {p.name: ev.const(a) for p, a in zip(spec.params, pargs, strict=False)}
            try:
                resolved = spec.resolve(raw)
            except IndicatorError as exc:
                raise TemplateError(f"{exc} (at column {n.col})") from None
            return spec.warmup(resolved) + (w(n.args[0]) if single else 0)
        if isinstance(n, Call) and n.func in ("shift", "highest", "lowest", "change", "pct_change"):
            k = ev.window(n, 0 if n.func == "shift" else 1)
            return w(n.args[0]) + (k - 1 if n.func in ("highest", "lowest") else k)
        return max((w(c) for c in children(n)), default=0)

    return w(node)
