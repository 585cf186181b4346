"""ML features from bars: returns, volatility, indicator values, volume, calendar and lags.

    from algotrendy.engine.ml.features import compute, compute_last, parse

    plan = parse("standard")            # cached; a FeaturePlan (names, warmup, window)
    frame = compute(bars, plan)         # FeatureFrame: names, values (n_bars, n_features), ts
    row = compute_last(bars, plan)      # the last row only, from the last window(plan) bars

What they are (the language and the named sets ``minimal``/``standard``/``extended`` are in
``feature_specs``; ``kinds()`` lists every kind with its parameters):

* returns: **log** returns ``ln(close_t / close_{t-k})`` (``ret_k``), the opening gap, the bar's
  own ``ln(close/open)`` and ``ln(high/low)``, where the close sits in the bar (``clv``);
* volatility: population std of 1-bar log returns (``vol_n``) and Parkinson's high-low estimator
  (``park_n``), both **per bar, not annualized**;
* indicators from the indicator layer (``indicators.catalog``, TA-Lib-exact), made scale-free so
  that a model trained on one symbol or period applies to another: oscillators as TA-Lib gives
  them (rsi, adx, mfi, stoch 0..100; willr -100..0; cci), price-level ones relative to the close
  in % (``atr_pct`` = NATR, ``macd_*_pct``, ``bb_width``, ``sma_dist``/``ema_dist``), ``bb_pctb``
  as a fraction of the band;
* volume: z-score of ln(1 + volume), the OBV slope over n bars as a share of their volume, and
  ln(1 + mean dollar volume) (the one level feature: liquidity, deliberately not scale-free);
* calendar: sin/cos of the weekday, time of day and month, from ``ts`` in UTC (the bar's open
  time, as ``Bars`` labels it; the hour features are constant on daily bars);
* lags: any feature as it was k bars earlier (``ret_1_lag2``, ``lag(rsi_14,1..3)``).

Conventions: float64 everywhere; NaN where a feature is not defined yet (its warm-up:
``warmup(features)`` leading rows on complete data); a NaN in the input bars propagates, it is not
repaired. A zero range (high == low, bands that meet, flat or no volume) gives the neutral value
the kind documents (clv and bb_pctb 0.5, volume_z and obv_slope 0), not inf or NaN.

**Point in time.** Row ``t`` is computed from bars ``0..t`` only: it is known at the close of bar
``t``, so a label for it must come from bar ``t + 1`` onwards. Changing any bar after ``t`` leaves
rows ``0..t`` bit-identical (tested). EMA/Wilder-based features (rsi, macd_*, atr_pct, adx,
ema_dist) have infinite memory: they depend on where the data *starts*, never on the future.
``compute_last`` on the last ``window(features)`` bars (longer than the warm-up for those: see
``feature_specs``) matches the full-history value within 1e-6 (relative, absolute below 1); for
every other feature it equals the batch row to rounding (1e-9 relative, 1e-12 absolute near 0).

Why our own code: the feature definitions (which horizons, how each is normalized, what the
warm-up and point-in-time rules are) are product logic that training and inference must share
exactly; the indicator arithmetic itself is the indicator layer's (each catalog entry names the
TA-Lib function and its arguments; a plan resolves them once and calls them directly). Batch and
single-row paths are separate on purpose: the batch one is vectorized (no per-bar Python), the
single-row one reads only the bars each feature needs (inference's p99 target is 100 us per row,
features included). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import talib

from algotrendy.core.market import F64, I64, NS_PER_SECOND, Bars
from algotrendy.engine.ml.feature_specs import (
    FEATURE_SETS,
    KINDS,
    FeatureError,
    FeaturePlan,
    FeatureSpec,
    parse,
)
from algotrendy.indicators import batch
from algotrendy.indicators.catalog import get_spec
from algotrendy.indicators.schema import Number

__all__ = [
    "FEATURE_SETS",
    "FeatureError",
    "FeatureFrame",
    "FeaturePlan",
    "FeatureSpec",
    "compute",
    "compute_last",
    "kinds",
    "parse",
    "warmup",
    "window",
]

Features = str | Sequence[str] | FeaturePlan
Params = tuple[Number, ...]
DAY_NS = 86_400 * NS_PER_SECOND
_TWO_PI = 2.0 * math.pi
_PARKINSON = 4.0 * math.log(2.0)
_FLAT = 1e-9  # volume_z: a std of ln(1 + volume) below this counts as "all equal"


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """Features of every bar: ``values[i, j]`` is feature ``names[j]`` at bar ``ts[i]``."""

    names: list[str]
    values: F64
    ts: I64

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> F64:
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(name) from None


def warmup(features: Features) -> int:
    """Leading rows of ``compute`` that hold a NaN, on bars without missing values."""
    return parse(features).warmup


def window(features: Features) -> int:
    """Bars ``compute_last`` reads (the latest ones): warm-up + 1, plus the settle bars of
    infinite-memory features."""
    return parse(features).window


def kinds() -> list[dict[str, object]]:
    """Every feature kind, JSON-ready (name, group, params, description, infinite_memory)."""
    return [k.to_dict() for k in KINDS.values()]


def _nan(n: int) -> F64:
    return np.full(n, np.nan)


def _talib(fn: str, x: F64, *args: float) -> F64:
    """A rolling TA-Lib primitive (SMA, SUM, VAR) of one column; all-NaN input gives NaN."""
    try:
        out: F64 = getattr(talib, fn)(x, *args)
    except Exception:  # TA-Lib refuses an all-NaN column; the catalog's wrapper answers NaN
        out = batch.talib_call(fn, (x,), args)[0]
    return out


def _div(num: Any, den: Any, fill: float) -> Any:
    """``num / den`` with ``fill`` where ``den == 0`` (NaN stays NaN); arrays or scalars."""
    if isinstance(den, np.ndarray):
        out = num / den
        out[den == 0] = fill
        return out
    return fill if den == 0 else num / den


# ---- indicator-backed kinds: one expression of the close and the indicator's outputs, evaluated
# on whole columns (batch) or on one row's numbers (single row) --------------------------------------

_POST: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {
    "rsi": (("rsi",), lambda c, x: x),
    "macd_pct": (("macd",), lambda c, x: 100.0 * x / c),
    "macd_signal_pct": (("macd_signal",), lambda c, x: 100.0 * x / c),
    "macd_hist_pct": (("macd_hist",), lambda c, x: 100.0 * x / c),
    "atr_pct": (("natr",), lambda c, x: x),
    "adx": (("adx",), lambda c, x: x),
    "cci": (("cci",), lambda c, x: x),
    "willr": (("willr",), lambda c, x: x),
    "mfi": (("mfi",), lambda c, x: x),
    "stoch_k": (("stoch_k",), lambda c, x: x),
    "stoch_d": (("stoch_d",), lambda c, x: x),
    "bb_pctb": (("bb_upper", "bb_lower"), lambda c, u, lo: _div(c - lo, u - lo, 0.5)),
    "bb_width": (("bb_upper", "bb_middle", "bb_lower"), lambda c, u, m, lo: 100.0 * (u - lo) / m),
    "sma_dist": (("sma",), lambda c, x: 100.0 * (c / x - 1.0)),
    "ema_dist": (("ema",), lambda c, x: 100.0 * (c / x - 1.0)),
}


class _Data:
    """Columns of the bars with memoized intermediates (log returns, indicator outputs)."""

    def __init__(self, bars: Bars, start: int = 0) -> None:
        self.ts = bars.ts[start:]
        self.open = bars.open[start:]
        self.high = bars.high[start:]
        self.low = bars.low[start:]
        self.close = bars.close[start:]
        self.volume = bars.volume[start:]
        self.n = len(self.ts)
        self._memo: dict[object, Any] = {}

    def memo(self, key: object, make: Callable[[], Any]) -> Any:
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = make()
        return value

    def r1(self) -> F64:
        """1-bar log returns aligned to bars (NaN at 0)."""

        def make() -> F64:
            r = _nan(self.n)
            r[1:] = np.log(self.close[1:] / self.close[:-1])
            return r

        out: F64 = self.memo("r1", make)
        return out

    def ind(self, indicator: str, params: Params) -> tuple[F64, ...]:
        """The outputs of ``indicator`` in the catalog's order (``_Call.run`` computed them)."""
        out: tuple[F64, ...] = self._memo[(indicator, params)]
        return out


@dataclass(frozen=True, slots=True)
class _Call:
    """One catalog indicator call, resolved once per plan: TA-Lib function, inputs, arguments."""

    key: tuple[str, Params]
    fn: Callable[..., Any]
    talib_name: str
    inputs: tuple[str, ...]
    args: tuple[Number, ...]
    need: int  # bars the single-row path gives it: the largest window of the features using it

    def run(self, d: _Data, tail: int | None = None) -> None:
        if tail is None:
            arrays = [getattr(d, c) for c in self.inputs]
        else:
            arrays = [getattr(d, c)[-tail:] for c in self.inputs]
        try:  # the catalog's own call (batch.talib_call) minus its per-call checks
            values = self.fn(*arrays, *self.args)
        except Exception:  # all-NaN input: TA-Lib refuses it, the catalog answers NaN
            values = batch.talib_call(self.talib_name, tuple(arrays), self.args)
        d._memo[self.key] = values if isinstance(values, tuple) else (values,)


@dataclass(frozen=True, slots=True)
class _Compiled:
    calls: tuple[_Call, ...]
    last: tuple[tuple[Callable[[_Data, Params, int], float], Params, int, int], ...]


@lru_cache(maxsize=256)
def _compile(plan: FeaturePlan) -> _Compiled:
    calls: dict[tuple[str, Params], _Call] = {}
    for s in plan.specs:
        name = KINDS[s.kind].indicator
        if name is None:
            continue
        spec = get_spec(name)
        key = (name, s.params)
        need = max(s.window, calls[key].need if key in calls else 0)
        resolved = dict(zip((p.name for p in spec.params), s.params, strict=True))
        fn = spec.talib_name or ""
        calls[key] = _Call(key, getattr(talib, fn), fn, tuple(spec.inputs), spec.args(resolved), need)
    last = tuple((_LAST[s.kind], s.params, s.lag, s.warmup) for s in plan.specs)
    return _Compiled(tuple(calls.values()), last)


# ---- batch: whole columns, vectorized -----------------------------------------------------------


def _b_ret(d: _Data, p: Params) -> F64:
    k, c, out = int(p[0]), d.close, _nan(d.n)
    if k < d.n:
        out[k:] = np.log(c[k:] / c[:-k])
    return out


def _b_gap(d: _Data, p: Params) -> F64:
    out = _nan(d.n)
    out[1:] = np.log(d.open[1:] / d.close[:-1])
    return out


def _b_vol(d: _Data, p: Params) -> F64:
    out: F64 = np.sqrt(np.maximum(_talib("VAR", d.r1(), int(p[0]), 1.0), 0.0))
    return out


def _b_park(d: _Data, p: Params) -> F64:
    y2 = d.memo("hl2", lambda: np.log(d.high / d.low) ** 2)
    out: F64 = np.sqrt(_talib("SMA", y2, int(p[0])) / _PARKINSON)
    return out


def _b_volume_z(d: _Data, p: Params) -> F64:
    n, lv = int(p[0]), d.memo("lv", lambda: np.log1p(d.volume))
    std = np.sqrt(np.maximum(_talib("VAR", lv, n, 1.0), 0.0))
    z = (lv - _talib("SMA", lv, n)) / np.where(std > _FLAT, std, np.inf)
    out: F64 = np.where(np.isnan(std), np.nan, z)
    return out


def _b_dollar_vol(d: _Data, p: Params) -> F64:
    out: F64 = np.log1p(_talib("SMA", d.close * d.volume, int(p[0])))
    return out


def _b_obv_slope(d: _Data, p: Params) -> F64:
    n, c, v = int(p[0]), d.close, d.volume
    signed = _nan(d.n)
    signed[1:] = np.sign(c[1:] - c[:-1]) * v[1:]
    if n == 1:  # TA-Lib's SUM refuses a period of 1: the sum of one value is the value
        den, num = np.array(v, dtype=np.float64), signed
    else:
        den, num = _talib("SUM", v, n), _talib("SUM", signed, n)
    den[:n] = np.nan
    out: F64 = _div(num, den, 0.0)
    return out


def _civil_month(days: Any) -> Any:
    """Month 0..11 of day counts since 1970-01-01 (H. Hinnant's civil_from_days); ints or arrays."""
    doe = (days + 719_468) % 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    mp = (5 * (doe - (365 * yoe + yoe // 4 - yoe // 100)) + 2) // 153  # 0 = March
    return (mp + 2) % 12


def _angle(unit: str, ts: Any) -> Any:
    """The calendar angle of ``unit`` (dow, hour, month) at ``ts`` (ns, UTC); ints or arrays."""
    days = ts // DAY_NS
    if unit == "dow":
        return _TWO_PI * ((days + 3) % 7) / 7.0  # 1970-01-01 was a Thursday (Monday = 0)
    if unit == "hour":
        return _TWO_PI * ((ts - days * DAY_NS) / DAY_NS)
    return _TWO_PI * _civil_month(days) / 12.0


def _outputs(kind: str) -> tuple[str, tuple[int, ...], Callable[..., Any]]:
    """The indicator behind ``kind``, the positions of the outputs its expression reads, and it."""
    indicator = KINDS[kind].indicator or ""
    names, post = _POST[kind]
    outputs = get_spec(indicator).outputs
    return indicator, tuple(outputs.index(name) for name in names), post


def _b_ind(kind: str) -> Callable[[_Data, Params], F64]:
    indicator, idx, post = _outputs(kind)

    def run(d: _Data, p: Params) -> F64:
        o = d.ind(indicator, p)
        out: F64 = np.asarray(post(d.close, *(o[k] for k in idx)), dtype=np.float64)
        return out

    return run


def _b_cal(kind: str) -> Callable[[_Data, Params], F64]:
    unit, fn = kind.split("_")
    trig = np.sin if fn == "sin" else np.cos

    def run(d: _Data, p: Params) -> F64:
        out: F64 = trig(d.memo(unit, lambda: _angle(unit, d.ts)))
        return out

    return run


_BATCH: dict[str, Callable[[_Data, Params], F64]] = {
    "ret": _b_ret,
    "gap": _b_gap,
    "co_ret": lambda d, p: np.log(d.close / d.open),
    "hl_range": lambda d, p: np.log(d.high / d.low),
    "clv": lambda d, p: _div(d.close - d.low, d.high - d.low, 0.5),
    "vol": _b_vol,
    "park": _b_park,
    "volume_z": _b_volume_z,
    "dollar_vol": _b_dollar_vol,
    "obv_slope": _b_obv_slope,
    **{k: _b_ind(k) for k in _POST},
    **{k: _b_cal(k) for k in KINDS if KINDS[k].group == "calendar"},
}


def compute(bars: Bars, features: Features) -> FeatureFrame:
    """Every feature at every bar (vectorized). ``features``: a set name, a comma-separated
    string, a list of set names and spec strings, or a parsed ``FeaturePlan``."""
    plan = parse(features)
    d = _Data(bars)
    values = np.empty((d.n, len(plan.specs)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for call in _compile(plan).calls:
            call.run(d)
        for j, spec in enumerate(plan.specs):
            col = _BATCH[spec.kind](d, spec.params)
            if spec.lag:
                lag = min(spec.lag, d.n)
                values[:lag, j] = np.nan
                values[lag:, j] = col[: d.n - lag]
            else:
                values[:, j] = col
    return FeatureFrame(plan.names, values, bars.ts)


# ---- one row: the value at index i = n - 1 - lag, from the bars it needs --------------------------


def _ln(x: float) -> float:
    """``math.log`` that answers like ``np.log`` outside its domain (-inf at 0, NaN below)."""
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _l_vol(d: _Data, p: Params, i: int) -> float:
    n = int(p[0])
    x = d.r1()[i - n + 1 : i + 1]  # the window's 1-bar log returns, shared by every vol_n
    mean = x.sum() / n
    return math.sqrt(max(x.dot(x) / n - mean * mean, 0.0))


def _l_park(d: _Data, p: Params, i: int) -> float:
    n = int(p[0])
    y = np.log(d.high[i - n + 1 : i + 1] / d.low[i - n + 1 : i + 1])
    return math.sqrt(y.dot(y) / n / _PARKINSON)


def _l_volume_z(d: _Data, p: Params, i: int) -> float:
    n = int(p[0])
    x = np.log1p(d.volume[i - n + 1 : i + 1])
    mean = x.sum() / n
    std = math.sqrt(max(x.dot(x) / n - mean * mean, 0.0))
    if std > _FLAT:
        return float((x[-1] - mean) / std)
    return math.nan if math.isnan(std) else 0.0  # missing volume: NaN; flat: 0


def _l_dollar_vol(d: _Data, p: Params, i: int) -> float:
    n = int(p[0])
    x = d.close[i - n + 1 : i + 1].dot(d.volume[i - n + 1 : i + 1]) / n
    return math.log1p(x) if x > -1 else _ln(1.0 + x)


def _l_obv_slope(d: _Data, p: Params, i: int) -> float:
    n, c = int(p[0]), d.close
    v = d.volume[i - n + 1 : i + 1]
    den = v.sum()
    return float(np.sign(c[i - n + 1 : i + 1] - c[i - n : i]).dot(v) / den) if den != 0 else 0.0


def _l_cal(kind: str) -> Callable[[_Data, Params, int], float]:
    unit, fn = kind.split("_")
    trig = math.sin if fn == "sin" else math.cos
    return lambda d, p, i: trig(_angle(unit, int(d.ts[i])))


def _l_ind(kind: str) -> Callable[[_Data, Params, int], float]:
    indicator, idx, post = _outputs(kind)
    first = idx[0]

    def run(d: _Data, p: Params, i: int) -> float:
        o, j = d._memo[(indicator, p)], i - d.n  # from the end: the call had only the tail
        if len(idx) == 1:
            return float(post(d.close[i], o[first][j]))
        return float(post(d.close[i], *[o[k][j] for k in idx]))

    return run


def _l_clv(d: _Data, p: Params, i: int) -> float:
    return float(_div(d.close[i] - d.low[i], d.high[i] - d.low[i], 0.5))


_LAST: dict[str, Callable[[_Data, Params, int], float]] = {
    "ret": lambda d, p, i: _ln(d.close[i] / d.close[i - int(p[0])]),
    "gap": lambda d, p, i: _ln(d.open[i] / d.close[i - 1]),
    "co_ret": lambda d, p, i: _ln(d.close[i] / d.open[i]),
    "hl_range": lambda d, p, i: _ln(d.high[i] / d.low[i]),
    "clv": _l_clv,
    "vol": _l_vol,
    "park": _l_park,
    "volume_z": _l_volume_z,
    "dollar_vol": _l_dollar_vol,
    "obv_slope": _l_obv_slope,
    **{k: _l_ind(k) for k in _POST},
    **{k: _l_cal(k) for k in KINDS if KINDS[k].group == "calendar"},
}


def compute_last(bars: Bars, features: Features) -> F64:
    """The features of the latest bar, shape ``(n_features,)``: ``compute(bars, features)``'s
    last row, reading only the last ``window(features)`` bars (pass at least that many; with
    fewer, infinite-memory features lose accuracy and features short of their warm-up are NaN).
    Pass a ``FeaturePlan`` (``parse(...)``) on a hot path to skip even the cached parse."""
    plan = parse(features)
    compiled = _compile(plan)
    n = len(bars)
    d = _Data(bars, max(0, n - plan.window))
    last = d.n - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for call in compiled.calls:
            call.run(d, call.need)
        out = [
            fn(d, params, last - lag) if last >= warm else math.nan for fn, params, lag, warm in compiled.last
        ]
    return np.array(out, dtype=np.float64)
