"""Alpaca's payloads and the platform's: an ``OrderRequest`` as the JSON of ``POST /v2/orders``,
and Alpaca's orders, FILL activities, positions and assets read back (validated with
``brokers._validate``: a number that is missing, NaN, infinite or negative, an unknown
status/side/type, or an answer of the wrong shape is a ``VenueDataError``; this includes a
notional order (no ``qty``) placed outside the platform: it cannot be read).

Status mapping (``STATUS_MAP``; ``OPEN`` means ``partial_fill`` when something has filled,
else ``submitted``):

============================================================================  ===============
Alpaca                                                                        ours
============================================================================  ===============
new, accepted, pending_new, accepted_for_bidding, partially_filled, held,     OPEN
done_for_day, pending_cancel, pending_replace, stopped, suspended
calculated                                                                    ``filled`` when
                                                                              fully filled,
                                                                              else OPEN
filled                                                                        ``filled``
canceled, replaced (superseded by a new order with its own client id)         ``cancelled``
expired                                                                       ``expired``
rejected                                                                      ``rejected``
============================================================================  ===============

A ``filled`` order whose ``filled_qty`` differs from its ``qty`` is a ``VenueDataError``.

Other mappings: ``TAKE_PROFIT`` is sent as a ``limit`` order (Alpaca reports it back as
``LIMIT``); ``trail_percent`` is a fraction here and a percentage at Alpaca (0.02 -> "2");
``opg``/``cls`` orders placed elsewhere read as ``DAY``; ``sell_short`` fills are ``SELL``.
Alpaca spells crypto pairs ``BTC/USD``: symbols from the venue are reported without the slash
(``BTCUSD``), the platform's spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from algotrendy.adapters.sources.base import BadRow, iso_to_ns, short
from algotrendy.core.venue import (
    InstrumentRules,
    OrderRequest,
    VenueDataError,
    VenueOrder,
    VenuePosition,
    VenueRejected,
)

from ._validate import dec, req
from ._venue_common import signed

OPEN = "open"
"""``STATUS_MAP`` value: ``partial_fill`` when something has filled, else ``submitted``."""
STATUS_MAP: dict[str, str] = {
    "new": OPEN,
    "accepted": OPEN,
    "pending_new": OPEN,
    "accepted_for_bidding": OPEN,
    "partially_filled": OPEN,
    "held": OPEN,
    "done_for_day": OPEN,
    "pending_cancel": OPEN,
    "pending_replace": OPEN,
    "stopped": OPEN,
    "suspended": OPEN,
    "calculated": "filled",  # only when fully filled, see map_status
    "filled": "filled",
    "canceled": "cancelled",
    "replaced": "cancelled",
    "expired": "expired",
    "rejected": "rejected",
}
FINAL = frozenset({"filled", "cancelled", "rejected", "expired"})

_TYPES_OUT = {
    "MARKET": "market",
    "LIMIT": "limit",
    "TAKE_PROFIT": "limit",
    "STOP": "stop",
    "STOP_LIMIT": "stop_limit",
    "TRAILING_STOP": "trailing_stop",
}
_TYPES_IN = {
    "market": "MARKET",
    "limit": "LIMIT",
    "stop": "STOP",
    "stop_limit": "STOP_LIMIT",
    "trailing_stop": "TRAILING_STOP",
}
_TIF_OUT = {"DAY": "day", "GTC": "gtc", "IOC": "ioc", "FOK": "fok"}
_TIF_IN = {"day": "DAY", "gtc": "GTC", "ioc": "IOC", "fok": "FOK", "opg": "DAY", "cls": "DAY"}
_SIDES_IN = {"buy": "BUY", "sell": "SELL", "sell_short": "SELL"}
_NEEDS_LIMIT = frozenset({"LIMIT", "TAKE_PROFIT", "STOP_LIMIT"})
_NEEDS_STOP = frozenset({"STOP", "STOP_LIMIT"})

_FRACTION_STEP = Decimal("0.000000001")
"""Alpaca's fractional shares: nine decimal places."""
_PENNY = Decimal("0.01")


def map_status(status: Any, filled: Decimal, quantity: Decimal) -> str:
    """Alpaca's order status as ours (see the module docstring's table)."""
    ours = STATUS_MAP.get(status) if isinstance(status, str) else None
    if ours is None:
        raise VenueDataError(f"alpaca answered an unknown order status {short(status, 40)}")
    if status == "calculated" and filled < quantity:
        ours = OPEN
    if ours == "filled" and filled != quantity:
        raise VenueDataError(f"alpaca reports a filled order with filled_qty {filled} of qty {quantity}")
    if ours == OPEN:
        return "partial_fill" if filled > 0 else "submitted"
    return ours


def platform_symbol(symbol: str) -> str:
    """Alpaca's ``BTC/USD`` as the platform's ``BTCUSD``; equities unchanged."""
    return symbol.replace("/", "").upper()


def _lookup(table: Mapping[str, str], value: Any) -> str | None:
    return table.get(value) if isinstance(value, str) else None


def _number(value: Decimal) -> str:
    return format(value, "f")


def field_text(raw: Mapping[str, Any], key: str, what: str) -> str:
    """The non-empty string ``raw[key]``."""
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise VenueDataError(f"alpaca {what} lacks {key!r} (got {short(value, 40)})")
    return value


def field_flag(raw: Mapping[str, Any], key: str, what: str, *, default: bool | None = None) -> bool:
    """The boolean ``raw[key]`` (``default`` when absent)."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise VenueDataError(f"alpaca {what} has no boolean {key!r} (got {short(value, 40)})")
    return value


def _ts(value: Any, what: str) -> int:
    try:
        return iso_to_ns(value, what)
    except BadRow as exc:
        raise VenueDataError(f"alpaca answer: {exc}") from exc


def as_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise VenueDataError(f"alpaca {what} is not an object: {short(body, 80)}")
    return body


def as_array(body: Any, what: str) -> list[Any]:
    if not isinstance(body, list):
        raise VenueDataError(f"alpaca {what} is not a list: {short(body, 80)}")
    return body


@dataclass(frozen=True, slots=True)
class Activity:
    """One FILL account activity, before its client order id is known."""

    trade_id: str
    venue_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    ts_ns: int


def parse_order(body: Any, *, seen: Callable[[str, str], None] | None = None) -> VenueOrder:
    """An Alpaca order as a ``VenueOrder`` (see the module docstring for the mappings);
    ``seen(venue_id, client_id)`` is told the order's ids once they have been read."""
    raw = as_object(body, "order")
    client_id = field_text(raw, "client_order_id", "order")
    venue_id = field_text(raw, "id", "order")
    side = _lookup(_SIDES_IN, raw.get("side"))
    kind = _lookup(_TYPES_IN, raw.get("type") or raw.get("order_type"))
    tif = _lookup(_TIF_IN, raw.get("time_in_force"))
    if side is None or kind is None or tif is None:
        raise VenueDataError(
            f"alpaca order {client_id!r} has an unknown side, type or time in force: "
            + "/".join(short(raw.get(k), 20) for k in ("side", "type", "time_in_force"))
        )
    quantity = req(raw.get("qty"), f"qty of order {client_id}", positive=True)
    filled = req(raw.get("filled_qty"), f"filled_qty of order {client_id}")
    if filled > quantity:
        raise VenueDataError(f"alpaca order {client_id!r} has filled_qty {filled} above qty {quantity}")
    status = map_status(raw.get("status"), filled, quantity)
    average = dec(raw.get("filled_avg_price"), f"filled_avg_price of order {client_id}", optional=True)
    if filled > 0 and not average:
        raise VenueDataError(f"alpaca order {client_id!r} has fills but no filled_avg_price")
    when = raw.get("updated_at") or raw.get("submitted_at") or raw.get("created_at")
    reason = None
    if raw.get("status") == "replaced":
        reason = f"replaced by Alpaca order {short(raw.get('replaced_by'), 60)}"
    if seen is not None:
        seen(venue_id, client_id)
    return VenueOrder(
        client_order_id=client_id,
        venue_order_id=venue_id,
        symbol=platform_symbol(field_text(raw, "symbol", "order")),
        side=side,
        type=kind,
        quantity=quantity,
        filled_quantity=filled,
        status=status,
        average_price=average if filled > 0 else None,
        limit_price=dec(
            raw.get("limit_price"), f"limit_price of order {client_id}", optional=True, positive=True
        ),
        stop_price=dec(
            raw.get("stop_price"), f"stop_price of order {client_id}", optional=True, positive=True
        ),
        time_in_force=tif,
        reason=reason,
        updated_ns=_ts(when, "updated_at") if when is not None else 0,
    )


def parse_activity(body: Any) -> Activity | None:
    """A FILL account activity (``None`` for another kind of activity)."""
    raw = as_object(body, "activity")
    kind = raw.get("activity_type", "FILL")
    if kind != "FILL":
        return None
    trade_id = field_text(raw, "id", "fill activity")
    side = _lookup(_SIDES_IN, raw.get("side"))
    if side is None:
        raise VenueDataError(f"alpaca fill {trade_id!r} has an unknown side {short(raw.get('side'), 20)}")
    return Activity(
        trade_id=trade_id,
        venue_order_id=field_text(raw, "order_id", f"fill {trade_id}"),
        symbol=platform_symbol(field_text(raw, "symbol", f"fill {trade_id}")),
        side=side,
        quantity=req(raw.get("qty"), f"qty of fill {trade_id}", positive=True),
        price=req(raw.get("price"), f"price of fill {trade_id}", positive=True),
        ts_ns=_ts(raw.get("transaction_time"), f"transaction_time of fill {trade_id}"),
    )


def parse_position(body: Any) -> VenuePosition:
    """An Alpaca position, signed (negative is short)."""
    raw = as_object(body, "position")
    symbol = platform_symbol(field_text(raw, "symbol", "position"))
    quantity = signed(raw.get("qty"), f"qty of position {symbol}")
    side = raw.get("side")
    if side == "short":  # Alpaca has sent shorts both signed and as a magnitude
        quantity = -abs(quantity)
    elif side == "long" and quantity < 0:
        raise VenueDataError(f"alpaca reports a long {symbol} position of {quantity}")
    average = dec(raw.get("avg_entry_price"), f"avg_entry_price of position {symbol}", optional=True)
    return VenuePosition(symbol=symbol, quantity=quantity, average_price=average or None)


def parse_asset(symbol: str, raw: dict[str, Any]) -> InstrumentRules:
    """An Alpaca asset as the instrument's trading rules (whole shares unless fractionable)."""
    what = f"asset {symbol}"
    fractionable = field_flag(raw, "fractionable", what, default=False)
    tradable = field_flag(raw, "tradable", what) and raw.get("status", "active") == "active"
    min_size = dec(raw.get("min_order_size"), f"min_order_size of {what}", optional=True, positive=True)
    step = dec(raw.get("min_trade_increment"), f"min_trade_increment of {what}", optional=True, positive=True)
    tick = dec(raw.get("price_increment"), f"price_increment of {what}", optional=True, positive=True)
    step = step or (_FRACTION_STEP if fractionable else Decimal(1))
    venue_symbol = field_text(raw, "symbol", what)
    base, slash, quote_ccy = venue_symbol.partition("/")
    return InstrumentRules(
        symbol=symbol,
        base=base if slash else venue_symbol,
        quote=quote_ccy if slash else "USD",
        min_quantity=min_size or step,
        quantity_step=step,
        tick_size=tick or _PENNY,
        tradable=tradable,
    )


def order_body(request: OrderRequest) -> dict[str, Any]:
    """The JSON of ``POST /v2/orders``; a request Alpaca cannot take is refused unsent."""
    cid = request.client_order_id

    def refuse(why: str) -> VenueRejected:
        return VenueRejected(f"alpaca cannot take order {cid!r}: {why}", code="invalid_request")

    kind = _TYPES_OUT.get(request.type)
    tif = _TIF_OUT.get(request.time_in_force)
    if not cid or len(cid) > 128:
        raise refuse("client_order_id must have 1 to 128 characters")
    if request.side not in ("BUY", "SELL"):
        raise refuse(f"unknown side {request.side!r}")
    if kind is None:
        raise refuse(f"unsupported order type {request.type!r}")
    if tif is None:
        raise refuse(f"unsupported time in force {request.time_in_force!r}")
    if not (request.quantity.is_finite() and request.quantity > 0):
        raise refuse(f"quantity must be positive, not {request.quantity}")
    body: dict[str, Any] = {
        "client_order_id": cid,
        "symbol": request.symbol,
        "qty": _number(request.quantity),
        "side": request.side.lower(),
        "type": kind,
        "time_in_force": tif,
    }
    for field, needed, value in (
        ("limit_price", request.type in _NEEDS_LIMIT, request.limit_price),
        ("stop_price", request.type in _NEEDS_STOP, request.stop_price),
    ):
        if not needed:
            continue
        if value is None or not value.is_finite() or value <= 0:
            raise refuse(f"a {request.type} order needs a positive {field}")
        body[field] = _number(value)
    if request.type == "TRAILING_STOP":
        trail = request.trail_percent
        if trail is None or not trail.is_finite() or not 0 < trail < 1:
            raise refuse("a TRAILING_STOP order needs trail_percent, a fraction between 0 and 1")
        body["trail_percent"] = _number((trail * 100).normalize())
    return body
