"""Chart styles: a bar series transformed into the bars a chart type draws.

Each style is ``fn(bars, **params) -> ChartBars``; ``CHART_STYLES`` maps the style's name to
its function, parameter specs and description, so the API can list the styles and check a
``chart_style`` with its params (``apply_chart_style``). A bad parameter raises ValueError
naming the parameter and what it may be.

Conventions shared by every style:

* **Price path.** Renko, range bars, three-line break, kagi and point & figure read the source
  *closes* (the "close method"); the source highs and lows are not used.
* **Timestamp.** A derived bar carries the ``ts`` of the source bar that completed it (that
  bar's open time, as for all ``Bars``; the derived bar is known at that bar's close). One
  source bar can complete several renko bricks or range bars: they share its ``ts``, so
  ``ts`` is non-decreasing rather than strictly increasing for those styles.
  ``columns["source_index"]`` gives the completing source bar's index.
* **Completed bars only.** The bar still forming at the end (a brick not yet filled, the
  current kagi line or P&F column, a volume bar still filling) is not returned.
* **Volume.** Every source bar's volume goes to the derived bar it completes, or if it
  completes none to the next derived bar. When one source bar completes k derived bars the
  volume accumulated since the previous derived bar is split equally among the k. Hence
  ``sum(out.volume) == sum(bars.volume[: source_index[-1] + 1])``.
* **Prices.** No style produces a price outside the source's [min(low), max(high)]: brick,
  box and range boundaries lie between consecutive closes, Heikin-Ashi values are averages.
* ``time`` and ``heikin_ashi`` keep the source timestamps and volumes one-to-one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import talib

from algotrendy.core.market import F64, I64, Bars
from algotrendy.indicators import _charts_kernels as k

__all__ = [
    "CHART_STYLES",
    "MAX_DERIVED_BARS",
    "ChartBars",
    "ChartStyle",
    "ParamSpec",
    "ParamValue",
    "apply_chart_style",
    "chart_style",
    "dollar_bars",
    "heikin_ashi",
    "kagi",
    "point_figure",
    "range_bars",
    "renko",
    "three_line_break",
    "time_bars",
    "volume_bars",
]

ParamValue = int | float | str
MAX_DERIVED_BARS = 5_000_000  # refuse a brick/range so small it would make more bars than this


@dataclass(frozen=True, slots=True, eq=False)
class ChartBars(Bars):
    """Bars of a chart style plus the style's extra columns (each as long as ``ts``)."""

    columns: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Bars.__post_init__(self)
        for name, col in self.columns.items():
            if len(col) != len(self.ts):
                raise ValueError(f"column {name} has {len(col)} rows, ts has {len(self.ts)}")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a chart style: its kind, default (None = required) and allowed range.

    ``kind`` "int"/"float" take numbers within ``ge``/``gt``/``le``; ``choices`` are strings
    accepted as well (e.g. ``"atr"``) or, for kind "choice", the only values accepted.
    """

    name: str
    kind: Literal["int", "float", "choice"]
    default: ParamValue | None
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """What the parameter may be, in words (used in error messages and listings)."""
        names = ", ".join(repr(c) for c in self.choices)
        if self.kind == "choice":
            return f"one of {names}"
        what = "an integer" if self.kind == "int" else "a number"
        bounds = [
            f">= {self.ge:g}" if self.ge is not None else "",
            f"> {self.gt:g}" if self.gt is not None else "",
            f"<= {self.le:g}" if self.le is not None else "",
        ]
        text = " ".join([what, " and ".join(b for b in bounds if b)]).strip()
        return f"{text} or {names}" if self.choices else text

    def check(self, value: object) -> ParamValue:
        """The value, normalised (int/float/str), or ValueError naming the parameter."""
        bad = ValueError(f"{self.name} must be {self.allowed()}; got {value!r}")
        if isinstance(value, str):
            if value in self.choices:
                return value
            raise bad
        if self.kind == "choice" or isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise bad
        number = float(value)
        if not math.isfinite(number):
            raise bad
        if self.kind == "int" and number != int(number):
            raise bad
        if (
            (self.ge is not None and number < self.ge)
            or (self.gt is not None and number <= self.gt)
            or (self.le is not None and number > self.le)
        ):
            raise bad
        return int(number) if self.kind == "int" else number

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "required": self.default is None,
            "allowed": self.allowed(),
            "ge": self.ge,
            "gt": self.gt,
            "le": self.le,
            "choices": list(self.choices),
            "description": self.description,
        }


def _validate(
    style: str, specs: tuple[ParamSpec, ...], params: Mapping[str, object]
) -> dict[str, ParamValue]:
    known = {s.name: s for s in specs}
    unknown = sorted(set(params) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise ValueError(f"unknown parameter {unknown[0]!r} for chart style {style!r}; allowed: {allowed}")
    out: dict[str, ParamValue] = {}
    for spec in specs:
        value = params.get(spec.name, spec.default)
        if value is None:
            raise ValueError(f"chart style {style!r} requires {spec.name} ({spec.allowed()})")
        out[spec.name] = spec.check(value)
    return out


_ATR_PERIOD = ParamSpec("atr_period", "int", 14, "ATR period when the size is 'atr'", ge=1, le=1000)


def _size(name: str, what: str) -> ParamSpec:
    return ParamSpec(
        name,
        "float",
        "atr",
        f"{what}: a price amount, or 'atr' for the ATR(atr_period) "
        "at the last bar (uses the whole series, so not for bar-by-bar backtests)",
        gt=0,
        choices=("atr",),
    )


_RENKO = (_size("brick", "brick size"), _ATR_PERIOD)
_RANGE = (_size("size", "range of each bar (high - low)"), _ATR_PERIOD)
_TLB = (ParamSpec("lines", "int", 3, "lines a reversal must break", ge=1, le=20),)
_KAGI = (
    ParamSpec(
        "reversal", "float", 4.0, "reversal amount: percent of the current extreme, or a price amount", gt=0
    ),
    ParamSpec("method", "choice", "percent", "how reversal is read", choices=("percent", "fixed")),
)
_PNF = (
    _size("box", "box size"),
    ParamSpec("reversal", "int", 3, "boxes needed to start a new column", ge=1, le=20),
    _ATR_PERIOD,
)
_VOLUME = (ParamSpec("threshold", "float", None, "volume per bar (units of the source volume)", gt=0),)
_DOLLAR = (ParamSpec("threshold", "float", None, "traded value per bar (sum of close * volume)", gt=0),)


def _src_index(n: int) -> dict[str, npt.NDArray[Any]]:
    return {"source_index": np.arange(n, dtype=np.int64)}


def _empty(**dtypes: type[np.generic]) -> ChartBars:
    """No bars, with the style's columns (``source_index`` always) as empty arrays."""
    e = Bars.empty()
    cols: dict[str, npt.NDArray[Any]] = {"source_index": np.empty(0, dtype=np.int64)}
    cols.update({name: np.empty(0, dtype=dtype) for name, dtype in dtypes.items()})
    return ChartBars(e.ts, e.open, e.high, e.low, e.close, e.volume, columns=cols)


def _closes(bars: Bars) -> tuple[F64, F64]:
    close = np.ascontiguousarray(bars.close, dtype=np.float64)
    if not np.isfinite(close).all():
        raise ValueError("bars contain a non-finite close; clean the series before charting it")
    return close, np.ascontiguousarray(bars.volume, dtype=np.float64)


def _resolve_size(bars: Bars, name: str, value: ParamValue, atr_period: int) -> float:
    if value != "atr":
        return float(value)
    if len(bars) <= atr_period:
        raise ValueError(f"{name}='atr' needs more than atr_period={atr_period} bars; got {len(bars)}")
    h, lo, c = (np.ascontiguousarray(x, dtype=np.float64) for x in (bars.high, bars.low, bars.close))
    atr = float(talib.ATR(h, lo, c, timeperiod=atr_period)[-1])
    if not (math.isfinite(atr) and atr > 0):
        raise ValueError(
            f"{name}='atr': the ATR({atr_period}) at the last bar is {atr}; give a fixed {name} > 0"
        )
    return atr


def _capacity(close: F64, size: float, name: str) -> int:
    """Upper bound on bricks/range bars: each one uses up at least ``size`` of the close path."""
    path = float(np.abs(np.diff(close)).sum())
    cap = int(path / size / (1 - 1e-6)) + 2
    if cap > MAX_DERIVED_BARS:
        raise ValueError(
            f"{name}={size:g} is too small for these bars: up to {cap:,} bars "
            f"(limit {MAX_DERIVED_BARS:,}); use {name} > {path / MAX_DERIVED_BARS:g}"
        )
    return cap


def _check_overflow(count: int, name: str, size: float) -> None:
    if count < 0:
        raise ValueError(f"{name}={size:g} is too small for these prices (below their float resolution)")


def _path_bars(ts: I64, src: I64, op: F64, cl: F64, vol: F64, cols: dict[str, npt.NDArray[Any]]) -> ChartBars:
    return ChartBars(
        ts[src], op, np.maximum(op, cl), np.minimum(op, cl), cl, vol, columns={"source_index": src, **cols}
    )


def time_bars(bars: Bars) -> ChartBars:
    """The bars as they are (the ordinary time-based chart)."""
    return ChartBars(
        bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, columns=_src_index(len(bars))
    )


def heikin_ashi(bars: Bars) -> ChartBars:
    """Heikin-Ashi: close = (o+h+l+c)/4, open = (previous HA open + previous HA close)/2 (the
    first is (o+c)/2), high/low = extremes of the bar's high/low and the HA open/close."""
    if len(bars) == 0:
        return _empty()
    o, h, lo, c = (
        np.ascontiguousarray(x, dtype=np.float64) for x in (bars.open, bars.high, bars.low, bars.close)
    )
    ho, hh, hl, hc = k.heikin_ashi_kernel(o, h, lo, c)
    return ChartBars(bars.ts, ho, hh, hl, hc, bars.volume, columns=_src_index(len(bars)))


def renko(bars: Bars, *, brick: float | str = "atr", atr_period: int = 14) -> ChartBars:
    """Renko bricks on the close path, grid anchored at the first close (levels first + k*brick).

    A brick forms each time a close reaches the next level in the trend's direction; a reversal
    needs a close one full brick beyond the far side of the last brick (two bricks from its
    end). Every brick has |close - open| == brick and no wicks. ``columns["direction"]``: +1/-1.
    """
    p = _validate("renko", _RENKO, {"brick": brick, "atr_period": atr_period})
    if len(bars) == 0:
        return _empty(direction=np.int8)
    close, volume = _closes(bars)
    size = _resolve_size(bars, "brick", p["brick"], int(p["atr_period"]))
    m, src, op, cl, vol, dr = k.renko_kernel(close, volume, size, _capacity(close, size, "brick"))
    _check_overflow(m, "brick", size)
    return _path_bars(bars.ts, src[:m], op[:m], cl[:m], vol[:m], {"direction": dr[:m]})


def range_bars(bars: Bars, *, size: float | str = "atr", atr_period: int = 14) -> ChartBars:
    """Range bars on the close path: a bar completes when its high - low reaches ``size``;
    it then closes at its low + size (up) or high - size (down) and the next bar opens there.
    A jump larger than ``size`` completes several bars. Every bar has high - low == size.
    ``columns["direction"]``: +1 if it closed at its high, -1 at its low."""
    p = _validate("range", _RANGE, {"size": size, "atr_period": atr_period})
    if len(bars) == 0:
        return _empty(direction=np.int8)
    close, volume = _closes(bars)
    r = _resolve_size(bars, "size", p["size"], int(p["atr_period"]))
    m, src, op, hi, lo, cl, vol = k.range_kernel(close, volume, r, _capacity(close, r, "size"))
    _check_overflow(m, "size", r)
    direction = np.where(cl[:m] >= hi[:m], 1, -1).astype(np.int8)
    return ChartBars(
        bars.ts[src[:m]],
        op[:m],
        hi[:m],
        lo[:m],
        cl[:m],
        vol[:m],
        columns={"source_index": src[:m], "direction": direction},
    )


def three_line_break(bars: Bars, *, lines: int = 3) -> ChartBars:
    """Line break chart. The first line runs from the first close to the first different
    close. A close beyond the last line's close adds a line in the same direction (from that
    close); a close beyond the extreme of the last ``lines`` lines (either colour; fewer if
    fewer exist) the other way adds a reversal line from the last line's open. Otherwise nothing.
    ``columns["direction"]``: +1 (white) / -1 (black)."""
    p = _validate("three_line_break", _TLB, {"lines": lines})
    if len(bars) == 0:
        return _empty(direction=np.int8)
    close, volume = _closes(bars)
    m, src, op, cl, vol, dr = k.three_line_break_kernel(close, volume, int(p["lines"]))
    return _path_bars(bars.ts, src[:m], op[:m], cl[:m], vol[:m], {"direction": dr[:m]})


def kagi(bars: Bars, *, reversal: float = 4.0, method: str = "percent") -> ChartBars:
    """Kagi lines, one bar per completed line: open = where the line started (the previous
    line's extreme, or the first close), close = its extreme. The first line starts when the
    close moves ``reversal`` away from the first close; a line ends when the close retreats
    ``reversal`` from its extreme (``method="percent"``: percent of that extreme).
    ``columns``: ``direction`` +1/-1; ``yang`` True when the line is thick (yang) at its end:
    it turns yang above the last shoulder (previous up line's top) and yin (thin) below the
    last waist (previous down line's bottom); the first line is yang if it rises."""
    p = _validate("kagi", _KAGI, {"reversal": reversal, "method": method})
    amount = float(p["reversal"])
    percent = p["method"] == "percent"
    if percent and amount >= 100:
        raise ValueError(f"reversal must be < 100 when method='percent'; got {amount:g}")
    if len(bars) == 0:
        return _empty(direction=np.int8, yang=np.bool_)
    close, volume = _closes(bars)
    m, src, op, cl, vol, dr, yang = k.kagi_kernel(close, volume, amount, percent)
    return _path_bars(bars.ts, src[:m], op[:m], cl[:m], vol[:m], {"direction": dr[:m], "yang": yang[:m]})


def point_figure(
    bars: Bars, *, box: float | str = "atr", reversal: int = 3, atr_period: int = 14
) -> ChartBars:
    """Point & figure columns on the close path, box grid anchored at the first close.

    The first column starts when the close moves one box from the first close. An X column
    extends when a close reaches a higher box level; an O column starts when a close falls
    ``reversal`` boxes below the column's top (and mirror-wise). One bar per completed column:
    open = the column's start (the previous column's extreme, or the first close), close = its
    extreme, so ``|close - open| == boxes * box``. ``columns``: ``direction`` +1 = X, -1 = O;
    ``boxes``: box intervals the column spans."""
    p = _validate("point_figure", _PNF, {"box": box, "reversal": reversal, "atr_period": atr_period})
    if len(bars) == 0:
        return _empty(direction=np.int8, boxes=np.int64)
    close, volume = _closes(bars)
    size = _resolve_size(bars, "box", p["box"], int(p["atr_period"]))
    _capacity(close, size, "box")
    m, src, op, cl, vol, dr, boxes = k.point_figure_kernel(close, volume, size, int(p["reversal"]))
    return _path_bars(bars.ts, src[:m], op[:m], cl[:m], vol[:m], {"direction": dr[:m], "boxes": boxes[:m]})


def _threshold_bars(bars: Bars, weight: F64, threshold: float) -> ChartBars:
    """Bars that close when the running total of ``weight`` passes each multiple of threshold.

    Source bars are never split: the crossing bar ends the derived bar, whose volume is the
    sum of its whole source bars (so it may exceed the threshold, and the next may fall short).
    """
    if np.any(weight < 0) or not np.isfinite(weight).all():
        raise ValueError("bars contain a negative or non-finite volume")
    level = np.floor(np.cumsum(weight) / threshold + 1e-9)
    ends = np.flatnonzero(np.diff(level, prepend=0.0) > 0).astype(np.int64)
    if len(ends) == 0:
        return _empty(first_index=np.int64, value=np.float64)
    starts = np.concatenate((np.zeros(1, np.int64), ends[:-1] + 1))
    stop = int(ends[-1]) + 1
    value = np.add.reduceat(bars.close[:stop] * bars.volume[:stop], starts)
    return ChartBars(
        bars.ts[ends],
        bars.open[starts],
        np.maximum.reduceat(bars.high[:stop], starts),
        np.minimum.reduceat(bars.low[:stop], starts),
        bars.close[ends],
        np.add.reduceat(bars.volume[:stop], starts),
        columns={"source_index": ends, "first_index": starts, "value": value},
    )


def volume_bars(bars: Bars, *, threshold: float) -> ChartBars:
    """A bar each time the cumulative volume passes a multiple of ``threshold``: OHLCV of the
    whole source bars since the previous one. ``columns``: ``first_index`` (first source bar),
    ``value`` (sum of close * volume)."""
    p = _validate("volume", _VOLUME, {"threshold": threshold})
    return _threshold_bars(bars, np.asarray(bars.volume, dtype=np.float64), float(p["threshold"]))


def dollar_bars(bars: Bars, *, threshold: float) -> ChartBars:
    """Like ``volume_bars`` on traded value, close * volume of each source bar."""
    p = _validate("dollar", _DOLLAR, {"threshold": threshold})
    return _threshold_bars(
        bars, np.asarray(bars.close * bars.volume, dtype=np.float64), float(p["threshold"])
    )


@dataclass(frozen=True, slots=True)
class ChartStyle:
    """A registered chart style: its function, parameter specs, description and extra columns."""

    name: str
    fn: Callable[..., ChartBars]
    params: tuple[ParamSpec, ...]
    description: str
    columns: Mapping[str, str]

    def validate(self, params: Mapping[str, object]) -> dict[str, ParamValue]:
        """Params with defaults filled in, or ValueError naming the bad one."""
        return _validate(self.name, self.params, params)

    def apply(self, bars: Bars, params: Mapping[str, object] | None = None) -> ChartBars:
        return self.fn(bars, **self.validate(params or {}))

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "params": [p.describe() for p in self.params],
            "columns": dict(self.columns),
        }


_SRC = {"source_index": "index of the source bar that completed this bar (int64)"}
_DIR = {**_SRC, "direction": "+1 up, -1 down (int8)"}

CHART_STYLES: Mapping[str, ChartStyle] = MappingProxyType(
    {
        s.name: s
        for s in (
            ChartStyle("time", time_bars, (), "the bars as they are", _SRC),
            ChartStyle("heikin_ashi", heikin_ashi, (), "Heikin-Ashi smoothed candles", _SRC),
            ChartStyle("renko", renko, _RENKO, "fixed-size bricks on the close", _DIR),
            ChartStyle("range", range_bars, _RANGE, "bars of a fixed high-low range on the close", _DIR),
            ChartStyle(
                "three_line_break", three_line_break, _TLB, "line break chart (three-line break)", _DIR
            ),
            ChartStyle(
                "kagi",
                kagi,
                _KAGI,
                "kagi lines with yang/yin thickness",
                {**_DIR, "yang": "True when the line ends thick (yang), False thin (yin)"},
            ),
            ChartStyle(
                "point_figure",
                point_figure,
                _PNF,
                "point & figure columns (close method)",
                {
                    **_SRC,
                    "direction": "+1 X column, -1 O column (int8)",
                    "boxes": "box intervals the column spans (int64)",
                },
            ),
            ChartStyle(
                "volume",
                volume_bars,
                _VOLUME,
                "a bar every `threshold` of volume",
                {
                    **_SRC,
                    "first_index": "index of the first source bar (int64)",
                    "value": "sum of close * volume (float64)",
                },
            ),
            ChartStyle(
                "dollar",
                dollar_bars,
                _DOLLAR,
                "a bar every `threshold` of traded value (close * volume)",
                {
                    **_SRC,
                    "first_index": "index of the first source bar (int64)",
                    "value": "sum of close * volume (float64)",
                },
            ),
        )
    }
)


def chart_style(name: str) -> ChartStyle:
    """The registered style ``name``, or ValueError listing the known styles."""
    try:
        return CHART_STYLES[name]
    except KeyError:
        raise ValueError(f"chart_style must be one of {', '.join(CHART_STYLES)}; got {name!r}") from None


def apply_chart_style(bars: Bars, style: str, params: Mapping[str, object] | None = None) -> ChartBars:
    """Validate ``style`` and ``params`` and transform ``bars``."""
    return chart_style(style).apply(bars, params)
