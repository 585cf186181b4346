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

from algotrendy.engine.expr.analysis import constant, warmup
from algotrendy.engine.expr.cache import CacheKey, IndicatorCache
from algotrendy.engine.expr.evaluation import NamedValue, Series, Value, evaluate, evaluate_series, shift
from algotrendy.engine.expr.inference import infer, scope
from algotrendy.engine.expr.nodes import (
    COLUMNS,
    DERIVED,
    HELPERS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_WINDOW,
    SPECS,
    Binary,
    Bool,
    Call,
    Kind,
    Name,
    Node,
    Num,
    References,
    Unary,
    children,
    output_selectors,
    references,
    signature,
    single_input,
    start,
    unparse,
    walk,
)
from algotrendy.engine.expr.parser import parse

__all__ = [
    "COLUMNS",
    "DERIVED",
    "HELPERS",
    "KEYWORDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_WINDOW",
    "SPECS",
    "Binary",
    "Bool",
    "CacheKey",
    "Call",
    "IndicatorCache",
    "Kind",
    "Name",
    "NamedValue",
    "Node",
    "Num",
    "References",
    "Series",
    "Unary",
    "Value",
    "children",
    "constant",
    "evaluate",
    "evaluate_series",
    "infer",
    "output_selectors",
    "parse",
    "references",
    "scope",
    "shift",
    "signature",
    "single_input",
    "start",
    "unparse",
    "walk",
    "warmup",
]
