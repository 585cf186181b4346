"""engine.metrics equals empyrical (empyrical-reloaded) on real data: AAPL buy-and-hold against
the SPY benchmark, daily, 2004-08-19 to 2018-01-19 (the dates both sample files have).

How the conventions were aligned (our choices are the module docstring of engine.metrics):

* Our curve is anchored at the initial capital: the buy-and-hold run buys at the first bar's
  open, so the returns we give empyrical are ``close[0] / open[0] - 1`` followed by the
  close-to-close returns, one per bar, computed here with pandas, independently of the engine.
* empyrical's ``annualization`` is our ``periods_per_year`` (252 for these daily stock bars,
  which our inference also finds); its span in years is ``len(returns) / 252``, as ours.
* empyrical's ``risk_free`` / ``required_return`` are per period; ours is annual, so we pass
  empyrical the per-bar equivalent ``(1 + rf) ** (1 / 252) - 1``.
* Alpha/beta: the benchmark has no return for the first bar, so both sides use the bar-to-bar
  returns from the second bar on. empyrical's alpha is compounded, ``(1 + mean excess)^252 - 1``,
  and so is ours.
* Skewness/kurtosis are checked against scipy (biased estimators, excess kurtosis).
"""

from __future__ import annotations

from functools import cache

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from algotrendy.engine.metrics import batch_scores, compute_metrics, periods_per_year
from algotrendy.engine.result import RunResult, Trades
from tests.golden.indicator_samples import SAMPLES, load

RTOL = 1e-9
P = 252
CAPITAL = 10_000.0


def _read(name: str) -> pd.DataFrame:
    df = pd.read_csv(SAMPLES / name, parse_dates=["timestamp"])
    return df.set_index("timestamp")


@cache
def _joined() -> pd.DataFrame:
    aapl, spy = _read("AAPL_1d.csv"), _read("SPY_1d.csv")
    joined = aapl[["open", "close"]].join(spy[["close"]].rename(columns={"close": "spy"}), how="inner")
    assert len(joined) > 3000
    return joined


def _run(df: pd.DataFrame) -> RunResult:
    """AAPL bought with all the capital at the first bar's open and held."""
    ts = pd.DatetimeIndex(df.index).tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    equity = CAPITAL * df["close"].to_numpy(np.float64) / float(df["open"].iloc[0])
    n = len(df)
    return RunResult(("AAPL",), ts, equity, np.zeros(n), np.ones(n), Trades.empty(), CAPITAL, 0.0, 1.0)


def _returns(df: pd.DataFrame) -> np.ndarray:
    r = df["close"].pct_change().to_numpy(np.float64)
    r[0] = df["close"].iloc[0] / df["open"].iloc[0] - 1
    return r


def _rf_bar(rf: float) -> float:
    return float((1 + rf) ** (1 / P) - 1)


def test_daily_stock_data_infers_252() -> None:
    assert periods_per_year(_run(_joined()).ts) == 252.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [("SPY_1d", 252.0), ("BTCUSDT_1h", 8760.0), ("BTCUSDT_1m", 525_600.0), ("EURUSD_1h", 6240.0)],
)
def test_periods_per_year_of_sample_series(name: str, expected: float) -> None:
    assert periods_per_year(load(name).ts) == expected


@pytest.mark.parametrize("rf", [0.0, 0.02])
def test_metrics_equal_empyrical(rf: float) -> None:
    df = _joined()
    r = _returns(df)
    rb = df["spy"].pct_change().to_numpy(np.float64)
    m = compute_metrics(
        _run(df), periods_per_year=P, risk_free_rate=rf, benchmark_close=df["spy"].to_numpy(np.float64)
    )
    rfb = _rf_bar(rf)

    expected = {
        "total_return": ep.cum_returns_final(r),
        "annualized_return": ep.annual_return(r, annualization=P),
        "volatility": ep.annual_volatility(r, annualization=P),
        "downside_risk": ep.downside_risk(r, required_return=rfb, annualization=P),
        "sharpe_ratio": ep.sharpe_ratio(r, risk_free=rfb, annualization=P),
        "sortino_ratio": ep.sortino_ratio(r, required_return=rfb, annualization=P),
        "max_drawdown": ep.max_drawdown(r),
        "calmar_ratio": ep.calmar_ratio(r, annualization=P),
        "best_bar": r.max(),
        "worst_bar": r.min(),
        "skew": sps.skew(r),
        "kurtosis": sps.kurtosis(r),
    }
    assert ep.cagr(r, annualization=P) == pytest.approx(expected["annualized_return"], rel=1e-15)
    alpha, beta = ep.alpha_beta(r[1:], rb[1:], risk_free=rfb, annualization=P)
    expected["alpha"], expected["beta"] = alpha, beta

    for key, want in expected.items():
        got = m[key]
        assert isinstance(got, float), key
        assert got == pytest.approx(float(want), rel=RTOL), key
    assert m["final_equity"] == pytest.approx(CAPITAL * (1 + float(expected["total_return"])), rel=RTOL)
    # sanity: a real drawdown (2008) and AAPL beta to SPY above 1
    assert m["max_drawdown"] is not None and m["max_drawdown"] < -0.5
    assert m["beta"] is not None and m["beta"] > 0.8


def test_benchmark_against_itself_has_beta_one_alpha_zero() -> None:
    df = _joined()
    spy = df["spy"].to_numpy(np.float64)
    one = pd.DataFrame({"open": spy, "close": spy}, index=df.index)
    m = compute_metrics(_run(one), periods_per_year=P, benchmark_close=spy)
    assert m["beta"] == pytest.approx(1.0, rel=1e-12)
    assert m["alpha"] == pytest.approx(0.0, abs=1e-12)


def test_batch_scores_equal_empyrical_on_many_curves() -> None:
    df = _joined()
    r_aapl = _returns(df)
    r_spy = df["spy"].pct_change().fillna(0.0).to_numpy(np.float64)
    cols = np.stack([r_aapl, r_spy, 0.5 * r_aapl + 0.5 * r_spy, 2 * r_spy, -r_spy], axis=1)  # (bars, 5)
    curves = CAPITAL * np.cumprod(1 + cols, axis=0).T  # (5, bars)
    s = batch_scores(curves, P, initial_capital=CAPITAL)
    np.testing.assert_allclose(s["sharpe_ratio"], ep.sharpe_ratio(cols, annualization=P), rtol=RTOL)
    np.testing.assert_allclose(s["sortino_ratio"], ep.sortino_ratio(cols, annualization=P), rtol=RTOL)
    np.testing.assert_allclose(s["volatility"], ep.annual_volatility(cols, annualization=P), rtol=RTOL)
    np.testing.assert_allclose(s["max_drawdown"], ep.max_drawdown(cols), rtol=RTOL)
    np.testing.assert_allclose(s["total_return"], ep.cum_returns_final(cols), rtol=RTOL)
    for j in range(cols.shape[1]):
        assert s["annualized_return"][j] == pytest.approx(
            ep.annual_return(cols[:, j], annualization=P), rel=RTOL
        )
        assert s["calmar_ratio"][j] == pytest.approx(ep.calmar_ratio(cols[:, j], annualization=P), rel=RTOL)
