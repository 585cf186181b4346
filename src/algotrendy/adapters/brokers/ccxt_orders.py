"""Orders between the platform and ccxt: an ``OrderRequest`` checked and translated into
``create_order``'s arguments, and ccxt's order and trade payloads read as ``VenueOrder`` and
``VenueFill``.

* **Checks before any network call**: side, time in force (GTC/IOC/FOK; DAY is not a crypto time
  in force), the order type against what the exchange supports (Binance: the symbol's
  ``orderTypes``; others: ccxt's ``has`` flags), the prices the type needs, and the market's
  rules (minimum quantity, quantity step, tick size, minimum notional when the price is known).
  ccxt would silently *round* a quantity to the step, so an order whose numbers the venue
  cannot represent exactly is refused instead.
* **Mapping**: MARKET and LIMIT as such, TAKE_PROFIT as a limit at the target (the platform
  matches it as one), STOP and STOP_LIMIT as ccxt trigger orders (Binance STOP_LOSS /
  STOP_LOSS_LIMIT), TRAILING_STOP as a trailing-percent order (Binance ``trailingDelta`` in basis
  points). ``reduce_only`` cannot be expressed on spot: a reduce-only SELL is sent (a spot sale
  can only reduce holdings), a reduce-only BUY is refused. The ``client_order_id`` travels as
  ccxt's ``clientOrderId`` (Binance ``newClientOrderId``).
* **Untrusted numbers**: every quantity, price and fee goes through ``_validate.dec``/``req``
  (finite, non-negative, present); an order's fill above its quantity, a "filled" order with
  something left to fill, or a status outside ccxt's vocabulary is a ``VenueDataError``. A fee
  may be negative (a maker rebate) but must be finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt

from algotrendy.core.venue import OrderRequest, VenueDataError, VenueFill, VenueOrder, VenueRejected

from ._validate import dec, req
from ._venue_common import signed
from .ccxt_http import CcxtClient, short
from .ccxt_markets import CcxtMarkets, positive_or_none

NS_PER_MS = 1_000_000
_TIFS = frozenset({"GTC", "IOC", "FOK"})
_TYPES = frozenset({"MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TAKE_PROFIT", "TRAILING_STOP"})
_NEEDS_LIMIT = frozenset({"LIMIT", "STOP_LIMIT", "TAKE_PROFIT"})
_NEEDS_STOP = frozenset({"STOP", "STOP_LIMIT"})
_BINANCE_TYPE = {
    "MARKET": "MARKET",
    "LIMIT": "LIMIT",
    "TAKE_PROFIT": "LIMIT",
    "STOP": "STOP_LOSS",
    "STOP_LIMIT": "STOP_LOSS_LIMIT",
    "TRAILING_STOP": "STOP_LOSS",
}
_HAS_FLAGS = {
    "MARKET": ("createMarketOrder",),
    "LIMIT": ("createLimitOrder",),
    "TAKE_PROFIT": ("createLimitOrder",),
    "STOP": ("createStopMarketOrder", "createStopLossOrder", "createTriggerOrder"),
    "STOP_LIMIT": ("createStopLimitOrder", "createTriggerOrder"),
    "TRAILING_STOP": ("createTrailingPercentOrder",),
}
_FROM_BINANCE_TYPE = {
    "MARKET": "MARKET",
    "LIMIT": "LIMIT",
    "LIMIT_MAKER": "LIMIT",
    "STOP_LOSS": "STOP",
    "STOP_LOSS_LIMIT": "STOP_LIMIT",
    "TAKE_PROFIT": "STOP",
    "TAKE_PROFIT_LIMIT": "STOP_LIMIT",
}
_FINAL_STATUS = {
    "closed": "filled",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "expired": "expired",
}
_OPEN_STATUS = frozenset({"open", "canceling", "pending"})

CreateArgs = tuple[str, str, float, float | None, dict[str, Any]]
"""``create_order``'s ``(type, side, amount, price, params)``."""


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _ms(value: Any, what: str) -> int:
    number = req(value, what)
    if number != number.to_integral_value():
        raise VenueDataError(f"venue answer has a fractional {what}: {value!r}")
    return int(number)


# ---- out: a request as create_order's arguments ----------------------------------------------


def order_args(client: CcxtClient, markets: CcxtMarkets, request: OrderRequest, unified: str) -> CreateArgs:
    """ccxt's ``create_order`` arguments, or ``VenueRejected`` before any network call."""
    name = client.name
    what = f"order {request.client_order_id}"
    if not request.client_order_id:
        raise VenueRejected(f"{what}: a client order id is required")
    if request.side not in ("BUY", "SELL"):
        raise VenueRejected(f"{what}: side {request.side!r} is not BUY or SELL")
    if request.type not in _TYPES:
        raise VenueRejected(f"{what}: unknown order type {request.type!r}")
    if request.time_in_force == "DAY":
        raise VenueRejected(f"{what}: time in force DAY does not exist on {name} (use GTC, IOC or FOK)")
    if request.time_in_force not in _TIFS:
        raise VenueRejected(f"{what}: unknown time in force {request.time_in_force!r}")
    market = markets.market(unified)
    if market.get("active") is False:
        raise VenueRejected(f"{what}: {request.symbol} is not trading on {name}")
    if not _supports(client, request.type, market):
        raise VenueRejected(f"{what}: {name} does not support {request.type} orders on {request.symbol}")
    if request.reduce_only and request.side == "BUY":
        raise VenueRejected(f"{what}: a reduce-only BUY cannot be expressed on a spot market")
    if not request.quantity > 0:
        raise VenueRejected(f"{what}: quantity must be positive")
    if request.type in _NEEDS_LIMIT and not (request.limit_price is not None and request.limit_price > 0):
        raise VenueRejected(f"{what}: a {request.type} order needs a positive limit price")
    if request.type in _NEEDS_STOP and not (request.stop_price is not None and request.stop_price > 0):
        raise VenueRejected(f"{what}: a {request.type} order needs a positive stop price")
    trail = request.trail_percent
    if request.type == "TRAILING_STOP" and not (trail is not None and 0 < trail < 1):
        raise VenueRejected(f"{what}: a TRAILING_STOP needs trail_percent between 0 and 1 (0.02 = 2 %)")
    if request.type == "TRAILING_STOP" and client.binance and trail is not None and (trail * 10_000) % 1:
        raise VenueRejected(f"{what}: {name} trails by whole basis points, not {trail}")
    _check_rules(markets, request, unified)

    limit_like = request.type in _NEEDS_LIMIT
    kind = "limit" if limit_like else "market"
    params: dict[str, Any] = {"clientOrderId": request.client_order_id}
    if limit_like:
        params["timeInForce"] = request.time_in_force
    if request.type in _NEEDS_STOP:
        assert request.stop_price is not None
        params["triggerPrice"] = _exact(client, unified, request.stop_price, "stop price", price=True)
    if request.type == "TRAILING_STOP":
        assert trail is not None
        params["trailingPercent"] = float(trail * 100)
        if client.binance:
            params["stopLossOrTakeProfit"] = "stopLoss"
    amount = _exact(client, unified, request.quantity, "quantity", price=False)
    price = (
        _exact(client, unified, request.limit_price, "limit price", price=True)
        if limit_like and request.limit_price is not None
        else None
    )
    return kind, request.side.lower(), amount, price, params


def _supports(client: CcxtClient, kind: str, market: Mapping[str, Any]) -> bool:
    if client.binance:
        info = market.get("info") or {}
        types = info.get("orderTypes")
        if not isinstance(types, list) or _BINANCE_TYPE[kind] not in types:
            return False
        return kind != "TRAILING_STOP" or info.get("allowTrailingStop") is True
    has: Mapping[str, Any] = client.ex.has
    return any(has.get(flag) for flag in _HAS_FLAGS[kind])


def _check_rules(markets: CcxtMarkets, request: OrderRequest, unified: str) -> None:
    rules = markets.rules(unified)
    what = f"order {request.client_order_id}"
    qty = request.quantity
    if rules.min_quantity is not None and qty < rules.min_quantity:
        raise VenueRejected(f"{what}: quantity {qty} is below the minimum {rules.min_quantity} (lot size)")
    if rules.quantity_step is not None and not _multiple(qty, rules.quantity_step):
        raise VenueRejected(
            f"{what}: quantity {qty} is not a multiple of the step {rules.quantity_step} (lot size)"
        )
    for name, value in (("limit price", request.limit_price), ("stop price", request.stop_price)):
        if value is None or rules.tick_size is None:
            continue
        if request.type not in _NEEDS_LIMIT and name == "limit price":
            continue
        if not _multiple(value, rules.tick_size):
            raise VenueRejected(
                f"{what}: {name} {value} is not a multiple of the tick size {rules.tick_size}"
            )
    reference = request.limit_price if request.type in _NEEDS_LIMIT else request.stop_price
    if rules.min_notional is not None and reference is not None and qty * reference < rules.min_notional:
        raise VenueRejected(
            f"{what}: notional {qty * reference} is below the min notional {rules.min_notional}"
        )


def _exact(client: CcxtClient, unified: str, value: Decimal, what: str, *, price: bool) -> float:
    """``value`` as the float ccxt takes, refused when ccxt would send something else."""
    convert = client.ex.price_to_precision if price else client.ex.amount_to_precision
    try:
        sent = Decimal(str(convert(unified, float(value))))
    except (ccxt.BaseError, ValueError, ArithmeticError) as exc:
        raise VenueRejected(f"{what} {value} cannot be sent to {client.name}: {short(exc)}") from exc
    if sent != value:
        raise VenueRejected(
            f"{what} {value} is not representable on {client.name} (it would be sent as {sent})"
        )
    return float(value)


# ---- in: ccxt's payloads as the platform's ---------------------------------------------------


def parse_order(
    client: CcxtClient,
    markets: CcxtMarkets,
    raw: Any,
    *,
    client_order_id: str | None,
    requests: Mapping[str, OrderRequest],
) -> VenueOrder:
    """A ccxt order as a ``VenueOrder`` (validated); ``client_order_id`` when the caller knows it
    (a cancel answer carries the cancel's own id on Binance); ``requests``: the requests this
    adapter sent, by client order id (their type and time in force are what the venue took)."""
    if not isinstance(raw, dict):
        raise VenueDataError(f"order answer is not an object: {short(raw, 80)}")
    venue_id = raw.get("id")
    if venue_id is None or venue_id == "":
        raise VenueDataError("order answer lacks the order id")
    symbol = markets.platform(raw.get("symbol"))
    cid = client_order_id or raw.get("clientOrderId") or ""
    what = f"order {cid or venue_id}"
    side = str(raw.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise VenueDataError(f"{what}: side {raw.get('side')!r}")
    quantity = req(raw.get("amount"), f"{what} amount", positive=True)
    filled = req(raw.get("filled"), f"{what} filled quantity")
    if filled > quantity:
        raise VenueDataError(f"{what}: filled {filled} exceeds the quantity {quantity}")
    average = positive_or_none(dec(raw.get("average"), f"{what} average price", optional=True))
    if average is None and filled > 0:
        cost = positive_or_none(dec(raw.get("cost"), f"{what} cost", optional=True))
        average = cost / filled if cost is not None else None
    limit = positive_or_none(dec(raw.get("price"), f"{what} price", optional=True))
    stop_raw = raw.get("triggerPrice")
    stop = positive_or_none(
        dec(
            stop_raw if stop_raw is not None else raw.get("stopPrice"),
            f"{what} stop price",
            optional=True,
        )
    )
    status = _status(raw.get("status"), filled, what)
    if status == "filled" and filled != quantity:
        raise VenueDataError(f"{what}: reported filled with {filled} of {quantity} executed")
    request: OrderRequest | None = requests.get(cid) if cid else None
    kind = request.type if request is not None else _kind(client, raw, stop)
    tif = raw.get("timeInForce")
    if request is not None and kind not in _NEEDS_LIMIT:
        tif = request.time_in_force  # the venue reports a default for orders that take none
    stamp = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
    return VenueOrder(
        client_order_id=cid,
        venue_order_id=str(venue_id),
        symbol=symbol,
        side=side,
        type=kind,
        quantity=quantity,
        filled_quantity=filled,
        status=status,
        average_price=average,
        limit_price=limit if kind in _NEEDS_LIMIT else None,
        stop_price=stop,
        time_in_force=tif if tif in _TIFS else "GTC",
        reason=f"{client.name} reported the order {raw.get('status')}"
        if status in ("rejected", "expired")
        else None,
        updated_ns=_ms(stamp, f"{what} timestamp") * NS_PER_MS if stamp is not None else 0,
    )


def _status(value: Any, filled: Decimal, what: str) -> str:
    if value in _OPEN_STATUS:
        return "partial_fill" if filled > 0 else "submitted"
    status = _FINAL_STATUS.get(value) if isinstance(value, str) else None
    if status is None:
        raise VenueDataError(f"{what}: unknown status {value!r}")
    return status


def _kind(client: CcxtClient, raw: Mapping[str, Any], stop: Decimal | None) -> str:
    info = raw.get("info")
    if client.binance and isinstance(info, dict):
        venue_type = info.get("type")
        if venue_type == "STOP_LOSS" and info.get("trailingDelta") is not None:
            return "TRAILING_STOP"
        if isinstance(venue_type, str) and venue_type in _FROM_BINANCE_TYPE:
            return _FROM_BINANCE_TYPE[venue_type]
    if raw.get("trailingPercent") is not None:
        return "TRAILING_STOP"
    limit = raw.get("type") == "limit"
    if stop is not None:
        return "STOP_LIMIT" if limit else "STOP"
    return "LIMIT" if limit else "MARKET"


def parse_trade(markets: CcxtMarkets, raw: Any) -> VenueFill:
    """A ccxt trade as a ``VenueFill`` whose ``client_order_id`` is still to be resolved (empty).
    Its ``trade_id`` is ``"<SYMBOL>:<venue trade id>"``: trade ids are unique per symbol on most
    exchanges."""
    if not isinstance(raw, dict):
        raise VenueDataError(f"trade answer is not an object: {short(raw, 80)}")
    trade_id, venue_order = raw.get("id"), raw.get("order")
    if trade_id is None or trade_id == "" or venue_order is None or venue_order == "":
        raise VenueDataError(f"trade lacks its id or order id: {short(raw.get('info', raw))}")
    symbol = markets.platform(raw.get("symbol"))
    what = f"trade {symbol}:{trade_id}"
    side = str(raw.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise VenueDataError(f"{what}: side {raw.get('side')!r}")
    fee_raw = raw.get("fee")
    fee: Mapping[str, Any] = fee_raw if isinstance(fee_raw, dict) else {}
    quantity = req(raw.get("amount"), f"{what} amount", positive=True)
    price = req(raw.get("price"), f"{what} price", positive=True)
    fee_cost = signed(fee.get("cost"), f"{what} fee", missing_is_zero=True)
    ts_ns = _ms(raw.get("timestamp"), f"{what} timestamp") * NS_PER_MS
    return VenueFill(
        trade_id=f"{symbol}:{trade_id}",
        client_order_id="",
        venue_order_id=str(venue_order),
        symbol=symbol,
        side=side,
        quantity=quantity,
        price=price,
        fee=fee_cost,
        fee_currency=str(fee.get("currency") or ""),
        ts_ns=ts_ns,
        liquidity="maker" if raw.get("takerOrMaker") == "maker" else "taker",
    )
