"""Orders and their state machine: the one implementation the backtester, the paper broker and
live trading all run.

The states and allowed transitions are exactly the spec's (``OrderStateMachine``)::

    created      -> validated | rejected
    validated    -> submitted | cancelled
    submitted    -> partial_fill | filled | cancelled | rejected | expired
    partial_fill -> partial_fill | filled | cancelled | expired

Every other transition raises ``InvalidTransition`` and changes nothing. Fills are applied through
``Order.apply_fill``, which refuses a fill id it has already seen (a venue that delivers a fill
twice changes the order once) and a fill that would exceed the order's quantity.

Quantities and prices are generic over the number type: ``float`` in research (backtests,
sweeps) and ``Decimal`` on the live order path; the two are never mixed in one order (Python
raises on ``float + Decimal``, which is the point).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

N = TypeVar("N", float, Decimal)


class OrderStatus(StrEnum):
    CREATED = "created"
    VALIDATED = "validated"
    SUBMITTED = "submitted"
    PARTIAL_FILL = "partial_fill"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        """Still able to fill (or be cancelled)."""
        return self in _OPEN

    @property
    def is_final(self) -> bool:
        return self in _FINAL


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.VALIDATED, OrderStatus.REJECTED}),
    OrderStatus.VALIDATED: frozenset({OrderStatus.SUBMITTED, OrderStatus.CANCELLED}),
    OrderStatus.SUBMITTED: frozenset(
        {
            OrderStatus.PARTIAL_FILL,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIAL_FILL: frozenset(
        {OrderStatus.PARTIAL_FILL, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
}
_OPEN = frozenset(
    {OrderStatus.CREATED, OrderStatus.VALIDATED, OrderStatus.SUBMITTED, OrderStatus.PARTIAL_FILL}
)
_FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    """A limit order that closes at a profit target (a LIMIT by matching, tagged for reports)."""
    TRAILING_STOP = "TRAILING_STOP"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderError(ValueError):
    """An order that cannot be built or a fill that cannot be applied."""


class InvalidTransition(OrderError):
    def __init__(self, order_id: str, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"order {order_id}: {current.value} -> {target.value} is not allowed")
        self.order_id = order_id
        self.current = current
        self.target = target


@dataclass(frozen=True, slots=True)
class Fill(Generic[N]):
    """One execution. ``fill_id`` is the venue's trade id: the key fills are deduplicated by."""

    fill_id: str
    order_id: str
    symbol: str
    side: OrderSide
    quantity: N
    price: N
    fee: N
    index: int = -1
    """Bar index in a backtest (``-1`` live)."""
    ts: int = 0
    """Epoch nanoseconds UTC."""


@dataclass(slots=True)
class Order(Generic[N]):
    """An order and its execution state.

    ``quantity`` is in units; in a backtest an entry may instead give ``equity_fraction`` and the
    simulated venue resolves the quantity at the fill price (see ``engine.execution``).
    ``trail`` is the trailing-stop distance as a fraction of the best price since the order
    became active. ``tag`` says why the order exists (``entry``, ``exit``, ``stop_loss``,
    ``take_profit``, ``trailing_stop``, ``manual`` ...) and ``group`` links one-cancels-other exits.
    """

    id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: N
    limit_price: N | None = None
    stop_price: N | None = None
    trail: N | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    tag: str = ""
    group: str | None = None
    equity_fraction: float | None = None
    status: OrderStatus = OrderStatus.CREATED
    filled_quantity: N | None = None
    average_price: N | None = None
    fees: N | None = None
    reason: str | None = None
    created_index: int = -1
    triggered: bool = False
    """A stop-limit order whose stop has been touched now rests as a limit."""
    best_price: N | None = None
    """Trailing stops: the most favourable price seen while active."""
    fill_ids: set[str] = field(default_factory=set)
    notional: N | None = None
    """Sum of price x quantity of the fills: the average is ``notional / filled``, divided once
    per fill (a running mean would round at every fill and depend on their order)."""

    def __post_init__(self) -> None:
        if self.quantity < 0:
            raise OrderError(f"order {self.id}: quantity must not be negative")
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit and self.limit_price is None:
            raise OrderError(f"order {self.id}: a {self.type.value} order needs a limit price")
        if needs_stop and self.stop_price is None:
            raise OrderError(f"order {self.id}: a {self.type.value} order needs a stop price")
        if self.type is OrderType.TRAILING_STOP and self.trail is None and self.stop_price is None:
            raise OrderError(f"order {self.id}: a TRAILING_STOP order needs a trail")
        zero = self.quantity - self.quantity
        if self.filled_quantity is None:
            self.filled_quantity = zero
        if self.fees is None:
            self.fees = zero
        if self.notional is None:
            avg = self.average_price
            self.notional = zero if avg is None else avg * self.filled_quantity

    @property
    def remaining(self) -> N:
        filled = self.filled_quantity
        assert filled is not None  # set in __post_init__
        return self.quantity - filled

    def transition(self, target: OrderStatus, reason: str | None = None) -> None:
        """Move to ``target`` or raise ``InvalidTransition`` (and change nothing)."""
        if target not in TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(self.id, self.status, target)
        self.status = target
        if reason is not None:
            self.reason = reason

    def can_transition(self, target: OrderStatus) -> bool:
        return target in TRANSITIONS.get(self.status, frozenset())

    def apply_fill(self, fill: Fill[N]) -> bool:
        """Apply ``fill``; ``False`` (and no change) if its id was already applied.

        Moves the order to ``partial_fill`` or ``filled``. Raises ``OrderError`` for a fill of
        another order, a non-positive quantity, or one larger than what remains.
        """
        if fill.fill_id in self.fill_ids:
            return False
        if fill.order_id != self.id:
            raise OrderError(f"fill {fill.fill_id} belongs to order {fill.order_id}, not {self.id}")
        if fill.quantity <= 0:
            raise OrderError(f"fill {fill.fill_id}: quantity must be positive")
        if fill.quantity > self.remaining:
            raise OrderError(
                f"fill {fill.fill_id}: {fill.quantity} exceeds the {self.remaining} left on order {self.id}"
            )
        filled = self.filled_quantity
        fees = self.fees
        assert filled is not None and fees is not None  # set in __post_init__
        target = OrderStatus.FILLED if fill.quantity == self.remaining else OrderStatus.PARTIAL_FILL
        # All arithmetic before any change: a float fill on a Decimal order (or the reverse)
        # raises TypeError here and leaves the order as it was.
        new_filled = filled + fill.quantity
        new_fees = fees + fill.fee
        held = self.notional
        assert held is not None  # set in __post_init__
        notional = held + fill.price * fill.quantity
        average = notional / new_filled
        self.transition(target)
        self.notional = notional
        self.average_price = average
        self.filled_quantity = new_filled
        self.fees = new_fees
        self.fill_ids.add(fill.fill_id)
        return True
