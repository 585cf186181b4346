"""Alpaca Trading API v2 (paper or live) as a ``core.venue.Venue``, over ``httpx.AsyncClient``.

Endpoints: ``POST /v2/orders``, ``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``,
``DELETE /v2/orders/{id}``, ``GET /v2/orders?status=open``, ``GET /v2/account/activities/FILL``,
``GET /v2/account``, ``GET /v2/positions[/{symbol}]`` and ``GET /v2/assets/{symbol}``.
Authentication is Alpaca's header pair ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``; the
paper endpoint is the default, ``LIVE_URL`` trades real money.

Failures (``core.venue``'s vocabulary; every method raises only ``VenueError`` subclasses):

* an answer 4xx (401/403/404/422/...) -> ``VenueRejected`` with Alpaca's ``code`` and message,
  except where a method gives the status a meaning: 404 on a lookup is "no such order/asset"
  (``None``), 422 "client_order_id must be unique" on ``submit`` is the order placed before (it
  is fetched and returned: ``submit`` is idempotent), 422 on ``cancel`` is "no longer
  cancelable" (the order is fetched and returned as it stands);
* 429 -> ``VenueUnavailable`` with ``retry_after`` (``Retry-After`` or Alpaca's epoch
  ``X-RateLimit-Reset``); a connection that could not be opened (``httpx.ConnectError``,
  connect or pool timeout) -> ``VenueUnavailable``: nothing was sent;
* a timeout or a broken connection after sending, 5xx, an unexpected redirect, or a 2xx body
  that is not JSON -> ``VenueAmbiguous``: resolve with ``fetch_order(client_order_id=...)``;
* a number that is missing, NaN, infinite or negative, an unknown status/side/type, or an
  answer of the wrong shape -> ``VenueDataError`` (checked with ``brokers._validate``). This
  includes a notional order (no ``qty``) placed outside the platform: it cannot be read.

``cancel`` answers the order as it stands right after Alpaca took the request; Alpaca may still
say ``pending_cancel`` (read as open): the final state arrives through ``events()`` or
``fetch_order``.

Reads (GET) are retried on 429, 5xx, timeouts, transport errors and non-JSON bodies, at most
``retry.attempts`` times with the sources' jittered backoff (``sources._http.RetryPolicy``), a
vendor's Retry-After honoured up to ``retry.max_retry_after``; then the last failure is raised.
Writes (POST, DELETE) are sent once: their failures go to the caller, who resolves by client id.

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
(``BTCUSD``), the platform's spelling. Alpaca has no reduce-only flag: a ``reduce_only`` order
is checked against the position (``GET /v2/positions/{symbol}``) before it is sent, and refused
when it would open or grow a position (a best effort: the position may change in between).

Fills come from the account activities (``FILL``): the activity ``id`` is the trade id, pages
follow ``page_token`` (the last id of a page, ``direction=asc``), and ``since_ns`` is sent as
``after`` one second early and applied exactly here. Activities name the Alpaca order id only,
so the client order id comes from orders already seen or from ``GET /v2/orders/{id}``. Alpaca
charges no per-trade commission on these activities: ``fee`` is 0 USD.

``balances()`` is one USD balance: ``total`` = ``cash`` (negative when a margin account has
borrowed), ``free`` = ``buying_power`` (what Alpaca lets the account spend on a new buy; above
cash on a margin account). ``permissions()``: Alpaca trading keys cannot move money (transfers
are made in the dashboard or the Broker API), so ``can_withdraw`` is ``False``; ``can_trade``
needs an ``ACTIVE`` account with neither ``trading_blocked`` nor ``account_blocked``.

``events()`` polls every ``poll_interval`` seconds until ``close()``: the open orders, the
orders it saw open (or that ``submit`` placed) which have left the open list, and the FILL
activities since the last one seen (from the moment the adapter was connected, minus a minute
of clock slack). Each poll yields the new fills first, then the orders whose status or filled
quantity changed, so an order never reads ``filled`` before its fills. Reports may repeat; a
transient failure of a poll is logged and the next poll tries again; ``VenueRejected`` (say a
revoked key) ends the stream with the error.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from algotrendy.adapters.brokers._validate import dec, req
from algotrendy.adapters.sources._http import RetryPolicy, error_text, retry_after_seconds
from algotrendy.adapters.sources.base import BadRow, iso_to_ns, ns_to_datetime, short
from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.venue import (
    InstrumentRules,
    KeyPermissions,
    OrderRequest,
    VenueAmbiguous,
    VenueBalance,
    VenueDataError,
    VenueError,
    VenueEvent,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueRejected,
    VenueUnavailable,
)

log = structlog.get_logger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"

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

_DUPLICATE_ID = "client_order_id must be unique"
_FRACTION_STEP = Decimal("0.000000001")
"""Alpaca's fractional shares: nine decimal places."""
_PENNY = Decimal("0.01")
_ORDERS_PAGE = 500
_FILLS_PAGE = 100
_MAX_PAGES = 1000
_FILLS_SLACK_NS = 1_000_000_000
_EVENTS_SLACK_NS = 60_000_000_000
_REMEMBERED = 10_000
_RULES_TTL = 900.0


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


def _signed(value: Any, what: str) -> Decimal:
    """A finite number that may be negative (a short position, borrowed cash)."""
    if isinstance(value, str) and value.startswith("-"):
        return -req(value[1:], what)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return -req(-value, what)
    return req(value, what)


def _text(raw: Mapping[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise VenueDataError(f"alpaca {what} lacks {key!r} (got {short(value, 40)})")
    return value


def _flag(raw: Mapping[str, Any], key: str, what: str, *, default: bool | None = None) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise VenueDataError(f"alpaca {what} has no boolean {key!r} (got {short(value, 40)})")
    return value


def _ts(value: Any, what: str) -> int:
    try:
        return iso_to_ns(value, what)
    except BadRow as exc:
        raise VenueDataError(f"alpaca answer: {exc}") from exc


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise VenueDataError(f"alpaca {what} is not an object: {short(body, 80)}")
    return body


def _array(body: Any, what: str) -> list[Any]:
    if not isinstance(body, list):
        raise VenueDataError(f"alpaca {what} is not a list: {short(body, 80)}")
    return body


@dataclass(frozen=True, slots=True)
class _Reply:
    """An answer the transport layer did not turn into an error: 2xx, or a 4xx for the caller."""

    status: int
    body: Any
    message: str = ""
    code: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class _Activity:
    trade_id: str
    venue_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    ts_ns: int


class AlpacaVenue:
    """One Alpaca account (see the module docstring)."""

    name = "alpaca"
    reports_positions = True

    def __init__(
        self,
        *,
        key_id: str,
        secret: str,
        base_url: str = PAPER_URL,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not key_id or not secret:
            raise ValueError("Alpaca needs a key id and a secret")
        if not timeout > 0 or not poll_interval > 0:
            raise ValueError("timeout and poll_interval must be positive")
        self._base_url = base_url.rstrip("/")
        self._poll_interval = poll_interval
        self._retry = retry or RetryPolicy(attempts=3, base_delay=0.25, max_delay=2.0, max_retry_after=10.0)
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 (retry jitter, not a secret)
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        self._closed = False
        self._closing = asyncio.Event()
        self._client_ids: OrderedDict[str, str] = OrderedDict()
        """Alpaca order id -> client order id (fills name the Alpaca id only); bounded."""
        self._watch: OrderedDict[str, tuple[str, str]] = OrderedDict()
        """Open orders ``events()`` follows until final: Alpaca id -> (client id, symbol)."""
        self._rules: dict[str, tuple[float, InstrumentRules | None]] = {}
        self._since_ns = self._now_ns() - _EVENTS_SLACK_NS

    # ---- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the credentials and the account (instrument rules load lazily, then cached)."""
        await self._account()
        self._since_ns = self._now_ns() - _EVENTS_SLACK_NS

    async def close(self) -> None:
        self._closed = True
        self._closing.set()
        await self._client.aclose()

    async def __aenter__(self) -> AlpacaVenue:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- account -----------------------------------------------------------------------------

    async def permissions(self) -> KeyPermissions:
        account = await self._account()
        status = account.get("status")
        trading_blocked = _flag(account, "trading_blocked", "account")
        account_blocked = _flag(account, "account_blocked", "account")
        can_trade = status == "ACTIVE" and not trading_blocked and not account_blocked
        return KeyPermissions(
            can_trade=can_trade,
            can_withdraw=False,
            detail=(
                f"GET /v2/account: status={short(status, 40)}, trading_blocked={trading_blocked}, "
                f"account_blocked={account_blocked}; Alpaca trading API keys cannot transfer funds"
            ),
        )

    async def balances(self) -> list[VenueBalance]:
        account = await self._account()
        currency = account.get("currency", "USD")
        if not isinstance(currency, str) or not currency:
            raise VenueDataError(f"alpaca account has no currency (got {short(currency, 40)})")
        cash = _signed(account.get("cash"), "account cash")
        buying_power = req(account.get("buying_power"), "account buying_power")
        return [VenueBalance(currency=currency, total=cash, free=buying_power)]

    async def positions(self) -> list[VenuePosition]:
        body = await self._get("/v2/positions", what="positions")
        return [self._position(raw) for raw in _array(body, "positions answer")]

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        cached = self._rules.get(symbol)
        if cached is not None and self._clock.monotonic() - cached[0] < _RULES_TTL:
            return cached[1]
        reply = await self._request("GET", f"/v2/assets/{quote(symbol, safe='')}", what=f"asset {symbol}")
        if reply.status == 404:
            rules = None
        elif not reply.ok:
            raise self._refused(reply, f"asset {symbol}")
        else:
            rules = self._asset(symbol, _object(reply.body, "asset"))
        self._rules[symbol] = (self._clock.monotonic(), rules)
        return rules

    # ---- orders ------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        body = self._order_body(request)
        what = f"order {request.client_order_id}"
        if request.reduce_only:  # a retry must find its order before the position it has reduced
            existing = await self.fetch_order(client_order_id=request.client_order_id, symbol=request.symbol)
            if existing is not None:
                return self._same(existing, request, code=None)
            await self._check_reduces(request)
        reply = await self._request("POST", "/v2/orders", json=body, what=what)
        if reply.ok:
            order = self._order(reply.body)
            if order.client_order_id != request.client_order_id:
                raise VenueDataError(
                    f"alpaca answered order {order.client_order_id!r} to {request.client_order_id!r}"
                )
            self._follow(order)
            return order
        if reply.status == 422 and _DUPLICATE_ID in reply.message.lower():
            existing = await self.fetch_order(client_order_id=request.client_order_id, symbol=request.symbol)
            if existing is None:
                raise VenueAmbiguous(
                    f"alpaca says client_order_id {request.client_order_id!r} is taken but cannot find "
                    "that order yet",
                    code=reply.code,
                )
            return self._same(existing, request, code=reply.code)
        raise self._refused(reply, what)

    def _same(self, existing: VenueOrder, request: OrderRequest, *, code: str | None) -> VenueOrder:
        """The order already placed under ``request``'s client id, if it is the same order."""
        if (existing.symbol, existing.side, existing.quantity) != (
            platform_symbol(request.symbol),
            request.side,
            request.quantity,
        ):
            raise VenueRejected(
                f"alpaca: client_order_id {request.client_order_id!r} already names a different "
                f"order ({existing.side} {existing.quantity} {existing.symbol})",
                code=code or "duplicate_client_order_id",
            )
        log.info("alpaca.duplicate_submit", client_order_id=request.client_order_id)
        self._follow(existing)
        return existing

    async def fetch_order(self, *, client_order_id: str, symbol: str) -> VenueOrder | None:
        reply = await self._request(
            "GET",
            "/v2/orders:by_client_order_id",
            params={"client_order_id": client_order_id},
            what=f"order {client_order_id}",
        )
        if reply.status == 404:
            return None
        if not reply.ok:
            raise self._refused(reply, f"order {client_order_id}")
        return self._order(reply.body)

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        order = await self.fetch_order(client_order_id=client_order_id, symbol=symbol)
        if order is None:
            raise VenueRejected(f"alpaca has no order {client_order_id!r} to cancel", code="order_not_found")
        if order.status in FINAL:
            return order
        what = f"cancel of {client_order_id}"
        reply = await self._request("DELETE", f"/v2/orders/{quote(order.venue_order_id, safe='')}", what=what)
        if not reply.ok and reply.status != 422:  # 422: no longer cancelable, read it as it stands
            raise self._refused(reply, what)
        after = await self.fetch_order(client_order_id=client_order_id, symbol=symbol)
        if after is None:
            raise VenueAmbiguous(f"alpaca lost order {client_order_id!r} after its {what}")
        return after

    async def open_orders(self, *, symbol: str | None = None) -> list[VenueOrder]:
        params: dict[str, Any] = {"status": "open", "limit": _ORDERS_PAGE, "direction": "asc"}
        if symbol is not None:
            params["symbols"] = symbol
        orders: dict[str, VenueOrder] = {}
        for _ in range(_MAX_PAGES):
            raw = _array(await self._get("/v2/orders", params=params, what="open orders"), "orders answer")
            fresh = 0
            for item in raw:
                order = self._order(item)
                if order.venue_order_id not in orders:
                    fresh += 1
                orders[order.venue_order_id] = order
            if len(raw) < _ORDERS_PAGE or not fresh:
                break
            params["after"] = _text(raw[-1], "submitted_at", "order")
        wanted = None if symbol is None else platform_symbol(symbol)
        return [o for o in orders.values() if wanted is None or o.symbol == wanted]

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        params: dict[str, Any] = {"direction": "asc", "page_size": _FILLS_PAGE}
        if since_ns is not None:
            params["after"] = ns_to_datetime(since_ns - _FILLS_SLACK_NS).isoformat().replace("+00:00", "Z")
        wanted = None if symbol is None else platform_symbol(symbol)
        found: dict[str, _Activity] = {}
        token: str | None = None
        for _ in range(_MAX_PAGES):
            raw = _array(
                await self._get("/v2/account/activities/FILL", params=params, what="fills"),
                "activities answer",
            )
            for item in raw:
                activity = self._activity(item)
                if activity is not None:
                    found.setdefault(activity.trade_id, activity)
            ids = [item["id"] for item in raw if isinstance(item, dict) and isinstance(item.get("id"), str)]
            if len(raw) < _FILLS_PAGE or not ids or (token is not None and max(ids) <= token):
                break
            token = max(ids)
            params["page_token"] = token
        chosen = [
            a
            for a in found.values()
            if (since_ns is None or a.ts_ns >= since_ns) and (wanted is None or a.symbol == wanted)
        ]
        chosen.sort(key=lambda a: (a.ts_ns, a.trade_id))
        out = []
        for a in chosen:
            out.append(
                VenueFill(
                    trade_id=a.trade_id,
                    client_order_id=await self._client_id(a.venue_order_id, a.trade_id),
                    venue_order_id=a.venue_order_id,
                    symbol=a.symbol,
                    side=a.side,
                    quantity=a.quantity,
                    price=a.price,
                    fee=Decimal(0),
                    fee_currency="USD",
                    ts_ns=a.ts_ns,
                )
            )
        return [f for f in out if client_order_id in (None, f.client_order_id)]

    # ---- events ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[VenueEvent]:
        seen: dict[str, tuple[str, Decimal]] = {}
        trades: OrderedDict[str, None] = OrderedDict()
        cursor = self._since_ns
        while not self._closed:
            try:
                fills, orders = await self._poll(cursor)
            except VenueRejected:
                if self._closed:
                    return
                raise
            except VenueError as exc:
                if self._closed:
                    return
                log.warning("alpaca.poll_failed", error=str(exc), kind=type(exc).__name__)
                fills, orders = [], []
            for fill in fills:
                cursor = max(cursor, fill.ts_ns)
                if fill.trade_id in trades:
                    continue
                trades[fill.trade_id] = None
                while len(trades) > _REMEMBERED:
                    trades.popitem(last=False)
                yield fill
            for order in orders:
                state = (order.status, order.filled_quantity)
                if seen.get(order.venue_order_id) != state:
                    seen[order.venue_order_id] = state
                    yield order
                if order.status in FINAL:
                    seen.pop(order.venue_order_id, None)
            try:
                await asyncio.wait_for(self._closing.wait(), timeout=self._poll_interval)
            except TimeoutError:
                continue

    async def _poll(self, since_ns: int) -> tuple[list[VenueFill], list[VenueOrder]]:
        """One round of ``events()``: order states first, then the fills (see the docstring)."""
        orders = await self.open_orders()
        open_ids = set()
        for order in orders:
            open_ids.add(order.venue_order_id)
            self._follow(order)
        for venue_id, (client_id, symbol) in list(self._watch.items()):
            if venue_id in open_ids:
                continue
            order_now = await self.fetch_order(client_order_id=client_id, symbol=symbol)
            if order_now is None:
                continue  # not visible yet: ask again next round
            orders.append(order_now)
            if order_now.status in FINAL:
                self._watch.pop(venue_id, None)
        return await self.fills(since_ns=since_ns), orders

    def _follow(self, order: VenueOrder) -> None:
        if order.status not in FINAL:
            self._watch[order.venue_order_id] = (order.client_order_id, order.symbol)
            while len(self._watch) > _REMEMBERED:
                self._watch.popitem(last=False)

    # ---- parsing -----------------------------------------------------------------------------

    def _order(self, body: Any) -> VenueOrder:
        raw = _object(body, "order")
        client_id = _text(raw, "client_order_id", "order")
        venue_id = _text(raw, "id", "order")
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
        self._remember(venue_id, client_id)
        return VenueOrder(
            client_order_id=client_id,
            venue_order_id=venue_id,
            symbol=platform_symbol(_text(raw, "symbol", "order")),
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

    def _activity(self, body: Any) -> _Activity | None:
        raw = _object(body, "activity")
        kind = raw.get("activity_type", "FILL")
        if kind != "FILL":
            return None
        trade_id = _text(raw, "id", "fill activity")
        side = _lookup(_SIDES_IN, raw.get("side"))
        if side is None:
            raise VenueDataError(f"alpaca fill {trade_id!r} has an unknown side {short(raw.get('side'), 20)}")
        return _Activity(
            trade_id=trade_id,
            venue_order_id=_text(raw, "order_id", f"fill {trade_id}"),
            symbol=platform_symbol(_text(raw, "symbol", f"fill {trade_id}")),
            side=side,
            quantity=req(raw.get("qty"), f"qty of fill {trade_id}", positive=True),
            price=req(raw.get("price"), f"price of fill {trade_id}", positive=True),
            ts_ns=_ts(raw.get("transaction_time"), f"transaction_time of fill {trade_id}"),
        )

    def _position(self, body: Any) -> VenuePosition:
        raw = _object(body, "position")
        symbol = platform_symbol(_text(raw, "symbol", "position"))
        quantity = _signed(raw.get("qty"), f"qty of position {symbol}")
        side = raw.get("side")
        if side == "short":  # Alpaca has sent shorts both signed and as a magnitude
            quantity = -abs(quantity)
        elif side == "long" and quantity < 0:
            raise VenueDataError(f"alpaca reports a long {symbol} position of {quantity}")
        average = dec(raw.get("avg_entry_price"), f"avg_entry_price of position {symbol}", optional=True)
        return VenuePosition(symbol=symbol, quantity=quantity, average_price=average or None)

    def _asset(self, symbol: str, raw: dict[str, Any]) -> InstrumentRules:
        what = f"asset {symbol}"
        fractionable = _flag(raw, "fractionable", what, default=False)
        tradable = _flag(raw, "tradable", what) and raw.get("status", "active") == "active"
        min_size = dec(raw.get("min_order_size"), f"min_order_size of {what}", optional=True, positive=True)
        step = dec(
            raw.get("min_trade_increment"), f"min_trade_increment of {what}", optional=True, positive=True
        )
        tick = dec(raw.get("price_increment"), f"price_increment of {what}", optional=True, positive=True)
        step = step or (_FRACTION_STEP if fractionable else Decimal(1))
        venue_symbol = _text(raw, "symbol", what)
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

    def _order_body(self, request: OrderRequest) -> dict[str, Any]:
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

    async def _check_reduces(self, request: OrderRequest) -> None:
        """Alpaca has no reduce-only flag: refuse an order that would not shrink the position."""
        path = f"/v2/positions/{quote(request.symbol, safe='')}"
        reply = await self._request("GET", path, what=f"position {request.symbol}")
        if reply.status == 404:
            held = Decimal(0)
        elif not reply.ok:
            raise self._refused(reply, f"position {request.symbol}")
        else:
            held = self._position(reply.body).quantity
        reducing = (request.side == "SELL" and held > 0) or (request.side == "BUY" and held < 0)
        if not reducing or request.quantity > abs(held):
            raise VenueRejected(
                f"alpaca: reduce_only order {request.client_order_id!r} ({request.side} {request.quantity}) "
                f"would not reduce the {request.symbol} position of {held}",
                code="reduce_only",
            )

    def _remember(self, venue_id: str, client_id: str) -> None:
        self._client_ids[venue_id] = client_id
        self._client_ids.move_to_end(venue_id)
        while len(self._client_ids) > _REMEMBERED:
            self._client_ids.popitem(last=False)

    async def _client_id(self, venue_id: str, trade_id: str) -> str:
        known = self._client_ids.get(venue_id)
        if known is not None:
            return known
        reply = await self._request("GET", f"/v2/orders/{quote(venue_id, safe='')}", what=f"order {venue_id}")
        if reply.status == 404:
            raise VenueDataError(
                f"alpaca fill {trade_id!r} names order {venue_id!r}, which alpaca does not know"
            )
        if not reply.ok:
            raise self._refused(reply, f"order {venue_id}")
        return self._order(reply.body).client_order_id

    # ---- transport ---------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock.now().timestamp() * 1_000_000) * 1000

    async def _account(self) -> dict[str, Any]:
        return _object(await self._get("/v2/account", what="account"), "account")

    async def _get(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> Any:
        reply = await self._request("GET", path, params=params, what=what)
        if not reply.ok:
            raise self._refused(reply, what)
        return reply.body

    def _refused(self, reply: _Reply, what: str) -> VenueRejected:
        return VenueRejected(
            f"alpaca refused {what} (HTTP {reply.status}): {reply.message}",
            code=reply.code or str(reply.status),
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> _Reply:
        """Send once (writes) or with retries (reads); 2xx and 4xx come back, the rest raises."""
        attempts = self._retry.attempts if method == "GET" else 1
        attempt = 0
        while True:
            attempt += 1
            if self._closed:
                raise VenueUnavailable(f"alpaca adapter is closed ({what} not sent)")
            failure: VenueError
            retry_after: float | None = None
            try:
                response = await self._client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure = VenueUnavailable(f"alpaca is unreachable for {what}: {type(exc).__name__}: {exc}")
            except httpx.TimeoutException as exc:
                failure = VenueAmbiguous(f"alpaca did not answer {what} in time ({type(exc).__name__})")
            except httpx.TransportError as exc:
                failure = VenueAmbiguous(f"alpaca connection broke during {what} ({type(exc).__name__})")
            else:
                reply, failure_or_none = self._classify(response, what)
                if failure_or_none is None:
                    return reply
                failure = failure_or_none
                if isinstance(failure, VenueUnavailable):
                    retry_after = failure.retry_after
            if attempt >= attempts or (retry_after is not None and retry_after > self._retry.max_retry_after):
                raise failure
            if self._closed:  # closed while a read was in flight: no retry
                raise VenueUnavailable(f"alpaca adapter is closed ({what} not answered)") from failure
            delay = self._retry.backoff(attempt, self._rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
            log.warning(
                "alpaca.retry", what=what, attempt=attempt, reason=str(failure), delay=round(delay, 3)
            )
            await asyncio.sleep(delay)

    def _classify(self, response: httpx.Response, what: str) -> tuple[_Reply, VenueError | None]:
        status = response.status_code
        body: Any = None
        decoded = True
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body, decoded = response.text[:200], False
        message = error_text(body) if status >= 300 else ""
        code = body.get("code") if isinstance(body, dict) else None
        reply = _Reply(status, body, message, None if code is None else str(code))
        if status == 429:
            retry_after = retry_after_seconds(response.headers, self._clock.now().timestamp())
            return reply, VenueUnavailable(
                f"alpaca rate-limited {what}: {message}", code=reply.code or "429", retry_after=retry_after
            )
        if status >= 500 or status == 408:
            return reply, VenueAmbiguous(f"alpaca failed {what} (HTTP {status}): {message}", code=reply.code)
        if 300 <= status < 400:
            return reply, VenueAmbiguous(f"alpaca answered {what} with an unexpected redirect ({status})")
        if status < 300 and not decoded:
            return reply, VenueAmbiguous(
                f"alpaca answered {what} with a body that is not JSON: {message or short(body, 80)}"
            )
        return reply, None
