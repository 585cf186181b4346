"""The order path's checks before anything is written or sent: the request's fingerprint (for
idempotency), the venue's trading rules, the pre-trade risk decision, and the cash reservation."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from algotrendy.core.errors import Invalid
from algotrendy.core.venue import InstrumentRules
from algotrendy.engine.ledger import LedgerError
from algotrendy.engine.orders import OrderSide
from algotrendy.engine.risk import Denial, OrderIntent, RiskDecision, RiskLimits, pre_trade_check
from algotrendy.services.trading.accounts import Books
from algotrendy.services.trading.interface import NEEDS_LIMIT, OrderCreate, OrderModify
from algotrendy.services.trading.settings import TradingSettings
from algotrendy.services.trading.views import Snapshot

ZERO = Decimal(0)


def request_hash(request: OrderCreate) -> str:
    body = request.model_dump(mode="json", exclude={"client_order_id"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_rules(
    request: OrderCreate | OrderModify, rules: InstrumentRules, reference: Decimal | None
) -> None:
    """The venue's trading rules, checked before anything is written or sent (422 naming the field)."""
    if not rules.tradable:
        raise Invalid(f"{rules.symbol} is not tradable at the venue", field="symbol", code="not_tradable")
    qty = request.quantity
    if qty is not None:
        if rules.min_quantity is not None and qty < rules.min_quantity:
            raise Invalid(
                f"quantity {qty} is below the venue minimum {rules.min_quantity} for {rules.symbol}",
                field="quantity",
                code="below_minimum",
            )
        if rules.quantity_step is not None and rules.quantity_step > 0 and qty % rules.quantity_step != 0:
            raise Invalid(
                f"quantity {qty} is not a multiple of the step {rules.quantity_step} for {rules.symbol}",
                field="quantity",
                code="off_step",
            )
    for name in ("limit_price", "stop_price"):
        price = getattr(request, name)
        tick = rules.tick_size
        if price is not None and tick is not None and tick > 0 and price % tick != 0:
            raise Invalid(
                f"{name} {price} is not a multiple of the tick size {tick} for {rules.symbol}",
                field=name,
                code="off_tick",
            )
    floor = rules.min_notional
    if qty is not None and floor is not None and reference is not None and qty * reference < floor:
        raise Invalid(
            f"order value {qty * reference} is below the venue minimum {floor}",
            field="quantity",
            code="below_min_notional",
        )


def decide(
    request: OrderCreate,
    reference: Decimal,
    snapshot: Snapshot,
    limits: RiskLimits[Decimal],
    account: dict[str, Any],
    now: datetime,
) -> RiskDecision:
    """The pre-trade risk check (``engine.risk``) plus the account's own refusals: a halt, and
    a sale beyond the position when short selling is off."""
    view = snapshot.view
    intent = OrderIntent(
        symbol=request.symbol,
        side=request.side,
        quantity=request.quantity,
        price=reference,
        reduce_only=request.reduce_only,
    )
    decision = pre_trade_check(intent, view, limits, int(now.timestamp() * 1_000_000_000))
    extra: list[Denial] = []
    if account["halted_reason"]:
        extra.append(Denial("account_halted", f"trading is halted: {account['halted_reason']}"))
    if request.side is OrderSide.SELL and not account["allow_short"]:
        held = view.holdings.get(request.symbol)
        have = held.quantity + min(held.pending, ZERO) if held is not None else ZERO
        if request.quantity > have:
            extra.append(
                Denial(
                    "short_not_allowed",
                    f"selling {request.quantity} {request.symbol} needs a position of that size "
                    f"(free: {have}); short selling is off for this portfolio",
                )
            )
    return RiskDecision(decision.denials + tuple(extra)) if extra else decision


def reserve(
    books: Books,
    order_id: uuid.UUID,
    request: OrderCreate,
    reference: Decimal,
    account: dict[str, Any],
    settings: TradingSettings,
) -> RiskDecision:
    """Set the buy's cost aside in the ledger (a market order's with the price buffer), or
    deny it for want of cash."""
    buffer = ZERO if request.order_type in NEEDS_LIMIT else settings.market_reserve_buffer
    amount = request.quantity * reference * (1 + buffer) * (1 + settings.reserve_fee_rate)
    try:
        books.ledger.reserve(str(order_id), str(account["currency"]), amount)
    except LedgerError:
        available = books.ledger.available(str(account["currency"]))
        return RiskDecision(
            (
                Denial(
                    "insufficient_cash",
                    f"the order needs {amount:.2f} {account['currency']} set aside; "
                    f"{available:.2f} is available",
                ),
            )
        )
    return RiskDecision()
