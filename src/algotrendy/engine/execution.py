"""How an order meets a bar: fill prices, slippage, commission and sizing at the fill.

This is the simulated venue's matching logic, shared by the event-driven backtester and the
paper broker, and mirrored line for line by the vectorized kernel in ``engine.vector`` (a golden
test holds the two to 1e-9).

Conventions (one bar = open, high, low, close; an order placed on bar ``i``'s close is first
matched on bar ``i + 1``):

- MARKET fills at the open.
- LIMIT / TAKE_PROFIT buy at L: at the open if ``open <= L`` (the better price), else at L if
  ``low <= L``. Sells mirror with ``high``. Limit fills take no slippage.
- STOP buy at S: at the open if ``open >= S`` (gapped through), else at S if ``high >= S``.
  Sells mirror with ``low``. A triggered stop is a market order: it takes slippage.
- STOP_LIMIT: the stop arms the limit; once armed it matches as a LIMIT (in the bar it armed
  only at a price no worse than the stop).
- TRAILING_STOP sell: the stop sits ``trail`` below the best high since it became active (buy:
  above the best low); the bar is first checked against the level as it stood before the bar,
  then the best price moves with the bar.
- Within one bar, protective orders are matched pessimistically: stops before limits, so a bar
  that touches both a stop-loss and a take-profit counts as the stop.
- Slippage moves the price against the taker by a fraction: buys pay ``p + p * s``, sells get
  ``p - p * s``. Commission is ``|qty| * price * fee_rate + fee_fixed`` per fill (per side).
- Sizing by ``equity_fraction``: ``qty = fraction * equity / (price * (1 + fee_rate))`` at the fill
  price, floored to the lot size, so that cash covers the notional and its fee.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic

from algotrendy.engine.orders import N, Order, OrderSide, OrderStatus, OrderType, TimeInForce

STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})


@dataclass(frozen=True, slots=True)
class Costs(Generic[N]):
    """Commission and slippage. ``fee_rate`` and ``slippage`` are fractions (0.001 = 0.1%)."""

    fee_rate: N
    slippage: N
    fee_fixed: N

    def taker_price(self, side: OrderSide, price: N) -> N:
        if side is OrderSide.BUY:
            return price + price * self.slippage
        return price - price * self.slippage

    def fee(self, quantity: N, price: N) -> N:
        return quantity * price * self.fee_rate + self.fee_fixed


def floor_lot(quantity: float, lot: float) -> float:
    """``quantity`` rounded down to a multiple of ``lot`` (``lot <= 0``: unrounded)."""
    if lot <= 0:
        return quantity
    return math.floor(quantity / lot + 1e-9) * lot


def size_fraction(fraction: float, equity: float, price: float, fee_rate: float, lot: float) -> float:
    """Units for ``fraction`` of ``equity`` at ``price`` with its fee covered."""
    if equity <= 0 or price <= 0 or fraction <= 0:
        return 0.0
    return floor_lot(fraction * equity / (price * (1.0 + fee_rate)), lot)


def match(order: Order[N], open_: N, high: N, low: N, *, at_open: bool = True) -> tuple[N, bool] | None:
    """The raw fill price of ``order`` on this bar, before slippage, and whether it takes slippage.

    ``at_open=False`` for an order that became active after the open (a bracket created by a
    fill at this bar's open): it cannot fill at the open itself.
    ``None`` if the bar does not reach the order. Trailing stops and stop-limits update their
    state on the order (``best_price``, ``triggered``).
    """
    t = order.type
    buy = order.side is OrderSide.BUY
    if t is OrderType.MARKET:
        return open_, True
    if t is OrderType.LIMIT or t is OrderType.TAKE_PROFIT:
        return _limit(order, open_, high, low, at_open)
    if t is OrderType.STOP:
        assert order.stop_price is not None  # checked by Order
        return _stop(buy, order.stop_price, open_, high, low, at_open)
    if t is OrderType.TRAILING_STOP:
        level = trailing_level(order)
        hit = None if level is None else _stop(buy, level, open_, high, low, at_open)
        if hit is None:
            best = order.best_price
            if best is None:
                order.best_price = low if buy else high
            else:
                order.best_price = min(best, low) if buy else max(best, high)
        return hit
    # STOP_LIMIT
    assert order.stop_price is not None and order.limit_price is not None
    if order.triggered:
        return _limit(order, open_, high, low, at_open)
    stop = order.stop_price
    if at_open and (open_ >= stop if buy else open_ <= stop):
        order.triggered = True
        return _limit(order, open_, high, low, at_open=True)
    if high >= stop if buy else low <= stop:
        order.triggered = True
        limit = order.limit_price
        if (stop <= limit) if buy else (stop >= limit):
            return stop, False
        if (low <= limit) if buy else (high >= limit):
            return limit, False
    return None


NS_PER_DAY = 86_400 * 10**9


def priority(order: Order[N]) -> int:
    """Matching order within a bar: market orders, then stops, then limits (pessimistic)."""
    if order.type is OrderType.MARKET:
        return 0
    return 1 if order.type in STOP_TYPES else 2


def match_bar(
    orders: Iterable[Order[N]],
    symbol: str,
    open_: N,
    high: N,
    low: N,
    *,
    now_ns: int,
    first_day: dict[str, int],
    costs: Costs[N],
    execute: Callable[[Order[N], N], None],
    at_open: bool = True,
) -> None:
    """Match each open order of ``symbol`` (in the given order; sort by ``priority``) against one
    bar, applying time in force: a DAY order lives through the UTC day of the first bar it meets
    (``first_day`` remembers it per order id), IOC/FOK expire if that bar does not fill them.
    ``execute(order, price)`` gets each hit at its fill price (slippage applied to stops and
    market orders): the caller sizes, fills and books it. One loop for the backtester and the
    paper broker."""
    day = now_ns // NS_PER_DAY
    for order in orders:
        if not order.status.is_open or order.symbol != symbol:
            continue
        if order.time_in_force is TimeInForce.DAY:
            first = first_day.setdefault(order.id, day)
            if day > first:
                order.transition(OrderStatus.EXPIRED, "day order not filled")
                continue
        hit = match(order, open_, high, low, at_open=at_open)
        if hit is None:
            if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                order.transition(OrderStatus.EXPIRED, "not filled immediately")
            continue
        raw, slipped = hit
        execute(order, costs.taker_price(order.side, raw) if slipped else raw)


def trailing_level(order: Order[N]) -> N | None:
    """Where a trailing stop stands now: ``best * (1 -/+ trail)``, or its explicit stop price."""
    best = order.best_price
    if best is None or order.trail is None:
        return order.stop_price
    if order.side is OrderSide.SELL:
        return best - best * order.trail
    return best + best * order.trail


def _limit(order: Order[N], open_: N, high: N, low: N, at_open: bool) -> tuple[N, bool] | None:
    limit = order.limit_price
    assert limit is not None
    if order.side is OrderSide.BUY:
        if at_open and open_ <= limit:
            return open_, False
        return (limit, False) if low <= limit else None
    if at_open and open_ >= limit:
        return open_, False
    return (limit, False) if high >= limit else None


def _stop(buy: bool, stop: N, open_: N, high: N, low: N, at_open: bool) -> tuple[N, bool] | None:
    if buy:
        if at_open and open_ >= stop:
            return open_, True
        return (stop, True) if high >= stop else None
    if at_open and open_ <= stop:
        return open_, True
    return (stop, True) if low <= stop else None
