"""Trading API, DTOs and the events it publishes.

An order belongs to one portfolio (its trading account) and runs the spec's state machine
(``engine.orders``). Next to its status an order carries ``venue_state``: ``pending`` until the
venue has been asked, ``acknowledged`` once it answered, ``unknown`` after an ambiguous outcome
(timeout, 5xx, reset) until a query by ``client_order_id`` resolves it (RELIABILITY.md G1/G2),
``none`` for an order that was never sent (denied or refused before sending).

Money, prices and quantities are ``Decimal``, strings in JSON. A request may give numbers as
JSON numbers or strings; answers always carry strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, model_validator

from algotrendy.core.events import Event
from algotrendy.engine.orders import OrderSide, OrderStatus, OrderType, TimeInForce

_MAX = Decimal("1e15")


def _dec_str(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")


Dec = Annotated[Decimal, PlainSerializer(_dec_str, return_type=str, when_used="json")]
Quantity = Annotated[Decimal, Field(gt=0, lt=_MAX, allow_inf_nan=False, decimal_places=18)]
Price = Annotated[Decimal, Field(gt=0, lt=_MAX, allow_inf_nan=False, decimal_places=12)]
Fraction = Annotated[Decimal, Field(gt=0, lt=1, allow_inf_nan=False, decimal_places=8)]
SymbolText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._/-]+$")]
ClientOrderId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._:-]+$"),
]
"""36 characters of ``[A-Za-z0-9._:-]``: what every supported venue accepts (Binance's limit)."""
Reason = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]

NEEDS_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT})
NEEDS_STOP = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class VenueState(StrEnum):
    NONE = "none"
    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    UNKNOWN = "unknown"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderBody(_In):
    """An order without its portfolio (the pre-trade check names the portfolio outside)."""

    symbol: SymbolText
    side: OrderSide
    quantity: Quantity
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.GTC
    limit_price: Price | None = None
    stop_price: Price | None = None
    trail_percent: Fraction | None = Field(
        default=None, description="Trailing stops: distance as a fraction of the best price (0.02 = 2%)"
    )
    reduce_only: bool = False
    client_order_id: ClientOrderId | None = Field(
        default=None, description="Your id for this intent; a retry with the same id returns the same order"
    )

    @model_validator(mode="after")
    def _prices(self) -> OrderBody:
        t = self.order_type
        if t in NEEDS_LIMIT and self.limit_price is None:
            raise ValueError(f"limit_price: a {t.value} order needs a limit price")
        if t in NEEDS_STOP and self.stop_price is None:
            raise ValueError(f"stop_price: a {t.value} order needs a stop price")
        if t is OrderType.TRAILING_STOP and self.trail_percent is None:
            raise ValueError("trail_percent: a TRAILING_STOP order needs a trail")
        if t not in NEEDS_LIMIT and self.limit_price is not None:
            raise ValueError(f"limit_price: a {t.value} order takes no limit price")
        if t not in NEEDS_STOP and self.stop_price is not None:
            raise ValueError(f"stop_price: a {t.value} order takes no stop price")
        if t is not OrderType.TRAILING_STOP and self.trail_percent is not None:
            raise ValueError(f"trail_percent: a {t.value} order takes no trail")
        return self


class OrderCreate(OrderBody):
    portfolio_id: uuid.UUID


class OrderModify(_In):
    """New quantity and/or prices for a resting order (it is replaced: cancelled, and a new
    order with the rest of the intent takes its place)."""

    quantity: Quantity | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None

    @model_validator(mode="after")
    def _something(self) -> OrderModify:
        if self.quantity is None and self.limit_price is None and self.stop_price is None:
            raise ValueError("quantity: give a new quantity, limit_price or stop_price")
        return self


class OrderCancel(_In):
    reason: Reason | None = None


class RiskReason(BaseModel):
    code: str
    message: str


class RiskCheckRead(BaseModel):
    allowed: bool
    reasons: list[RiskReason] = Field(default_factory=list)


class OrderRead(BaseModel):
    order_id: uuid.UUID
    portfolio_id: uuid.UUID
    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Dec
    filled_quantity: Dec
    remaining_quantity: Dec
    average_price: Dec | None
    limit_price: Dec | None
    stop_price: Dec | None
    trail_percent: Dec | None
    reduce_only: bool
    status: OrderStatus
    venue: str
    venue_state: VenueState
    venue_order_id: str | None
    fees: Dec
    reason: str | None
    risk: RiskCheckRead | None = None
    replaces_order_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    total: int
    limit: int
    offset: int


class FillRead(BaseModel):
    fill_id: uuid.UUID
    order_id: uuid.UUID
    portfolio_id: uuid.UUID
    trade_id: str
    symbol: str
    side: OrderSide
    quantity: Dec
    price: Dec
    fee: Dec
    fee_currency: str
    executed_at: datetime


class PositionRead(BaseModel):
    position_id: uuid.UUID
    portfolio_id: uuid.UUID
    symbol: str
    side: Literal["long", "short", "flat"]
    quantity: Dec
    average_price: Dec | None
    market_price: Dec | None
    market_value: Dec | None
    unrealized_pnl: Dec | None
    realized_pnl: Dec
    fees: Dec
    opened_at: datetime | None
    updated_at: datetime


class PositionClose(_In):
    quantity: Quantity | None = Field(default=None, description="Units to close (default: all)")
    reason: Reason | None = None
    limit_price: Price | None = Field(default=None, description="Close with a limit order at this price")


class AccountRead(BaseModel):
    portfolio_id: uuid.UUID
    venue: str
    currency: str
    cash: Dec
    reserved: Dec
    positions_value: Dec
    equity: Dec
    realized_pnl: Dec
    unrealized_pnl: Dec
    fees: Dec
    halted: bool
    halted_reason: str | None
    reconciled_at: datetime | None
    day_start_equity: Dec = Field(description="Equity at the start of the UTC day (daily P&L's base)")
    peak_equity: Dec = Field(description="Highest of the daily equity marks and the equity now")


class ExecutionStats(BaseModel):
    portfolio_id: uuid.UUID | None
    period: str
    orders: int
    filled: int
    partially_filled: int
    cancelled: int
    rejected: int
    expired: int
    open: int
    fill_rate: float | None
    fills: int
    traded_notional: Dec
    fees: Dec
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    slippage_bps_mean: float | None
    """Mean of (fill price vs the reference price at submission) in basis points, positive = worse."""


# ---- events (topics are the spec's: trading.order.created, trading.order.filled, ...) ------------


class _OrderEvent(Event):
    order_id: uuid.UUID
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: str
    filled_quantity: str
    average_price: str | None
    status: str
    reason: str | None = None


class OrderCreated(_OrderEvent):
    topic: ClassVar[str] = "trading.order.created"


class OrderSubmitted(_OrderEvent):
    topic: ClassVar[str] = "trading.order.submitted"


class OrderPartiallyFilled(_OrderEvent):
    topic: ClassVar[str] = "trading.order.partially_filled"


class OrderFilled(_OrderEvent):
    topic: ClassVar[str] = "trading.order.filled"


class OrderCancelled(_OrderEvent):
    topic: ClassVar[str] = "trading.order.cancelled"


class OrderRejected(_OrderEvent):
    topic: ClassVar[str] = "trading.order.rejected"


class OrderExpired(_OrderEvent):
    topic: ClassVar[str] = "trading.order.expired"


class OrderDenied(_OrderEvent):
    """The pre-trade risk check refused the order (ARCHITECTURE rule 5)."""

    topic: ClassVar[str] = "trading.order.denied"
    reasons: list[dict[str, str]]


class OrderUnknown(_OrderEvent):
    """The venue's answer was ambiguous; reconciliation will resolve it."""

    topic: ClassVar[str] = "trading.order.unknown"


class FillExecuted(Event):
    topic: ClassVar[str] = "trading.fill.executed"
    fill_id: uuid.UUID
    order_id: uuid.UUID
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    trade_id: str
    symbol: str
    side: str
    quantity: str
    price: str
    fee: str


class _PositionEvent(Event):
    position_id: uuid.UUID
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    symbol: str
    quantity: str
    average_price: str | None
    realized_pnl: str


class PositionOpened(_PositionEvent):
    topic: ClassVar[str] = "trading.position.opened"


class PositionUpdated(_PositionEvent):
    topic: ClassVar[str] = "trading.position.updated"


class PositionClosed(_PositionEvent):
    topic: ClassVar[str] = "trading.position.closed"


class AccountHalted(Event):
    """Reconciliation found a difference it cannot explain: trading stops for the account."""

    topic: ClassVar[str] = "trading.account.halted"
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    reason: str


class ReconciliationCompleted(Event):
    topic: ClassVar[str] = "trading.reconciliation.completed"
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    fills_applied: int
    orders_adopted: int
    orders_resolved: int
    halted: bool


STATUS_EVENTS: dict[OrderStatus, type[_OrderEvent]] = {
    OrderStatus.SUBMITTED: OrderSubmitted,
    OrderStatus.PARTIAL_FILL: OrderPartiallyFilled,
    OrderStatus.FILLED: OrderFilled,
    OrderStatus.CANCELLED: OrderCancelled,
    OrderStatus.REJECTED: OrderRejected,
    OrderStatus.EXPIRED: OrderExpired,
}


class ReconcileRead(BaseModel):
    portfolio_id: uuid.UUID
    fills_applied: int
    orders_adopted: int
    orders_resolved: int
    halted: bool
    halted_reason: str | None


class AccountView(BaseModel):
    """What risk and portfolio read of an account (positions with their market prices)."""

    portfolio_id: uuid.UUID
    currency: str
    cash: Dec
    equity: Dec
    positions: dict[str, Dec]
    prices: dict[str, Dec]
    day_start_equity: Dec = Field(description="Equity at the start of the UTC day")
    peak_equity: Dec = Field(description="Highest of the daily equity marks and the equity now")


class TradingApi(Protocol):
    async def submit_order(
        self,
        *,
        owner_id: uuid.UUID,
        request: OrderCreate,
        idempotency_key: str | None = None,
        deployment_id: uuid.UUID | None = None,
        local_id: str | None = None,
        tag: str | None = None,
    ) -> tuple[OrderRead, bool]:
        """The order, and whether it was created now (``False``: an earlier identical request).
        A strategy deployment names itself and its order's local id and tag."""
        ...

    async def get_order(self, *, owner_id: uuid.UUID, order_id: uuid.UUID) -> OrderRead: ...

    async def list_orders(
        self,
        *,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID | None = None,
        status: list[OrderStatus] | None = None,
        symbol: str | None = None,
        side: OrderSide | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> OrderPage: ...

    async def cancel_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, reason: str | None = None
    ) -> OrderRead: ...

    async def modify_order(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID, changes: OrderModify
    ) -> OrderRead: ...

    async def fills(
        self, *, owner_id: uuid.UUID, order_id: uuid.UUID | None = None, portfolio_id: uuid.UUID | None = None
    ) -> list[FillRead]: ...

    async def positions(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> list[PositionRead]: ...

    async def position(self, *, owner_id: uuid.UUID, position_id: uuid.UUID) -> PositionRead: ...

    async def close_position(
        self, *, owner_id: uuid.UUID, position_id: uuid.UUID, request: PositionClose
    ) -> OrderRead: ...

    async def account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead: ...

    async def account_view(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountView: ...

    async def execution_stats(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None, period: str
    ) -> ExecutionStats: ...

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead: ...

    async def open_position_count(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> int: ...

    async def create_connection(self, *, owner_id: uuid.UUID, data: ConnectionCreate) -> ConnectionRead: ...

    async def connections(self, *, owner_id: uuid.UUID) -> list[ConnectionRead]: ...

    async def delete_connection(self, *, owner_id: uuid.UUID, connection_id: uuid.UUID) -> None: ...

    async def reconcile_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> ReconcileRead: ...

    async def resume_account(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> AccountRead: ...

    async def deploy(
        self, *, owner_id: uuid.UUID, strategy_id: uuid.UUID, request: DeploymentCreate
    ) -> DeploymentRead: ...

    async def deployments(self, *, owner_id: uuid.UUID) -> list[DeploymentRead]: ...

    async def deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead: ...

    async def stop_deployment(self, *, owner_id: uuid.UUID, deployment_id: uuid.UUID) -> DeploymentRead: ...


Json = dict[str, Any]


VenueId = Annotated[str, StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class ConnectionCreate(_In):
    """An exchange or broker API key. It is checked at the venue (it must trade and must not be
    able to withdraw) and stored encrypted; it is never shown again."""

    venue: VenueId = Field(description="'alpaca' or a ccxt exchange id: binance, kraken, coinbase, ...")
    label: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    api_key: Secret
    secret: Secret
    password: Secret | None = Field(default=None, description="Passphrase, where the venue has one")
    sandbox: bool = Field(default=True, description="The venue's test/paper environment")
    base_url: Annotated[str, StringConstraints(max_length=300, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="Another API address (only where the operator allows it)"
    )
    withdrawals_disabled: bool = Field(
        default=False,
        description="You state that this key cannot withdraw, for venues that offer no way to check it",
    )


class ConnectionRead(BaseModel):
    connection_id: uuid.UUID
    venue: str
    label: str
    sandbox: bool
    api_key_hint: str
    permissions: str
    created_at: datetime


class DeploymentStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class DeploymentCreate(_In):
    """Run a strategy live on a portfolio's venue (the paper broker or a connected account)."""

    portfolio_id: uuid.UUID
    symbols: list[SymbolText] | None = Field(
        default=None, min_length=1, max_length=20, description="Default: the strategy's symbols"
    )
    interval: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}(m|h|d|w)$")] | None = Field(
        default=None, description="Bar interval (default: the strategy's)"
    )
    allocation: Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False, decimal_places=6)] = Field(
        default=Decimal(1), description="Share of the portfolio's equity the strategy sizes against"
    )
    parameters: dict[
        Annotated[str, StringConstraints(max_length=40)], Annotated[float | int | str, Field()]
    ] = Field(default_factory=dict, max_length=50, description="Parameter values (default: the defaults)")
    warmup_bars: int = Field(default=500, ge=1, le=5000, description="History given to the strategy at start")


class DeploymentRead(BaseModel):
    deployment_id: uuid.UUID
    strategy_id: uuid.UUID
    version: int
    portfolio_id: uuid.UUID
    symbols: list[str]
    interval: str
    allocation: Dec
    parameters: dict[str, Any]
    status: DeploymentStatus
    reason: str | None
    bars_seen: int
    orders_placed: int
    created_at: datetime
    updated_at: datetime


class DeploymentChanged(Event):
    topic: ClassVar[str] = "trading.deployment.changed"
    deployment_id: uuid.UUID
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    strategy_id: uuid.UUID
    status: str
    reason: str | None = None
