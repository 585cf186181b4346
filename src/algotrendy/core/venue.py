"""The broker port: one protocol that every venue adapter implements (paper, ccxt, Alpaca).

A ``Venue`` is one account at one venue. The trading service is its only caller; it persists
an order's intent (with its ``client_order_id``) *before* calling ``submit``, and it reads what
the venue did through ``fetch_order``, ``open_orders``, ``fills`` and the ``events`` stream.

Failure vocabulary (RELIABILITY.md G1/G2). Every adapter maps its transport and API errors to
exactly one of these, so the service can act without knowing the venue:

- ``VenueRejected``: the venue answered and definitively did not place the order (bad
  parameters, insufficient funds, unknown symbol, ...). Nothing to resolve.
- ``VenueUnavailable``: the request definitively did not reach the order book (connection
  refused before sending, 429 rate limited, maintenance answered before acceptance). Safe to
  try again later with the *same* ``client_order_id``.
- ``VenueAmbiguous``: the request may have been acted on (timeout after sending, 5xx, connection
  reset, a malformed answer). The order's state is UNKNOWN until ``fetch_order`` by client
  order id says otherwise; never resubmit blindly.

Venue data is untrusted input (RELIABILITY.md API10): adapters validate numbers (finite,
non-negative, present) and raise ``VenueDataError`` (a ``VenueAmbiguous``) for an answer that
cannot be trusted, so a malformed fill is quarantined, never applied.

Statuses use the order state machine's names (``engine.orders.OrderStatus`` values):
``submitted``, ``partial_fill``, ``filled``, ``cancelled``, ``rejected``, ``expired``. Sides
are ``BUY``/``SELL``; order types and times in force are the ``engine.orders`` enum values.
Quantities and prices are ``Decimal``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from algotrendy.core.market import BarUpdate

VENUE_STATUSES = frozenset({"submitted", "partial_fill", "filled", "cancelled", "rejected", "expired"})


class VenueError(Exception):
    """Base of the venue failures; ``code`` is the venue's own error code when it gave one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class VenueRejected(VenueError):
    """Definitively refused: nothing was placed."""


class VenueUnavailable(VenueError):
    """Definitively not placed, try later (``retry_after`` seconds when the venue said)."""

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class VenueAmbiguous(VenueError):
    """The outcome is unknown: resolve by ``fetch_order(client_order_id=...)``."""


class VenueDataError(VenueAmbiguous):
    """The venue answered with data that cannot be trusted (NaN, negative, missing fields)."""


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """Trading rules of one symbol at the venue. ``None`` means the venue sets no such rule."""

    symbol: str
    base: str
    quote: str
    min_quantity: Decimal | None = None
    quantity_step: Decimal | None = None
    tick_size: Decimal | None = None
    min_notional: Decimal | None = None
    tradable: bool = True


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    time_in_force: str = "GTC"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    """Trailing stops: distance as a fraction of the best price (0.02 = 2 %)."""
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    filled_quantity: Decimal
    status: str
    average_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "GTC"
    reason: str | None = None
    updated_ns: int = 0
    fills: tuple[VenueFill, ...] = ()
    """The order's executions when the answer carries them (the paper venue's submit answer, like
    Binance's FULL response): booked without asking ``fills()`` again. Empty means "not given"."""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution; ``trade_id`` is unique per venue (the key fills are deduplicated by)."""

    trade_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    ts_ns: int
    liquidity: str = "taker"


@dataclass(frozen=True, slots=True)
class VenueBalance:
    currency: str
    total: Decimal
    free: Decimal


@dataclass(frozen=True, slots=True)
class VenuePosition:
    symbol: str
    quantity: Decimal
    """Signed: negative is short."""
    average_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """What an API key may do. A key that can withdraw is refused (RELIABILITY.md).

    ``can_withdraw is None`` when the venue offers no way to ask (the service then refuses the
    key unless its owner states that withdrawals are disabled); ``detail`` says how it was
    established."""

    can_trade: bool
    can_withdraw: bool | None
    detail: str = ""


VenueEvent = VenueOrder | VenueFill


class Venue(Protocol):
    """One account at one venue. Every method raises only ``VenueError`` subclasses."""

    name: str
    """``paper``, ``alpaca``, or the ccxt exchange id (``binance``, ``kraken``, ...)."""

    reports_positions: bool
    """Whether ``positions`` is the account's truth (paper, brokers). Spot exchanges hold
    balances, not positions, and answer ``[]``: reconciliation then relies on fills alone."""

    books_in_our_database: bool
    """Whether the venue keeps its book in the platform's own database (the paper venue). Its
    records are then written after the order's intent in the same sequential log, so none of
    them can outlive the intent: the intent's commit need not wait for the disk before the call
    (the booking of the answer, after it, is durable and makes both durable)."""

    async def connect(self) -> None:
        """Open sessions and streams; load the instrument rules."""
        ...

    async def close(self) -> None: ...

    async def permissions(self) -> KeyPermissions: ...

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        """The rules of ``symbol`` (in the platform's spelling, e.g. ``BTCUSDT``, ``AAPL``);
        ``None`` if the venue does not list it."""
        ...

    async def submit(self, request: OrderRequest) -> VenueOrder:
        """Place an order. Idempotent by ``client_order_id`` where the venue allows it."""
        ...

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel an open order; answers the order as it stands (a filled order stays filled).
        ``VenueRejected`` when the venue does not know the order."""
        ...

    async def fetch_order(self, *, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order placed with ``client_order_id``, or ``None`` when the venue has none."""
        ...

    async def open_orders(self, *, symbol: str | None = None) -> list[VenueOrder]: ...

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        """Executions of this account, oldest first (``since_ns`` inclusive); with
        ``client_order_id``, only that order's."""
        ...

    async def balances(self) -> list[VenueBalance]: ...

    async def positions(self) -> list[VenuePosition]: ...

    def events(self) -> AsyncIterator[VenueEvent]:
        """Execution reports as they happen (order updates and fills), until ``close``. May
        repeat or reorder reports: the service deduplicates fills by ``trade_id``."""
        ...


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest price of a symbol the paper broker can trade against."""

    symbol: str
    ts: int
    """Epoch nanoseconds UTC of the bar (or trade) it comes from."""
    price: Decimal
    volume: Decimal | None = None


class QuoteSource(Protocol):
    """Prices for the paper broker: the live feed, or the replayed sample data by default."""

    async def last(self, symbol: str) -> Quote | None:
        """The latest known price, ``None`` when the platform has no data for ``symbol``."""
        ...

    def stream(self, symbol: str) -> AsyncIterator[BarUpdate]:
        """Bar updates (forming and closed) of ``symbol`` as they arrive, until cancelled."""
        ...
