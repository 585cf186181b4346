"""The numbers of a backtest: a ``RunResult`` in, a flat dict of plain floats/ints out.

Conventions (read these before comparing with another library):

* **The curve is anchored at the initial capital.** ``RunResult.equity[i]`` is the equity after
  bar ``i``; the capital before the first bar is ``initial_capital``. Metrics use the curve
  ``[initial_capital, equity[0], ..., equity[-1]]``, so there are as many per-bar returns as
  bars, ``total_return = final / initial - 1`` and a loss on the very first bar is a drawdown.
  The whole curve counts, warm-up included (cash before warm-up is part of the run).
* **Per-bar returns** are simple: ``r[i] = e[i] / e[i-1] - 1`` (0 after the equity reached 0).
* **Annualization** uses ``periods_per_year`` (inferred by :func:`periods_per_year` or given).
  The span in years is ``len(r) / periods_per_year``, as empyrical computes it.
* **Risk-free rate** is annual; per bar it is ``(1 + rf) ** (1 / periods_per_year) - 1``. It is
  subtracted in the Sharpe ratio, is the Sortino target and is the alpha/beta risk-free rate.
* Formulas match empyrical (``tests/golden/test_metrics_golden.py`` checks them to 1e-9):
  ``volatility = std(r, ddof=1) * sqrt(P)``; ``sharpe = mean(r - rf) / std(r - rf, ddof=1) *
  sqrt(P)``; ``downside_risk = sqrt(mean(min(r - t, 0)^2)) * sqrt(P)`` (the root-mean-square of
  the shortfalls below the target ``t`` over *all* bars: empyrical's ``downside_risk``, Sortino's
  definition) and ``sortino = mean(r - t) * P / downside_risk`` (empyrical's ``sortino_ratio``);
  ``annualized_return`` is the CAGR ``(final/initial) ** (P / len(r)) - 1``; ``calmar = CAGR /
  |max_drawdown|``; ``beta = cov(r, rb) / var(rb)`` (population moments, OLS slope);
  ``alpha = (1 + mean((r - rf) - beta * (rb - rf))) ** P - 1`` (empyrical's ``alpha_beta``:
  compounded, not ``mean * P``). Alpha and beta use the bar-to-bar returns where both curves have
  one (the benchmark has no return for the first bar, so that bar is left out).
* ``skew``/``kurtosis`` of per-bar returns are the biased estimators, kurtosis *excess*
  (``scipy.stats.skew``/``kurtosis`` defaults).
* Trade money figures (``expectancy``, ``average_win``, ``largest_loss`` ...) are ``pnl`` in the
  account currency, net of fees; ``average_trade_return`` is the mean of ``Trades.ret``.
* Undefined values (no trades, zero volatility, no losses for the profit factor, no benchmark)
  are ``None``, never NaN or inf: the dict is stored as strict JSON.

The fast functions (``sharpe_from_equity``, ``batch_*``) take raw equity curves whose first
point is the starting capital (or pass ``initial_capital`` to prepend it), return NaN where a
value is undefined, and work on ``(n_combos, n_bars)`` arrays for sweeps.
"""

from __future__ import annotations

import math

import numpy as np

from algotrendy.core.market import F64, I64
from algotrendy.engine.result import RunResult
from algotrendy.engine.stats import kurtosis, skewness

Metric = float | int | None

NS_PER_DAY = 86_400 * 1_000_000_000
_TINY_STD = 1e-14

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annualized_return",
    "volatility",
    "downside_risk",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "max_drawdown_duration_bars",
    "max_drawdown_duration_days",
    "win_rate",
    "profit_factor",
    "expectancy",
    "average_trade_return",
    "average_win",
    "average_loss",
    "largest_win",
    "largest_loss",
    "exposure",
    "average_exposure",
    "turnover",
    "number_of_trades",
    "fees_paid",
    "final_equity",
    "alpha",
    "beta",
    "best_bar",
    "worst_bar",
    "skew",
    "kurtosis",
)

# For descriptive metrics the direction is a convention (less risk, cost or market dependence
# is better; more trades is more evidence).
HIGHER_IS_BETTER: dict[str, bool] = {
    "total_return": True,
    "annualized_return": True,
    "volatility": False,
    "downside_risk": False,
    "sharpe_ratio": True,
    "sortino_ratio": True,
    "calmar_ratio": True,
    "max_drawdown": True,  # a fraction <= 0: closer to 0 is better
    "max_drawdown_duration_bars": False,
    "max_drawdown_duration_days": False,
    "win_rate": True,
    "profit_factor": True,
    "expectancy": True,
    "average_trade_return": True,
    "average_win": True,
    "average_loss": True,  # negative: closer to 0 is better
    "largest_win": True,
    "largest_loss": True,  # negative: closer to 0 is better
    "exposure": False,
    "average_exposure": False,
    "turnover": False,
    "number_of_trades": True,
    "fees_paid": False,
    "final_equity": True,
    "alpha": True,
    "beta": False,
    "best_bar": True,
    "worst_bar": True,
    "skew": True,
    "kurtosis": False,
}


# --------------------------------------------------------------------------- curve primitives


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _curve(equity: F64, name: str = "equity") -> F64:
    e = np.asarray(equity, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {e.shape}")
    if len(e) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(e)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return e


def _curves(equity: F64, initial_capital: float | None) -> F64:
    e = np.asarray(equity, dtype=np.float64)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2 or e.shape[1] == 0:
        raise ValueError(f"equity must be (n_combos, n_bars) with n_bars >= 1, got shape {e.shape}")
    if initial_capital is not None:
        e = np.concatenate([np.full((e.shape[0], 1), float(initial_capital)), e], axis=1)
    return e


def returns_from_equity(equity: F64) -> F64:
    """Per-bar simple returns of a curve (``len - 1`` of them, along the last axis); a bar that
    starts from equity <= 0 has return 0 (the account is gone)."""
    e = np.asarray(equity, dtype=np.float64)
    prev = e[..., :-1]
    out = np.zeros_like(prev)
    np.divide(e[..., 1:] - prev, prev, out=out, where=prev > 0.0)
    return out


def drawdown(equity: F64) -> F64:
    """Fraction below the running peak at each point (``<= 0``; 0 at a new high)."""
    e = _curve(equity)
    peak = np.maximum.accumulate(e)
    out = np.zeros_like(e)
    np.divide(e, peak, out=out, where=peak > 0.0)
    out -= 1.0
    out[peak <= 0.0] = 0.0
    return np.minimum(out, 0.0)


def max_drawdown_duration(equity: F64, ts: I64) -> tuple[int, float]:
    """Longest peak-to-recovery span as (bars, days).

    A span runs from the last point at the running peak to the first point back at or above
    it; a drawdown not recovered by the end counts to the last point. The longest in bars and
    the longest in days are each the maximum over spans (usually the same span). Days are
    ``(ts[end] - ts[peak]) / 1 day`` of the points' timestamps.
    """
    e = _curve(equity)
    t = np.asarray(ts, dtype=np.int64)
    if len(t) != len(e):
        raise ValueError(f"ts has {len(t)} points, equity has {len(e)}")
    if len(e) < 2:
        return 0, 0.0
    peak = np.maximum.accumulate(e)
    under = e < peak
    idx = np.arange(len(e))
    peak_idx = np.maximum.accumulate(np.where(under, 0, idx))
    in_span = under[:-1] | under[1:]
    start = peak_idx[:-1]
    bars = np.where(in_span, idx[1:] - start, 0)
    days = np.where(in_span, (t[1:] - t[start]) / NS_PER_DAY, 0.0)
    return int(bars.max()), float(days.max())


# --------------------------------------------------------------------------- periods per year


def periods_per_year(ts: I64) -> float:
    """Bars per year inferred from the timestamps (int64 ns UTC). The rule:

    1. ``spacing`` = median positive gap between timestamps.
    2. For bars shorter than two days: if at least 10% of them fall on a Saturday or Sunday
       (UTC) the market trades every day: ``365 days / spacing`` (daily crypto 365, hourly 8760,
       1-minute 525600).
    3. Otherwise, for bars of a day or more: daily 252 (``252 / days`` for 2-day bars), weekly
       (5-8 days) 52, monthly (27-32 days) 12, quarterly (85-95 days) 4, yearly (360-370 days) 1,
       else ``365.25 days / spacing``.
    4. Otherwise (intraday on weekdays), with ``k`` the median number of bars per UTC day: if
       ``k * spacing`` covers at least 20 hours the market trades around the clock on weekdays
       (FX): ``260 * 1 day / spacing`` (hourly 6240); else a session market (stocks):
       ``252 * k`` (US 1-minute 252*390).

    Pass ``periods_per_year`` to ``compute_metrics`` to override.
    """
    return _infer_periods_per_year(ts)


def _infer_periods_per_year(ts: I64) -> float:
    t = np.asarray(ts, dtype=np.int64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError("ts: need at least two timestamps to infer periods_per_year; pass it explicitly")
    gaps = np.diff(t)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        raise ValueError("ts: timestamps do not advance; pass periods_per_year explicitly")
    spacing = float(np.median(gaps))
    day = float(NS_PER_DAY)
    days_since_epoch = t // NS_PER_DAY
    weekday = (days_since_epoch + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if spacing < 2 * day and float(np.mean(weekday >= 5)) >= 0.1:
        return 365.0 * day / spacing
    if spacing >= day:
        d = spacing / day
        if d < 2.5:
            return 252.0 / max(1, round(d))
        for lo, hi, p in ((5, 8, 52.0), (27, 32, 12.0), (85, 95, 4.0), (360, 370, 1.0)):
            if lo <= d <= hi:
                return p
        return 365.25 / d
    _, counts = np.unique(days_since_epoch, return_counts=True)
    k = float(np.median(counts))
    if k * spacing >= 20 * 3600 * 1e9:
        return 260.0 * day / spacing
    return 252.0 * k


# --------------------------------------------------------------------------- batch kernels


def _rf_per_bar(risk_free_rate: float, ppy: float) -> float:
    if not math.isfinite(risk_free_rate) or risk_free_rate <= -1.0:
        raise ValueError(f"risk_free_rate must be finite and > -1, got {risk_free_rate}")
    return float((1.0 + risk_free_rate) ** (1.0 / ppy) - 1.0)


def _check_ppy(ppy: float) -> float:
    p = float(ppy)
    if not (math.isfinite(p) and p > 0.0):
        raise ValueError(f"periods_per_year must be a positive number, got {ppy}")
    return p


def _sharpe(r: F64, ppy: float, rf_bar: float) -> F64:
    n = r.shape[1]
    if n < 2:
        return np.full(r.shape[0], np.nan)
    x = r - rf_bar
    sd = np.std(x, axis=1, ddof=1)
    mean = np.mean(x, axis=1)
    ok = sd > _TINY_STD
    out = np.full(r.shape[0], np.nan)
    np.divide(mean, sd, out=out, where=ok)
    return out * math.sqrt(ppy)


def _downside_risk(r: F64, ppy: float, target: float) -> F64:
    if r.shape[1] < 1:
        return np.full(r.shape[0], np.nan)
    dd: F64 = np.sqrt(np.mean(np.square(np.minimum(r - target, 0.0)), axis=1)) * math.sqrt(ppy)
    return dd


def _sortino(r: F64, ppy: float, target: float) -> F64:
    if r.shape[1] < 2:
        return np.full(r.shape[0], np.nan)
    dd = _downside_risk(r, ppy, target)
    out = np.full(r.shape[0], np.nan)
    np.divide(np.mean(r - target, axis=1) * ppy, dd, out=out, where=dd > _TINY_STD * math.sqrt(ppy))
    return out


def _volatility(r: F64, ppy: float) -> F64:
    if r.shape[1] < 2:
        return np.full(r.shape[0], np.nan)
    out: F64 = np.std(r, axis=1, ddof=1) * math.sqrt(ppy)
    return out


def _total_return(e: F64) -> F64:
    out = np.full(e.shape[0], np.nan)
    np.divide(e[:, -1], e[:, 0], out=out, where=e[:, 0] > 0.0)
    return out - 1.0


def _cagr(e: F64, ppy: float) -> F64:
    n = e.shape[1] - 1
    if n < 1:
        return np.full(e.shape[0], np.nan)
    growth = _total_return(e) + 1.0
    out = np.full(e.shape[0], -1.0)
    pos = growth > 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        out[pos] = growth[pos] ** (ppy / n) - 1.0
    out[~np.isfinite(out) | np.isnan(growth)] = np.nan
    return out


def _max_drawdown(e: F64) -> F64:
    peak = np.maximum.accumulate(e, axis=1)
    ratio = np.ones_like(e)
    np.divide(e, peak, out=ratio, where=peak > 0.0)
    out: F64 = np.minimum(np.min(ratio, axis=1) - 1.0, 0.0)
    return out


def _calmar(cagr: F64, mdd: F64) -> F64:
    out = np.full(len(cagr), np.nan)
    np.divide(cagr, -mdd, out=out, where=mdd < 0.0)
    return out


def batch_scores(
    equity: F64, periods_per_year: float, *, risk_free_rate: float = 0.0, initial_capital: float | None = None
) -> dict[str, F64]:
    """Score many equity curves at once: ``equity`` is ``(n_combos, n_points)`` (or 1-D for one
    curve) whose first column is the starting capital unless ``initial_capital`` is given. Returns
    arrays (length ``n_combos``, NaN where undefined) for ``total_return``, ``annualized_return``,
    ``volatility``, ``sharpe_ratio``, ``sortino_ratio``, ``calmar_ratio`` and ``max_drawdown``,
    with the same formulas as :func:`compute_metrics`."""
    ppy = _check_ppy(periods_per_year)
    rf = _rf_per_bar(risk_free_rate, ppy)
    e = _curves(equity, initial_capital)
    r = returns_from_equity(e)
    cagr = _cagr(e, ppy)
    mdd = _max_drawdown(e)
    return {
        "total_return": _total_return(e),
        "annualized_return": cagr,
        "volatility": _volatility(r, ppy),
        "sharpe_ratio": _sharpe(r, ppy, rf),
        "sortino_ratio": _sortino(r, ppy, rf),
        "calmar_ratio": _calmar(cagr, mdd),
        "max_drawdown": mdd,
    }


def batch_sharpe(
    equity: F64, periods_per_year: float, *, risk_free_rate: float = 0.0, initial_capital: float | None = None
) -> F64:
    """Annualized Sharpe ratio of each row of ``equity`` (NaN when undefined)."""
    ppy = _check_ppy(periods_per_year)
    r = returns_from_equity(_curves(equity, initial_capital))
    return _sharpe(r, ppy, _rf_per_bar(risk_free_rate, ppy))


def batch_sortino(
    equity: F64, periods_per_year: float, *, risk_free_rate: float = 0.0, initial_capital: float | None = None
) -> F64:
    """Annualized Sortino ratio (target = per-bar risk-free rate) of each row (NaN when undefined)."""
    ppy = _check_ppy(periods_per_year)
    r = returns_from_equity(_curves(equity, initial_capital))
    return _sortino(r, ppy, _rf_per_bar(risk_free_rate, ppy))


def batch_calmar(equity: F64, periods_per_year: float, *, initial_capital: float | None = None) -> F64:
    """CAGR / |max drawdown| of each row (NaN when there is no drawdown)."""
    ppy = _check_ppy(periods_per_year)
    e = _curves(equity, initial_capital)
    return _calmar(_cagr(e, ppy), _max_drawdown(e))


def batch_total_return(equity: F64, *, initial_capital: float | None = None) -> F64:
    """``last / first - 1`` of each row."""
    return _total_return(_curves(equity, initial_capital))


def batch_max_drawdown(equity: F64, *, initial_capital: float | None = None) -> F64:
    """Deepest fraction below the running peak of each row (``<= 0``)."""
    return _max_drawdown(_curves(equity, initial_capital))


def sharpe_from_equity(
    equity: F64, periods_per_year: float, *, risk_free_rate: float = 0.0, initial_capital: float | None = None
) -> float:
    """Annualized Sharpe ratio of one equity curve (NaN when undefined)."""
    return float(
        batch_sharpe(
            _curve(equity), periods_per_year, risk_free_rate=risk_free_rate, initial_capital=initial_capital
        )[0]
    )


def sortino_from_equity(
    equity: F64, periods_per_year: float, *, risk_free_rate: float = 0.0, initial_capital: float | None = None
) -> float:
    """Annualized Sortino ratio of one equity curve (NaN when undefined)."""
    return float(
        batch_sortino(
            _curve(equity), periods_per_year, risk_free_rate=risk_free_rate, initial_capital=initial_capital
        )[0]
    )


def calmar_from_equity(
    equity: F64, periods_per_year: float, *, initial_capital: float | None = None
) -> float:
    """Calmar ratio of one equity curve (NaN when undefined)."""
    return float(batch_calmar(_curve(equity), periods_per_year, initial_capital=initial_capital)[0])


def max_drawdown_from_equity(equity: F64, *, initial_capital: float | None = None) -> float:
    """Maximum drawdown of one equity curve (``<= 0``)."""
    return float(batch_max_drawdown(_curve(equity), initial_capital=initial_capital)[0])


# --------------------------------------------------------------------------- the full report


def beta_correlation(r: F64, rb: F64) -> tuple[float | None, float | None]:
    """OLS beta of ``r`` on ``rb`` (population moments) and their Pearson correlation (``None``
    where undefined: fewer than two returns, or no variance)."""
    if len(r) < 2:
        return None, None
    x = rb - float(np.mean(rb))
    var = float(np.mean(x * x))
    if var < 1e-30:
        return None, None
    cov = float(np.mean(x * r))
    spread = float(np.std(r)) * math.sqrt(var)
    return cov / var, (cov / spread if spread > 0 else None)


def _alpha_beta(r: F64, rb: F64, ppy: float, rf_bar: float) -> tuple[float | None, float | None]:
    beta, _ = beta_correlation(r, rb)
    if beta is None:
        return None, None
    excess = (r - rf_bar) - beta * (rb - rf_bar)
    with np.errstate(over="ignore", invalid="ignore"):
        alpha = float((1.0 + float(np.mean(excess))) ** ppy - 1.0)
    return _f(alpha), _f(beta)


def _trade_metrics(result: RunResult) -> dict[str, Metric]:
    pnl = np.asarray(result.trades.pnl, dtype=np.float64)
    ret = np.asarray(result.trades.ret, dtype=np.float64)
    n = len(pnl)
    out: dict[str, Metric] = {"number_of_trades": n}
    if n == 0:
        for k in (
            "win_rate",
            "profit_factor",
            "expectancy",
            "average_trade_return",
            "average_win",
            "average_loss",
            "largest_win",
            "largest_loss",
        ):
            out[k] = None
        return out
    wins = pnl[pnl > 0.0]
    losses = pnl[pnl < 0.0]
    gross_loss = float(-losses.sum())
    out["win_rate"] = len(wins) / n
    out["profit_factor"] = _f(float(wins.sum()) / gross_loss) if gross_loss > 0.0 else None
    out["expectancy"] = _f(float(pnl.mean()))
    out["average_trade_return"] = _f(float(ret.mean())) if len(ret) == n else None
    out["average_win"] = _f(float(wins.mean())) if len(wins) else None
    out["average_loss"] = _f(float(losses.mean())) if len(losses) else None
    out["largest_win"] = _f(float(wins.max())) if len(wins) else None
    out["largest_loss"] = _f(float(losses.min())) if len(losses) else None
    return out


def compute_metrics(
    result: RunResult,
    *,
    periods_per_year: float | None = None,
    risk_free_rate: float = 0.0,
    benchmark_close: F64 | None = None,
) -> dict[str, Metric]:
    """Every metric of ``METRIC_NAMES`` for one run (see the module docstring for definitions).

    ``periods_per_year`` defaults to the one inferred from ``result.ts`` (252 when the run has a
    single bar); ``risk_free_rate`` is annual; ``benchmark_close`` is a price series on the
    run's timeline (same length as ``result.ts``) for ``alpha``/``beta``.
    """
    equity = _curve(result.equity, "result.equity")
    ts = np.asarray(result.ts, dtype=np.int64)
    if len(ts) != len(equity):
        raise ValueError(f"result.ts has {len(ts)} bars, result.equity has {len(equity)}")
    initial = float(result.initial_capital)
    if not (math.isfinite(initial) and initial > 0.0):
        raise ValueError(f"result.initial_capital must be positive, got {result.initial_capital}")
    if periods_per_year is not None:
        ppy = _check_ppy(periods_per_year)
    else:
        ppy = _infer_periods_per_year(ts) if len(ts) >= 2 else 252.0
    rf = _rf_per_bar(risk_free_rate, ppy)

    curve = np.concatenate([[initial], equity])
    e2 = curve[None, :]
    r = returns_from_equity(curve)
    cagr = _cagr(e2, ppy)
    mdd = _max_drawdown(e2)
    dd_bars, dd_days = max_drawdown_duration(curve, np.concatenate([ts[:1], ts]))

    m: dict[str, Metric] = {
        "total_return": _f(curve[-1] / initial - 1.0),
        "annualized_return": _f(cagr[0]),
        "volatility": _f(_volatility(r[None, :], ppy)[0]),
        "downside_risk": _f(_downside_risk(r[None, :], ppy, rf)[0]),
        "sharpe_ratio": _f(_sharpe(r[None, :], ppy, rf)[0]),
        "sortino_ratio": _f(_sortino(r[None, :], ppy, rf)[0]),
        "calmar_ratio": _f(_calmar(cagr, mdd)[0]),
        "max_drawdown": _f(mdd[0]),
        "max_drawdown_duration_bars": dd_bars,
        "max_drawdown_duration_days": dd_days,
    }
    m.update(_trade_metrics(result))

    exposure = np.asarray(result.exposure, dtype=np.float64)
    if len(exposure) != len(equity):
        raise ValueError(f"result.exposure has {len(exposure)} bars, result.equity has {len(equity)}")
    m["exposure"] = float(np.mean(np.abs(exposure) > 0.0))
    m["average_exposure"] = _f(float(np.mean(np.abs(exposure))))
    m["turnover"] = _f(result.turnover)
    m["fees_paid"] = _f(result.fees_paid)
    m["final_equity"] = _f(curve[-1])

    m["alpha"], m["beta"] = None, None
    if benchmark_close is not None:
        bench = _curve(benchmark_close, "benchmark_close")
        if len(bench) != len(equity):
            raise ValueError(f"benchmark_close has {len(bench)} bars, result.equity has {len(equity)}")
        if np.any(bench <= 0.0):
            raise ValueError("benchmark_close must be positive")
        m["alpha"], m["beta"] = _alpha_beta(r[1:], returns_from_equity(bench), ppy, rf)

    m["best_bar"] = _f(float(r.max())) if len(r) else None
    m["worst_bar"] = _f(float(r.min())) if len(r) else None
    m["skew"] = _f(skewness(r)) if len(r) else None
    m["kurtosis"] = _f(kurtosis(r)) if len(r) else None
    return {k: m[k] for k in METRIC_NAMES}
