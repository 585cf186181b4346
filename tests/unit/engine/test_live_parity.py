"""Live parity: a strategy run by ``LiveShell`` bar by bar places the same orders as in
``EventBacktest`` over the same real sample bars.

The reference is an ``EventBacktest`` whose ``submit`` records every order (``buy``, ``sell`` and
``close`` all go through it). The live side is a fresh instance of the same strategy inside a
``LiveShell`` that only ever sees the bars closed so far. Its venue is a second ``EventBacktest``
over the same bars running a ``Relay`` strategy: at each step the relay hands the shell the bars
that just closed and the account (equity, cash, positions, open orders) and turns the commands
the shell returns into venue orders; fills and rejects go back to the shell. The venue's
matching, costs, sizing by fraction and buying-power caps are the backtester's own, so the
account evolves identically exactly when the live side's orders are the same: the two order
logs (bar ts, symbol, side, quantity or fraction, type, prices, time in force, reduce-only, tag,
group) and the equity curves must be equal, bar for bar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.live import AccountState, Bar, Cancel, CancelAll, Command, LiveShell, Submit
from algotrendy.engine.orders import Fill, OrderError, OrderSide, OrderType, TimeInForce
from algotrendy.engine.result import RunResult
from algotrendy.engine.signals import resolve_params
from algotrendy.engine.strategy import Context, Strategy
from algotrendy.engine.template import PositionSizing, RiskManagement, Rotation, StrategyTemplate
from algotrendy.engine.templated import RotationStrategy, TemplateStrategy
from tests.golden.indicator_samples import SAMPLES, load

# ---- data ------------------------------------------------------------------------------------


@cache
def daily(name: str) -> Bars:
    """A daily sample file as ``Bars`` (read as ``tests.golden.indicator_samples.load`` does)."""
    df = pd.read_csv(SAMPLES / f"{name}_1d.csv", parse_dates=["timestamp"])
    ts = df["timestamp"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(np.int64)
    cols = [
        np.ascontiguousarray(df[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")
    ]
    return Bars(np.ascontiguousarray(ts, dtype=np.int64), *cols)


def between(bars: Bars, start: str, end: str) -> Bars:
    lo, hi = (int(pd.Timestamp(d, tz="UTC").value) for d in (start, end))
    i, j = np.searchsorted(bars.ts, [lo, hi])
    return bars.slice(int(i), int(j))


def btc(n: int = 3000) -> Bars:
    return load("BTCUSDT_1h").slice(20_000, 20_000 + n)


def bar_at(bars: Bars, i: int) -> Bar:
    return Bar(*(float(col[i]) for col in (bars.open, bars.high, bars.low, bars.close, bars.volume)))


# ---- the two sides ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Placed:
    ts: int
    symbol: str
    side: OrderSide
    quantity: float | None
    fraction: float | None
    type: OrderType
    limit_price: float | None
    stop_price: float | None
    trail: float | None
    time_in_force: TimeInForce
    reduce_only: bool
    tag: str
    group: str | None

    def core(self) -> Placed:
        """All but the bracket group, whose name counts the strategy's entries so far: a
        warm-started strategy counts from its start."""
        return dataclasses.replace(self, group=None)


class RecordingBacktest(EventBacktest):
    """The reference: ``EventBacktest`` logging each order its strategy places."""

    def __init__(self, data: Mapping[str, Bars], strategy: Strategy, config: BacktestConfig) -> None:
        super().__init__(data, strategy, config)
        self.log: list[Placed] = []

    def submit(
        self,
        symbol: str,
        side: OrderSide,
        quantity: float | None = None,
        *,
        fraction: float | None = None,
        type: OrderType = OrderType.MARKET,
        limit_price: float | None = None,
        stop_price: float | None = None,
        trail: float | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
        tag: str = "",
        group: str | None = None,
    ) -> str:
        oid = super().submit(
            symbol, side, quantity, fraction=fraction, type=type, limit_price=limit_price,
            stop_price=stop_price, trail=trail, time_in_force=time_in_force, reduce_only=reduce_only,
            tag=tag, group=group,
        )  # fmt: skip
        q = None if quantity is None else float(quantity)
        self.log.append(
            Placed(self.ts, symbol, side, q, fraction, type, limit_price, stop_price, trail, time_in_force,
                   reduce_only, tag, group)
        )  # fmt: skip
        return oid


class Relay(Strategy):
    """The simulated venue's side of the live run: feeds ``shell`` the closed bars and the
    account, places the commands it returns, and reports fills and rejects back to it."""

    def __init__(self, shell: LiveShell, data: Mapping[str, Bars], *, replay_each_bar: bool = False) -> None:
        self.shell = shell
        self.data = data
        self.symbols = tuple(data)
        self.replay = replay_each_bar
        self.log: list[Placed] = []
        self.to_venue: dict[str, str] = {}
        self.to_local: dict[str, str] = {}
        self.venue: EventBacktest | None = None

    def account(self) -> AccountState:
        v = self.venue
        assert v is not None
        open_orders = {self.to_local[o.id]: (o.symbol, o.tag) for o in v._orders.values() if o.status.is_open}
        positions = {s: v.position(s) for s in self.symbols}
        return AccountState(v.equity, v.cash, positions, open_orders)

    def on_start(self, ctx: Context) -> None:
        self.apply(ctx, self.shell.start(self.account()))

    def on_bar(self, ctx: Context) -> None:
        bars = {s: bar_at(self.data[s], ctx.index(s)) for s in self.symbols if ctx.has_bar(s)}
        self.apply(ctx, self.shell.on_bars(ctx.ts, bars, self.account()))
        if self.replay:  # the same bars again (a feed replaying): refused, nothing placed
            stale = self.shell.stale
            assert self.shell.on_bars(ctx.ts, bars, self.account()) == []
            assert self.shell.stale == stale + len(bars)

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        local = dataclasses.replace(fill, order_id=self.to_local[fill.order_id], index=-1)
        self.apply(ctx, self.shell.on_fill(local, tag, self.account()))

    def on_reject(self, ctx: Context, order_id: str, reason: str) -> None:
        self.apply(ctx, self.shell.on_reject(self.to_local[order_id], reason, self.account()))

    def apply(self, ctx: Context, commands: list[Command]) -> None:
        for c in commands:
            if isinstance(c, Submit):
                vid = ctx.submit(
                    c.symbol, c.side, c.quantity, fraction=c.fraction, type=c.type, limit_price=c.limit_price,
                    stop_price=c.stop_price, trail=c.trail, time_in_force=c.time_in_force,
                    reduce_only=c.reduce_only, tag=c.tag, group=c.group,
                )  # fmt: skip
                self.to_venue[c.local_id] = vid
                self.to_local[vid] = c.local_id
                assert self.venue is not None  # the venue starts a trailing stop where the shell says
                assert self.venue._orders[vid].best_price == c.trail_from
                self.log.append(
                    Placed(ctx.ts, c.symbol, c.side, c.quantity, c.fraction, c.type, c.limit_price,
                           c.stop_price, c.trail, c.time_in_force, c.reduce_only, c.tag, c.group)
                )  # fmt: skip
            elif isinstance(c, Cancel):
                ctx.cancel(self.to_venue[c.local_id])
            else:
                ctx.cancel_all(c.symbol)


@dataclasses.dataclass
class Runs:
    ref: RecordingBacktest
    ref_result: RunResult
    relay: Relay
    live_result: RunResult


def run_both(
    make: Any,
    data: Mapping[str, Bars],
    config: BacktestConfig,
    *,
    replay_each_bar: bool = False,
) -> Runs:
    ref = RecordingBacktest(data, make(), config)
    ref_result = ref.run()
    shell = LiveShell(make(), tuple(data))
    relay = Relay(shell, data, replay_each_bar=replay_each_bar)
    venue = EventBacktest(data, relay, config)
    relay.venue = venue
    return Runs(ref, ref_result, relay, venue.run())


def assert_same_orders(ref: list[Placed], live: list[Placed], *, key: Any = None) -> None:
    a = [key(p) for p in ref] if key else ref
    b = [key(p) for p in live] if key else live
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        assert x == y, f"order {k}: backtest {x} != live {y}"
    assert len(a) == len(b), f"backtest placed {len(a)} orders, live {len(b)}"


def assert_parity(runs: Runs, *, min_orders: int) -> None:
    assert_same_orders(runs.ref.log, runs.relay.log)
    assert len(runs.ref.log) >= min_orders  # the comparison is not vacuous
    np.testing.assert_array_equal(runs.live_result.equity, runs.ref_result.equity)
    assert runs.live_result.trades.pnl.tolist() == runs.ref_result.trades.pnl.tolist()
    # local ids are issued in order, one per order: L<n> is the venue's n-th order
    assert all(vid == f"o{lid[1:]}" for lid, vid in runs.relay.to_venue.items())


# ---- templates ------------------------------------------------------------------------------


def sma(**risk: Any) -> StrategyTemplate:
    return BUILTIN_TEMPLATES["sma_crossover"].model_copy(update={"risk_management": RiskManagement(**risk)})


def template_strategy(t: StrategyTemplate, symbol: str, ppy: float) -> Any:
    params = resolve_params(t)
    return lambda: TemplateStrategy(t, params, symbol=symbol, periods_per_year=ppy)


FIXED = sma(position_sizing=PositionSizing(method="fixed_quantity", value=50.0))
BRACKETS = sma(
    stop_loss=0.02, take_profit=0.04, position_sizing=PositionSizing(method="percent_equity", value=0.5)
)
TRAILING = sma(trailing_stop=0.03, position_sizing=PositionSizing(method="percent_equity", value=0.9))
COSTS = BacktestConfig(initial_capital=100_000.0, fee_rate=0.001, slippage=0.0005)


# ---- parity over whole runs ----------------------------------------------------------------


def test_sma_crossover_fixed_quantity_on_aapl_daily() -> None:
    runs = run_both(template_strategy(FIXED, "AAPL", 252.0), {"AAPL": daily("AAPL")}, COSTS)
    assert_parity(runs, min_orders=100)
    assert {p.quantity for p in runs.ref.log} == {50.0}
    assert runs.relay.shell.steps == len(daily("AAPL"))


@pytest.mark.parametrize("template", [BRACKETS, TRAILING], ids=["stop_take_profit", "trailing_stop"])
def test_sma_crossover_percent_equity_with_brackets_on_btc_hourly(template: StrategyTemplate) -> None:
    bars = btc()
    runs = run_both(
        template_strategy(template, "BTCUSDT", 8760.0), {"BTCUSDT": bars}, COSTS, replay_each_bar=True
    )
    assert_parity(runs, min_orders=100)
    tags = {p.tag for p in runs.ref.log}
    assert tags >= (
        {"entry", "exit", "stop_loss", "take_profit"} if template is BRACKETS else {"trailing_stop"}
    )
    assert runs.relay.shell.stale == len(bars)  # every replayed bar refused


def rotation_data() -> dict[str, Bars]:
    """SPY alone at first, then AAPL (listed 2004-08) and MSFT (from 2006), MSFT with holes."""
    msft = between(daily("MSFT"), "2006-01-01", "2011-01-01")
    keep = np.ones(len(msft), dtype=bool)
    keep[::29] = False
    holey = Bars(*(col[keep] for col in (msft.ts, msft.open, msft.high, msft.low, msft.close, msft.volume)))
    return {
        "SPY": between(daily("SPY"), "2003-06-01", "2011-01-01"),
        "AAPL": between(daily("AAPL"), "2003-06-01", "2011-01-01"),
        "MSFT": holey,
    }


ROTATION = BUILTIN_TEMPLATES["momentum_rotation"].model_copy(
    update={"rotation": Rotation(score="roc(close, lookback)", top_n=2, rebalance_every="rebalance_every")}
)


def test_rotation_over_three_daily_symbols_with_holes() -> None:
    data = rotation_data()
    params = resolve_params(ROTATION, {"lookback": 42, "rebalance_every": 10})

    def make() -> RotationStrategy:
        return RotationStrategy(ROTATION, params, symbols=tuple(data))

    runs = run_both(make, data, COSTS)
    assert_parity(runs, min_orders=60)
    assert runs.relay.shell.steps == len(runs.ref_result.ts)  # one step per timestamp of the union
    assert {p.symbol for p in runs.ref.log} == set(data)
    assert {p.tag for p in runs.ref.log} == {"entry", "rebalance"}


# ---- warm-up: history first, then live -----------------------------------------------------


def test_warm_started_shell_places_the_backtests_orders_after_the_switch() -> None:
    """A shell started with the first ``n`` bars as history (and keeping only a 400-bar window)
    then fed the rest places, from bar ``n`` on, the orders the backtest over the whole series
    placed there: the indicators are causal with a finite lookback. The switch is at a bar where
    the backtest is flat with nothing working, and the live account starts with its cash."""
    bars = btc()
    make = template_strategy(BRACKETS, "BTCUSDT", 8760.0)
    ref = RecordingBacktest({"BTCUSDT": bars}, make(), COSTS)
    result = ref.run()
    busy = {p.ts for p in ref.log}
    n = next(i for i in range(1500, len(bars)) if result.exposure[i - 1] == 0 and bars.ts[i - 1] not in busy)
    shell = LiveShell(make(), ("BTCUSDT",), history={"BTCUSDT": bars.slice(0, n)}, max_bars=400)
    rest = {"BTCUSDT": bars.slice(n, len(bars))}
    relay = Relay(shell, rest)
    venue = EventBacktest(rest, relay, dataclasses.replace(COSTS, initial_capital=float(result.cash[n - 1])))
    relay.venue = venue
    live = venue.run()
    after = [p for p in ref.log if p.ts >= bars.ts[n]]
    assert len(after) >= 50
    assert_same_orders(after, relay.log, key=Placed.core)
    np.testing.assert_array_equal(live.equity, result.equity[n:])
    assert len(shell.bars("BTCUSDT")) == 400


# ---- the shell itself ------------------------------------------------------------------------


class Probe(Strategy):
    """Checks, at every step, that ``index`` points at the last bar ``on_data`` got."""

    def __init__(self) -> None:
        self.seen: dict[str, Bars] = {}
        self.kept: list[tuple[Bars, np.ndarray]] = []
        self.steps: list[tuple[int, tuple[str, ...]]] = []
        self.start_index: dict[str, int] = {}

    def on_start(self, ctx: Context) -> None:
        self.start_index = {s: ctx.index(s) for s in ctx.symbols}

    def on_data(self, symbol: str, bars: Bars) -> None:
        self.seen[symbol] = bars
        self.kept.append((bars, bars.close.copy()))

    def on_bar(self, ctx: Context) -> None:
        for s in ctx.symbols:
            i = ctx.index(s)
            if i < 0:
                continue
            b = self.seen[s]
            assert i == len(b) - 1
            assert b.close[i] == ctx.price(s)
            assert (b.ts[i] == ctx.ts) == ctx.has_bar(s)
        self.steps.append((ctx.ts, tuple(s for s in ctx.symbols if ctx.has_bar(s))))


def test_index_stays_on_the_last_bar_of_a_trimmed_window_and_old_windows_stay_intact() -> None:
    bars = btc(700)
    probe = Probe()
    shell = LiveShell(probe, ("X",), history={"X": bars.slice(0, 100)}, max_bars=50)
    flat = AccountState.flat(1000.0)
    assert shell.start(flat) == []
    assert probe.start_index == {"X": 49}
    for i in range(100, len(bars)):
        b = bar_at(bars, i)
        assert shell.on_bar("X", int(bars.ts[i]), b.open, b.high, b.low, b.close, b.volume, flat) == []
    assert shell.steps == 600
    window = shell.bars("X")
    assert len(window) == 50
    np.testing.assert_array_equal(window.close, bars.close[-50:])
    assert not window.close.flags.writeable
    for kept, copy in probe.kept:  # buffers are replaced, never overwritten
        np.testing.assert_array_equal(kept.close, copy)


def test_stale_duplicate_and_out_of_order_bars_are_refused() -> None:
    probe = Probe()
    shell = LiveShell(probe, ("A", "B"))
    flat = AccountState.flat(1000.0)
    with pytest.raises(RuntimeError, match="start"):
        shell.on_bar("A", 10, 1, 1, 1, 1, 0, flat)
    shell.start(flat)
    assert probe.start_index == {"A": -1, "B": -1}
    bar = Bar(1.0, 2.0, 0.5, 1.5)
    shell.on_bars(10, {"A": bar}, flat)
    assert shell.on_bars(10, {"A": bar}, flat) == []  # duplicate
    assert shell.on_bars(9, {"A": bar}, flat) == []  # older than its last bar
    shell.on_bars(20, {"A": bar, "B": bar}, flat)
    assert shell.on_bars(15, {"B": bar}, flat) == []  # B's first-ever bar, but time went on
    shell.on_bars(20, {"B": bar, "A": bar}, flat)  # A is a duplicate; nothing new for B either
    assert shell.stale == 5
    shell.on_bars(30, {"A": bar}, flat)
    shell.on_bars(30, {"B": bar}, flat)  # a straggler: another step at the same time
    assert probe.steps == [(10, ("A",)), (20, ("A", "B")), (30, ("A",)), (30, ("A", "B"))]
    assert shell.index("A") == 2 and shell.index("B") == 1
    with pytest.raises(ValueError, match="unknown symbol"):
        shell.on_bars(40, {"C": bar}, flat)


class Scripted(Strategy):
    """Runs a script against the context at each bar."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.ids: list[str | None] = []

    def on_bar(self, ctx: Context) -> None:
        self.ids.extend(self.script(ctx))


def one_step(
    script: Any, account: AccountState, *, next_id: int = 1
) -> tuple[list[Command], Scripted, LiveShell]:
    strat = Scripted(script)
    shell = LiveShell(strat, ("A", "B"), next_id=next_id)
    shell.start(account)
    return shell.on_bar("A", 1, 10, 11, 9, 10, 0, account), strat, shell


def test_close_buy_and_sell_mirror_the_backtest_context() -> None:
    account = AccountState(1000.0, 500.0, {"A": 3.0, "B": -2.5})

    def script(c: Context) -> list[str | None]:
        trailing = c.submit("A", OrderSide.SELL, 1.0, type=OrderType.TRAILING_STOP, trail=0.05)
        return [c.close("A"), c.close("B", tag="flip"), c.buy("A", 2), c.sell("B", fraction=0.25), trailing]

    out, strat, _ = one_step(script, account)
    assert strat.ids == ["L2", "L3", "L4", "L5", "L1"]
    assert out == [
        # a trailing stop placed at a bar trails from its close, as in the backtest
        Submit(
            "L1", "A", OrderSide.SELL, 1.0, None, type=OrderType.TRAILING_STOP, trail=0.05, trail_from=10.0
        ),
        Submit("L2", "A", OrderSide.SELL, 3.0, None, reduce_only=True, tag="exit"),
        Submit("L3", "B", OrderSide.BUY, 2.5, None, reduce_only=True, tag="flip"),
        Submit("L4", "A", OrderSide.BUY, 2.0, None, tag="entry"),
        Submit("L5", "B", OrderSide.SELL, None, 0.25, tag="entry"),
    ]
    out, strat, _ = one_step(lambda c: [c.close("A")], AccountState.flat(1000.0))
    assert out == [] and strat.ids == [None]


def test_cancels_only_what_is_open() -> None:
    account = AccountState(1000.0, 1000.0, {}, {"L1": ("A", "entry"), "L2": ("B", "stop_loss")})

    def script(c: Context) -> list[str | None]:
        c.cancel("L1")
        c.cancel("L1")  # once is enough
        c.cancel("L99")  # not open: nothing
        new = c.submit("B", OrderSide.BUY, 1.0, type=OrderType.LIMIT, limit_price=9.0)
        c.cancel_all("B")  # L2 and the new order
        c.cancel_all("A")  # nothing left
        return [new]

    out, _, shell = one_step(script, account, next_id=3)  # a shell replacing one that issued L1, L2
    assert shell.next_id == 4
    assert out == [
        Cancel("L1"),
        Submit("L3", "B", OrderSide.BUY, 1.0, None, type=OrderType.LIMIT, limit_price=9.0),
        CancelAll("B"),
    ]


def test_bad_orders_are_refused_and_use_no_id() -> None:
    flat = AccountState.flat(1000.0)

    def script(c: Context) -> list[str | None]:
        with pytest.raises(ValueError, match="exactly one"):
            c.submit("A", OrderSide.BUY, 1.0, fraction=0.5)
        with pytest.raises(ValueError, match="fraction"):
            c.buy("A", fraction=0)
        with pytest.raises(ValueError, match="unknown symbol"):
            c.buy("Z", 1.0)
        with pytest.raises(OrderError, match="limit price"):
            c.submit("A", OrderSide.BUY, 1.0, type=OrderType.LIMIT)
        return [c.buy("A", 1.0)]

    out, strat, shell = one_step(script, flat)
    assert strat.ids == ["L1"] and len(out) == 1
    with pytest.raises(RuntimeError, match="callbacks"):
        shell.buy("A", 1.0)


def test_fills_and_rejects_reach_the_strategy_with_the_account() -> None:
    class Bracketing(Strategy):
        def __init__(self) -> None:
            self.rejects: list[tuple[str, str]] = []

        def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
            q = ctx.position(fill.symbol)
            ctx.submit(fill.symbol, OrderSide.SELL, q, type=OrderType.STOP, stop_price=fill.price * 0.9,
                       reduce_only=True, tag="stop_loss", group="g1")  # fmt: skip
            ctx.submit(fill.symbol, OrderSide.SELL, q, type=OrderType.TRAILING_STOP, trail=0.05,
                       reduce_only=True, tag="trailing_stop", group="g1")  # fmt: skip

        def on_reject(self, ctx: Context, order_id: str, reason: str) -> None:
            self.rejects.append((order_id, reason))

    strat = Bracketing()
    shell = LiveShell(strat, ("A",), history={"A": btc(5)})
    shell.start()
    fill = Fill("f1", "L7", "A", OrderSide.BUY, 4.0, 100.0, 0.1)
    out = shell.on_fill(fill, "entry", AccountState(1000.0, 599.9, {"A": 4.0}))
    assert out == [
        Submit("L1", "A", OrderSide.SELL, 4.0, None, type=OrderType.STOP, stop_price=90.0, reduce_only=True,
               tag="stop_loss", group="g1"),
        # placed from on_fill: trails from the fill price, not the last close
        Submit("L2", "A", OrderSide.SELL, 4.0, None, type=OrderType.TRAILING_STOP, trail=0.05,
               reduce_only=True, tag="trailing_stop", group="g1", trail_from=100.0),
    ]  # fmt: skip
    assert shell.on_reject("L1", "insufficient buying power", AccountState.flat(1000.0)) == []
    assert strat.rejects == [("L1", "insufficient buying power")]


def test_constructor_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="no symbols"):
        LiveShell(Strategy(), ())
    with pytest.raises(ValueError, match="does not trade"):
        LiveShell(Strategy(), ("A",), history={"B": btc(10)})
    with pytest.raises(ValueError, match="not given"):
        LiveShell(TemplateStrategy(FIXED, resolve_params(FIXED), symbol="B", periods_per_year=252), ("A",))
    shell = LiveShell(Strategy(), ("A",))
    shell.start()
    with pytest.raises(RuntimeError, match="already started"):
        shell.start()
