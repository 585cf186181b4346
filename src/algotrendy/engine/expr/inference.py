"""Static type inference: the ``Kind`` of an expression, checked without bars."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Final

from algotrendy.engine.expr.nodes import (
    COLUMNS,
    DERIVED,
    HELPERS,
    SPECS,
    Binary,
    Bool,
    Kind,
    Name,
    Node,
    Num,
    Unary,
    signature,
    single_input,
    start,
)
from algotrendy.engine.expr.parser import _BP, _CMP_BP
from algotrendy.engine.template import TemplateError


def scope(params: Iterable[str] = (), named: Mapping[str, Kind] | None = None) -> dict[str, Kind]:
    """Names visible to an expression and their kinds: bar columns, parameters, named series."""
    out = dict.fromkeys(params, Kind.NUMBER)
    out.update(named or {})
    out.update(dict.fromkeys((*COLUMNS, *DERIVED), Kind.SERIES))
    return out


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
