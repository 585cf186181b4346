"""Tokenizer and recursive-descent (Pratt) parser: expression text to an immutable AST."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from algotrendy.engine.expr.nodes import (
    HELPERS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LENGTH,
    SPECS,
    Binary,
    Bool,
    Call,
    Name,
    Node,
    Num,
    Unary,
    output_selectors,
    signature,
    single_input,
)
from algotrendy.engine.template import TemplateError
from algotrendy.indicators.schema import IndicatorSpec

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
