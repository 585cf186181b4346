"""Pre-trade risk: the checks every order passes before it is sent, in backtests and live alike.

``pre_trade_check(intent, account, limits, now_ns)`` answers with a ``RiskDecision``: allowed, or
denied with every reason (a code, a message naming the limit and the value it would reach). It
never raises for a denial: the caller turns one into an ``OrderDenied`` event (the spec's
``RiskIntegration``; NautilusTrader's ``RiskEngine`` works the same way).

The checks (each only when its limit is set):

- **kill switch**: ``HALTED`` denies every order; ``REDUCING`` allows only orders that reduce a
  position without flipping it;
- **order rate**: at most ``max_orders_per_minute`` orders in any 60 s;
- **max order notional**: ``quantity * price``;
- **position limits**: the position after the order, counting what open orders of the same
  symbol would add, in units (``max_position_quantity``) and in value (``max_position_notional``);
- **concentration**: that position's value over equity (``max_concentration``);
- **leverage**: gross exposure after the order (open orders included) over equity;
- **daily loss**: once today's loss reaches ``daily_loss_limit``, only reducing orders pass.

An order that only reduces a position lowers every exposure, so the position, concentration,
leverage and daily-loss checks let it through (the kill switch and the rate still apply).
Numbers are generic (``Decimal`` live, ``float`` in research); one account uses one type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic

from algotrendy.engine.orders import N, OrderSide

NS_PER_MINUTE = 60 * 1_000_000_000


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class RiskLimits(Generic[N]):
    """Limits of one portfolio; ``None`` means unlimited."""

    state: TradingState = TradingState.ACTIVE
    max_order_notional: N | None = None
    max_position_quantity: N | None = None
    max_position_notional: N | None = None
    max_concentration: N | None = None
    """Largest share of equity in one symbol (0.25 = 25 %)."""
    max_leverage: N | None = None
    """Largest gross exposure over equity."""
    daily_loss_limit: N | None = None
    """Loss (positive number, in account currency) after which only reducing orders pass."""
    max_orders_per_minute: int | None = None
    symbol_quantity: Mapping[str, N] = field(default_factory=dict)
    """Per-symbol unit limits that override ``max_position_quantity``."""


@dataclass(frozen=True, slots=True)
class OrderIntent(Generic[N]):
    """An order as risk sees it: ``price`` is its limit price, or the last price for a market
    order (what it is expected to cost)."""

    symbol: str
    side: OrderSide
    quantity: N
    price: N
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Holding(Generic[N]):
    quantity: N
    """Signed."""
    price: N
    """Mark price."""
    pending: N
    """Signed quantity that open orders of this symbol would add if they all filled."""


@dataclass(frozen=True, slots=True)
class AccountView(Generic[N]):
    equity: N
    day_start_equity: N
    holdings: Mapping[str, Holding[N]]
    recent_orders_ns: Sequence[int] = ()
    """Submission times of recent orders (epoch ns), any order."""


@dataclass(frozen=True, slots=True)
class Denial:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RiskDecision:
    denials: tuple[Denial, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.denials

    @property
    def reason(self) -> str:
        return "; ".join(d.message for d in self.denials)


def reduces(intent: OrderIntent[N], position: N) -> bool:
    """Whether the order only reduces ``position`` (same size or smaller, opposite side)."""
    zero = position - position
    if position == zero:
        return False
    opposite = (position > zero) != (intent.side is OrderSide.BUY)
    return opposite and intent.quantity <= abs(position)


def pre_trade_check(
    intent: OrderIntent[N], account: AccountView[N], limits: RiskLimits[N], now_ns: int
) -> RiskDecision:
    zero = intent.quantity - intent.quantity
    _same_numbers(limits, type(zero))
    held = account.holdings.get(intent.symbol)
    position = held.quantity if held is not None else zero
    pending = held.pending if held is not None else zero
    reducing = reduces(intent, position)
    out: list[Denial] = []
    if limits.state is TradingState.HALTED:
        out.append(Denial("halted", "trading is halted for this portfolio (kill switch)"))
    elif limits.state is TradingState.REDUCING and not reducing:
        out.append(Denial("reducing_only", "the kill switch allows only orders that reduce a position"))
    if intent.reduce_only and not reducing:
        out.append(Denial("reduce_only", f"reduce-only: nothing of {intent.symbol} to reduce by that much"))
    rate = limits.max_orders_per_minute
    if rate is not None:
        recent = sum(1 for t in account.recent_orders_ns if now_ns - NS_PER_MINUTE < t <= now_ns)
        if recent >= rate:
            out.append(Denial("rate_limited", f"{recent} orders in the last minute; the limit is {rate}"))
    notional = intent.quantity * intent.price
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        out.append(
            Denial(
                "order_notional", f"order notional {notional} exceeds the limit {limits.max_order_notional}"
            )
        )
    if not reducing:
        out.extend(_exposure(intent, account, limits, position + pending, zero))
    return RiskDecision(tuple(out))


_NUMERIC = (
    "max_order_notional",
    "max_position_quantity",
    "max_position_notional",
    "max_concentration",
    "max_leverage",
    "daily_loss_limit",
)


def _same_numbers(limits: RiskLimits[N], kind: type) -> None:
    """Comparisons between Decimal and float do not raise (arithmetic does): refuse the mix."""
    for name in _NUMERIC:
        value = getattr(limits, name)
        if value is not None and type(value) is not kind:
            raise TypeError(f"risk limit {name} is a {type(value).__name__}, the order is in {kind.__name__}")
    for symbol, value in limits.symbol_quantity.items():
        if type(value) is not kind:
            raise TypeError(f"risk limit symbol_quantity[{symbol}] is a {type(value).__name__}")


def _exposure(
    intent: OrderIntent[N], account: AccountView[N], limits: RiskLimits[N], committed: N, zero: N
) -> list[Denial]:
    out: list[Denial] = []
    signed = intent.quantity if intent.side is OrderSide.BUY else -intent.quantity
    after = abs(committed + signed)
    unit_limit = limits.symbol_quantity.get(intent.symbol, limits.max_position_quantity)
    if unit_limit is not None and after > unit_limit:
        out.append(
            Denial(
                "position_quantity", f"{intent.symbol} position would be {after}; the limit is {unit_limit}"
            )
        )
    value = after * intent.price
    if limits.max_position_notional is not None and value > limits.max_position_notional:
        out.append(
            Denial(
                "position_notional",
                f"{intent.symbol} position value would be {value}; "
                f"the limit is {limits.max_position_notional}",
            )
        )
    equity = account.equity
    if limits.max_concentration is not None:
        if equity <= zero:
            out.append(Denial("no_equity", "the account has no equity to trade with"))
        elif value > limits.max_concentration * equity:
            out.append(
                Denial(
                    "concentration",
                    f"{intent.symbol} would be {value / equity:.4f} of equity; "
                    f"the limit is {limits.max_concentration}",
                )
            )
    if limits.max_leverage is not None:
        gross = value
        for symbol, h in account.holdings.items():
            if symbol != intent.symbol:
                gross += abs(h.quantity + h.pending) * h.price
        if equity <= zero or gross > limits.max_leverage * equity:
            shown = f"{gross / equity:.4f}" if equity > zero else "unbounded"
            out.append(
                Denial("leverage", f"gross leverage would be {shown}; the limit is {limits.max_leverage}")
            )
    loss_limit = limits.daily_loss_limit
    if loss_limit is not None:
        loss = account.day_start_equity - equity
        if loss >= loss_limit:
            out.append(
                Denial(
                    "daily_loss",
                    f"today's loss {loss} reached the limit {loss_limit}: only reducing orders pass",
                )
            )
    return out
