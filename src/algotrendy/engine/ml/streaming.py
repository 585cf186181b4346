"""Streaming ML features: each new bar's feature row in O(1) per feature, without recomputing a window.

    stream = FeatureStream("standard")      # a set name, a list of specs, or a FeaturePlan
    stream.warm(history)                    # feed past bars; returns the last row
    row = stream.update(ts, o, h, l, c, v)  # each closed bar: compute(bars, plan)'s row at that bar
    if stream.ready:                        # every feature defined (warm-up over)
        p = predictor.predict_row(row)

Why: ``features.compute_last`` recomputes every indicator and rolling statistic over the plan's
window on each call (12 TA-Lib calls at about 3 µs of fixed cost each, plus the rolling statistics:
about 90 µs for the 50-feature inference benchmark), which alone misses the inference target (p99
<= 100 µs per row, model included). A stream carries each feature's state from bar to bar instead.

How each kind streams, and why it stays equal to the batch path (``features.compute``):

* indicator kinds (rsi, macd_*, atr_pct, adx, cci, willr, mfi, stoch_*, bb_*, sma_dist, ema_dist):
  one ``talib.stream`` handle per (indicator, parameters), opened with the catalog's TA-Lib
  function, arguments and warm-up: TA-Lib's own incremental form, which ``indicators.streaming``
  wraps and tests bit-identical to the batch function. It is called directly here (one C call per
  bar; the wrapper's per-call checks would add about 5 µs per bar for 12 indicators, and the input
  is checked once per bar instead). An indicator that is not a plain TA-Lib call would go through
  the ``indicators.streaming`` object. Then the same scale-free expression ``features`` applies
  (``_POST``);
* rolling statistics (vol, park, volume_z, dollar_vol, obv_slope): ``talib.stream`` handles of
  VAR, SMA and SUM, the very primitives ``compute`` runs over whole columns. They do the batch's
  running-sum arithmetic in the same order, so the two paths carry the same rounding and do not
  drift apart over any length. A Welford update or a periodic exact re-sum would be *more*
  accurate than TA-Lib's running sums, hence *different* from the batch rows a model is trained on;
* logarithms of a bar (1-bar return, ret_k, gap, co_ret, ln(high/low), ln(1 + volume)): numpy's
  ``log``/``log1p`` on the scalar, not ``math``'s. The two differ by one ulp on about 4 % of inputs,
  and a rolling variance of (nearly) flat input amplifies that: a window of unchanged prices has a
  variance made of rounding residue only. numpy's scalar result has the batch's bits;
* ret_k and gap: a ring of the last max(k) closes; lags: a ring of the last max(lag) rows of base
  values; calendar: from ``ts`` with ``math.sin``/``cos`` (at most an ulp from numpy's).

A kind without a streaming rule here (none today) is computed by ``compute_last`` over a ring of the
last ``window`` bars (correct, but at ``compute_last``'s cost and, for an infinite-memory kind, its
1e-6 accuracy).

Equality: the row ``update`` returns at bar t equals ``compute(bars, plan)``'s row t (which depends
on bars 0..t only) to 1e-9 relative (1e-12 absolute near 0), NaN positions included
(tests/unit/engine/ml/test_streaming.py: every bar of AAPL 1d, BTCUSDT 1h and ETHUSDT 1m, 3k to 66k
bars, for the minimal, standard and extended sets). On those series the rows came out bit-identical
to ``compute``'s. Infinite-memory features (EMA/Wilder) equal the batch run from the same first bar,
i.e. from the first bar given to the stream (``compute_last`` only approximates them from a window).

Cost per bar, measured on a busy 2-core machine: 14 µs median (26 µs p99) for the 50 features of
the inference benchmark (``standard`` plus 14 lags; ``bench/README.md``, "ML inference"), 5 to 7 µs
for ``minimal``, 25 to 35 µs for ``extended``.

Input contract: bars in time order (``ts`` int ns, strictly increasing), prices finite and > 0,
volume finite and >= 0. Anything else raises ``ValueError`` and leaves the state as it was (the
batch path would propagate a NaN instead; a stream cannot forget a bad bar). ``update`` returns a
new array each call (keeping it is safe). Not thread-safe: one stream per series, fed in order by
one thread. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import talib
from talib import stream as talib_stream

from algotrendy.core.market import F64, Bars
from algotrendy.engine.ml.feature_specs import KINDS, FeaturePlan, FeatureSpec, parse
from algotrendy.engine.ml.features import _FLAT, _PARKINSON, _angle, _div, _outputs, compute_last
from algotrendy.indicators import streaming as ind
from algotrendy.indicators.catalog import get_spec
from algotrendy.indicators.schema import Number

__all__ = ["FeatureStream"]

NAN = math.nan
_INF = math.inf
_INSUFFICIENT: type[Exception] = talib.InsufficientHistory  # type: ignore[attr-defined]
_log = np.log
_log1p = np.log1p

Params = tuple[Number, ...]
Push = Callable[..., Any]

# indicator calls are grouped by the inputs they read, so each group is one list of direct calls
_CLOSE, _HLC, _HLCV, _BAR = range(4)
_GROUPS = {("close",): _CLOSE, ("high", "low", "close"): _HLC, ("high", "low", "close", "volume"): _HLCV}
# the derived series the rolling primitives read (positions in ``FeatureStream._advance``'s sources)
_R1, _HL2, _LV, _CV, _SV, _V = range(6)


class _State:
    """The current bar and what this bar's producers share (filled once per ``update``)."""

    __slots__ = (
        *("angle", "c", "h", "ind", "lo", "lv", "n", "o", "prev", "r1", "ring", "roll", "size", "ts", "v"),
    )

    def __init__(self, ring_size: int) -> None:
        self.ts, self.n = 0, -1
        self.o = self.h = self.lo = self.c = self.v = self.prev = self.r1 = self.lv = NAN
        self.size = ring_size
        self.ring: list[float] = [NAN] * ring_size  # closes: bar i at i % size
        self.roll: list[float] = []
        self.ind: list[list[Any]] = [[], [], [], []]  # per input group: a float or a tuple per call
        self.angle: list[float] = []


Producer = Callable[[_State], float]


class _Handle:
    """A ``talib.stream`` handle of one TA-Lib function, with the warm-up buffer that precedes it.

    The caller keeps its calls in a list; ``push`` sits at ``slots[i]`` until the handle opens,
    then puts the handle's own ``update`` there, so every later bar is one C call with no Python
    frame around it (the catalog's streaming classes wrap the same handles with per-call checks,
    about 0.4 µs per call more). Leading NaN inputs are skipped, as the batch wrapper skips a
    column's leading NaN (the 1-bar return of the first bar)."""

    def __init__(self, fn: str, args: tuple[Number, ...], need: int, width: int, slots: list[Push]) -> None:
        self._fn: Any = getattr(talib_stream, fn)
        self._args = args
        self._need = need
        self._width = width
        self._empty: Any = NAN if width == 1 else (NAN,) * width
        self._slots, self._i = slots, len(slots)
        self._buffer: list[tuple[float, ...]] = []
        slots.append(self.push)

    def push(self, *values: float) -> Any:
        if not self._buffer and any(x != x for x in values):  # noqa: PLR0124  NaN test
            return self._empty
        self._buffer.append(values)
        if len(self._buffer) < self._need:
            return self._empty
        columns = [np.array(col, dtype=np.float64) for col in zip(*self._buffer, strict=True)]
        try:
            handle = self._fn(*columns, *self._args)
        except _INSUFFICIENT:
            return self._empty
        self._slots[self._i] = handle.update
        self._buffer = []
        value = handle.value
        return float(value) if self._width == 1 else tuple(float(x) for x in value)


def _identity(x: float) -> float:
    """SUM over 1 bar, which TA-Lib refuses (``compute`` raises there; ``compute_last`` answers
    the value itself)."""
    return x


class _Builder:
    """Collects what a plan's producers need: rolling primitives, indicator calls, ring depth."""

    def __init__(self) -> None:
        self.rolls: dict[tuple[str, int, int, tuple[float, ...]], int] = {}
        self.roll_calls: list[Push] = []
        self.roll_sources: list[int] = []
        self.calls: dict[tuple[str, Params], tuple[int, int, bool]] = {}
        self.groups: list[list[Push]] = [[], [], [], []]
        self.depth = 1  # closes kept: the largest k of ret_k (gap and r1 need 1)
        self.log_volume = False
        self.units: list[str] = []  # calendar angles computed once per bar (sin and cos share one)

    def roll(self, fn: str, source: int, n: int, *args: float) -> int:
        """Index in ``_State.roll`` of the rolling primitive ``fn(source series, n, *args)``."""
        key = (fn, source, n, args)
        if key not in self.rolls:
            self.rolls[key] = len(self.roll_calls)
            self.roll_sources.append(source)
            if fn == "SUM" and n == 1:
                self.roll_calls.append(_identity)
            else:
                _Handle(fn, (n, *args), n, 1, self.roll_calls)
        return self.rolls[key]

    def call(self, indicator: str, params: Params) -> tuple[int, int, bool]:
        """Where the outputs of ``indicator(params)`` are in ``_State.ind`` (group, index) and
        whether they come as a tuple."""
        key = (indicator, params)
        if key not in self.calls:
            spec = get_spec(indicator)
            resolved = dict(zip((p.name for p in spec.params), params, strict=True))
            group = _GROUPS.get(tuple(spec.inputs), _BAR) if spec.talib_name else _BAR
            slots = self.groups[group]
            at = len(slots)
            if group == _BAR:  # not a plain TA-Lib call: the catalog's streaming object
                slots.append(ind.stream(indicator, **resolved).update_bar)
            else:
                width = len(spec.outputs)
                _Handle(spec.talib_name or "", spec.args(resolved), spec.warmup(resolved) + 1, width, slots)
            self.calls[key] = (group, at, group == _BAR or len(spec.outputs) > 1)
        return self.calls[key]

    def angle(self, unit: str) -> int:
        """Index of the calendar angle of ``unit`` in ``_State.angle``."""
        if unit not in self.units:
            self.units.append(unit)
        return self.units.index(unit)


# ---- one producer per kind: (builder, params) -> (state -> value) --------------------------------


def _sqrt(x: float) -> float:
    """``np.sqrt``'s answer: NaN for NaN and below 0 (``math.sqrt`` raises there)."""
    return math.sqrt(x) if x >= 0.0 else NAN


def _std(var: float) -> float:
    """``np.sqrt(np.maximum(var, 0.0))``: NaN stays NaN."""
    return math.sqrt(var) if var > 0.0 else (0.0 if var <= 0.0 else NAN)


def _p_ret(b: _Builder, p: Params) -> Producer:
    k = int(p[0])
    if k == 1:
        return operator.attrgetter("r1")
    b.depth = max(b.depth, k)
    return lambda s: float(_log(s.c / s.ring[(s.n - k) % s.size]))


def _p_vol(b: _Builder, p: Params) -> Producer:
    i = b.roll("VAR", _R1, int(p[0]), 1.0)
    return lambda s: _std(s.roll[i])


def _p_park(b: _Builder, p: Params) -> Producer:
    i = b.roll("SMA", _HL2, int(p[0]))
    return lambda s: _sqrt(s.roll[i] / _PARKINSON)


def _p_volume_z(b: _Builder, p: Params) -> Producer:
    n = int(p[0])
    b.log_volume = True
    i, j = b.roll("VAR", _LV, n, 1.0), b.roll("SMA", _LV, n)

    def run(s: _State) -> float:
        std = _std(s.roll[i])
        if std != std:  # noqa: PLR0124
            return NAN
        return (s.lv - s.roll[j]) / (std if std > _FLAT else _INF)

    return run


def _p_dollar_vol(b: _Builder, p: Params) -> Producer:
    i = b.roll("SMA", _CV, int(p[0]))
    return lambda s: float(_log1p(s.roll[i]))


def _p_obv_slope(b: _Builder, p: Params) -> Producer:
    n = int(p[0])
    i, j = b.roll("SUM", _SV, n), b.roll("SUM", _V, n)
    return lambda s: float(_div(s.roll[i], s.roll[j], 0.0)) if s.n >= n else NAN


def _p_indicator(kind: str) -> Callable[[_Builder, Params], Producer]:
    indicator, idx, post = _outputs(kind)

    def build(b: _Builder, p: Params) -> Producer:
        g, k, tupled = b.call(indicator, p)
        if not tupled:
            return lambda s: float(post(s.c, s.ind[g][k]))
        if len(idx) == 1:
            first = idx[0]
            return lambda s: float(post(s.c, s.ind[g][k][first]))
        pick = operator.itemgetter(*idx)
        return lambda s: float(post(s.c, *pick(s.ind[g][k])))

    return build


def _p_calendar(kind: str) -> Callable[[_Builder, Params], Producer]:
    unit, fn = kind.split("_")
    trig = math.sin if fn == "sin" else math.cos

    def build(b: _Builder, p: Params) -> Producer:
        i = b.angle(unit)
        return lambda s: trig(s.angle[i])

    return build


def _p_clv(b: _Builder, p: Params) -> Producer:
    return lambda s: float(_div(s.c - s.lo, s.h - s.lo, 0.5))


_RULES: dict[str, Callable[[_Builder, Params], Producer]] = {
    "ret": _p_ret,
    "gap": lambda b, p: lambda s: float(_log(s.o / s.prev)),
    "co_ret": lambda b, p: lambda s: float(_log(s.c / s.o)),
    "hl_range": lambda b, p: lambda s: float(_log(s.h / s.lo)),
    "clv": _p_clv,
    "vol": _p_vol,
    "park": _p_park,
    "volume_z": _p_volume_z,
    "dollar_vol": _p_dollar_vol,
    "obv_slope": _p_obv_slope,
    **{k: _p_indicator(k) for k in KINDS if KINDS[k].indicator is not None},
    **{k: _p_calendar(k) for k in KINDS if KINDS[k].group == "calendar"},
}


class _Fallback:
    """Features with no streaming rule: ``compute_last`` over a ring of the last ``window`` bars.

    Each bar is written twice (at ``i % w`` and ``i % w + w``), so the last ``w`` bars are always
    one contiguous slice."""

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self.plan = FeaturePlan(tuple(specs))
        self.w = w = self.plan.window
        self.ts = np.zeros(2 * w, dtype=np.int64)
        self.cols = np.zeros((5, 2 * w))

    def push(self, n: int, ts: int, bar: tuple[float, float, float, float, float]) -> list[float]:
        w, q = self.w, n % self.w
        self.ts[q] = self.ts[q + w] = ts
        self.cols[:, q] = self.cols[:, q + w] = bar
        m = min(n + 1, w)
        p = (n - m + 1) % w
        o, h, lo, c, v = self.cols[:, p : p + m]
        values: list[float] = compute_last(Bars(self.ts[p : p + m], o, h, lo, c, v), self.plan).tolist()
        return values


class FeatureStream:
    """Feature rows bar by bar in O(1) per feature (no window recomputation); see the module docstring.

    ``names``: the columns (``plan.names``, as ``compute`` and a trained model name them)."""

    def __init__(self, features: str | Sequence[str] | FeaturePlan) -> None:
        self.plan = plan = parse(features)
        self.names: list[str] = plan.names
        b = _Builder()
        bases: dict[tuple[str, Params], int] = {}
        producers: list[Producer] = []
        lagged: list[tuple[int, int]] = []  # (base index, lag)
        slow: list[FeatureSpec] = []
        where: list[tuple[str, int]] = []  # per column: ("base" | "lag" | "slow", index in that part)
        for spec in plan.specs:
            rule = _RULES.get(spec.kind)
            if rule is None:
                where.append(("slow", len(slow)))
                slow.append(spec)
                continue
            key = (spec.kind, spec.params)
            if key not in bases:
                bases[key] = len(producers)
                producers.append(rule(b, spec.params))
            if spec.lag:
                where.append(("lag", len(lagged)))
                lagged.append((bases[key], spec.lag))
            else:
                where.append(("base", bases[key]))
        self._producers = producers
        self._lagged = lagged
        self._lags = max((lag for _, lag in lagged), default=0) + 1
        self._history: list[list[float]] = [[NAN] * len(producers)] * self._lags
        self._fallback = _Fallback(slow) if slow else None
        # a row is [base values, lagged values, fallback values] put in column order
        offset = {"base": 0, "lag": len(producers), "slow": len(producers) + len(lagged)}
        order = [offset[part] + i for part, i in where]
        self._order: list[int] | None = None if order == list(range(offset["slow"] + len(slow))) else order
        self._roll_calls, self._roll_sources = b.roll_calls, b.roll_sources
        self._groups = b.groups
        self._units = b.units
        self._log_volume = b.log_volume
        self._s = _State(b.depth + 1)
        self._last: F64 = np.full(len(where), NAN)

    @property
    def ready(self) -> bool:
        """At least ``plan.warmup + 1`` bars fed: every feature is defined from this bar on."""
        return self._s.n >= self.plan.warmup

    def __repr__(self) -> str:
        return f"FeatureStream({len(self.names)} features, {self._s.n + 1} bars, ready={self.ready})"

    def _check(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        s = self._s
        if s.n >= 0 and ts <= s.ts:
            raise ValueError(
                f"FeatureStream: ts must increase: got {ts} after {s.ts}; the state is unchanged"
            )
        if not (0.0 < o < _INF and 0.0 < h < _INF and 0.0 < lo < _INF and 0.0 < c < _INF and 0.0 <= v < _INF):
            raise ValueError(
                f"FeatureStream: bar at ts {ts} rejected: prices must be finite and > 0, volume finite "
                f"and >= 0 (got {(o, h, lo, c, v)}); the state is unchanged"
            )

    def _advance(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        """Move the shared state to the new bar and feed the rolling primitives and indicators."""
        s = self._s
        prev = s.ring[s.n % s.size] if s.n >= 0 else NAN
        s.ts, s.o, s.h, s.lo, s.c, s.v, s.prev = ts, o, h, lo, c, v, prev
        s.n += 1
        s.r1 = r1 = float(_log(c / prev))
        hl = float(_log(h / lo))
        if self._log_volume:
            s.lv = float(_log1p(v))
        sv = NAN if prev != prev else float((c > prev) - (c < prev)) * v  # noqa: PLR0124
        sources = (r1, hl * hl, s.lv, c * v, sv, v)
        s.roll = [f(sources[i]) for f, i in zip(self._roll_calls, self._roll_sources, strict=True)]
        close, hlc, hlcv, bar = self._groups
        s.ind = [
            [f(c) for f in close],
            [f(h, lo, c) for f in hlc],
            [f(h, lo, c, v) for f in hlcv],
            [f(ts, o, h, lo, c, v) for f in bar],
        ]
        s.angle = [_angle(unit, ts) for unit in self._units]
        s.ring[s.n % s.size] = c

    def update(self, ts: int, open: float, high: float, low: float, close: float, volume: float) -> F64:
        """Feed one closed bar; its feature row (``compute``'s row at this bar; NaN while warming up),
        a new array of ``len(names)`` values."""
        ts, o, h, lo, c, v = int(ts), float(open), float(high), float(low), float(close), float(volume)
        self._check(ts, o, h, lo, c, v)
        self._advance(ts, o, h, lo, c, v)
        s = self._s
        values = [f(s) for f in self._producers]
        n, lags, history = s.n, self._lags, self._history
        if self._lagged:
            history[n % lags] = values
            values = values + [history[(n - lag) % lags][j] for j, lag in self._lagged]
        if self._fallback is not None:
            values += self._fallback.push(n, ts, (o, h, lo, c, v))
        row: F64 = np.array(values)
        if self._order is not None:
            row = row[self._order]
        self._last = row
        return row

    def warm(self, bars: Bars) -> F64:
        """Feed ``bars`` in order (history before going live); the row of the last bar fed. With no
        bars: the latest row so far (all NaN before the first bar)."""
        cols = (bars.ts.tolist(), *(x.tolist() for x in (bars.open, bars.high, bars.low, bars.close)))
        ts, o, h, lo, c = cols
        v = bars.volume.tolist()
        update = self.update
        for i in range(len(ts)):
            update(ts[i], o[i], h[i], lo[i], c[i], v[i])
        return self._last.copy()
