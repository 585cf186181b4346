"""The event-driven backtester on small hand-made bar series, with small scripted strategies.

Conventions pinned here (``engine.backtest``): an order placed on bar ``i``'s close is first
matched on bar ``i + 1``; ``equity[i]`` is cash plus positions at bar ``i``'s close; DAY orders
live through the UTC day of the first bar they meet; IOC/FOK expire when their first bar does
not fill them. The last part checks the accounting on random runs (seeds are in the test ids).

Order states are read from ``EventBacktest._orders`` (the venue's book, which a strategy sees
only through its callbacks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.orders import Fill, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from algotrendy.engine.result import RunResult
from algotrendy.engine.signal_strategy import Brackets, SignalStrategy
from algotrendy.engine.signals import resolve_params
from algotrendy.engine.strategy import Context, Strategy
from algotrendy.engine.templated import RotationStrategy
from tests.unit.indicators.synthetic import walk

BUY, SELL = OrderSide.BUY, OrderSide.SELL
S = OrderStatus
HOUR = 3600 * 10**9
DAY = 24 * HOUR
JAN1 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC

Row = tuple[float, float, float, float]  # open, high, low, close


def bars(
    rows: Sequence[Row], *, start: int = JAN1, step: int = HOUR, ts: Sequence[int] | None = None
) -> Bars:
    arr = np.asarray(rows, dtype=np.float64)
    stamps = np.asarray(ts, dtype=np.int64) if ts is not None else start + np.arange(len(arr)) * step
    return Bars(stamps.astype(np.int64), arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], np.ones(len(arr)))


def flat_bar(price: float) -> Row:
    return (price, price, price, price)


Action = Callable[[Context], object]


@dataclass
class Script(Strategy):
    """Runs ``steps[k]`` (one action or several) on the k-th ``on_bar`` and records what the
    shell reports: fills, rejects, and at every step the positions, cash and what the context
    says about each symbol."""

    steps: dict[int, Action | list[Action]] = field(default_factory=dict)
    placed: dict[int, list[object]] = field(default_factory=dict)
    fills: list[tuple[Fill[float], str]] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)
    seen: list[dict[str, tuple[float, int, bool, float]]] = field(default_factory=list)
    step: int = -1

    def on_bar(self, ctx: Context) -> None:
        self.step += 1
        self.seen.append(
            {s: (ctx.position(s), ctx.index(s), ctx.has_bar(s), ctx.price(s)) for s in ctx.symbols}
        )
        todo = self.steps.get(self.step, [])
        actions = todo if isinstance(todo, list) else [todo]
        self.placed[self.step] = [a(ctx) for a in actions]

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        self.fills.append((fill, tag))

    def on_reject(self, ctx: Context, order_id: str, reason: str) -> None:
        self.rejects.append((order_id, reason))


def backtest(
    data: Bars | dict[str, Bars], strategy: Strategy, **config: float
) -> tuple[EventBacktest, RunResult]:
    bt = EventBacktest(data if isinstance(data, dict) else {"X": data}, strategy, BacktestConfig(**config))
    return bt, bt.run()


def order_of(bt: EventBacktest, oid: object) -> Order[float]:
    assert isinstance(oid, str)
    return bt._orders[oid]


def buy(qty: float, symbol: str = "X", **kw: object) -> Action:
    return lambda ctx: ctx.submit(symbol, BUY, qty, **kw)


def sell(qty: float, symbol: str = "X", **kw: object) -> Action:
    return lambda ctx: ctx.submit(symbol, SELL, qty, **kw)


def position_of(s: Script, step: int, symbol: str = "X") -> float:
    return s.seen[step][symbol][0]


# ---- market orders ----------------------------------------------------------------------------


def test_a_market_order_placed_on_a_bar_fills_at_the_next_bars_open() -> None:
    data = bars([(100, 101, 99, 100), (102, 104, 101, 103), (103, 105, 102, 104)])
    s = Script({0: buy(10)})
    _, r = backtest(data, s)
    ((f, tag),) = s.fills
    assert (f.index, f.ts, f.price, f.quantity, f.side) == (1, data.ts[1], 102.0, 10.0, BUY)
    assert tag == ""
    assert r.equity[0] == 100_000.0  # nothing happens on the bar the order was placed
    assert r.cash[1] == 100_000.0 - 1020.0
    assert r.equity[1] == r.cash[1] + 10 * 103.0
    assert r.equity[2] == r.cash[2] + 10 * 104.0
    assert [position_of(s, i) for i in range(3)] == [0.0, 10.0, 10.0]


def test_a_market_order_takes_slippage_and_pays_the_fee() -> None:
    data = bars([flat_bar(100), (200, 201, 199, 200), flat_bar(200)])
    s = Script({0: buy(10), 1: sell(10)})
    _, r = backtest(data, s, fee_rate=0.001, slippage=0.01, fee_fixed=2.0)
    (b, _), (x, _) = s.fills
    assert b.price == pytest.approx(202.0)
    assert b.fee == pytest.approx(10 * 202 * 0.001 + 2.0)
    assert x.price == pytest.approx(198.0)
    assert x.fee == pytest.approx(10 * 198 * 0.001 + 2.0)
    assert r.cash[-1] == pytest.approx(100_000 - 2020 - b.fee + 1980 - x.fee)
    assert r.fees_paid == pytest.approx(b.fee + x.fee)
    assert r.trades.pnl[0] == pytest.approx(-40 - b.fee - x.fee)
    assert r.orders == 2


def test_an_order_placed_on_the_last_bar_never_fills() -> None:
    s = Script({1: buy(10)})
    _, r = backtest(bars([flat_bar(100), flat_bar(100)]), s)
    assert s.fills == []
    assert r.orders == 1
    assert r.equity.tolist() == [100_000.0, 100_000.0]


# ---- limit and stop orders rest -----------------------------------------------------------------


def test_a_buy_limit_rests_until_a_bar_trades_down_to_it_and_fills_at_the_limit() -> None:
    data = bars(
        [
            flat_bar(100),
            (100, 101, 98, 99),  # 1: not low enough
            (99, 100, 96.5, 97),  # 2: not low enough
            (97, 97.5, 94, 95),  # 3: reaches 95
            (95, 96, 90, 91),
        ]
    )
    s = Script({0: buy(10, type=OrderType.LIMIT, limit_price=95.0)})
    bt, _ = backtest(data, s, slippage=0.01)
    ((f, _),) = s.fills
    assert (f.index, f.price) == (3, 95.0)  # a limit fill takes no slippage
    assert order_of(bt, s.placed[0][0]).status is S.FILLED


def test_a_buy_limit_fills_at_a_better_open() -> None:
    data = bars([flat_bar(100), (100, 101, 99, 100), (96, 97, 95, 96)])
    s = Script({0: buy(10, type=OrderType.LIMIT, limit_price=98.0)})
    backtest(data, s)
    ((f, _),) = s.fills
    assert (f.index, f.price) == (2, 96.0)


def test_a_sell_limit_fills_when_a_bar_trades_up_to_it() -> None:
    data = bars([flat_bar(100), flat_bar(100), (101, 106, 100, 104), flat_bar(100)])
    s = Script({0: buy(10), 1: sell(10, type=OrderType.LIMIT, limit_price=105.0)})
    backtest(data, s)
    assert [(f.index, f.price, f.side) for f, _ in s.fills] == [(1, 100.0, BUY), (2, 105.0, SELL)]


def test_a_sell_stop_rests_and_fills_at_the_stop_inside_the_bar_with_slippage() -> None:
    data = bars([flat_bar(100), flat_bar(100), (99, 100, 96, 97), (97, 98, 94.5, 95), flat_bar(95)])
    s = Script({0: buy(10), 1: sell(10, type=OrderType.STOP, stop_price=95.0)})
    _, r = backtest(data, s, slippage=0.001)
    (_, (f, _)) = s.fills
    assert f.index == 3
    assert f.price == pytest.approx(95.0 * 0.999)
    assert position_of(s, 3) == 0.0
    assert r.trades.exit_index.tolist() == [3]


def test_a_sell_stop_gapped_through_fills_at_the_open_with_slippage() -> None:
    data = bars([flat_bar(100), flat_bar(100), (99, 100, 96, 97), (92, 93, 90, 91), flat_bar(91)])
    s = Script({0: buy(10), 1: sell(10, type=OrderType.STOP, stop_price=95.0)})
    backtest(data, s, slippage=0.001)
    (_, (f, _)) = s.fills
    assert f.index == 3
    assert f.price == pytest.approx(92.0 * 0.999)  # worse than the stop: the gap is the trader's loss


def test_a_buy_stop_enters_on_a_breakout() -> None:
    data = bars([flat_bar(100), (100, 102, 99, 101), (101, 106, 100, 105), flat_bar(105)])
    s = Script({0: buy(10, type=OrderType.STOP, stop_price=104.0)})
    backtest(data, s)
    ((f, _),) = s.fills
    assert (f.index, f.price) == (2, 104.0)


def test_a_trailing_stop_follows_the_high_and_exits_on_the_pullback() -> None:
    data = bars(
        [
            flat_bar(100),
            flat_bar(100),  # 1: long at 100, trailing stop placed at the close: best = 100
            (100, 110, 99, 109),  # 2: level 90 not hit; best -> 110
            (109, 120, 104, 118),  # 3: level 99 not hit; best -> 120
            (117, 118, 107, 110),  # 4: level 108 hit
            flat_bar(110),
        ]
    )
    s = Script({0: buy(10), 1: sell(10, type=OrderType.TRAILING_STOP, trail=0.1, reduce_only=True)})
    backtest(data, s)
    (_, (f, _)) = s.fills
    assert f.index == 4
    assert f.price == pytest.approx(108.0)


# ---- time in force ------------------------------------------------------------------------------


def test_day_orders_expire_after_the_utc_day_of_the_first_bar_they_meet() -> None:
    start = JAN1 + 21 * HOUR
    data = bars(
        [
            flat_bar(100),  # 0: Jan 1 21:00 -- A placed, first meets 22:00 (Jan 1)
            flat_bar(100),  # 1: Jan 1 22:00
            flat_bar(100),  # 2: Jan 1 23:00 -- B placed, first meets 00:00 (Jan 2)
            (100, 100, 96, 97),  # 3: Jan 2 00:00 -- A's day is over; B not reached
            (97, 98, 94, 95),  # 4: Jan 2 01:00 -- B fills at 95
            flat_bar(95),
        ],
        start=start,
    )
    limit = {"type": OrderType.LIMIT, "limit_price": 95.0, "time_in_force": TimeInForce.DAY}
    limit_a = {**limit, "limit_price": 96.0}
    s = Script({0: buy(1, **limit_a), 2: buy(1, **limit)})
    bt, _ = backtest(data, s)
    a, b = order_of(bt, s.placed[0][0]), order_of(bt, s.placed[2][0])
    assert a.status is S.EXPIRED
    assert a.reason == "day order not filled"
    assert a.filled_quantity == 0.0
    assert b.status is S.FILLED
    assert [(f.order_id, f.index, f.price) for f, _ in s.fills] == [(b.id, 4, 95.0)]


def test_a_day_order_fills_within_its_day() -> None:
    data = bars([flat_bar(100), flat_bar(100), (99, 99, 95, 96), flat_bar(96)], start=JAN1)
    s = Script({0: buy(1, type=OrderType.LIMIT, limit_price=96.0, time_in_force=TimeInForce.DAY)})
    backtest(data, s)
    assert [f.index for f, _ in s.fills] == [2]


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_ioc_and_fok_expire_when_their_first_bar_does_not_fill_them(tif: TimeInForce) -> None:
    data = bars([flat_bar(100), (100, 101, 96, 97), (97, 97, 90, 91), flat_bar(91)])
    s = Script({0: buy(1, type=OrderType.LIMIT, limit_price=95.0, time_in_force=tif)})
    bt, _ = backtest(data, s)
    o = order_of(bt, s.placed[0][0])
    assert o.status is S.EXPIRED
    assert o.reason == "not filled immediately"
    assert s.fills == []  # bar 2 would have reached 95, but the order was gone


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_ioc_and_fok_fill_when_their_first_bar_reaches_them(tif: TimeInForce) -> None:
    data = bars([flat_bar(100), (100, 101, 94, 97), flat_bar(97)])
    s = Script({0: buy(1, type=OrderType.LIMIT, limit_price=95.0, time_in_force=tif)})
    bt, _ = backtest(data, s)
    assert order_of(bt, s.placed[0][0]).status is S.FILLED
    assert [(f.index, f.price) for f, _ in s.fills] == [(1, 95.0)]


# ---- cancel -------------------------------------------------------------------------------------


def test_a_cancelled_resting_order_never_fills() -> None:
    data = bars([flat_bar(100), (100, 101, 97, 98), (98, 98, 90, 91), flat_bar(91)])
    s = Script(
        {
            0: buy(1, type=OrderType.LIMIT, limit_price=95.0),
            1: lambda ctx: ctx.cancel(s.placed[0][0]),
        }
    )
    bt, _ = backtest(data, s)
    o = order_of(bt, s.placed[0][0])
    assert o.status is S.CANCELLED
    assert o.reason == "cancelled by strategy"
    assert s.fills == []


def test_an_order_cancelled_on_the_bar_it_was_placed_never_fills() -> None:
    def place_and_cancel(ctx: Context) -> str:
        oid = ctx.buy("X", 1)
        ctx.cancel(oid)
        return oid

    s = Script({0: place_and_cancel})
    bt, _ = backtest(bars([flat_bar(100)] * 3), s)
    assert s.fills == []
    assert order_of(bt, s.placed[0][0]).status is S.CANCELLED


def test_cancelling_a_filled_or_unknown_order_does_nothing() -> None:
    s = Script({0: buy(1), 2: [lambda ctx: ctx.cancel(s.placed[0][0]), lambda ctx: ctx.cancel("nope")]})
    bt, _ = backtest(bars([flat_bar(100)] * 4), s)
    assert order_of(bt, s.placed[0][0]).status is S.FILLED
    assert position_of(s, 3) == 1.0


def test_cancel_all_cancels_every_open_order_of_one_symbol_only() -> None:
    data = {"A": bars([flat_bar(100)] * 4), "B": bars([flat_bar(50)] * 4)}
    s = Script(
        {
            0: [
                buy(1, "A", type=OrderType.LIMIT, limit_price=90.0),
                sell(1, "A", type=OrderType.STOP, stop_price=80.0),
                buy(1, "B", type=OrderType.LIMIT, limit_price=40.0),
            ],
            1: [buy(1, "A"), lambda ctx: ctx.cancel_all("A")],
        }
    )
    bt, _ = backtest(data, s)
    a1, a2, b = (order_of(bt, oid) for oid in s.placed[0])
    (a3, _) = s.placed[1]
    assert a1.status is a2.status is order_of(bt, a3).status is S.CANCELLED
    assert b.status is S.SUBMITTED  # still resting
    assert s.fills == []


# ---- reduce-only --------------------------------------------------------------------------------


def test_a_reduce_only_order_larger_than_the_position_closes_it_and_cannot_flip() -> None:
    s = Script({0: buy(10), 1: sell(25, reduce_only=True)})
    bt, r = backtest(bars([flat_bar(100)] * 4), s)
    (_, (f, _)) = s.fills
    assert f.quantity == 10.0
    assert position_of(s, 2) == 0.0
    o = order_of(bt, s.placed[1][0])
    assert o.status is S.CANCELLED
    assert o.reason == "position closed"
    assert o.filled_quantity == 10.0
    assert len(r.trades) == 1


@pytest.mark.parametrize(("first", "side"), [(0.0, SELL), (0.0, BUY), (5.0, BUY), (-5.0, SELL)])
def test_a_reduce_only_order_with_nothing_to_reduce_is_cancelled_not_rejected(
    first: float, side: OrderSide
) -> None:
    steps: dict[int, Action | list[Action]] = {1: lambda ctx: ctx.submit("X", side, 3, reduce_only=True)}
    if first:
        steps[0] = buy(first) if first > 0 else sell(-first)
    s = Script(steps)
    bt, _ = backtest(bars([flat_bar(100)] * 4), s)
    o = order_of(bt, s.placed[1][0])
    assert o.status is S.CANCELLED
    assert o.reason == "reduce-only: nothing to reduce"
    assert s.rejects == []
    assert position_of(s, 3) == first


def test_close_is_a_reduce_only_market_order_and_none_when_flat() -> None:
    s = Script({0: [lambda ctx: ctx.close("X"), sell(4)], 1: lambda ctx: ctx.close("X", tag="done")})
    bt, r = backtest(bars([flat_bar(100)] * 3), s)
    assert s.placed[0][0] is None
    o = order_of(bt, s.placed[1][0])
    assert (o.side, o.quantity, o.reduce_only, o.type, o.tag) == (BUY, 4.0, True, OrderType.MARKET, "done")
    assert position_of(s, 2) == 0.0
    assert r.trades.exit_reason == ["done"]


def test_resting_reduce_only_orders_are_cancelled_when_the_position_goes_flat() -> None:
    data = bars([flat_bar(100), flat_bar(100), flat_bar(100), flat_bar(100), (95, 96, 85, 86), flat_bar(86)])
    s = Script(
        {
            0: buy(10),
            1: sell(10, type=OrderType.STOP, stop_price=90.0, reduce_only=True),
            2: lambda ctx: ctx.close("X"),
        }
    )
    bt, _ = backtest(data, s)
    stop = order_of(bt, s.placed[1][0])
    assert stop.status is S.CANCELLED
    assert stop.reason == "position closed"
    assert len(s.fills) == 2  # the entry and the close; the stop never fires on bar 4
    assert position_of(s, 5) == 0.0


# ---- one-cancels-other --------------------------------------------------------------------------


def exits(stop: float, target: float, group: str | None = "g") -> list[Action]:
    kw = {"reduce_only": True, "group": group}
    return [
        sell(10, type=OrderType.STOP, stop_price=stop, tag="stop_loss", **kw),
        sell(10, type=OrderType.TAKE_PROFIT, limit_price=target, tag="take_profit", **kw),
    ]


def test_one_cancels_other_the_target_fills_and_cancels_the_stop() -> None:
    data = bars([flat_bar(100), flat_bar(100), (101, 111, 100, 109), (100, 100, 90, 92), flat_bar(92)])
    s = Script({0: buy(10), 1: exits(95.0, 110.0)})
    bt, r = backtest(data, s)
    stop, target = (order_of(bt, oid) for oid in s.placed[1])
    assert target.status is S.FILLED
    assert stop.status is S.CANCELLED
    assert stop.reason == "one-cancels-other"
    assert r.trades.exit_reason == ["take_profit"]
    assert r.trades.exit_price.tolist() == [110.0]


def test_one_cancels_other_also_works_between_non_reduce_only_orders() -> None:
    # an entry bracket: buy a breakout or a dip, whichever comes first
    data = bars([flat_bar(100), (100, 106, 99, 105), (105, 105, 90, 92), flat_bar(92)])
    s = Script(
        {
            0: [
                buy(1, type=OrderType.STOP, stop_price=105.0, group="entry"),
                buy(1, type=OrderType.LIMIT, limit_price=95.0, group="entry"),
            ]
        }
    )
    bt, _ = backtest(data, s)
    brk, dip = (order_of(bt, oid) for oid in s.placed[0])
    assert brk.status is S.FILLED
    assert dip.status is S.CANCELLED
    assert position_of(s, 3) == 1.0


def test_a_bar_that_touches_both_the_stop_and_the_target_counts_as_the_stop() -> None:
    data = bars([flat_bar(100), flat_bar(100), (100, 111, 94, 100), flat_bar(100)])
    s = Script({0: buy(10), 1: exits(95.0, 110.0)})
    _, r = backtest(data, s)
    assert r.trades.exit_reason == ["stop_loss"]
    assert r.trades.exit_price.tolist() == [95.0]
    assert position_of(s, 3) == 0.0


def test_without_a_group_both_exits_can_fill_and_the_second_is_cancelled_once_flat() -> None:
    data = bars([flat_bar(100), flat_bar(100), (100, 111, 94, 100), flat_bar(100)])
    s = Script({0: buy(10), 1: exits(95.0, 110.0, group=None)})
    bt, _ = backtest(data, s)
    stop, target = (order_of(bt, oid) for oid in s.placed[1])
    assert stop.status is S.FILLED
    assert target.status is S.CANCELLED  # reduce-only and the position is flat
    assert position_of(s, 3) == 0.0


# ---- brackets from SignalStrategy ---------------------------------------------------------------


def signal_strategy(
    n: int, *, entries: Sequence[int], exits_at: Sequence[int] = (), **brackets: float
) -> SignalStrategy:
    le = np.zeros(n, dtype=bool)
    lx = np.zeros(n, dtype=bool)
    le[list(entries)] = True
    lx[list(exits_at)] = True
    strat = SignalStrategy("X", brackets=Brackets(**brackets))
    none = np.zeros(n, dtype=bool)
    strat.set_signals(le, lx, none, none, np.full(n, 1.0))
    return strat


def test_a_stop_loss_hit_inside_the_entry_bar_exits_in_that_bar() -> None:
    data = bars([flat_bar(100), (100, 102, 94, 97), flat_bar(97)])
    strat = signal_strategy(3, entries=[0], stop_loss=0.05, take_profit=0.1)
    bt, r = backtest(data, strat)
    t = r.trades
    assert len(t) == 1
    assert (t.entry_index[0], t.exit_index[0]) == (1, 1)
    assert t.exit_reason == ["stop_loss"]
    assert (t.entry_price[0], t.exit_price[0], t.quantity[0]) == (100.0, 95.0, 1000.0)
    assert t.pnl[0] == pytest.approx(-5_000.0)
    assert r.equity[1] == pytest.approx(95_000.0)
    statuses = sorted((o.tag, o.status.value) for o in bt._orders.values())
    assert statuses == [("entry", "filled"), ("stop_loss", "filled"), ("take_profit", "cancelled")]


def test_a_stop_loss_not_reached_in_the_entry_bar_is_gapped_through_at_a_later_open() -> None:
    data = bars(
        [
            flat_bar(100),
            (100, 101, 99, 100),  # 1: entry at 100 * 1.001 = 100.1; stop at 95.095
            (100, 100.5, 96, 97),  # 2: low 96 stays above the stop
            (90, 92, 88, 91),  # 3: opens through it: the open, less slippage
            flat_bar(91),
        ]
    )
    strat = signal_strategy(5, entries=[0], stop_loss=0.05)
    _, r = backtest(data, strat, slippage=0.001)
    t = r.trades
    assert t.entry_price[0] == pytest.approx(100.1)
    assert (t.exit_index[0], t.exit_reason) == (3, ["stop_loss"])
    assert t.exit_price[0] == pytest.approx(90 * 0.999)


def test_a_signal_exit_cancels_the_brackets() -> None:
    data = bars(
        [flat_bar(100), flat_bar(100), flat_bar(101), flat_bar(101), (101, 101, 80, 81), flat_bar(81)]
    )
    strat = signal_strategy(6, entries=[0], exits_at=[2], stop_loss=0.05)
    bt, r = backtest(data, strat)
    assert r.trades.exit_reason == ["exit"]
    assert r.trades.exit_index.tolist() == [3]
    stop = next(o for o in bt._orders.values() if o.tag == "stop_loss")
    assert stop.status is S.CANCELLED


# ---- buying power -------------------------------------------------------------------------------


def test_insufficient_cash_caps_the_quantity_and_the_rest_does_not_rest() -> None:
    data = bars([flat_bar(100)] * 2 + [flat_bar(50)] * 3)
    s = Script({0: buy(20)})
    bt, r = backtest(data, s, initial_capital=1_000.0, fee_rate=0.01, lot_size=1.0)
    ((f, _),) = s.fills  # the price halves later; the remainder must not buy more then
    assert f.quantity == 9.0  # 1000 / (100 * 1.01) = 9.9 -> 9 lots
    o = order_of(bt, s.placed[0][0])
    assert o.filled_quantity == 9.0
    assert not o.status.is_open
    assert r.cash[1] == pytest.approx(1_000 - 900 - 9.0)
    assert s.rejects == []


def test_an_order_with_no_buying_power_left_is_rejected_and_on_reject_is_called() -> None:
    s = Script({0: buy(10), 1: buy(1)})
    bt, r = backtest(bars([flat_bar(100)] * 4), s, initial_capital=1_000.0)
    oid = s.placed[1][0]
    assert s.rejects == [(oid, "insufficient buying power")]
    o = order_of(bt, oid)
    assert o.status is S.REJECTED
    assert o.reason == "insufficient buying power"
    assert r.cash[-1] == 0.0
    assert position_of(s, 3) == 10.0


def test_a_short_beyond_the_leverage_is_rejected() -> None:
    s = Script({0: sell(10), 1: sell(1)})
    backtest(bars([flat_bar(100)] * 4), s, initial_capital=1_000.0)
    assert s.rejects == [(s.placed[1][0], "insufficient buying power")]
    assert position_of(s, 3) == -10.0


def test_reversing_needs_buying_power_only_for_the_part_beyond_flat() -> None:
    s = Script({0: buy(10), 1: sell(30)})
    backtest(bars([flat_bar(100)] * 3), s, initial_capital=1_000.0)
    (_, (f, _)) = s.fills
    assert f.quantity == 20.0  # 10 to close + 10 short (1000 of equity)
    assert position_of(s, 2) == -10.0


def test_covering_a_short_and_going_long_in_one_order_needs_cash_for_the_long_part_only() -> None:
    s = Script({0: sell(10), 1: buy(30)})
    backtest(bars([flat_bar(100)] * 3), s, initial_capital=1_000.0)
    (_, (f, _)) = s.fills
    assert f.quantity == 20.0  # 10 to cover + 10 long: the short's proceeds are owed, not spendable
    assert position_of(s, 2) == 10.0


def test_a_capped_order_rests_no_remainder_that_could_buy_later() -> None:
    # 20 of 30 fill (2x leverage on 1,000); the price then doubles, and the equity with it, which
    # would pay for the other 10: they must not fill
    data = bars([flat_bar(100), flat_bar(100), flat_bar(200), flat_bar(200), flat_bar(200)])
    s = Script({0: buy(30)})
    bt, _ = backtest(data, s, initial_capital=1_000.0, leverage=2.0)
    assert [(f.index, f.quantity) for f, _ in s.fills] == [(1, 20.0)]
    o = order_of(bt, s.placed[0][0])
    assert (o.status, o.reason) == (S.CANCELLED, "insufficient buying power")
    assert s.rejects == []


def test_leverage_lets_a_fraction_above_one_buy_and_caps_what_follows() -> None:
    data = bars([flat_bar(100)] * 4)
    s = Script({0: lambda ctx: ctx.buy("X", fraction=2.0), 1: buy(1)})
    _, r = backtest(data, s, initial_capital=10_000.0, leverage=2.0)
    assert s.fills[0][0].quantity == pytest.approx(200.0)
    assert r.cash[1] == pytest.approx(-10_000.0)
    assert r.equity[1] == pytest.approx(10_000.0)
    assert r.exposure[1] == pytest.approx(2.0)
    assert s.rejects == [(s.placed[1][0], "insufficient buying power")]


def test_without_leverage_a_fraction_above_one_is_capped_at_the_equity() -> None:
    s = Script({0: lambda ctx: ctx.buy("X", fraction=2.0)})
    bt, r = backtest(bars([flat_bar(100)] * 3), s, initial_capital=10_000.0)
    assert s.fills[0][0].quantity == pytest.approx(100.0)
    assert order_of(bt, s.placed[0][0]).status is S.FILLED
    assert r.exposure[1] == pytest.approx(1.0)


def test_submit_refuses_an_unknown_symbol_and_a_bad_size() -> None:
    def bad(ctx: Context) -> None:
        with pytest.raises(ValueError, match="unknown symbol"):
            ctx.buy("NOPE", 1)
        with pytest.raises(ValueError, match="exactly one"):
            ctx.submit("X", BUY)
        with pytest.raises(ValueError, match="exactly one"):
            ctx.submit("X", BUY, 1, fraction=0.5)
        with pytest.raises(ValueError, match="fraction"):
            ctx.buy("X", fraction=0.0)

    s = Script({0: bad})
    _, r = backtest(bars([flat_bar(100)] * 2), s)
    assert r.orders == 0


# ---- shorts -------------------------------------------------------------------------------------


def test_a_short_gains_when_the_price_falls() -> None:
    data = bars([flat_bar(100), flat_bar(100), flat_bar(90), flat_bar(90), flat_bar(90)])
    s = Script({0: sell(10), 2: lambda ctx: ctx.close("X")})
    _, r = backtest(data, s)
    assert r.cash[1] == 101_000.0
    assert r.equity[1] == 100_000.0
    assert r.equity[2] == 100_100.0
    assert r.exposure[2] == pytest.approx(900 / 100_100)
    t = r.trades
    assert (t.side[0], t.quantity[0], t.entry_price[0], t.exit_price[0]) == (-1, 10.0, 100.0, 90.0)
    assert t.pnl[0] == pytest.approx(100.0)
    assert t.ret[0] == pytest.approx(0.1)
    assert r.equity[-1] == 100_100.0


# ---- several symbols ----------------------------------------------------------------------------


def test_multi_symbol_timelines_with_holes() -> None:
    t = [JAN1 + k * HOUR for k in range(5)]
    data = {
        "A": bars([flat_bar(10), flat_bar(11), flat_bar(12), flat_bar(13), flat_bar(14)], ts=t),
        "B": bars(
            [flat_bar(100), flat_bar(101), (103, 104, 102, 103), flat_bar(104)], ts=[t[0], t[1], t[3], t[4]]
        ),
        "C": bars([flat_bar(7), flat_bar(8)], ts=[t[2], t[3]]),
    }
    s = Script({0: [buy(10, "A"), buy(1, "B")], 1: buy(2, "B")})
    _, r = backtest(data, s)
    assert r.ts.tolist() == t
    assert r.symbols == ("A", "B", "C")
    # B has no bar at t2: has_bar is false, its index and price stay at its last bar
    assert s.seen[2]["B"] == (1.0, 1, False, 101.0)
    assert s.seen[3]["B"] == (3.0, 2, True, 103.0)
    # C starts at t2 and ends at t3: no index or price before, held at its last close after
    assert s.seen[0]["C"][1:3] == (-1, False)
    assert np.isnan(s.seen[0]["C"][3])
    assert s.seen[4]["C"] == (0.0, 1, False, 8.0)
    # B's second order, placed at t1, waits for B's next bar (t3) and fills at its open
    fills = [(f.symbol, f.ts, f.index, f.price) for f, _ in s.fills]
    assert fills == [("A", t[1], 1, 11.0), ("B", t[1], 1, 101.0), ("B", t[3], 2, 103.0)]
    # the hole is marked at B's last close
    cash = 100_000 - 110 - 101
    assert r.equity[2] == pytest.approx(cash + 10 * 12 + 1 * 101)
    assert r.equity[3] == pytest.approx(cash - 206 + 10 * 13 + 3 * 103)


def test_a_rebalance_sells_before_it_buys_whatever_the_symbol_order() -> None:
    # all in B; on step 1 the strategy closes B and buys A with all its equity: the close must
    # fund the buy although A is matched before B alphabetically
    data = {"A": bars([flat_bar(10)] * 4), "B": bars([flat_bar(100)] * 4)}
    s = Script(
        {
            0: lambda ctx: ctx.buy("B", fraction=1.0),
            1: [lambda ctx: ctx.close("B"), lambda ctx: ctx.buy("A", fraction=1.0)],
        }
    )
    _, r = backtest(data, s, initial_capital=1_000.0)
    assert s.rejects == []
    assert [(f.symbol, f.side, f.quantity, f.index) for f, _ in s.fills] == [
        ("B", BUY, 10.0, 1),
        ("B", SELL, 10.0, 2),
        ("A", BUY, 100.0, 2),
    ]
    assert r.exposure[2] == pytest.approx(1.0)


def test_an_order_for_another_symbol_placed_in_on_fill_fills_on_that_symbols_next_bar() -> None:
    class Hedge(Script):
        def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
            super().on_fill(ctx, fill, tag)
            if tag == "entry":
                ctx.submit("B", SELL, 2.0, tag="hedge")

    data = {
        "A": bars([flat_bar(10)] * 4),
        "B": bars([flat_bar(100), flat_bar(100), flat_bar(101), flat_bar(101)]),
    }
    s = Hedge({0: buy(10, "A", tag="entry")})
    backtest(data, s)
    assert [(f.symbol, f.index, f.price, tag) for f, tag in s.fills] == [
        ("A", 1, 10.0, "entry"),
        ("B", 2, 101.0, "hedge"),
    ]
    assert position_of(s, 3, "B") == -2.0


def test_going_flat_in_one_symbol_keeps_another_symbols_reduce_only_orders() -> None:
    class ExitB(Script):
        def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
            super().on_fill(ctx, fill, tag)
            if tag == "trigger":  # placed while A's orders are being matched, before A goes flat
                ctx.submit("B", SELL, 5.0, reduce_only=True, tag="exit_b")

    data = {"A": bars([flat_bar(10)] * 5), "B": bars([flat_bar(100)] * 5)}
    s = ExitB(
        {0: [buy(10, "A"), buy(5, "B")], 1: [buy(1, "A", tag="trigger"), sell(11, "A", reduce_only=True)]}
    )
    backtest(data, s)
    assert position_of(s, 2, "A") == 0.0
    assert [tag for _, tag in s.fills][-1] == "exit_b"
    assert position_of(s, 4, "B") == 0.0


# ---- accounting on random runs ------------------------------------------------------------------


class Random(Strategy):
    """Places random orders of every type, side, size and time in force; sometimes cancels;
    brackets some fills; flattens everything two bars before the end."""

    def __init__(self, seed: int, n: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.step = -1
        self.ids: list[str] = []
        self.fills: list[Fill[float]] = []
        self.rejects: list[str] = []
        self.positions: list[dict[str, float]] = []
        self.marks: list[dict[str, float]] = []

    def on_bar(self, ctx: Context) -> None:
        self.step += 1
        self.positions.append({s: ctx.position(s) for s in ctx.symbols})
        self.marks.append({s: ctx.price(s) for s in ctx.symbols})
        rng = self.rng
        if self.step == self.n - 2:
            for s in ctx.symbols:
                ctx.cancel_all(s)
                ctx.close(s)
            return
        if self.step > self.n - 2:
            return
        if self.ids and rng.random() < 0.2:
            ctx.cancel(self.ids[rng.integers(len(self.ids))])
        for _ in range(rng.integers(0, 3)):
            s = ctx.symbols[rng.integers(len(ctx.symbols))]
            px = ctx.price(s)
            if np.isnan(px):
                continue
            side = BUY if rng.random() < 0.55 else SELL
            kind = rng.choice(["market", "fraction", "limit", "stop", "stop_limit", "trailing", "close"])
            tif = TimeInForce(rng.choice(["GTC", "GTC", "DAY", "IOC", "FOK"]))
            qty = float(rng.integers(1, 80))
            off = px * rng.uniform(0.0, 0.03)
            away = -off if side is BUY else off
            match kind:
                case "market":
                    oid = ctx.submit(s, side, qty, reduce_only=rng.random() < 0.2)
                case "fraction":
                    oid = ctx.submit(s, side, fraction=float(rng.uniform(0.05, 0.6)))
                case "limit":
                    oid = ctx.submit(
                        s, side, qty, type=OrderType.LIMIT, limit_price=px + away, time_in_force=tif
                    )
                case "stop":
                    oid = ctx.submit(
                        s, side, qty, type=OrderType.STOP, stop_price=px - away, time_in_force=tif
                    )
                case "stop_limit":
                    oid = ctx.submit(
                        s, side, qty, type=OrderType.STOP_LIMIT, stop_price=px - away,
                        limit_price=px - 1.5 * away, time_in_force=tif,
                    )  # fmt: skip
                case "trailing":
                    oid = ctx.submit(
                        s, side, qty, type=OrderType.TRAILING_STOP, trail=0.02, time_in_force=tif
                    )
                case _:
                    oid = ctx.close(s)
            if oid is not None:
                self.ids.append(oid)

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        self.fills.append(fill)
        pos = ctx.position(fill.symbol)
        if tag == "" and pos != 0 and self.rng.random() < 0.3 and self.step < self.n - 3:
            px = fill.price
            side = SELL if pos > 0 else BUY
            group = f"b{fill.fill_id}"
            stop = px * (0.99 if pos > 0 else 1.01)
            target = px * (1.02 if pos > 0 else 0.98)
            ctx.submit(
                fill.symbol, side, abs(pos), type=OrderType.STOP, stop_price=stop,
                reduce_only=True, tag="stop_loss", group=group,
            )  # fmt: skip
            ctx.submit(
                fill.symbol, side, abs(pos), type=OrderType.TAKE_PROFIT, limit_price=target,
                reduce_only=True, tag="take_profit", group=group,
            )  # fmt: skip

    def on_reject(self, ctx: Context, order_id: str, reason: str) -> None:
        self.rejects.append(order_id)


def random_data(seed: int, n: int) -> dict[str, Bars]:
    """Two symbols; B misses about a tenth of A's bars."""
    a = walk(n, seed=seed)
    b = walk(n, seed=seed + 1000)
    keep = np.random.default_rng(seed).random(n) > 0.1
    keep[0] = keep[-3:] = True
    held = Bars(b.ts[keep], b.open[keep], b.high[keep], b.low[keep], b.close[keep], b.volume[keep])
    return {"A": a, "B": held}


@pytest.mark.parametrize("seed", range(12))
def test_accounting_invariants_hold_on_random_runs(seed: int) -> None:
    n = 250
    data = random_data(seed, n)
    strat = Random(seed, n)
    # small accounts, so that buying power caps and rejects orders too
    initial = 10_000.0 if seed % 2 else 30_000.0
    cfg = {"fee_rate": 0.001, "slippage": 0.0005, "fee_fixed": 0.5, "leverage": 1.0 + seed % 3}
    bt, r = backtest(data, strat, initial_capital=initial, **cfg)
    fills = strat.fills
    assert len(fills) > 30
    assert len(r.trades) > 5
    steps = np.searchsorted(r.ts, [f.ts for f in fills])

    # cash: initial - sum(buys notional + fees) + sum(sells notional - fees), at every step
    flows = np.array([-f.side.sign * f.quantity * f.price - f.fee for f in fills])
    for i in range(n):
        assert r.cash[i] == pytest.approx(initial + flows[steps <= i].sum(), rel=1e-12, abs=1e-6)

    # position == signed sum of fills; equity == cash + sum(position * last close); exposure
    for i in range(n):
        value, gross = 0.0, 0.0
        for s in data:
            signed = sum(
                f.side.sign * f.quantity
                for f, k in zip(fills, steps, strict=True)
                if f.symbol == s and k <= i
            )
            assert strat.positions[i][s] == pytest.approx(signed, abs=1e-9)
            value += strat.positions[i][s] * strat.marks[i][s]
            gross += abs(strat.positions[i][s] * strat.marks[i][s])
        assert r.equity[i] == pytest.approx(r.cash[i] + value, rel=1e-12, abs=1e-6)
        assert r.exposure[i] == pytest.approx(gross / r.equity[i], rel=1e-9, abs=1e-12)

    # every order's fills add up to its filled quantity; nothing is left half-open
    for o in bt._orders.values():
        mine = [f for f in fills if f.order_id == o.id]
        assert o.filled_quantity == pytest.approx(sum(f.quantity for f in mine), abs=1e-9)
        assert len({f.fill_id for f in mine}) == len(mine)
        assert o.status is not S.PARTIAL_FILL
    assert r.orders == len(bt._orders)
    assert set(strat.rejects) == {o.id for o in bt._orders.values() if o.status is S.REJECTED}

    # fees, turnover
    assert r.fees_paid == pytest.approx(sum(f.fee for f in fills), rel=1e-12)
    notional = sum(f.quantity * f.price for f in fills)
    assert r.turnover == pytest.approx(notional / r.equity.mean(), rel=1e-12)

    # flat at the end: the trades' P&L is the whole gain, and their fees all the fees
    assert all(strat.positions[-1][s] == 0.0 for s in data)
    assert r.trades.pnl.sum() == pytest.approx(r.equity[-1] - initial, rel=1e-9, abs=1e-6)
    assert r.trades.fees.sum() == pytest.approx(r.fees_paid, rel=1e-9, abs=1e-9)
    assert r.equity[-1] == pytest.approx(r.cash[-1], abs=1e-9)


# ---- momentum rotation --------------------------------------------------------------------------


class Recorder(RotationStrategy):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.held: list[frozenset[str]] = []
        self.fills: list[Fill[float]] = []
        self.step = -1

    def on_bar(self, ctx: Context) -> None:
        self.step += 1
        self.held.append(frozenset(s for s in ctx.symbols if ctx.position(s) != 0))
        super().on_bar(ctx)

    def on_fill(self, ctx: Context, fill: Fill[float], tag: str) -> None:
        self.fills.append(fill)


@pytest.mark.parametrize("top_n", [1, 2])
def test_momentum_rotation_holds_the_top_n_and_rebalances_every_n_bars(top_n: int) -> None:
    base = BUILTIN_TEMPLATES["momentum_rotation"]
    assert base.rotation is not None
    template = base.model_copy(update={"rotation": base.rotation.model_copy(update={"top_n": top_n})})
    lookback, every = 21, 5
    params = resolve_params(template, {"lookback": lookback, "rebalance_every": every})
    symbols = ("AAA", "BBB", "CCC")
    n = 300
    data = {s: walk(n, seed=seed) for s, seed in zip(symbols, (11, 12, 13), strict=True)}
    strat = Recorder(template, params, symbols=symbols)
    _, r = backtest(data, strat)

    close = np.vstack([data[s].close for s in symbols])
    momentum = np.full_like(close, np.nan)
    momentum[:, lookback:] = close[:, lookback:] / close[:, :-lookback] - 1.0
    rebalances = list(range(lookback, n - 1, every))
    for i in range(n):
        assert len(strat.held[i]) <= top_n
        if i <= lookback:
            assert strat.held[i] == frozenset()
    changes = 0
    for k, i in enumerate(rebalances):
        best = frozenset(symbols[j] for j in np.argsort(-momentum[:, i], kind="stable")[:top_n])
        until = rebalances[k + 1] if k + 1 < len(rebalances) else n - 1
        for j in range(i + 1, until + 1):
            assert strat.held[j] == best, (i, j)
        changes += k > 0 and best != strat.held[i]
    assert changes >= 3  # the leaders did change: the test saw real rebalances
    assert {f.index for f in strat.fills} <= {i + 1 for i in rebalances}
    # the first allocation is equally weighted: 1 / top_n of the equity each (the later entries
    # of a step value the earlier ones at their last close, hence not to the cent)
    first = [f for f in strat.fills if f.index == rebalances[0] + 1]
    assert len(first) == top_n
    assert first[0].quantity * first[0].price == pytest.approx(100_000.0 / top_n, rel=1e-12)
    for f in first:
        assert f.quantity * f.price == pytest.approx(100_000.0 / top_n, rel=0.01)
    assert r.exposure[rebalances[0] + 1] > 0.9
