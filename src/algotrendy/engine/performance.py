"""Portfolio performance measurement: time- and money-weighted returns, risk relative to a
benchmark, contribution to return, Brinson-Fachler attribution and the daily metrics series.

Conventions (the same as :mod:`algotrendy.engine.metrics`; read its docstring too):

* **Returns are simple** per-period returns; ``ppy`` is the number of periods per year (252 for
  daily stock bars) and a span of ``n`` returns is ``n / ppy`` years, as empyrical computes it.
  The risk-free rate ``rf`` is annual; per period it is ``(1 + rf) ** (1 / ppy) - 1``.
* **Time-weighted return** (GIPS; Bacon, *Practical Portfolio Performance Measurement and
  Attribution*, 2nd ed., ch. 2): ``values[0]`` is the starting value and ``values[t]`` the value
  at the end of period ``t`` (``t = 1..n``); ``flows[t - 1]`` is the external flow of period
  ``t`` (deposit ``+``, withdrawal ``-``), made at the **start** of the period, before the market
  moves: ``r_t = V_t / (V_{t-1} + F_t) - 1``. Where ``V_{t-1} + F_t <= 0`` (nothing invested, e.g.
  after everything was withdrawn) the return is 0. Linked: ``prod(1 + r) - 1``; annualized:
  ``(1 + R) ** (1 / years) - 1``.
* **Money-weighted return** (IRR, XIRR): the annual rate ``x`` solving
  ``sum(F_i (1 + x) ** (T - t_i)) = V_T`` for flows ``F_i`` into the portfolio at times ``t_i``
  (years) and the value ``V_T`` at ``T``; solved in ``y = ln(1 + x)`` with ``scipy``'s
  ``brentq`` on a bracket found by scanning a grid of rates; when several rates solve the
  equation (flows of both signs), the one closest to 0. :func:`xirr` is Excel's ``XIRR``:
  amounts with the investor's sign (paid in ``-``, received ``+``), ``(d_i - d_0) / 365`` years.
* **Relative to a benchmark** ``rb`` (per-period returns on the same dates):
  ``tracking_error = std(r - rb, ddof=1) * sqrt(ppy)``; ``information_ratio = mean(r - rb) * ppy
  / tracking_error`` (empyrical's ``excess_sharpe`` is the same ratio *not* annualized:
  ``IR = excess_sharpe * sqrt(ppy)``); up/down capture = CAGR of ``r`` over the periods where
  ``rb > 0`` (``< 0``) divided by the CAGR of ``rb`` over them, each CAGR
  ``prod(1 + x) ** (ppy / m) - 1`` over its own ``m`` periods (empyrical's ``up_capture`` /
  ``down_capture``, exactly); alpha, beta and correlation are
  :mod:`~algotrendy.engine.metrics`' (empyrical's ``alpha_beta``: OLS beta, alpha compounded
  ``(1 + mean excess) ** ppy - 1``); ``active_return`` is the portfolio's CAGR minus the
  benchmark's.
* **Contribution to return**: with start-of-period weights ``w`` and asset returns ``r``
  (``(n, k)``), period ``t`` contributes ``w_ti r_ti`` and the portfolio returns
  ``R_t = sum_i w_ti r_ti`` (weights need not sum to 1: the rest is cash earning 0). Periods
  are linked with **Carino's logarithmic smoothing** (Carino 1999, "Combining Attribution Effects
  Over Time", *J. Performance Measurement* 3(4)): ``k_t = ln(1 + R_t) / R_t``,
  ``K = ln(1 + R) / R`` (both 1 at ``R = 0``), ``C_i = sum_t (k_t / K) w_ti r_ti``; then
  ``sum_i C_i = R = prod(1 + R_t) - 1`` exactly.
* **Brinson-Fachler** (Brinson & Fachler 1985; Bacon ch. 5), per segment ``i`` with
  ``Rb = sum wb rb``: allocation ``(wp_i - wb_i)(rb_i - Rb)``, selection ``wb_i (rp_i - rb_i)``,
  interaction ``(wp_i - wb_i)(rp_i - rb_i)``; they sum to ``Rp - Rb`` (the weights of both
  sides must sum to the same total: include cash as a segment). Over several periods the
  effects are Carino-linked with ``k_t = (ln(1 + Rp_t) - ln(1 + Rb_t)) / (Rp_t - Rb_t)``
  (``1 / (1 + Rb_t)`` when equal) and ``K`` the same of the compounded returns, so they sum to
  ``prod(1 + Rp_t) - prod(1 + Rb_t)``.
* **Daily series**: expanding-window (since inception) statistics on the TWR returns, computed
  with cumulative sums: volatility ``std(ddof=1) * sqrt(ppy)``, Sharpe as metrics (empyrical's
  ``sharpe_ratio``), drawdown of the TWR index ``prod(1 + r)`` anchored at 1 (a loss in the first
  period is a drawdown) and its running minimum.

Undefined scalars (no data, zero variance, no root, a negative growth to annualize) are ``None``;
in arrays they are NaN (documented per function). Inputs must be finite: NaN is refused with a
``ValueError``, as are mismatched shapes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from algotrendy.core.market import F64
from algotrendy.engine.metrics import (
    _TINY_STD,
    _alpha_beta,
    _check_ppy,
    _rf_per_bar,
    beta_correlation,
    drawdown,
)

__all__ = [
    "Attribution",
    "ContributionResult",
    "DailySeries",
    "annualized",
    "brinson_fachler",
    "brinson_fachler_linked",
    "capture_ratios",
    "contributions",
    "daily_series",
    "information_ratio",
    "linked_return",
    "money_weighted_return",
    "relative_metrics",
    "time_weighted_returns",
    "tracking_error",
    "xirr",
]

# --------------------------------------------------------------------------- input checks


def _vec(x: F64 | Sequence[float], name: str) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _pair(r: F64 | Sequence[float], rb: F64 | Sequence[float]) -> tuple[F64, F64]:
    a, b = _vec(r, "r"), _vec(rb, "rb")
    if len(a) != len(b):
        raise ValueError(f"r has {len(a)} returns, rb has {len(b)}")
    return a, b


def _mat(x: F64, name: str, shape: tuple[int, ...] | None = None, ndim: int = 2) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- time-weighted


def time_weighted_returns(values: F64 | Sequence[float], flows: F64 | Sequence[float]) -> F64:
    """Per-period time-weighted returns ``r_t = V_t / (V_{t-1} + F_t) - 1`` (``n`` of them).

    ``values`` has ``n + 1`` points (``values[0]`` the starting value, then end-of-period
    values); ``flows`` has ``n``: the external flow of each period, made at its start (deposits
    positive). A period that starts with ``V_{t-1} + F_t <= 0`` has return 0.
    """
    v = _vec(values, "values")
    f = _vec(flows, "flows")
    if len(v) == 0:
        raise ValueError("values is empty: it needs at least the starting value")
    if len(f) != len(v) - 1:
        raise ValueError(f"flows must have len(values) - 1 = {len(v) - 1} entries, got {len(f)}")
    base = v[:-1] + f
    out = np.zeros(len(f))
    np.divide(v[1:], base, out=out, where=base > 0.0)
    out[base > 0.0] -= 1.0
    return out


def linked_return(r: F64 | Sequence[float]) -> float:
    """Geometrically linked (compounded) return ``prod(1 + r) - 1`` (0 for no returns)."""
    return float(np.prod(1.0 + _vec(r, "r")) - 1.0)


def annualized(total: float, years: float) -> float | None:
    """``(1 + total) ** (1 / years) - 1``: ``None`` when ``years <= 0`` or ``1 + total < 0``."""
    if not (math.isfinite(total) and math.isfinite(years)):
        raise ValueError(f"total and years must be finite, got {total}, {years}")
    growth = 1.0 + total
    if years <= 0.0 or growth < 0.0:
        return None
    if growth == 0.0:
        return -1.0
    try:
        return _f(math.exp(math.log(growth) / years) - 1.0)
    except OverflowError:
        return None


def _cagr(r: F64, ppy: float) -> float | None:
    """empyrical's ``annual_return``: ``prod(1 + r) ** (ppy / len(r)) - 1``."""
    if len(r) == 0:
        return None
    return annualized(float(np.prod(1.0 + r) - 1.0), len(r) / ppy)


# --------------------------------------------------------------------------- money-weighted


_GRID = np.concatenate([-np.geomspace(60.0, 1e-7, 300), [0.0], np.geomspace(1e-7, 60.0, 300)])
"""Values of ``y * max(T - t_i)`` scanned for a sign change (``y = ln(1 + rate)``)."""


def _solve_rate(expo: F64, cash: F64) -> float | None:
    """The rate ``x`` with ``sum(cash * (1 + x) ** expo) = 0`` closest to 0 (``expo >= 0``)."""
    emax = float(expo.max())
    if emax <= 0.0:
        return None
    grid = _GRID / emax
    with np.errstate(over="ignore"):
        npv = np.exp(np.outer(grid, expo)) @ cash
    sign = np.sign(npv)
    exact = np.flatnonzero(sign == 0.0)
    change = np.flatnonzero(sign[:-1] * sign[1:] < 0.0)
    candidates: list[float] = [float(grid[i]) for i in exact]
    if len(change):
        # the bracket nearest to y = 0
        dist = np.minimum(np.abs(grid[change]), np.abs(grid[change + 1]))
        i = int(change[np.argmin(dist)])
        y0 = float(
            brentq(
                lambda y: float(np.exp(y * expo) @ cash),
                float(grid[i]),
                float(grid[i + 1]),
                xtol=1e-15,
                rtol=4 * np.finfo(float).eps,
                maxiter=500,
            )
        )
        candidates.append(y0)
    if not candidates:
        # sum(cash) over the flows at T alone is the limit at rate -100%: a total loss
        at_end = float(cash[expo == 0.0].sum())
        return -1.0 if at_end == 0.0 else None
    y = min(candidates, key=abs)
    return _f(math.expm1(y))


def money_weighted_return(
    times_in_years: F64 | Sequence[float],
    flows: F64 | Sequence[float],
    final_value: float,
    *,
    end_time: float | None = None,
) -> float | None:
    """Annual money-weighted return (IRR): ``x`` with
    ``sum(flows_i * (1 + x) ** (T - t_i)) = final_value``.

    ``flows`` are paid by the investor into the portfolio (positive; withdrawals negative) at
    ``times_in_years`` (any origin); ``final_value`` is the portfolio's value at ``end_time``
    (default: the latest flow time). ``None`` when no rate solves the equation (e.g. every flow
    at ``end_time``); ``-1.0`` when only the limit at -100% does (everything lost); of several
    solutions, the one closest to 0.
    """
    t = _vec(times_in_years, "times_in_years")
    c = _vec(flows, "flows")
    if len(t) == 0:
        raise ValueError("no flows: need at least one")
    if len(c) != len(t):
        raise ValueError(f"times_in_years has {len(t)} entries, flows has {len(c)}")
    if not math.isfinite(final_value):
        raise ValueError(f"final_value must be finite, got {final_value}")
    end = float(t.max()) if end_time is None else float(end_time)
    if not math.isfinite(end) or end < float(t.max()):
        raise ValueError(f"end_time {end_time} is before the last flow at {float(t.max())}")
    expo = np.concatenate([end - t, [0.0]])
    cash = np.concatenate([c, [-float(final_value)]])
    return _solve_rate(expo, cash)


def xirr(
    dates: Sequence[dt.date] | Sequence[str] | np.ndarray,
    amounts: F64 | Sequence[float],
) -> float | None:
    """Excel's ``XIRR``: ``x`` with ``sum(a_i / (1 + x) ** ((d_i - d_0) / 365)) = 0``.

    ``amounts`` carry the investor's sign (investments negative, receipts positive); ``dates``
    are days (``datetime.date``, ISO strings or ``datetime64``; times of day are dropped), ``d_0``
    the first. ``None`` without both a positive and a negative amount, or when no rate solves it.
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    a = _vec(amounts, "amounts")
    if d.ndim != 1:
        raise ValueError(f"dates must be one-dimensional, got shape {d.shape}")
    if len(a) != len(d):
        raise ValueError(f"dates has {len(d)} entries, amounts has {len(a)}")
    if len(a) == 0:
        raise ValueError("no cash flows")
    if not (np.any(a > 0.0) and np.any(a < 0.0)):
        return None
    years = (d - d[0]).astype(np.int64).astype(np.float64) / 365.0
    # multiply the equation by (1 + x) ** max(years) so that every exponent is >= 0
    return _solve_rate(float(years.max()) - years, a)


# --------------------------------------------------------------------------- relative to a benchmark


def tracking_error(r: F64 | Sequence[float], rb: F64 | Sequence[float], ppy: float) -> float | None:
    """``std(r - rb, ddof=1) * sqrt(ppy)``; exactly 0 when the active return is constant;
    ``None`` with fewer than two returns."""
    a, b = _pair(r, rb)
    p = _check_ppy(ppy)
    if len(a) < 2:
        return None
    active = a - b
    if float(active.max()) == float(active.min()):
        return 0.0
    return _f(float(np.std(active, ddof=1)) * math.sqrt(p))


def information_ratio(r: F64 | Sequence[float], rb: F64 | Sequence[float], ppy: float) -> float | None:
    """``mean(r - rb) * ppy / tracking_error`` (``None`` when the tracking error is 0 or
    undefined)."""
    a, b = _pair(r, rb)
    te = tracking_error(a, b, ppy)
    if te is None or te <= _TINY_STD * math.sqrt(ppy):
        return None
    return _f(float(np.mean(a - b)) * float(ppy) / te)


def capture_ratios(
    r: F64 | Sequence[float], rb: F64 | Sequence[float], ppy: float
) -> tuple[float | None, float | None]:
    """(up capture, down capture): the CAGR of ``r`` over the periods where ``rb > 0``
    (``rb < 0``) over the CAGR of ``rb`` over the same periods (empyrical's ``up_capture`` and
    ``down_capture``). ``None`` when there is no such period or a CAGR is undefined."""
    a, b = _pair(r, rb)
    p = _check_ppy(ppy)
    out: list[float | None] = []
    for mask in (b > 0.0, b < 0.0):
        num, den = _cagr(a[mask], p), _cagr(b[mask], p)
        out.append(None if num is None or den is None or den == 0.0 else _f(num / den))
    return out[0], out[1]


def relative_metrics(
    r: F64 | Sequence[float], rb: F64 | Sequence[float], ppy: float, rf: float = 0.0
) -> dict[str, float | None]:
    """Alpha, beta, correlation, tracking error, information ratio, up/down capture and active
    return (annualized portfolio minus annualized benchmark) of ``r`` against ``rb``; ``rf`` is
    the annual risk-free rate (alpha only). ``None`` where undefined."""
    a, b = _pair(r, rb)
    p = _check_ppy(ppy)
    alpha, beta = _alpha_beta(a, b, p, _rf_per_bar(rf, p))
    _, corr = beta_correlation(a, b)
    up, down = capture_ratios(a, b, p)
    ca, cb = _cagr(a, p), _cagr(b, p)
    return {
        "alpha": alpha,
        "beta": beta,
        "correlation": corr,
        "tracking_error": tracking_error(a, b, p),
        "information_ratio": information_ratio(a, b, p),
        "up_capture": up,
        "down_capture": down,
        "active_return": None if ca is None or cb is None else _f(ca - cb),
    }


# --------------------------------------------------------------------------- Carino linking


def _carino(a: F64, b: F64 | float = 0.0) -> F64:
    """``(ln(1 + a) - ln(1 + b)) / (a - b)``, ``1 / (1 + b)`` where ``a == b``; NaN where
    ``1 + a <= 0`` or ``1 + b <= 0``."""
    a = np.asarray(a, dtype=np.float64)
    bb = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    ok = (a > -1.0) & (bb > -1.0)
    d = a - bb
    out = np.full(a.shape, np.nan)
    moved = ok & (d != 0.0)
    out[moved] = np.log1p(d[moved] / (1.0 + bb[moved])) / d[moved]
    flat = ok & (d == 0.0)
    out[flat] = 1.0 / (1.0 + bb[flat])
    return out


@dataclass(frozen=True, slots=True)
class ContributionResult:
    """Contribution to return of ``k`` assets over ``n`` periods: ``total.sum() ==
    portfolio_return`` (NaN totals when a period loses 100% or more)."""

    total: F64
    """(k,) Carino-linked contribution of each asset over all periods."""
    per_period: F64
    """(n, k) ``w * r``: each row sums to that period's portfolio return."""
    linked: F64
    """(n, k) ``per_period`` scaled by ``k_t / K``: columns sum to ``total``."""
    portfolio_returns: F64
    """(n,) ``R_t = sum_i w_ti r_ti``."""
    portfolio_return: float
    """``prod(1 + R_t) - 1``."""


def contributions(weights: F64, returns: F64) -> ContributionResult:
    """Each asset's contribution to the portfolio's compounded return, Carino-linked.

    ``weights`` ``(n, k)``: start-of-period weights of the ``k`` assets in the portfolio (the
    rest, if they do not sum to 1, is cash earning 0); ``returns`` ``(n, k)``: the assets'
    returns over each period.
    """
    w = _mat(weights, "weights")
    r = _mat(returns, "returns", w.shape)
    per = w * r
    rt: F64 = per.sum(axis=1)
    total_r = float(np.prod(1.0 + rt) - 1.0)
    k = _carino(rt)
    big_k = float(_carino(np.array([total_r]))[0])
    linked: F64 = per * (k / big_k)[:, None]
    return ContributionResult(linked.sum(axis=0), per, linked, rt, total_r)


# --------------------------------------------------------------------------- Brinson-Fachler


@dataclass(frozen=True, slots=True)
class Attribution:
    """Brinson-Fachler effects per segment (``(k,)`` arrays; NaN when a period's return is
    -100% or worse in the linked version). ``total_allocation + total_selection +
    total_interaction == active_return``."""

    allocation: F64
    selection: F64
    interaction: F64
    portfolio_return: float
    benchmark_return: float

    @property
    def total(self) -> F64:
        """(k,) sum of the three effects of each segment."""
        out: F64 = self.allocation + self.selection + self.interaction
        return out

    @property
    def total_allocation(self) -> float:
        return float(self.allocation.sum())

    @property
    def total_selection(self) -> float:
        return float(self.selection.sum())

    @property
    def total_interaction(self) -> float:
        return float(self.interaction.sum())

    @property
    def active_return(self) -> float:
        return self.portfolio_return - self.benchmark_return


def _bf_inputs(wp: F64, wb: F64, rp: F64, rb: F64, ndim: int) -> tuple[F64, F64, F64, F64]:
    wp_ = _mat(wp, "wp", ndim=ndim)
    wb_ = _mat(wb, "wb", wp_.shape, ndim)
    rb_ = _mat(rb, "rb", wp_.shape, ndim)
    rp_ = np.asarray(rp, dtype=np.float64)
    if rp_.shape != wp_.shape:
        raise ValueError(f"rp has shape {rp_.shape}, expected {wp_.shape}")
    # a segment the portfolio does not hold has no return of its own: take the benchmark's
    rp_ = np.where(np.isnan(rp_) & (wp_ == 0.0), rb_, rp_)
    rp_ = _mat(rp_, "rp", wp_.shape, ndim)
    sp, sb = wp_.sum(axis=-1), wb_.sum(axis=-1)
    if np.any(np.abs(sp - sb) > 1e-9 * np.maximum(1.0, np.abs(sb))):
        raise ValueError(
            "portfolio and benchmark weights must sum to the same total (include cash as a segment)"
        )
    return wp_, wb_, rp_, rb_


def _bf_effects(wp: F64, wb: F64, rp: F64, rb: F64) -> tuple[F64, F64, F64, F64, F64]:
    big_rp: F64 = (wp * rp).sum(axis=-1)
    big_rb: F64 = (wb * rb).sum(axis=-1)
    dw = wp - wb
    alloc: F64 = dw * (rb - big_rb[..., None])
    sel: F64 = wb * (rp - rb)
    inter: F64 = dw * (rp - rb)
    return alloc, sel, inter, big_rp, big_rb


def brinson_fachler(wp: F64, wb: F64, rp: F64, rb: F64) -> Attribution:
    """Single-period Brinson-Fachler attribution over ``k`` segments (``(k,)`` inputs: portfolio
    and benchmark weights, portfolio and benchmark segment returns; ``rp`` may be NaN where
    ``wp == 0``)."""
    wp_, wb_, rp_, rb_ = _bf_inputs(wp, wb, rp, rb, 1)
    alloc, sel, inter, big_rp, big_rb = _bf_effects(wp_, wb_, rp_, rb_)
    return Attribution(alloc, sel, inter, float(big_rp), float(big_rb))


def brinson_fachler_linked(wp: F64, wb: F64, rp: F64, rb: F64) -> Attribution:
    """Brinson-Fachler over ``n`` periods (``(n, k)`` inputs), effects Carino-linked so that
    they sum to ``prod(1 + Rp_t) - prod(1 + Rb_t)``."""
    wp_, wb_, rp_, rb_ = _bf_inputs(wp, wb, rp, rb, 2)
    alloc, sel, inter, big_rp, big_rb = _bf_effects(wp_, wb_, rp_, rb_)
    total_p = float(np.prod(1.0 + big_rp) - 1.0)
    total_b = float(np.prod(1.0 + big_rb) - 1.0)
    scale = _carino(big_rp, big_rb) / float(_carino(np.array([total_p]), total_b)[0])
    s = scale[:, None]
    return Attribution(
        (alloc * s).sum(axis=0), (sel * s).sum(axis=0), (inter * s).sum(axis=0), total_p, total_b
    )


# --------------------------------------------------------------------------- daily series


@dataclass(frozen=True, slots=True)
class DailySeries:
    """The performance_metrics time series: ``n`` values each, one per period; the statistics
    at index ``t`` use the returns ``0..t`` (expanding window); NaN where undefined."""

    returns: F64
    """TWR return of the period."""
    cumulative_return: F64
    """``prod(1 + r[:t + 1]) - 1``."""
    volatility: F64
    """``std(r[:t + 1], ddof=1) * sqrt(ppy)``; NaN for ``t == 0``."""
    sharpe_ratio: F64
    """``mean(x) / std(x, ddof=1) * sqrt(ppy)`` of ``x = r - rf_per_period``; NaN for ``t == 0``
    or zero variance."""
    max_drawdown: F64
    """Deepest drawdown so far (``<= 0``)."""
    drawdown: F64
    """Fraction below the running peak of the TWR index (``<= 0``; the start counts as a peak)."""


def daily_series(
    values: F64 | Sequence[float], flows: F64 | Sequence[float], ppy: float = 252.0, rf: float = 0.0
) -> DailySeries:
    """Daily TWR return, cumulative return and expanding volatility, Sharpe, drawdown and max
    drawdown from ``values`` (``n + 1``) and ``flows`` (``n``), as :func:`time_weighted_returns`."""
    p = _check_ppy(ppy)
    rf_bar = _rf_per_bar(rf, p)
    r = time_weighted_returns(values, flows)
    n = len(r)
    index = np.asarray(np.cumprod(1.0 + r), dtype=np.float64)
    cumulative: F64 = index - 1.0
    count = np.arange(1, n + 1, dtype=np.float64)
    x = r - rf_bar
    shift = float(x[0]) if n else 0.0  # centring: the variance does not move, rounding shrinks
    xs = x - shift
    s1 = np.cumsum(xs)
    s2 = np.cumsum(xs * xs)
    mean = s1 / count + shift
    var = np.full(n, np.nan)
    many = count >= 2
    var[many] = np.maximum(s2[many] - s1[many] * s1[many] / count[many], 0.0) / (count[many] - 1.0)
    constant = np.maximum.accumulate(r) == np.minimum.accumulate(r) if n else np.zeros(0, bool)
    var[many & constant] = 0.0
    sd = np.sqrt(var)
    sharpe = np.full(n, np.nan)
    ok = many & (sd > _TINY_STD)
    sharpe[ok] = mean[ok] / sd[ok] * math.sqrt(p)
    dd = drawdown(np.concatenate([[1.0], index]))[1:] if n else np.zeros(0)
    return DailySeries(
        returns=r,
        cumulative_return=cumulative,
        volatility=sd * math.sqrt(p),
        sharpe_ratio=sharpe,
        max_drawdown=np.minimum.accumulate(dd) if n else np.zeros(0),
        drawdown=dd,
    )
