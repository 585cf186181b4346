"""The indicator catalog: what each indicator is, takes and returns, and how long it warms up.

Every indicator has one lower-case API name (``rsi``, ``macd``, ``bbands``, ``supertrend``,
``cdl_doji``...), numeric parameters with a default and an inclusive range, the bar columns it
reads, its output columns and its warm-up: the number of leading bars whose output is NaN because
the indicator is not defined yet (TA-Lib's "lookback"). ``catalog()`` lists them, JSON-ready through
``IndicatorSpec.to_dict()``; ``compute()`` runs one on ``Bars``.

Engines: TA-Lib computes everything it has (``engine="talib"``); our numba/numpy kernels only what
it lacks (``engine="numba"``: vwap, supertrend, ichimoku, keltner, donchian, heikin_ashi). Every
indicator also streams, one bar at a time, in ``indicators.streaming``.

Missing data: bars at the start of the series that are NaN in any input the indicator reads are
skipped, as TA-Lib skips them: their output is NaN and the warm-up counts from the first complete
bar. A NaN *inside* the series is not repaired: TA-Lib's result after it is TA-Lib's own (it calls
that undefined), and the streaming form refuses such a bar.

Requests (``indicators=rsi,macd:12:26:9,sma:50`` in the API) are parsed in ``indicators.requests``.
"""

from __future__ import annotations

from algotrendy.core.market import F64, I64, Bars
from algotrendy.indicators import batch
from algotrendy.indicators.schema import IndicatorError, IndicatorSpec, Number, Params, ParamSpec
from algotrendy.indicators.specs import SPECS

__all__ = [
    "IndicatorError",
    "IndicatorSpec",
    "Number",
    "ParamSpec",
    "Params",
    "catalog",
    "compute",
    "compute_resolved",
    "get_spec",
    "warmup",
]

_SPECS: dict[str, IndicatorSpec] = {s.name: s for s in SPECS}
_ALIASES: dict[str, str] = {
    s.talib_name.lower(): s.name
    for s in _SPECS.values()
    if s.talib_name is not None and s.talib_name.lower() not in _SPECS
}


def catalog() -> list[IndicatorSpec]:
    """Every indicator, in a stable order (TA-Lib ones, ours, then the candlestick patterns)."""
    return list(_SPECS.values())


def get_spec(name: str) -> IndicatorSpec:
    """The entry for ``name`` (case-insensitive; TA-Lib names such as ``CDLDOJI`` also work)."""
    key = name.strip().lower()
    spec = _SPECS.get(_ALIASES.get(key, key))
    if spec is None:
        import difflib  # only on the error path

        close = difflib.get_close_matches(key, list(_SPECS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see catalog() for the list"
        raise IndicatorError(f"unknown indicator {name!r}{hint}", indicator=name)
    return spec


def warmup(name: str, **params: object) -> int:
    """Leading NaN bars of ``name`` with these parameters, on a series without missing values."""
    spec = get_spec(name)
    return spec.warmup(spec.resolve(params))


def compute(name: str, bars: Bars, *, sessions: I64 | None = None, **params: object) -> dict[str, F64]:
    """Run indicator ``name`` over ``bars``: one float64 column of ``len(bars)`` per output.

    ``sessions`` (vwap only) gives each bar's session id (int64, same length as ``bars``); VWAP then
    restarts whenever the id changes instead of at each UTC day.
    """
    spec = get_spec(name)
    resolved = spec.resolve(params)
    if sessions is not None:
        if spec.name != "vwap":
            raise IndicatorError(
                f"{spec.name}: sessions only apply to vwap", indicator=spec.name, param="sessions"
            )
        if len(sessions) != len(bars):
            raise IndicatorError(
                f"vwap: sessions has {len(sessions)} rows, bars has {len(bars)}",
                indicator="vwap",
                param="sessions",
            )
    return compute_resolved(spec, bars, resolved, sessions)


def compute_resolved(
    spec: IndicatorSpec, bars: Bars, params: Params, sessions: I64 | None = None
) -> dict[str, F64]:
    """``compute`` for parameters that ``spec.resolve`` already checked."""
    if spec.engine == "talib":
        values: tuple[F64, ...]
        arrays = tuple(getattr(bars, c) for c in spec.inputs)
        fn = spec.talib_name or ""
        if spec.group == "pattern":
            values = (batch.talib_pattern(fn, arrays, spec.args(params), spec.warmup(params)),)
        else:
            values = batch.talib_call(fn, arrays, spec.args(params))
    else:
        values = batch.own(spec.name, bars, params, sessions)
    return dict(zip(spec.outputs, values, strict=True))
