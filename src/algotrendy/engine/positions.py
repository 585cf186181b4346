"""Positions: signed quantity, average entry price, realized P&L and fees, from fills alone.

One implementation for backtest (``float``) and live (``Decimal``). A position's quantity is the
signed sum of its unique fills (the invariant the trading service tests); the average price is
the volume-weighted entry price of the open quantity; a fill that reduces the position realizes
``(exit - average) * closed * sign``; a fill larger than the position flips it, and the excess
opens the other side at the fill price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic

from algotrendy.engine.orders import Fill, N, OrderSide


@dataclass(frozen=True, slots=True)
class Closed(Generic[N]):
    """The part of a position a fill closed (one round trip in the trade list)."""

    symbol: str
    side: int
    """+1 a long was closed, -1 a short."""
    quantity: N
    entry_price: N
    exit_price: N
    entry_fee: N
    """The share of the entry fees that belongs to the closed quantity."""
    exit_fee: N
    entry_index: int
    exit_index: int

    @property
    def pnl(self) -> N:
        gross = (self.exit_price - self.entry_price) * self.quantity
        return (gross if self.side > 0 else -gross) - self.entry_fee - self.exit_fee


@dataclass(slots=True)
class Position(Generic[N]):
    symbol: str
    quantity: N
    """Signed: positive long, negative short, zero flat."""
    average_price: N
    realized_pnl: N
    """Gross of fees; the net result is ``realized_pnl - fees`` (fees paid so far, both sides)."""
    fees: N
    entry_fees: N
    """Fees paid on the open quantity (moved into the trade when it closes)."""
    entry_index: int = -1
    fill_ids: set[str] = field(default_factory=set)
    cost: N | None = None
    """``average_price x |quantity|`` kept exact: adding divides the summed cost once, so the
    average is the correctly rounded VWAP of the open entries, whatever order they came in."""

    @classmethod
    def flat(cls, symbol: str, zero: N) -> Position[N]:
        return cls(symbol, zero, zero, zero, zero, zero)

    @property
    def side(self) -> int:
        return (self.quantity > 0) - (self.quantity < 0)

    def market_value(self, price: N) -> N:
        return self.quantity * price

    def unrealized_pnl(self, price: N) -> N:
        return (price - self.average_price) * self.quantity

    def apply(self, fill: Fill[N]) -> list[Closed[N]]:
        """Apply ``fill`` (ignored if its id was seen) and return what it closed."""
        if fill.fill_id in self.fill_ids:
            return []
        # A float fill on a Decimal position (or the reverse) raises TypeError here, before
        # anything changes or the fill id is recorded as applied.
        _ = self.quantity + fill.quantity + fill.price + fill.fee
        self.fill_ids.add(fill.fill_id)
        qty = fill.quantity if fill.side is OrderSide.BUY else -fill.quantity
        zero = qty - qty
        self.fees += fill.fee
        closed: list[Closed[N]] = []
        if self.quantity == zero or (self.quantity > zero) == (qty > zero):
            total = self.quantity + qty
            held = self.average_price * abs(self.quantity) if self.cost is None else self.cost
            cost = held + fill.price * abs(qty)
            self.cost = cost
            self.average_price = cost / abs(total)
            if self.quantity == zero:
                self.entry_index = fill.index
            self.quantity = total
            self.entry_fees += fill.fee
            return closed
        # Reducing, closing or flipping.
        open_qty = abs(self.quantity)
        closing = min(open_qty, abs(qty))
        exit_fee = fill.fee * closing / abs(qty)
        entry_fee = self.entry_fees * closing / open_qty
        c = Closed(
            symbol=self.symbol,
            side=self.side,
            quantity=closing,
            entry_price=self.average_price,
            exit_price=fill.price,
            entry_fee=entry_fee,
            exit_fee=exit_fee,
            entry_index=self.entry_index,
            exit_index=fill.index,
        )
        closed.append(c)
        gross = (fill.price - c.entry_price) * closing
        self.realized_pnl += gross if c.side > 0 else -gross  # exact: fees are kept apart in ``fees``
        self.entry_fees -= entry_fee
        rest = abs(qty) - closing
        if rest > zero:  # flip: the excess opens the other side
            self.quantity = qty + self.quantity
            self.average_price = fill.price
            self.cost = fill.price * rest
            self.entry_fees = fill.fee - exit_fee
            self.entry_index = fill.index
        else:
            self.quantity = self.quantity + qty
            self.cost = self.average_price * abs(self.quantity)
            if self.quantity == zero:
                self.average_price = zero
                self.entry_fees = zero
        return closed
