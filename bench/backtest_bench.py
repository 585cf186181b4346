"""Backtest speed and memory: our engines against vectorbt, backtesting.py, backtrader and
NautilusTrader, on seeded synthetic 1-minute bars. The strategy everywhere is the SMA(10/30)
crossover (long on fast crossing above slow, flat on crossing below), decided on a bar's close
and filled at the next bar's open, 0.1 % fee per side, all equity per entry.

Targets (the issue's):
- one vectorized backtest on 1M bars <= 15 ms (``engine.vector.run`` plus the signals from
  precomputed SMA arrays);
- the 90-combination sweep (fast 5..50 step 5 x slow 20..200 step 20, fast < slow) on 100k bars
  >= 1,000 combinations/s;
- the event-driven engine >= 250,000 bars/s on 1M bars;
- peak memory of a 1,000-combination sweep on 1M bars < 2 GB.

    uv run python bench/backtest_bench.py [--bars 1000000] [--sweep-bars 100000] [--ref-bars 100000]
        [--runs 5] [--slow-runs 3] [--only vector,sweep,event,memory]

Needs the ``bench`` dependency group (vectorbt, backtrader, nautilus-trader) for the references;
a reference that is not installed is skipped with a message.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (read when tqdm loads)

import numba as nb
import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.signal_strategy import SignalStrategy
from algotrendy.engine.templated import TemplateStrategy
from algotrendy.engine.vector import VectorConfig, run
from algotrendy.indicators import compute as indicator
from algotrendy.services.backtest import compute

MIN_NS = 60 * 1_000_000_000
FEE = 0.001
CAPITAL = 100_000.0
FAST, SLOW = 10, 30
PPY = 525_600.0  # 1-minute bars, 24/7
SWEEP_SPACE = {
    "space": {
        "fast": {"min_value": 5, "max_value": 50, "step": 5},
        "slow": {"min_value": 20, "max_value": 200, "step": 20},
    },
    "constraints": ["fast < slow"],
}
MEMORY_SPACE = {  # 40 x 25 = 1,000 combinations, all with fast < slow
    "space": {
        "fast": {"min_value": 2, "max_value": 41, "step": 1},
        "slow": {"min_value": 50, "max_value": 290, "step": 10},
    },
    "constraints": ["fast < slow"],
}


# ---- data and helpers ---------------------------------------------------------------------------


def synthetic_minutes(n: int, seed: int = 20240101) -> Bars:
    """A seeded log-normal random walk of ``n`` contiguous 1m bars from 2020-01-01."""
    rng = np.random.default_rng(seed)
    ts = np.int64(1_577_836_800) * 1_000_000_000 + np.arange(n, dtype=np.int64) * MIN_NS
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0.0, 0.0001, n))
    wick = np.abs(rng.normal(0.0, 0.0004, (2, n))) * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    volume = rng.gamma(2.0, 5.0, n)
    return Bars(ts, open_, high, low, close, volume)


def timed(fn: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, float, float]:
    """(median, min, max) seconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def ms(t: tuple[float, float, float]) -> str:
    return f"{t[0] * 1e3:,.1f} ms ({t[1] * 1e3:,.1f}-{t[2] * 1e3:,.1f})"


def sma_pair(bars: Bars, fast: int = FAST, slow: int = SLOW) -> tuple[np.ndarray, np.ndarray]:
    return indicator("sma", bars, period=fast)["sma"], indicator("sma", bars, period=slow)["sma"]


def crossings(f: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our ``crosses_above`` / ``crosses_below`` (``<=`` on the previous bar), NaN is False."""
    above = f > s
    below = f < s
    up = np.zeros(len(f), dtype=np.bool_)
    down = np.zeros(len(f), dtype=np.bool_)
    up[1:] = above[1:] & ~above[:-1] & ~np.isnan(f[:-1]) & ~np.isnan(s[:-1])
    down[1:] = below[1:] & ~below[:-1] & ~np.isnan(f[:-1]) & ~np.isnan(s[:-1])
    return up, down


def plan(symbol: str = "X", workers: int = 0) -> compute.Plan:
    return compute.Plan(
        template=BUILTIN_TEMPLATES["sma_crossover"],
        params={"fast": FAST, "slow": SLOW},
        symbols=(symbol,),
        config=BacktestConfig(initial_capital=CAPITAL, fee_rate=FEE),
        periods_per_year=PPY,
        workers=workers,
    )


def quiet(*_args: object) -> None:
    return None


def import_vectorbt() -> Any:
    """vectorbt 1.0 registers a plotly template naming trace types plotly 6+ removed
    (``scattermapbox``); drop the unknown keys while it imports."""
    import plotly.graph_objects as go

    original = go.layout.Template
    data_keys = set(go.layout.template.Data()._valid_props)
    layout_keys = set(go.Layout()._valid_props)

    class Tolerant(original):  # type: ignore[misc,valid-type]
        def __init__(self, arg: Any = None, **kw: Any) -> None:
            if arg is not None and hasattr(arg, "items") and not isinstance(arg, original):
                arg = dict(arg)
                if "data" in arg:
                    arg["data"] = {k: v for k, v in dict(arg["data"]).items() if k in data_keys}
                if "layout" in arg:
                    arg["layout"] = {k: v for k, v in dict(arg["layout"]).items() if k in layout_keys}
            super().__init__(arg, **kw)

    go.layout.Template = Tolerant
    try:
        import vectorbt as vbt
    finally:
        go.layout.Template = original
    return vbt


# ---- 1. one vectorized backtest -----------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def floor_loop(o, c, f, s, fee, cash0, eq):  # type: ignore[no-untyped-def]
    """The floor: one loop deciding the crossover from the SMA arrays and trading it at the next
    open (all equity, fee covered), writing the equity curve; no trade list, no brackets."""
    cash = cash0
    pos = 0.0
    want = 0  # +1 buy, -1 sell at the next open
    trades = 0
    for i in range(len(c)):
        if want > 0 and pos == 0.0:
            q = cash / (o[i] * (1.0 + fee))
            cash -= q * o[i] * (1.0 + fee)
            pos = q
        elif want < 0 and pos > 0.0:
            cash += pos * o[i] * (1.0 - fee)
            pos = 0.0
            trades += 1
        want = 0
        eq[i] = cash + pos * c[i]
        if i > 0:
            if f[i] > s[i] and f[i - 1] <= s[i - 1]:
                want = 1
            elif f[i] < s[i] and f[i - 1] >= s[i - 1]:
                want = -1
    return trades


def bench_vector(bars: Bars, runs: int) -> None:
    n = len(bars)
    f, s = sma_pair(bars)
    zeros = np.zeros(n, dtype=np.bool_)
    ones = np.ones(n)
    cfg = VectorConfig(initial_capital=CAPITAL, fee_rate=FEE)

    def ours() -> Any:
        le, lx = crossings(f, s)
        return run(bars, le, lx, zeros, zeros, ones, cfg, symbol="X")

    def signals_only() -> Any:
        return crossings(f, s)

    le, lx = crossings(f, s)

    def kernel_only() -> Any:
        return run(bars, le, lx, zeros, zeros, ones, cfg, symbol="X")

    p = plan()
    data = {"X": bars}

    def full_path() -> Any:  # template -> expressions -> SMAs -> signals -> kernel
        return compute.simulate(p, data)

    eq = np.empty(n)
    o, c = bars.open, bars.close

    def floor() -> Any:
        return floor_loop(o, c, f, s, FEE, CAPITAL, eq)

    res = ours()
    print(f"\n## 1. One vectorized backtest, {n:,} bars ({len(res.trades):,} trades), median of {runs}")
    rows = [
        ("ours: signals from SMA arrays + engine.vector.run (trades, equity, cash, exposure)", ours),
        ("  of which: signals (numpy crossings)", signals_only),
        ("  of which: engine.vector.run", kernel_only),
        ("ours: compute.simulate (template, both SMAs, signals, kernel)", full_path),
        ("floor: bare numba loop (signals + fills + equity, no trade list)", floor),
    ]
    for label, fn in rows:
        print(f"| {label} | {ms(timed(fn, runs))} |")
    floor()
    rel = float(np.max(np.abs(eq / res.equity - 1.0)))
    print(f"  check: the floor's equity curve equals ours to {rel:.1e} relative (every bar)")
    try:
        vbt = import_vectorbt()
    except ImportError as exc:
        print(f"  vectorbt not installed ({exc}); skipped")
        return
    import pandas as pd

    idx = pd.date_range("2020-01-01", periods=n, freq="1min")
    close = pd.Series(c, index=idx)
    open_ = pd.Series(o, index=idx)
    # next-bar-open: the signal of bar i acts at bar i + 1, at its open
    entries = pd.Series(np.r_[False, le[:-1]], index=idx)
    exits = pd.Series(np.r_[False, lx[:-1]], index=idx)

    def vbt_orders() -> Any:
        return vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, fees=FEE, init_cash=CAPITAL, size=np.inf, freq="1min"
        )

    def vbt_equity() -> Any:
        return vbt_orders().value()

    print(f"| vectorbt {vbt.__version__} Portfolio.from_signals (orders) | {ms(timed(vbt_orders, runs))} |")
    print(f"| vectorbt from_signals + value() (equity curve) | {ms(timed(vbt_equity, runs))} |")
    # Same conventions, same numbers: on the first 100k bars (before the fees of ~2,000 round trips
    # per 100k bars have ground the account down to dust, where vectorbt's minimum order size
    # stops it trading) the two equity curves agree to ~1e-13.
    k = min(n, 100_000)
    head = bars.slice(0, k)
    mine = run(head, le[:k], lx[:k], zeros[:k], zeros[:k], ones[:k], cfg).equity
    theirs = vbt.Portfolio.from_signals(
        close[:k], entries[:k], exits[:k], price=open_[:k], fees=FEE, init_cash=CAPITAL, size=np.inf
    ).value()
    rel = float(np.max(np.abs(theirs.to_numpy() / mine - 1.0)))
    print(f"  check: vectorbt vs ours on the first {k:,} bars: equity curves agree to {rel:.1e} relative")


# ---- 2. the 90-combination sweep ------------------------------------------------------------------


def sweep_combos(p: compute.Plan, opt: dict[str, Any]) -> tuple[compute.Plan, list[dict[str, Any]]]:
    template = compute.search_template(p.template, opt["space"])
    combos = compute.candidates(template, p.params, opt, max_combinations=100_000)
    return replace(p, template=template), combos


def bench_sweep(bars: Bars, runs: int, profile: bool) -> None:
    n = len(bars)
    data = {"X": bars}
    p = plan()
    sp, combos = sweep_combos(p, SWEEP_SPACE)
    k = len(combos)

    def optimize() -> Any:
        return compute.optimize(p, data, None, SWEEP_SPACE, quiet, max_combinations=100_000)

    def score(workers: int) -> Callable[[], Any]:
        return lambda: compute.score_many(replace(sp, workers=workers), data, combos, quiet)

    print(
        f"\n## 2. Sweep of {k} combinations on {n:,} bars, median of {runs} "
        "(a fresh indicator cache each run)"
    )
    for label, fn in (
        ("ours: compute.optimize (grid + constraints, sweep, ranking, winner re-run + describe)", optimize),
        (f"ours: compute.score_many, {os.cpu_count()} threads", score(0)),
        ("ours: compute.score_many, 1 thread", score(1)),
    ):
        t = timed(fn, runs)
        print(f"| {label} | {t[0]:.3f} s ({t[1]:.3f}-{t[2]:.3f}) | {k / t[0]:,.0f} combos/s |")
    # the floor: what one numba pass per combination costs (SMAs computed once per period)
    from algotrendy.engine.vector import curve_stats

    empty = np.zeros((0, 11))
    expo = np.zeros(n)

    def floor(stats: bool) -> Callable[[], Any]:
        def go() -> Any:
            smas = {
                w: indicator("sma", bars, period=w)["sma"] for c in combos for w in (c["fast"], c["slow"])
            }
            eq = np.empty(n)
            out = []
            for c in combos:
                floor_loop(bars.open, bars.close, smas[c["fast"]], smas[c["slow"]], FEE, CAPITAL, eq)
                out.append(curve_stats(eq, empty, 0, expo, CAPITAL, PPY, n / PPY) if stats else eq[-1])
            return out

        return go

    for label, fn in (
        ("floor: bare numba loop per combination, 1 thread (final equity only)", floor(False)),
        ("floor + engine.vector.curve_stats per combination, 1 thread", floor(True)),
    ):
        t = timed(fn, runs)
        print(f"| {label} | {t[0]:.3f} s ({t[1]:.3f}-{t[2]:.3f}) | {k / t[0]:,.0f} combos/s |")
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        score(1)()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    try:
        vbt = import_vectorbt()
    except ImportError as exc:
        print(f"  vectorbt not installed ({exc}); skipped")
        return
    import pandas as pd

    idx = pd.date_range("2020-01-01", periods=n, freq="1min")
    close = pd.Series(bars.close, index=idx)
    open_ = pd.Series(bars.open, index=idx)
    fast = [int(c["fast"]) for c in combos]
    slow = [int(c["slow"]) for c in combos]

    def shifted(frame: Any) -> Any:  # the signal of bar i acts at bar i + 1's open
        values = np.vstack([np.zeros((1, frame.shape[1]), dtype=np.bool_), frame.to_numpy()[:-1]])
        return pd.DataFrame(values, index=frame.index, columns=frame.columns)

    def vbt_orders() -> Any:
        fast_ma = vbt.MA.run(close, window=fast, short_name="fast")
        slow_ma = vbt.MA.run(close, window=slow, short_name="slow")
        entries = shifted(fast_ma.ma_crossed_above(slow_ma))
        exits = shifted(fast_ma.ma_crossed_below(slow_ma))
        return vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, fees=FEE, init_cash=CAPITAL, size=np.inf, freq="1min"
        )

    def vbt_stats() -> Any:
        pf = vbt_orders()
        return pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()

    for label, fn in (
        (f"vectorbt {vbt.__version__}: MA.run x2, crossings, from_signals ({k} columns)", vbt_orders),
        ("vectorbt: the same + total_return, sharpe_ratio, max_drawdown", vbt_stats),
    ):
        t = timed(fn, runs)
        print(f"| {label} | {t[0]:.3f} s ({t[1]:.3f}-{t[2]:.3f}) | {k / t[0]:,.0f} combos/s |")


# ---- 3. event-driven throughput --------------------------------------------------------------------


def bench_event(bars: Bars, ref_bars: Bars, runs: int) -> None:
    n = len(bars)
    template = BUILTIN_TEMPLATES["sma_crossover"]
    config = BacktestConfig(initial_capital=CAPITAL, fee_rate=FEE)
    f, s = sma_pair(bars)
    le, lx = crossings(f, s)
    zeros = np.zeros(n, dtype=np.bool_)
    ones = np.ones(n)

    def templated() -> Any:  # the template's signals are computed in on_data, inside the run
        strategy = TemplateStrategy(template, {"fast": FAST, "slow": SLOW}, symbol="X", periods_per_year=PPY)
        return EventBacktest({"X": bars}, strategy, config).run()

    def signals() -> Any:
        strategy = SignalStrategy("X")
        strategy.set_signals(le, lx, zeros, zeros, ones)
        return EventBacktest({"X": bars}, strategy, config).run()

    res = templated()
    print(f"\n## 3. Event-driven engines (bars/s), median of {max(runs, 5)} (ours) and {runs} (references)")
    ours_runs = max(runs, 5)
    for label, fn, m in (
        (
            f"ours: EventBacktest + TemplateStrategy, {n:,} bars ({len(res.trades):,} round trips)",
            templated,
            n,
        ),
        (f"ours: EventBacktest + SignalStrategy (precomputed signals), {n:,} bars", signals, n),
    ):
        t = timed(fn, ours_runs, warmup=1)
        print(f"| {label} | {t[0]:.2f} s ({t[1]:.2f}-{t[2]:.2f}) | {m / t[0]:,.0f} bars/s |")
    for name, fn in (
        ("backtesting.py", _backtesting_py),
        ("backtrader", _backtrader),
        ("nautilus", _nautilus),
    ):
        try:
            times, label = fn(ref_bars, runs)
        except ImportError as exc:
            print(f"  {name} not installed ({exc}); skipped")
            continue
        med = statistics.median(times)
        spread = f"{min(times):.2f}-{max(times):.2f}"
        print(f"| {label} | {med:.2f} s ({spread}) | {len(ref_bars) / med:,.0f} bars/s |")


def _frame(bars: Bars) -> Any:
    import pandas as pd

    idx = pd.date_range("2020-01-01", periods=len(bars), freq="1min")
    return pd.DataFrame(
        {"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close, "volume": bars.volume},
        index=idx,
    )


def _backtesting_py(bars: Bars, runs: int) -> tuple[list[float], str]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    f, s = sma_pair(bars)

    class Cross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(lambda: f)
            self.slow = self.I(lambda: s)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    data = _frame(bars).rename(columns=str.capitalize)
    # whole units only: a capital large enough that every entry can buy (as our fractional run does)
    bt = Backtest(data, Cross, cash=1e12, commission=FEE)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(runs):
            t0 = time.perf_counter()
            stats = bt.run()
            times.append(time.perf_counter() - t0)
    trades = int(stats["# Trades"])
    return times, f"backtesting.py (run incl. its stats), {len(bars):,} bars ({trades:,} round trips)"


def _backtrader(bars: Bars, runs: int) -> tuple[list[float], str]:
    import backtrader as btr

    class Cross(btr.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.cross = btr.ind.CrossOver(btr.ind.SMA(period=FAST), btr.ind.SMA(period=SLOW))

        def next(self) -> None:
            if not self.position:
                if self.cross[0] > 0:
                    self.buy(size=self.broker.getvalue() * 0.99 / self.data.close[0])
            elif self.cross[0] < 0:
                self.close()

    frame = _frame(bars)
    times = []
    for _ in range(runs):
        cerebro = btr.Cerebro(stdstats=False)
        cerebro.adddata(btr.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(Cross)
        cerebro.broker.setcash(CAPITAL)
        cerebro.broker.setcommission(commission=FEE)
        t0 = time.perf_counter()
        cerebro.run()
        times.append(time.perf_counter() - t0)
    return times, f"backtrader {btr.__version__} (Cerebro.run, preload, no observers), {len(bars):,} bars"


def _nautilus(bars: Bars, runs: int) -> tuple[list[float], str]:
    import nautilus_trader
    from nautilus_trader.backtest.config import BacktestEngineConfig
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.currencies import BTC, USDT
    from nautilus_trader.model.data import BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy as NautilusStrategy

    class CrossConfig(StrategyConfig, frozen=True):  # type: ignore[misc,call-arg]
        instrument_id: InstrumentId
        bar_type: BarType

    class Cross(NautilusStrategy):  # type: ignore[misc]
        def __init__(self, config: CrossConfig) -> None:
            super().__init__(config)
            self.fast = SimpleMovingAverage(FAST)
            self.slow = SimpleMovingAverage(SLOW)
            self.prev: float | None = None

        def on_start(self) -> None:
            self.instrument = self.cache.instrument(self.config.instrument_id)
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar: Any) -> None:
            if not self.slow.initialized:
                return
            d = self.fast.value - self.slow.value
            prev, self.prev = self.prev, d
            if prev is None:
                return
            iid = self.config.instrument_id
            if prev <= 0 < d and self.portfolio.is_flat(iid):
                cash = self.portfolio.account(iid.venue).balance_free(USDT).as_double()
                qty = self.instrument.make_qty(cash * 0.99 / bar.close.as_double())
                self.submit_order(self.order_factory.market(iid, OrderSide.BUY, qty))
            elif prev >= 0 > d and not self.portfolio.is_flat(iid):
                self.close_all_positions(iid)

    inst = TestInstrumentProvider.btcusdt_binance()  # 0.1 % taker fee
    bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
    frame = _frame(bars)
    frame.index = frame.index.tz_localize("UTC")
    data = BarDataWrangler(bar_type, inst).process(frame)
    times = []
    fills = 0
    for _ in range(runs):
        engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
        engine.add_venue(
            Venue("BINANCE"),
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            starting_balances=[Money(CAPITAL, USDT), Money(0, BTC)],
        )
        engine.add_instrument(inst)
        engine.add_data(data)
        engine.add_strategy(Cross(CrossConfig(instrument_id=inst.id, bar_type=bar_type)))
        t0 = time.perf_counter()
        engine.run()
        times.append(time.perf_counter() - t0)
        fills = len(engine.trader.generate_order_fills_report())
        engine.dispose()
    label = (
        f"NautilusTrader {nautilus_trader.__version__} (BacktestEngine.run, bar execution), "
        f"{len(bars):,} bars ({fills // 2:,} round trips)"
    )
    return times, label


# ---- 4. memory of a 1,000-combination sweep ----------------------------------------------------------


def _vm_hwm_mib() -> float:
    """This process's peak resident set (``VmHWM``), MiB. Unlike ``ru_maxrss``, which Linux carries
    over from the parent through fork and exec, it starts afresh with the new program."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def memory_child(n: int) -> None:
    """Run in a subprocess: the 1,000-combination ``compute.optimize`` on ``n`` bars."""
    bars = synthetic_minutes(n)
    p = plan()
    _, combos = sweep_combos(p, MEMORY_SPACE)
    base = _vm_hwm_mib()
    t0 = time.perf_counter()
    out = compute.optimize(p, {"X": bars}, None, MEMORY_SPACE, quiet, max_combinations=100_000)
    dt = time.perf_counter() - t0
    print(f"CHILD {len(combos)} {out['combinations']} {dt:.3f} {base:.1f} {_vm_hwm_mib():.1f}")


def bench_memory(n: int, runs: int) -> None:
    print(f"\n## 4. Peak memory of a 1,000-combination compute.optimize on {n:,} bars ({runs} subprocesses)")
    rows = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", "--bars", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in proc.stdout.splitlines() if x.startswith("CHILD"))
        _, combos, done, secs, base, peak = line.split()
        rows.append((int(combos), int(done), float(secs), float(base), float(peak)))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    combos, done = rows[0][0], rows[0][1]
    secs = statistics.median(r[2] for r in rows)
    base = statistics.median(r[3] for r in rows)
    peak = max(r[4] for r in rows)
    print(f"| combinations | {done:,} (of {combos:,} candidates) |")
    print(f"| peak RSS of the sweep process (VmHWM, the largest of {runs}) | {peak:,.0f} MiB |")
    print(f"|   of which before the sweep (interpreter, imports, the {n:,} bars) | {base:,.0f} MiB |")
    print(f"| time | {secs:.2f} s ({done / secs:,.0f} combos/s) |")
    print(f"  (RUSAGE_CHILDREN ru_maxrss: {children:,.0f} MiB, which includes this parent's RSS at fork)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--sweep-bars", type=int, default=100_000)
    ap.add_argument("--ref-bars", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slow-runs", type=int, default=3)
    ap.add_argument("--only", default="vector,sweep,event,memory")
    ap.add_argument("--profile", action="store_true", help="cProfile one sweep (1 thread)")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.bars)
        return 0
    only = set(args.only.split(","))
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {nb.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    sections: list[tuple[str, Callable[[], None]]] = [
        ("vector", lambda: bench_vector(synthetic_minutes(args.bars), args.runs)),
        ("sweep", lambda: bench_sweep(synthetic_minutes(args.sweep_bars), args.runs, args.profile)),
        (
            "event",
            lambda: bench_event(
                synthetic_minutes(args.bars), synthetic_minutes(args.ref_bars), args.slow_runs
            ),
        ),
        ("memory", lambda: bench_memory(args.bars, args.slow_runs)),
    ]
    for name, fn in sections:
        if name in only:
            fn()
            print(f"  (load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
