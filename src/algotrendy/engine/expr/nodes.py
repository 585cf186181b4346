"""The expression language's vocabulary and AST: names, limits, node classes, kinds, inspection."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from algotrendy.indicators.catalog import catalog
from algotrendy.indicators.schema import IndicatorSpec

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


def start(node: Node) -> int:
    """Column where ``node``'s text begins (a node's own ``col`` is its operator's, for binaries)."""
    if isinstance(node, Binary):
        return start(node.left)
    if isinstance(node, Call) and node.func == "shift" and node.args:  # x[n] is shift(x, n) at '['
        return min(node.col, start(node.args[0]))
    return node.col
