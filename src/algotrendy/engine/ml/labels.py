"""Labels for supervised learning on bars: forward returns, direction, triple barrier, sample weights.

Conventions (shared with ``engine.ml.validation``):

* Samples are **bars**, addressed by integer index ``i`` (0-based, in time order). A label made at
  bar ``i`` is an *event* with span ``[t0, t1]`` of bar indices, **both ends inclusive**: ``t0 = i``
  is the bar whose close is the entry price (features must use data up to and including ``t0``),
  ``t1`` is the bar whose price settles the label. Two labels overlap when their spans share a bar.
* Returns are simple (``p[t1] / p[t0] - 1``) unless stated otherwise.
* Unknown labels are NaN (e.g. the last ``horizon`` bars, where the future is not in the data);
  drop them before fitting (``valid = ~np.isnan(label)``).

Functions:

* ``forward_returns`` / ``direction`` / ``event_ends``: fixed-horizon regression and sign targets.
* ``triple_barrier``: profit-take / stop-loss barriers as multiples of a per-bar volatility estimate
  (``ewm_volatility`` by default) and a time barrier ``horizon`` bars ahead; the label is the sign of
  the return at the first barrier touched, the time barrier included (AFML 3.4: label by the sign of
  the return when the vertical barrier is hit first). With ``side`` (a primary model's +1/-1 bets)
  the labels are meta-labels: 1 when the side-adjusted return is positive, else 0 (AFML 3.6).
* ``concurrency`` / ``uniqueness_weights`` / ``return_attribution_weights``: overlap-aware sample
  weights (AFML 4.2-4.5). Overlapping labels are not independent; weighting by average uniqueness
  keeps a run of near-identical labels from counting many times over.

Reference: M. López de Prado, *Advances in Financial Machine Learning* (Wiley, 2018), ch. 3 (labeling)
and ch. 4 (sample weights). Our own code rather than mlfinlab: that package is no longer open source
or maintained, and these are a few vectorized lines once the index conventions above are fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

PROFIT_TAKE = 1
"""``TripleBarrier.barrier``: the profit-take (upper, side-adjusted) barrier was touched first."""
STOP_LOSS = -1
"""``TripleBarrier.barrier``: the stop-loss (lower, side-adjusted) barrier was touched first."""
TIME = 0
"""``TripleBarrier.barrier``: neither was touched within ``horizon`` bars (vertical barrier)."""
UNRESOLVED = -2
"""``TripleBarrier.barrier``: no label (data ended first, or volatility/side missing at ``t0``)."""


def _as_f64(x: npt.ArrayLike, name: str) -> F64:
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return a


def _check_horizon(horizon: int) -> int:
    if int(horizon) != horizon or horizon < 1:
        raise ValueError("horizon must be a positive integer (bars)")
    return int(horizon)


def forward_returns(close: npt.ArrayLike, horizon: int, log: bool = False) -> F64:
    """Return from bar ``i``'s close to bar ``i + horizon``'s close; NaN for the last ``horizon`` bars.

    ``log=True`` gives ``log(close[i + h] / close[i])`` instead of the simple return.
    """
    c = _as_f64(close, "close")
    h = _check_horizon(horizon)
    out = np.full(len(c), np.nan)
    if len(c) > h:
        ratio = c[h:] / c[:-h]
        out[:-h] = np.log(ratio) if log else ratio - 1.0
    return out


def direction(close: npt.ArrayLike, horizon: int, threshold: float = 0.0) -> F64:
    """Sign target: 1.0 if the ``horizon``-bar forward return is above ``threshold``, 0.0 if below
    ``-threshold``, NaN otherwise.

    ``threshold`` (a simple return, >= 0) is a dead zone: moves within ``[-threshold, threshold]``
    are too small to call and get NaN (dropped from training) rather than a coin-flip class. With
    the default 0 only an exactly flat return is NaN. The last ``horizon`` bars are NaN (unknown).
    """
    if not threshold >= 0.0:
        raise ValueError("threshold must be >= 0")
    r = forward_returns(close, horizon)
    out = np.full(len(r), np.nan)
    out[r > threshold] = 1.0
    out[r < -threshold] = 0.0
    return out


def event_ends(n_bars: int, horizon: int) -> I64:
    """``t1 = i + horizon`` for each bar ``i`` (the fixed-horizon label's span end), clipped to
    ``n_bars - 1`` (the last ``horizon`` bars have NaN labels; clipping keeps their spans valid)."""
    h = _check_horizon(horizon)
    if n_bars < 0:
        raise ValueError("n_bars must be >= 0")
    return np.minimum(np.arange(n_bars, dtype=np.int64) + h, max(n_bars - 1, 0))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _ewm_vol_kernel(c: F64, alpha: float, min_periods: int, out: F64) -> None:
    mean = 0.0
    var = 0.0
    count = 0
    for t in range(1, len(c)):
        r = c[t] / c[t - 1] - 1.0
        if math.isfinite(r):
            if count == 0:
                mean = r
                var = 0.0
            else:
                d = r - mean
                mean += alpha * d
                var = (1.0 - alpha) * (var + alpha * d * d)
            count += 1
        out[t] = math.sqrt(var) if count >= min_periods else math.nan


def ewm_volatility(close: npt.ArrayLike, span: int = 100, min_periods: int = 20) -> F64:
    """Point-in-time volatility of one-bar simple returns: an exponentially weighted std (``alpha =
    2 / (span + 1)``, recursive, no bias correction; equals pandas' ``pct_change().ewm(span=span,
    adjust=False).std(bias=True)``). ``out[i]`` uses returns up to bar ``i`` only; NaN before
    ``min_periods`` returns. Non-finite returns are skipped. The default barrier width (AFML 3.1)."""
    c = _as_f64(close, "close")
    if span < 1 or min_periods < 1:
        raise ValueError("span and min_periods must be >= 1")
    out = np.full(len(c), np.nan)
    _ewm_vol_kernel(c, 2.0 / (span + 1.0), int(min_periods), out)
    return out


@dataclass(frozen=True, slots=True)
class TripleBarrier:
    """One triple-barrier label per bar ``t0 = i`` (index arrays aligned with the input bars)."""

    label: F64
    """-1/0/+1 (sign of ``ret``), or 0/1 meta-labels when ``side`` was given; NaN if unresolved."""
    ret: F64
    """Side-adjusted simple return from ``close[t0]`` to the exit: the barrier's level when the touch
    came from ``high``/``low``, the close at ``t1`` otherwise; NaN if unresolved."""
    t1: I64
    """Bar index where the first barrier was touched (``t0 < t1 <= t0 + horizon``); -1 if unresolved."""
    barrier: I8
    """``PROFIT_TAKE`` (1), ``STOP_LOSS`` (-1), ``TIME`` (0) or ``UNRESOLVED`` (-2)."""

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Bars with a label."""
        return np.asarray(self.barrier != UNRESOLVED)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _triple_barrier_kernel(
    c: F64, hi: F64, lo: F64, vol: F64, side: F64,
    horizon: int, pt: float, sl: float, use_hl: bool, meta: bool,
    label: F64, ret: F64, t1: I64, barrier: I8,
) -> None:  # fmt: skip
    n = len(c)
    for i in range(n):
        c0 = c[i]
        s = side[i]
        v = vol[i]
        if not (math.isfinite(c0) and c0 > 0.0 and math.isfinite(s) and s != 0.0):
            continue
        s = 1.0 if s > 0.0 else -1.0
        up = math.inf
        dn = -math.inf
        if pt > 0.0 or sl > 0.0:
            if not (math.isfinite(v) and v > 0.0):
                continue
            if pt > 0.0:
                up = pt * v
            if sl > 0.0:
                dn = -sl * v
        end = i + horizon
        last = min(end, n - 1)
        for t in range(i + 1, last + 1):
            if s > 0.0:
                best = hi[t] / c0 - 1.0
                worst = lo[t] / c0 - 1.0
            else:
                best = 1.0 - lo[t] / c0
                worst = 1.0 - hi[t] / c0
            # both inside one bar: the order is unknown, assume the stop (the conservative choice)
            if worst <= dn:
                barrier[i] = -1
                ret[i] = dn if use_hl else worst
                t1[i] = t
                break
            if best >= up:
                barrier[i] = 1
                ret[i] = up if use_hl else best
                t1[i] = t
                break
        if barrier[i] == -2 and end <= n - 1:
            barrier[i] = 0
            ret[i] = s * (c[end] / c0 - 1.0)
            t1[i] = end
        if barrier[i] != -2:
            r = ret[i]
            if meta:
                label[i] = 1.0 if r > 0.0 else 0.0
            else:
                label[i] = 1.0 if r > 0.0 else (-1.0 if r < 0.0 else 0.0)


def triple_barrier(
    close: npt.ArrayLike,
    *,
    horizon: int,
    profit_take: float | None,
    stop_loss: float | None,
    volatility: npt.ArrayLike | None = None,
    side: npt.ArrayLike | None = None,
    high: npt.ArrayLike | None = None,
    low: npt.ArrayLike | None = None,
) -> TripleBarrier:
    """Triple-barrier labels (AFML 3.4) for an event at every bar ``t0 = i``, entered at ``close[i]``.

    * Horizontal barriers at ``+profit_take * volatility[i]`` and ``-stop_loss * volatility[i]``
      (side-adjusted simple returns from ``close[i]``); ``0``/``None`` disables one. ``volatility``
      is a per-bar return-scale estimate known at ``t0`` (default ``ewm_volatility(close)``); it is
      not scaled by the horizon. Bars with NaN volatility are unresolved (unless both are disabled).
    * Vertical (time) barrier at ``i + horizon``: the label is the sign of the return there, so a
      time-out is -1/+1 by how it ended, 0 only when exactly flat (AFML's ``getBins``).
    * Touches are checked on bars ``i+1 .. i+horizon``: with ``high``/``low`` (both or neither) the
      bar's extremes are used and ``ret`` is the barrier level (gaps through it are not modelled);
      otherwise closes. If both barriers fall inside one bar the stop-loss is assumed first.
    * ``side`` (+1 long / -1 short per bar, from a primary model; 0/NaN = no bet -> unresolved)
      flips returns to the bet's direction and turns labels into meta-labels: 1 if ``ret > 0``.
    * Events whose time barrier is past the end of the data and that touched nothing are unresolved.

    A numba loop (one pass per event, at most ``horizon`` bars each): the first touch is a
    sequential search that does not vectorize without ``n * horizon`` memory.
    """
    c = _as_f64(close, "close")
    n = len(c)
    h = _check_horizon(horizon)
    pt = float(profit_take or 0.0)
    sl = float(stop_loss or 0.0)
    if pt < 0.0 or sl < 0.0 or math.isnan(pt) or math.isnan(sl):
        raise ValueError("profit_take and stop_loss must be >= 0 (or None to disable)")
    if (high is None) != (low is None):
        raise ValueError("give both high and low, or neither")
    hi = c if high is None else _as_f64(high, "high")
    lo = c if low is None else _as_f64(low, "low")
    vol = ewm_volatility(c) if volatility is None else _as_f64(volatility, "volatility")
    sd = np.ones(n) if side is None else _as_f64(side, "side")
    for name, a in (("high", hi), ("low", lo), ("volatility", vol), ("side", sd)):
        if len(a) != n:
            raise ValueError(f"{name} must have the same length as close")
    label = np.full(n, np.nan)
    ret = np.full(n, np.nan)
    t1 = np.full(n, -1, dtype=np.int64)
    barrier = np.full(n, UNRESOLVED, dtype=np.int8)
    _triple_barrier_kernel(
        c, hi, lo, vol, sd, h, pt, sl, high is not None, side is not None, label, ret, t1, barrier
    )
    return TripleBarrier(label=label, ret=ret, t1=t1, barrier=barrier)


def spans(
    t0: npt.ArrayLike, t1: npt.ArrayLike, n_bars: int | None = None, *, ordered: bool = False
) -> tuple[I64, I64]:
    """Label spans ``[t0_i, t1_i]`` (bar indices) as int64 arrays, checked: one-dimensional, the
    same length, integers, ``t0 <= t1``, within ``[0, n_bars)`` when ``n_bars`` is given, and
    sorted by ``t0`` when ``ordered``. ``ValueError`` otherwise. (The one check of spans: labels
    and the purged splitters both use it.)"""
    a = np.asarray(t0)
    b = np.asarray(t1)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError("t0 and t1 must be one-dimensional and of the same length")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ValueError("t0 and t1 must be integer bar indices")
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    if np.any(b < a):
        raise ValueError("every span needs t1 >= t0")
    if n_bars is not None and len(a) and (a.min() < 0 or b.max() >= n_bars):
        raise ValueError("spans must satisfy 0 <= t0 <= t1 < n_bars")
    if ordered and np.any(np.diff(a) < 0):
        raise ValueError("samples must be sorted by t0")
    return a, b


def concurrency(t0: npt.ArrayLike, t1: npt.ArrayLike, n_bars: int) -> I64:
    """``c[t]``: number of labels whose span ``[t0_i, t1_i]`` contains bar ``t`` (AFML 4.3)."""
    a, b = spans(t0, t1, n_bars)
    d = np.bincount(a, minlength=n_bars + 1) - np.bincount(b + 1, minlength=n_bars + 1)
    return np.cumsum(d[:n_bars]).astype(np.int64)


def uniqueness_weights(t0: npt.ArrayLike, t1: npt.ArrayLike, n_bars: int) -> F64:
    """Average uniqueness of each label (AFML 4.4): ``u_i = mean over t in [t0_i, t1_i] of 1 / c_t``.

    In (0, 1]: 1 for a label that shares no bar with another, ``1/k`` for ``k`` identical spans.
    Pass it as ``sample_weight`` (AFML also uses its mean as the bagging ``max_samples``). Spans are
    bar indices, inclusive; vectorized with cumulative sums (O(n_bars + n_labels)).
    """
    a, b = spans(t0, t1, n_bars)
    c = concurrency(a, b, n_bars)
    inv = np.zeros(n_bars)
    np.divide(1.0, c, out=inv, where=c > 0)
    s = np.concatenate(([0.0], np.cumsum(inv)))
    return np.asarray((s[b + 1] - s[a]) / (b - a + 1), dtype=np.float64)


def return_attribution_weights(t0: npt.ArrayLike, t1: npt.ArrayLike, close: npt.ArrayLike) -> F64:
    """Return-attribution weights (AFML 4.5): ``w_i = |sum over t in (t0_i, t1_i] of r_t / c_t|``,
    ``r_t = log(close[t] / close[t-1])``, scaled to sum to the number of labels.

    Labels that earned large, unshared absolute log-returns weigh more; the sum runs over the bars
    the event was exposed to (after its entry at ``close[t0]``; AFML's snippet also counts the bar
    ``t0`` itself). Zero-span labels (``t1 == t0``) get weight 0.
    """
    c = _as_f64(close, "close")
    n = len(c)
    a, b = spans(t0, t1, n)
    conc = concurrency(a, b, n)
    r = np.zeros(n)
    if n > 1:
        r[1:] = np.log(c[1:] / c[:-1])
    attrib = np.zeros(n)
    np.divide(r, conc, out=attrib, where=conc > 0)
    s = np.concatenate(([0.0], np.cumsum(attrib)))
    w = np.abs(s[b + 1] - s[a + 1])
    total = w.sum()
    return np.asarray(w * (len(w) / total) if total > 0 else w, dtype=np.float64)
