"""The simulated venue's matching rules (``execution.match``), costs and sizing.

One bar is (open, high, low, close); ``match`` answers the raw fill price and whether it takes
slippage (stops do, limits do not), or ``None`` when the bar does not reach the order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from algotrendy.engine.execution import Costs, floor_lot, match, size_fraction, trailing_level
from algotrendy.engine.orders import Order, OrderSide, OrderType, TimeInForce

BUY, SELL = OrderSide.BUY, OrderSide.SELL


def make(side: OrderSide, type_: OrderType, **kw: float) -> Order[float]:
    return Order("o1", "X", side, type_, 1.0, **kw)


# A bar that opens at 100, trades between 95 and 105.
BAR = (100.0, 105.0, 95.0)


# ---- MARKET -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [BUY, SELL])
def test_a_market_order_fills_at_the_open_and_takes_slippage(side: OrderSide) -> None:
    assert match(make(side, OrderType.MARKET), *BAR) == (100.0, True)


# ---- LIMIT and TAKE_PROFIT --------------------------------------------------------------------

LIMITS = [OrderType.LIMIT, OrderType.TAKE_PROFIT]


@pytest.mark.parametrize("type_", LIMITS)
@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        # buy: the open is at or below the limit -> the (better) open
        (BUY, 102.0, (100.0, False)),
        (BUY, 100.0, (100.0, False)),
        # buy: the bar trades down to the limit -> the limit
        (BUY, 97.0, (97.0, False)),
        (BUY, 95.0, (95.0, False)),
        # buy: never as low as the limit
        (BUY, 94.99, None),
        # sell mirrors on the high
        (SELL, 98.0, (100.0, False)),
        (SELL, 100.0, (100.0, False)),
        (SELL, 103.0, (103.0, False)),
        (SELL, 105.0, (105.0, False)),
        (SELL, 105.01, None),
    ],
)
def test_limit_orders_fill_at_the_open_when_it_is_better_else_at_the_limit(
    type_: OrderType, side: OrderSide, limit: float, expected: tuple[float, bool] | None
) -> None:
    assert match(make(side, type_, limit_price=limit), *BAR) == expected


@pytest.mark.parametrize("type_", LIMITS)
def test_a_limit_that_became_active_after_the_open_cannot_fill_at_the_open(type_: OrderType) -> None:
    # A take-profit placed by a fill at this bar's open: the open is behind it, only the rest of
    # the bar can reach it, at the limit.
    assert match(make(BUY, type_, limit_price=102.0), *BAR, at_open=False) == (102.0, False)
    assert match(make(SELL, type_, limit_price=98.0), *BAR, at_open=False) == (98.0, False)
    assert match(make(BUY, type_, limit_price=94.0), *BAR, at_open=False) is None
    assert match(make(SELL, type_, limit_price=106.0), *BAR, at_open=False) is None


# ---- STOP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "stop", "expected"),
    [
        # sell stop (a stop-loss of a long): touched inside the bar -> the stop price
        (SELL, 97.0, (97.0, True)),
        (SELL, 95.0, (95.0, True)),
        (SELL, 94.0, None),
        # the bar gaps through it at the open -> the open, which is worse than the stop
        (SELL, 101.0, (100.0, True)),
        (SELL, 100.0, (100.0, True)),
        # buy stop mirrors on the high
        (BUY, 103.0, (103.0, True)),
        (BUY, 105.0, (105.0, True)),
        (BUY, 106.0, None),
        (BUY, 99.0, (100.0, True)),
        (BUY, 100.0, (100.0, True)),
    ],
)
def test_stops_fill_at_the_stop_inside_the_bar_or_at_the_open_through_a_gap(
    side: OrderSide, stop: float, expected: tuple[float, bool] | None
) -> None:
    assert match(make(side, OrderType.STOP, stop_price=stop), *BAR) == expected


def test_a_stop_placed_after_the_open_fills_at_the_stop_not_at_the_open() -> None:
    assert match(make(SELL, OrderType.STOP, stop_price=101.0), *BAR, at_open=False) == (101.0, True)
    assert match(make(BUY, OrderType.STOP, stop_price=99.0), *BAR, at_open=False) == (99.0, True)
    assert match(make(SELL, OrderType.STOP, stop_price=94.0), *BAR, at_open=False) is None


# ---- STOP_LIMIT -------------------------------------------------------------------------------


def test_a_stop_limit_not_reached_stays_unarmed() -> None:
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=106.0, limit_price=107.0)
    assert match(o, *BAR) is None
    assert not o.triggered


def test_a_buy_stop_limit_armed_inside_the_bar_fills_at_the_stop_when_the_limit_allows() -> None:
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=103.0, limit_price=104.0)
    assert match(o, *BAR) == (103.0, False)
    assert o.triggered


def test_a_stop_limit_armed_inside_the_bar_with_the_limit_beyond_the_stop_fills_at_the_limit() -> None:
    # buy: stop 103, limit 98 (below the stop): armed at 103, fills only if the bar comes back
    # down to 98, at 98; never at a price worse than the stop
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=103.0, limit_price=98.0)
    assert match(o, *BAR) == (98.0, False)
    assert o.triggered
    o = make(SELL, OrderType.STOP_LIMIT, stop_price=97.0, limit_price=102.0)
    assert match(o, *BAR) == (102.0, False)


def test_a_stop_limit_armed_inside_the_bar_whose_limit_is_not_reached_rests_armed() -> None:
    o = make(SELL, OrderType.STOP_LIMIT, stop_price=97.0, limit_price=106.0)
    assert match(o, *BAR) is None
    assert o.triggered
    # armed, it now rests as a limit: a later bar that trades up to 106 fills it at 106, and one
    # opening above fills it at the open
    assert match(o, 104.0, 106.5, 103.0) == (106.0, False)
    assert match(o, 107.0, 108.0, 106.5) == (107.0, False)


def test_a_sell_stop_limit_armed_inside_the_bar_fills_at_the_stop() -> None:
    o = make(SELL, OrderType.STOP_LIMIT, stop_price=97.0, limit_price=96.0)
    assert match(o, *BAR) == (97.0, False)


def test_a_stop_limit_gapped_through_at_the_open_matches_as_a_limit_from_the_open() -> None:
    # buy stop 99 limit 101: the bar opens at 100 (through the stop, inside the limit): the open
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=99.0, limit_price=101.0)
    assert match(o, *BAR) == (100.0, False)
    assert o.triggered
    # buy stop 90 limit 92: opens at 100, above the limit and never back down to 92: armed, no fill
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=90.0, limit_price=92.0)
    assert match(o, *BAR) is None
    assert o.triggered
    # then rests as a buy limit at 92
    assert match(o, 93.0, 94.0, 91.0) == (92.0, False)
    assert match(o, 91.5, 94.0, 91.0) == (91.5, False)


def test_an_armed_stop_limit_placed_after_the_open_cannot_fill_at_the_open() -> None:
    o = make(BUY, OrderType.STOP_LIMIT, stop_price=99.0, limit_price=101.0)
    # at_open=False: the gap test is skipped; the stop is touched inside the bar, fills at the stop
    assert match(o, *BAR, at_open=False) == (99.0, False)


# ---- TRAILING_STOP ----------------------------------------------------------------------------


def test_a_sell_trailing_stop_trails_the_best_high_and_fills_at_its_level() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, trail=0.1)
    o.best_price = 100.0
    assert trailing_level(o) == pytest.approx(90.0)
    # bar 1: low 92 stays above 90; the best moves up to the high, 110 -> level 99
    assert match(o, 101.0, 110.0, 92.0) is None
    assert o.best_price == 110.0
    assert trailing_level(o) == pytest.approx(99.0)
    # bar 2: checked against the level as it stood before the bar (99), not one raised by the
    # bar's own high of 120: fills at 99 and the best does not move
    assert match(o, 105.0, 120.0, 98.0) == (pytest.approx(99.0), True)
    assert o.best_price == 110.0


def test_a_trailing_stop_best_never_moves_backwards() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, trail=0.05)
    o.best_price = 100.0
    assert match(o, 99.0, 99.5, 96.0) is None
    assert o.best_price == 100.0


def test_a_trailing_stop_gapped_through_fills_at_the_open() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, trail=0.1)
    o.best_price = 100.0
    assert match(o, 85.0, 88.0, 80.0) == (85.0, True)
    o = make(BUY, OrderType.TRAILING_STOP, trail=0.1)
    o.best_price = 100.0
    assert match(o, 115.0, 120.0, 112.0) == (115.0, True)


def test_a_buy_trailing_stop_mirrors_on_the_best_low() -> None:
    o = make(BUY, OrderType.TRAILING_STOP, trail=0.1)
    o.best_price = 100.0
    assert trailing_level(o) == pytest.approx(110.0)
    assert match(o, 99.0, 105.0, 90.0) is None
    assert o.best_price == 90.0
    assert trailing_level(o) == pytest.approx(99.0)
    assert match(o, 95.0, 100.0, 80.0) == (pytest.approx(99.0), True)
    assert o.best_price == 90.0


def test_a_trailing_stop_without_a_best_price_starts_trailing_from_its_first_bar() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, trail=0.1)
    assert trailing_level(o) is None
    assert match(o, *BAR) is None
    assert o.best_price == 105.0
    o = make(BUY, OrderType.TRAILING_STOP, trail=0.1)
    assert match(o, *BAR) is None
    assert o.best_price == 95.0


def test_a_trailing_stop_with_an_explicit_stop_uses_it_until_it_has_a_best_price() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, stop_price=96.0)
    assert trailing_level(o) == 96.0
    assert match(o, *BAR) == (96.0, True)


def test_a_trailing_stop_placed_after_the_open_fills_at_its_level() -> None:
    o = make(SELL, OrderType.TRAILING_STOP, trail=0.02)
    o.best_price = 100.0  # the entry fill price at this open
    assert match(o, *BAR, at_open=False) == (pytest.approx(98.0), True)


# ---- costs ------------------------------------------------------------------------------------


def test_slippage_moves_the_price_against_the_taker() -> None:
    c = Costs(fee_rate=0.001, slippage=0.01, fee_fixed=0.0)
    assert c.taker_price(BUY, 100.0) == pytest.approx(101.0)
    assert c.taker_price(SELL, 100.0) == pytest.approx(99.0)


def test_the_fee_is_a_rate_on_the_notional_plus_a_fixed_part() -> None:
    c = Costs(fee_rate=0.001, slippage=0.0, fee_fixed=1.5)
    assert c.fee(10.0, 200.0) == pytest.approx(10 * 200 * 0.001 + 1.5)
    assert Costs(0.0, 0.0, 0.0).fee(10.0, 200.0) == 0.0


def test_costs_on_decimal_are_exact() -> None:
    c = Costs(Decimal("0.001"), Decimal("0.0005"), Decimal("0.25"))
    assert c.taker_price(BUY, Decimal("42000.10")) == Decimal("42021.10005")
    assert c.taker_price(SELL, Decimal("42000.10")) == Decimal("41979.09995")
    assert c.fee(Decimal("0.3"), Decimal("42000.10")) == Decimal("12.85003")


# ---- sizing -----------------------------------------------------------------------------------


def test_floor_lot_rounds_down_to_a_multiple_of_the_lot() -> None:
    assert floor_lot(12.7, 1.0) == 12.0
    assert floor_lot(12.7, 5.0) == 10.0
    assert floor_lot(0.37, 0.1) == pytest.approx(0.3)
    assert floor_lot(12.7, 0.0) == 12.7
    assert floor_lot(12.7, -1.0) == 12.7


def test_floor_lot_forgives_float_dust_just_below_a_lot() -> None:
    assert floor_lot(2.9999999999, 1.0) == 3.0
    assert floor_lot(0.7, 0.1) == pytest.approx(0.7)  # 0.7 / 0.1 is 6.999999999999999


def test_size_fraction_buys_what_the_fraction_of_equity_pays_for_with_its_fee() -> None:
    q = size_fraction(0.5, 10_000.0, 100.0, 0.01, 0.0)
    assert q == pytest.approx(0.5 * 10_000 / (100 * 1.01))
    assert q * 100 * (1 + 0.01) == pytest.approx(5_000.0)  # notional + fee = the fraction


def test_size_fraction_floors_to_the_lot_and_allows_leverage() -> None:
    assert size_fraction(1.0, 10_000.0, 33.0, 0.0, 1.0) == 303.0
    assert size_fraction(2.0, 10_000.0, 100.0, 0.0, 0.0) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("fraction", "equity", "price"),
    [(0.0, 1e4, 100.0), (0.5, 0.0, 100.0), (0.5, -1.0, 100.0), (0.5, 1e4, 0.0), (-0.5, 1e4, 100.0)],
)
def test_size_fraction_is_zero_without_equity_price_or_fraction(
    fraction: float, equity: float, price: float
) -> None:
    assert size_fraction(fraction, equity, price, 0.001, 0.0) == 0.0


# ---- match_bar: the one matching loop of the backtester and the paper broker ------------------


def _mk(
    oid: str,
    type_: OrderType,
    side: OrderSide = OrderSide.BUY,
    tif: TimeInForce = TimeInForce.GTC,
    **kw: float,
) -> Order[float]:
    from algotrendy.engine.orders import OrderStatus

    order: Order[float] = Order(oid, "X", side, type_, 1.0, time_in_force=tif, **kw)  # type: ignore[arg-type]
    order.transition(OrderStatus.VALIDATED)
    order.transition(OrderStatus.SUBMITTED)
    return order


def test_match_bar_applies_priority_time_in_force_and_slippage() -> None:
    from algotrendy.engine.execution import NS_PER_DAY, Costs, match_bar, priority
    from algotrendy.engine.orders import OrderStatus

    costs = Costs(0.0, 0.01, 0.0)
    limit = _mk("l", OrderType.LIMIT, limit_price=95.0)
    stop = _mk("s", OrderType.STOP, side=OrderSide.SELL, stop_price=96.0)
    market = _mk("m", OrderType.MARKET)
    ioc = _mk("i", OrderType.LIMIT, tif=TimeInForce.IOC, limit_price=50.0)
    day = _mk("d", OrderType.LIMIT, tif=TimeInForce.DAY, limit_price=50.0)
    orders = sorted([limit, stop, market, ioc, day], key=priority)
    assert [o.id for o in orders[:2]] == ["m", "s"]
    hits: list[tuple[str, float]] = []
    first: dict[str, int] = {}
    match_bar(
        orders,
        "X",
        100.0,
        101.0,
        94.0,
        now_ns=0,
        first_day=first,
        costs=costs,
        execute=lambda o, p: hits.append((o.id, p)),
    )
    assert hits == [("m", pytest.approx(101.0)), ("s", pytest.approx(96.0 * 0.99)), ("l", 95.0)]
    assert ioc.status is OrderStatus.EXPIRED and day.status is OrderStatus.SUBMITTED
    match_bar(
        [day],
        "X",
        100.0,
        101.0,
        99.0,
        now_ns=NS_PER_DAY,
        first_day=first,
        costs=costs,
        execute=lambda o, p: hits.append((o.id, p)),
    )
    assert day.status is OrderStatus.EXPIRED and len(hits) == 3
