"""Indicator requests as the API writes them, and the names of their output columns.

A request is a comma-separated list of specs, ``name[:p1[:p2...]]``, parameters positional in the
catalog's declared order, e.g. ``rsi,macd:12:26:9,sma:50,bbands:20:2``. Names are
case-insensitive (TA-Lib names such as ``CDLDOJI`` work too). Parameters left out keep their
defaults; an integer parameter takes an integer literal, a float one any finite number.

Column naming rule (unique by construction, and stable: it depends only on the spec as written):

- a spec without parameters names its columns with the bare output names: ``rsi`` -> ``rsi``;
  ``macd`` -> ``macd``, ``macd_signal``, ``macd_hist``; ``bbands`` -> ``bb_upper``, ``bb_middle``,
  ``bb_lower``;
- a spec with parameters appends them, canonical and joined by ``_``, to every output name:
  ``sma:20`` -> ``sma_20``; ``sma:50`` -> ``sma_50``; ``macd:12:26:9`` -> ``macd_12_26_9``,
  ``macd_signal_12_26_9``, ``macd_hist_12_26_9``; ``bbands:20:2.5`` -> ``bb_upper_20_2.5``...
  Canonical numbers: integers in decimal, floats in their shortest round-trip form with a
  trailing ``.0`` dropped (``2`` and ``2.0`` both give ``2``).

So ``sma:20,sma:50`` gives ``sma_20`` and ``sma_50``, and ``sma,sma:20`` gives ``sma`` and
``sma_20`` (the same numbers under two names, as asked). A spec repeated with the same canonical
parameters is computed once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from algotrendy.core.market import F64, I64, Bars
from algotrendy.indicators.catalog import IndicatorError, Number, compute_resolved, get_spec


@dataclass(frozen=True, slots=True)
class IndicatorRequest:
    """One parsed spec: ``name`` (canonical), all ``params`` (defaults filled in) and the
    parameter values written in the spec (``given``), which make the column-name suffix."""

    name: str
    params: dict[str, Number]
    given: tuple[Number, ...] = ()

    @property
    def suffix(self) -> str:
        return "".join("_" + _canonical(v) for v in self.given)

    @property
    def columns(self) -> dict[str, str]:
        """Output name -> column name."""
        return {out: out + self.suffix for out in get_spec(self.name).outputs}

    @property
    def text(self) -> str:
        """The spec in canonical form (``macd:12:26:9``)."""
        return self.name + self.suffix.replace("_", ":") if self.given else self.name


def _canonical(value: Number) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _number(text: str, kind: str) -> Number:
    if kind == "int":
        try:
            return int(text, 10)
        except ValueError:
            pass
        raise ValueError(f"{text!r} is not an integer")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_spec(text: str) -> IndicatorRequest:
    """``"macd:12:26:9"`` -> IndicatorRequest("macd", {...}, (12, 26, 9)); IndicatorError if bad."""
    parts = [p.strip() for p in text.strip().split(":")]
    if not parts[0]:
        raise IndicatorError(f"empty indicator name in {text!r}")
    spec = get_spec(parts[0])
    raw = parts[1:]
    if len(raw) > len(spec.params):
        names = ", ".join(p.name for p in spec.params)
        takes = f"at most {len(spec.params)} parameter(s) ({names})" if spec.params else "no parameters"
        raise IndicatorError(
            f"{spec.name} takes {takes}, got {len(raw)} in {text.strip()!r}", indicator=spec.name
        )
    given: dict[str, object] = {}
    for param, value in zip(spec.params, raw, strict=False):
        if not value:
            raise IndicatorError(
                f"{spec.name}: parameter {param.name} is empty in {text.strip()!r}",
                indicator=spec.name,
                param=param.name,
            )
        try:
            given[param.name] = _number(value, param.type)
        except ValueError as exc:
            raise IndicatorError(
                f"{spec.name}: parameter {param.name} must be {param.type} in "
                f"[{param.min_value}, {param.max_value}]: {exc}",
                indicator=spec.name,
                param=param.name,
            ) from None
    params = spec.resolve(given)
    return IndicatorRequest(spec.name, params, tuple(params[p.name] for p in spec.params[: len(raw)]))


def parse_request(request: str | Sequence[str]) -> list[IndicatorRequest]:
    """``"rsi,macd:12:26:9,sma:50"`` (or a list of specs) -> requests, duplicates dropped."""
    items = request.split(",") if isinstance(request, str) else list(request)
    out: list[IndicatorRequest] = []
    seen: set[str] = set()
    for position, item in enumerate(items, start=1):
        if not item.strip():
            raise IndicatorError(f"empty indicator spec at position {position} of {request!r}")
        req = parse_spec(item)
        if req.text not in seen:
            seen.add(req.text)
            out.append(req)
    return out


def column_names(request: str | Sequence[str]) -> list[str]:
    """The columns ``compute_request`` would return, in order."""
    return [col for req in parse_request(request) for col in req.columns.values()]


def compute_request(
    request: str | Sequence[str | IndicatorRequest], bars: Bars, *, sessions: I64 | None = None
) -> dict[str, F64]:
    """Every requested indicator over ``bars``, keyed by column name (naming rule above).
    ``sessions`` is passed to vwap (see ``catalog.compute``)."""
    if isinstance(request, str):
        reqs = parse_request(request)
    else:
        reqs = [parse_spec(item) if isinstance(item, str) else item for item in request]
    if sessions is not None and len(sessions) != len(bars):
        raise IndicatorError(
            f"vwap: sessions has {len(sessions)} rows, bars has {len(bars)}",
            indicator="vwap",
            param="sessions",
        )
    out: dict[str, F64] = {}
    for req in reqs:
        spec = get_spec(req.name)
        values = compute_resolved(spec, bars, req.params, sessions if spec.name == "vwap" else None)
        for output, column in req.columns.items():
            out[column] = values[output]
    return out
