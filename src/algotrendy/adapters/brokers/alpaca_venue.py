"""Alpaca Trading API v2 (paper or live) as a ``core.venue.Venue``.

Endpoints: ``POST /v2/orders``, ``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``,
``DELETE /v2/orders/{id}``, ``GET /v2/orders?status=open``, ``GET /v2/account/activities/FILL``,
``GET /v2/account``, ``GET /v2/positions[/{symbol}]`` and ``GET /v2/assets/{symbol}``. The
paper endpoint is the default, ``LIVE_URL`` trades real money. The parts live next to it:
``alpaca_http`` (requests, retries and the failure mapping) and ``alpaca_orders`` (the order
JSON, the status table and the parsing of Alpaca's payloads).

Failures (``core.venue``'s vocabulary; every method raises only ``VenueError`` subclasses): an
answer 4xx (401/403/404/422/...) is ``VenueRejected`` with Alpaca's ``code`` and message,
except where a method gives the status a meaning: 404 on a lookup is "no such order/asset"
(``None``), 422 "client_order_id must be unique" on ``submit`` is the order placed before (it
is fetched and returned: ``submit`` is idempotent), 422 on ``cancel`` is "no longer
cancelable" (the order is fetched and returned as it stands). A ``VenueAmbiguous`` is resolved
with ``fetch_order(client_order_id=...)``.

``cancel`` answers the order as it stands right after Alpaca took the request; Alpaca may still
say ``pending_cancel`` (read as open): the final state arrives through ``events()`` or
``fetch_order``.

Alpaca has no reduce-only flag: a ``reduce_only`` order is checked against the position
(``GET /v2/positions/{symbol}``) before it is sent, and refused when it would open or grow a
position (a best effort: the position may change in between).

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
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import structlog

from algotrendy.adapters.sources._http import RetryPolicy
from algotrendy.adapters.sources.base import ns_to_datetime, short
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
)
from algotrendy.db.waits import wait_event

from ._validate import req
from ._venue_common import REMEMBERED, Lru, signed
from .alpaca_http import AlpacaClient, refused
from .alpaca_orders import (
    FINAL,
    Activity,
    as_array,
    as_object,
    field_flag,
    field_text,
    order_body,
    parse_activity,
    parse_asset,
    parse_order,
    parse_position,
    platform_symbol,
)

log = structlog.get_logger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"

_DUPLICATE_ID = "client_order_id must be unique"
_ORDERS_PAGE = 500
_FILLS_PAGE = 100
_MAX_PAGES = 1000
_FILLS_SLACK_NS = 1_000_000_000
_EVENTS_SLACK_NS = 60_000_000_000
_RULES_TTL = 900.0


class AlpacaVenue:
    """One Alpaca account (see the module docstring)."""

    name = "alpaca"
    reports_positions = True
    books_in_our_database = False

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
        self._clock: Clock = clock or SystemClock()
        self._http = AlpacaClient(
            key_id=key_id,
            secret=secret,
            base_url=self._base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(attempts=3, base_delay=0.25, max_delay=2.0, max_retry_after=10.0),
            clock=self._clock,
            rng=rng or random.Random(),  # noqa: S311 (retry jitter, not a secret)
        )
        self._closing = asyncio.Event()
        self._client_ids: Lru[str] = Lru()
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
        self._closing.set()
        await self._http.close()

    async def __aenter__(self) -> AlpacaVenue:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- account -----------------------------------------------------------------------------

    async def permissions(self) -> KeyPermissions:
        account = await self._account()
        status = account.get("status")
        trading_blocked = field_flag(account, "trading_blocked", "account")
        account_blocked = field_flag(account, "account_blocked", "account")
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
        cash = signed(account.get("cash"), "account cash")
        buying_power = req(account.get("buying_power"), "account buying_power")
        return [VenueBalance(currency=currency, total=cash, free=buying_power)]

    async def positions(self) -> list[VenuePosition]:
        body = await self._http.get("/v2/positions", what="positions")
        return [parse_position(raw) for raw in as_array(body, "positions answer")]

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        cached = self._rules.get(symbol)
        if cached is not None and self._clock.monotonic() - cached[0] < _RULES_TTL:
            return cached[1]
        reply = await self._http.request(
            "GET", f"/v2/assets/{quote(symbol, safe='')}", what=f"asset {symbol}"
        )
        if reply.status == 404:
            rules = None
        elif not reply.ok:
            raise refused(reply, f"asset {symbol}")
        else:
            rules = parse_asset(symbol, as_object(reply.body, "asset"))
        self._rules[symbol] = (self._clock.monotonic(), rules)
        return rules

    # ---- orders ------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        body = order_body(request)
        what = f"order {request.client_order_id}"
        if request.reduce_only:  # a retry must find its order before the position it has reduced
            existing = await self.fetch_order(client_order_id=request.client_order_id, symbol=request.symbol)
            if existing is not None:
                return self._same(existing, request, code=None)
            await self._check_reduces(request)
        reply = await self._http.request("POST", "/v2/orders", json=body, what=what)
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
        raise refused(reply, what)

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
        reply = await self._http.request(
            "GET",
            "/v2/orders:by_client_order_id",
            params={"client_order_id": client_order_id},
            what=f"order {client_order_id}",
        )
        if reply.status == 404:
            return None
        if not reply.ok:
            raise refused(reply, f"order {client_order_id}")
        return self._order(reply.body)

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        order = await self.fetch_order(client_order_id=client_order_id, symbol=symbol)
        if order is None:
            raise VenueRejected(f"alpaca has no order {client_order_id!r} to cancel", code="order_not_found")
        if order.status in FINAL:
            return order
        what = f"cancel of {client_order_id}"
        reply = await self._http.request(
            "DELETE", f"/v2/orders/{quote(order.venue_order_id, safe='')}", what=what
        )
        if not reply.ok and reply.status != 422:  # 422: no longer cancelable, read it as it stands
            raise refused(reply, what)
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
            raw = as_array(
                await self._http.get("/v2/orders", params=params, what="open orders"), "orders answer"
            )
            fresh = 0
            for item in raw:
                order = self._order(item)
                if order.venue_order_id not in orders:
                    fresh += 1
                orders[order.venue_order_id] = order
            if len(raw) < _ORDERS_PAGE or not fresh:
                break
            params["after"] = field_text(raw[-1], "submitted_at", "order")
        wanted = None if symbol is None else platform_symbol(symbol)
        return [o for o in orders.values() if wanted is None or o.symbol == wanted]

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        params: dict[str, Any] = {"direction": "asc", "page_size": _FILLS_PAGE}
        if since_ns is not None:
            params["after"] = ns_to_datetime(since_ns - _FILLS_SLACK_NS).isoformat().replace("+00:00", "Z")
        wanted = None if symbol is None else platform_symbol(symbol)
        found: dict[str, Activity] = {}
        token: str | None = None
        for _ in range(_MAX_PAGES):
            raw = as_array(
                await self._http.get("/v2/account/activities/FILL", params=params, what="fills"),
                "activities answer",
            )
            for item in raw:
                activity = parse_activity(item)
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
        trades: Lru[None] = Lru()
        cursor = self._since_ns
        while not self._http.closed:
            try:
                fills, orders = await self._poll(cursor)
            except VenueRejected:
                if self._http.closed:
                    return
                raise
            except VenueError as exc:
                if self._http.closed:
                    return
                log.warning("alpaca.poll_failed", error=str(exc), kind=type(exc).__name__)
                fills, orders = [], []
            for fill in fills:
                cursor = max(cursor, fill.ts_ns)
                if fill.trade_id in trades:
                    continue
                trades.put(fill.trade_id, None)
                yield fill
            for order in orders:
                state = (order.status, order.filled_quantity)
                if seen.get(order.venue_order_id) != state:
                    seen[order.venue_order_id] = state
                    yield order
                if order.status in FINAL:
                    seen.pop(order.venue_order_id, None)
            if not await wait_event(self._closing, self._poll_interval):
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
            while len(self._watch) > REMEMBERED:
                self._watch.popitem(last=False)

    # ---- helpers -----------------------------------------------------------------------------

    def _order(self, body: Any) -> VenueOrder:
        """``alpaca_orders.parse_order``, remembering the client id of the Alpaca order id."""
        return parse_order(body, seen=self._client_ids.put)

    async def _check_reduces(self, request: OrderRequest) -> None:
        """Alpaca has no reduce-only flag: refuse an order that would not shrink the position."""
        path = f"/v2/positions/{quote(request.symbol, safe='')}"
        reply = await self._http.request("GET", path, what=f"position {request.symbol}")
        if reply.status == 404:
            held = Decimal(0)
        elif not reply.ok:
            raise refused(reply, f"position {request.symbol}")
        else:
            held = parse_position(reply.body).quantity
        reducing = (request.side == "SELL" and held > 0) or (request.side == "BUY" and held < 0)
        if not reducing or request.quantity > abs(held):
            raise VenueRejected(
                f"alpaca: reduce_only order {request.client_order_id!r} ({request.side} {request.quantity}) "
                f"would not reduce the {request.symbol} position of {held}",
                code="reduce_only",
            )

    async def _client_id(self, venue_id: str, trade_id: str) -> str:
        known = self._client_ids.get(venue_id)
        if known is not None:
            return known
        reply = await self._http.request(
            "GET", f"/v2/orders/{quote(venue_id, safe='')}", what=f"order {venue_id}"
        )
        if reply.status == 404:
            raise VenueDataError(
                f"alpaca fill {trade_id!r} names order {venue_id!r}, which alpaca does not know"
            )
        if not reply.ok:
            raise refused(reply, f"order {venue_id}")
        return self._order(reply.body).client_order_id

    # ---- plumbing ----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock.now().timestamp() * 1_000_000) * 1000

    async def _account(self) -> dict[str, Any]:
        return as_object(await self._http.get("/v2/account", what="account"), "account")
