"""Our backtests equal backtesting.py (kernc, 0.6) on real data: the SMA(10/30) crossover on AAPL
daily (2004-2018) and BTCUSDT hourly (2017-2024) from ``src/algotrendy/sample_data``, run by
backtesting.py and by both our engines (the vectorized kernel through ``services.backtest.compute``
and the event-driven engine running ``TemplateStrategy``, the full order/position path). The
trades (entry/exit bar, size, entry/exit price, P&L), the whole equity curve and the final equity
agree to 1e-9 relative (in practice to a few ulps).

The strategy on the backtesting.py side is written in its own idiom (``self.I`` of a pandas
rolling mean, ``backtesting.lib.crossover``, ``self.buy()`` / ``self.position.close()``), so the
signals are computed independently of ours. How the conventions line up:

* **Fills.** backtesting.py fills a market order placed in ``next()`` at the next bar's open
  (``trade_on_close=False``, its default), as we do. ``exclusive_orders`` is not needed: the
  strategy only buys when flat.
* **Commission.** ``commission=0.001`` is charged on each side on ``size * price`` (at entry on
  the entry notional, at exit on the exit notional): our ``fee_rate=0.001``. No spread, no
  slippage.
* **Sizing.** ``self.buy()`` without a size means the fraction ``1 - eps`` of the available
  margin (= equity when flat) in *whole units*, at the price plus its commission per unit:
  ``int((margin * (1 - eps)) // (price + commission(size, price) / size))``. Ours with
  ``percent_equity`` sizing of 1.0 and ``lot_size=1`` is ``floor(equity / (price * (1 + fee)) +
  1e-9)``, the same integer unless the quotient lies within about 1e-9 of a whole number (it
  never does on this data; if it did, the sizes would differ by one unit and this test would say so).
* **Crossing.** ``crossover(a, b)`` is ``a[-2] < b[-2] and a[-1] > b[-1]``; our ``crosses_above``
  takes ``<=`` on the previous bar. They differ only when the two SMAs are exactly equal on a
  bar, which never happens on these series (checked below), so the signals are the same.
* **Warm-up.** backtesting.py calls ``next()`` from the first bar where every indicator is
  defined, plus one (bar 30 here); our signals start at the same bar (``Signals.warmup == 30``).
  Equity before that is the cash on both sides.
* **The end.** ``finalize_trades=False`` (its default): a position still open after the last bar
  stays open, is *not* in the trade list, and the final equity marks it at the last close, which
  is exactly our convention (``RunResult.trades`` holds closed round trips; ``equity[-1]`` is
  marked to the last close). The open position is compared separately: its size is our
  ``(equity - cash) / close`` on the last bar.
* **Capital.** 100,000 for AAPL; 10,000,000 for BTC, so that whole-unit sizing of a coin priced
  4,000-70,000 is not degenerate.
"""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algotrendy.adapters.bars.files import read_bar_file
from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.result import RunResult
from algotrendy.engine.signals import compute_signals
from algotrendy.services.backtest import compute
from tests.golden.indicator_samples import SAMPLES

backtesting = pytest.importorskip("backtesting")
crossover = pytest.importorskip("backtesting.lib").crossover

RTOL = 1e-9
FEE = 0.001
FAST, SLOW = 10, 30
CASES = {
    "AAPL_1d": ("AAPL_1d.csv", 100_000.0),
    "BTCUSDT_1h": ("BTCUSDT_1h_binance.csv.gz", 10_000_000.0),
}


@cache
def _bars(name: str) -> Bars:
    return read_bar_file(SAMPLES / CASES[name][0])


def _sma(values: Any, n: int) -> Any:
    return pd.Series(values).rolling(n).mean().to_numpy()


class _SmaCross(backtesting.Strategy):
    fast = FAST
    slow = SLOW

    def init(self) -> None:
        self.fast_ma = self.I(_sma, self.data.Close, self.fast)
        self.slow_ma = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma):
            if not self.position:
                self.buy()
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()


@cache
def _reference(name: str) -> Any:
    bars = _bars(name)
    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.to_datetime(bars.ts, utc=True).tz_localize(None),
    )
    bt = backtesting.Backtest(
        frame, _SmaCross, cash=CASES[name][1], commission=FEE, trade_on_close=False, finalize_trades=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open" (that is the convention) and tqdm
        return bt.run()


def _plan(name: str, engine: str) -> compute.Plan:
    return compute.Plan(
        template=BUILTIN_TEMPLATES["sma_crossover"],  # percent_equity sizing, 1.0
        params={"fast": FAST, "slow": SLOW},
        symbols=(name,),
        config=BacktestConfig(initial_capital=CASES[name][1], fee_rate=FEE, lot_size=1.0),
        engine=engine,
    )


def _ours(name: str, engine: str) -> RunResult:
    return compute.simulate(_plan(name, engine), {name: _bars(name)})


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_signals_do_not_depend_on_the_tie_rule(name: str) -> None:
    """The two SMAs are never exactly equal, so ``<`` vs ``<=`` on the previous bar is moot; and
    both sides start deciding at the same bar."""
    bars = _bars(name)
    fast, slow = _sma(bars.close, FAST), _sma(bars.close, SLOW)
    assert not np.any(fast == slow)
    sig = compute_signals(BUILTIN_TEMPLATES["sma_crossover"], bars, {"fast": FAST, "slow": SLOW})
    assert sig.warmup == SLOW


@pytest.mark.parametrize("engine", ["vectorized", "event"])
@pytest.mark.parametrize("name", list(CASES))
def test_trades_and_equity_equal_backtesting_py(name: str, engine: str) -> None:
    ref = _reference(name)
    ours = _ours(name, "auto" if engine == "vectorized" else "event")
    bars = _bars(name)

    theirs = ref["_trades"]
    t = ours.trades
    assert len(theirs) > (50 if name == "AAPL_1d" else 1000)
    assert len(t) == len(theirs)
    for k in range(len(t)):
        row = theirs.iloc[k]
        where = f"{name} trade {k}"
        assert int(t.entry_index[k]) == int(row["EntryBar"]), where
        assert int(t.exit_index[k]) == int(row["ExitBar"]), where
        assert t.side[k] == 1, where
        assert t.quantity[k] == float(row["Size"]), where
        assert _close(t.entry_price[k], float(row["EntryPrice"])), where
        assert _close(t.exit_price[k], float(row["ExitPrice"])), where
        assert _close(t.pnl[k], float(row["PnL"])), where
        # backtesting.py's fills are the bars' opens, so ours are too (next-bar-open fills)
        assert t.entry_price[k] == pytest.approx(bars.open[t.entry_index[k]], rel=1e-15)

    curve = ref["_equity_curve"]["Equity"].to_numpy(np.float64)
    assert len(curve) == len(ours.equity)
    np.testing.assert_allclose(ours.equity, curve, rtol=RTOL, atol=0)
    assert _close(float(ours.equity[-1]), float(ref["Equity Final [$]"]))

    # the position still open at the end: same size on both sides (or both flat)
    still_open = ref["_strategy"]._broker.trades
    held = (ours.equity[-1] - ours.cash[-1]) / bars.close[-1]
    assert round(held) == sum(tr.size for tr in still_open)
    assert abs(held - round(held)) < 1e-6


@pytest.mark.parametrize("name", list(CASES))
def test_reported_metrics_equal_backtesting_py(name: str) -> None:
    """The stored result (``compute.backtest``) reports the same headline figures."""
    ref = _reference(name)
    plan = _plan(name, "auto")
    out = compute.backtest(plan, {name: _bars(name)}, None, lambda _f, _m: None)
    m = out["metrics"]
    assert out["engine"] == "vectorized"
    assert m["number_of_trades"] == ref["# Trades"]
    assert _close(m["final_equity"], float(ref["Equity Final [$]"]))
    assert _close(m["total_return"], float(ref["Return [%]"]) / 100)
    assert _close(abs(m["max_drawdown"]), abs(float(ref["Max. Drawdown [%]"])) / 100)
    assert _close(m["win_rate"], float(ref["Win Rate [%]"]) / 100)
    assert _close(m["largest_win"], float(ref["_trades"]["PnL"].max()))
    assert _close(m["largest_loss"], float(ref["_trades"]["PnL"].min()))
    assert out["trades_total"] == len(ref["_trades"])
