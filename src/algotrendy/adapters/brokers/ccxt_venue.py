"""Any ccxt exchange (binance, kraken, coinbase, ...) as a live ``Venue`` on async ccxt.

One ``CcxtVenue`` is one API key at one exchange, spot markets only (a spot account holds
balances, not positions: ``positions()`` is empty and the service reconciles ``balances()``).
The parts live next to it: ``ccxt_http`` (the exchange object, its calls and the failure
mapping), ``ccxt_markets`` (symbols and trading rules), ``ccxt_orders`` (checks, translation and
parsing of orders and trades) and ``ccxt_stream`` (fill paging and the polled ``events()``).

* **Configuration.** ``connect`` loads the markets once and builds the symbol maps. ``urls``
  overrides entries of ccxt's ``urls['api']`` (tests point them at a fake server with
  ``sources.ccxt_source.rehost_api_urls``); ``sandbox`` switches ccxt to the testnet URLs.
  ``symbols`` are watched for fills and events from the start, ``options`` are extra ccxt
  options, ``rate_limit`` is ccxt's own request throttle (keep it on against a real venue).
* **Idempotency.** Binance answers -2010 "Duplicate order sent." for a client order id still
  used by an open order; ``submit`` then returns that order (looked up by client id), so
  resubmitting after ``VenueUnavailable`` or a resolved ``VenueAmbiguous`` never places a second
  order. Binance accepts the id again once that order is finished, so a blind resubmit is still
  wrong: an ambiguous order is resolved with ``fetch_order`` first, and a venue that held the
  request (a timeout) may only show the order a moment later.
  ``fetch_order`` asks Binance by ``origClientOrderId`` (-2013 "Order does not exist." is
  ``None``); other exchanges are asked by the venue id this adapter saw, else their open and
  closed orders are searched. ``cancel`` of an order the venue no longer has open (-2011)
  answers the order as it stands, or ``VenueRejected`` when the venue has no such order.
* **Fills** are sorted oldest first; a fill's ``trade_id`` is ``"<SYMBOL>:<venue trade id>"``,
  stable across calls. The order's client id is resolved through the orders this adapter saw,
  else by looking the order up.
* **Balances** go through ``_validate`` like every number (a free balance above the total is a
  ``VenueDataError``).
* **Permissions.** Binance: ``GET /sapi/v1/account/apiRestrictions`` (``enableWithdrawals``,
  ``enableSpotAndMarginTrading``); its spot testnet has neither that endpoint nor withdrawals
  (``can_withdraw=False``). Other exchanges offer no such API: ``can_withdraw=None``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import structlog

from algotrendy.core.venue import (
    InstrumentRules,
    KeyPermissions,
    OrderRequest,
    VenueAmbiguous,
    VenueBalance,
    VenueDataError,
    VenueEvent,
    VenueFill,
    VenueOrder,
    VenuePosition,
    VenueRejected,
)

from ._validate import req
from ._venue_common import Lru
from .ccxt_http import CcxtClient, Duplicate, Unknown, short
from .ccxt_markets import CcxtMarkets
from .ccxt_orders import order_args, parse_order, parse_trade
from .ccxt_stream import EventPoller, fill_order, trade_pages

log = structlog.get_logger(__name__)

_NS_PER_MS = 1_000_000


class CcxtVenue:
    """A ``Venue`` on one ccxt exchange (see the module docstring)."""

    def __init__(
        self,
        *,
        exchange_id: str,
        api_key: str,
        secret: str,
        password: str | None = None,
        urls: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        sandbox: bool = False,
        symbols: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        rate_limit: bool = True,
    ) -> None:
        """``symbols``: pairs to watch for fills and events from the start (traded ones are
        added as they come). ``options``: extra ccxt options. ``rate_limit``: ccxt's own
        request throttle (on for real venues)."""
        if exchange_id not in ccxt_async.exchanges:
            raise ValueError(f"ccxt has no exchange {exchange_id!r}")
        if not timeout > 0 or not poll_interval > 0:
            raise ValueError("timeout and poll_interval must be positive")
        self.reports_positions = False
        self.books_in_our_database = False
        self.name = exchange_id
        self._client = CcxtClient(
            exchange_id,
            api_key=api_key,
            secret=secret,
            password=password,
            urls=urls,
            timeout=timeout,
            sandbox=sandbox,
            options=options,
            rate_limit=rate_limit,
        )
        self._ex: Any = self._client.ex
        self._markets = CcxtMarkets(self._client, symbols)
        self._poll = float(poll_interval)
        self._closed = asyncio.Event()
        self._markets_lock = asyncio.Lock()
        self._connected = False
        self._requests: Lru[OrderRequest] = Lru()  # client order id -> OrderRequest
        self._venue_ids: Lru[str] = Lru()  # client order id -> venue order id
        self._client_ids: Lru[str] = Lru()  # "<symbol>:<venue order id>" -> client order id
        self._open: Lru[VenueOrder] = Lru()  # client order id -> last VenueOrder seen open

    # ---- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        async with self._markets_lock:
            if not self._connected:
                await self._call(self._ex.load_markets, what="load markets")
                self._markets.index()
                self._connected = True

    async def close(self) -> None:
        self._closed.set()
        await self._client.close()

    # ---- symbols -----------------------------------------------------------------------------

    async def _unified(self, symbol: str) -> str:
        await self.connect()
        unified = self._markets.resolve(symbol)
        if unified is None:
            raise VenueRejected(f"{self.name} lists no market {short(symbol, 60)}")
        self._markets.watch.setdefault(self._markets.to_platform[unified], None)
        return unified

    # ---- rules and permissions ---------------------------------------------------------------

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        await self.connect()
        unified = self._markets.resolve(symbol)
        if unified is None:
            return None
        return self._markets.rules(unified)

    async def permissions(self) -> KeyPermissions:
        await self.connect()
        if self._client.id != "binance":
            return KeyPermissions(
                can_trade=True,
                can_withdraw=None,
                detail=f"{self.name} offers no API to read an API key's permissions: "
                "trading is assumed and withdrawal rights are unknown",
            )
        if self._client.sandbox:
            return KeyPermissions(
                can_trade=True,
                can_withdraw=False,
                detail="Binance spot testnet key: the testnet has no withdrawals (nor apiRestrictions)",
            )
        raw = await self._call(self._ex.sapi_get_account_apirestrictions, {}, what="read key permissions")
        if not isinstance(raw, dict):
            raise VenueDataError("apiRestrictions answer is not an object")
        withdraw, trade = raw.get("enableWithdrawals"), raw.get("enableSpotAndMarginTrading")
        if not isinstance(withdraw, bool) or not isinstance(trade, bool):
            raise VenueDataError(
                "apiRestrictions answer lacks boolean enableWithdrawals/enableSpotAndMarginTrading: "
                f"{short(raw)}"
            )
        return KeyPermissions(
            can_trade=trade,
            can_withdraw=withdraw,
            detail="GET /sapi/v1/account/apiRestrictions: "
            f"enableWithdrawals={str(withdraw).lower()}, enableSpotAndMarginTrading={str(trade).lower()}",
        )

    # ---- orders ------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> VenueOrder:
        unified = await self._unified(request.symbol)
        kind, side, amount, price, params = order_args(self._client, self._markets, request, unified)
        self._requests.put(request.client_order_id, request)
        try:
            raw = await self._call(
                self._ex.create_order,
                unified,
                kind,
                side,
                amount,
                price,
                params,
                what="submit",
                mutation=True,
            )
        except Duplicate as exc:
            found = await self.fetch_order(client_order_id=request.client_order_id, symbol=request.symbol)
            if found is None:
                raise VenueAmbiguous(
                    f"{self.name} refused {request.client_order_id} as a duplicate but has no such order",
                    code=exc.code,
                ) from exc
            log.info("venue.duplicate_submit", venue=self.name, client_order_id=request.client_order_id)
            return found
        if isinstance(raw, dict) and raw.get("status") is None and raw.get("id"):
            # an acknowledgement only (some exchanges): read the order it created
            ack = str(raw["id"])
            self._venue_ids.put(request.client_order_id, ack)
            found = await self.fetch_order(client_order_id=request.client_order_id, symbol=request.symbol)
            if found is None:
                return VenueOrder(
                    client_order_id=request.client_order_id,
                    venue_order_id=ack,
                    symbol=self._markets.to_platform[unified],
                    side=request.side,
                    type=request.type,
                    quantity=request.quantity,
                    filled_quantity=Decimal(0),
                    status="submitted",
                    limit_price=request.limit_price,
                    stop_price=request.stop_price,
                    time_in_force=request.time_in_force,
                )
            return found
        return self._order(raw, client_order_id=request.client_order_id)

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        unified = await self._unified(symbol)
        if not self._client.binance and client_order_id not in self._venue_ids:
            found = await self._search(client_order_id, unified)
            if found is None:
                raise VenueRejected(f"{self.name} has no order {client_order_id} on {symbol}")
            if found.status not in ("submitted", "partial_fill"):
                return found
        try:
            raw = await self._call(
                self._ex.cancel_order,
                *self._order_ref(client_order_id, unified),
                what="cancel",
                mutation=True,
            )
        except Unknown as exc:
            found = await self.fetch_order(client_order_id=client_order_id, symbol=symbol)
            if found is None:
                raise VenueRejected(
                    f"{self.name} has no order {client_order_id} on {symbol}", code=exc.code
                ) from exc
            return found
        if isinstance(raw, dict) and raw.get("status") is None:
            found = await self.fetch_order(client_order_id=client_order_id, symbol=symbol)
            if found is None:
                raise VenueAmbiguous(
                    f"{self.name} acknowledged the cancel of {client_order_id} but has no order"
                )
            return found
        return self._order(raw, client_order_id=client_order_id)

    def _order_ref(self, client_order_id: str, unified: str) -> tuple[str | None, str, dict[str, Any]]:
        """``(id, symbol, params)`` naming an order in ccxt's fetch/cancel calls: Binance by
        client id, other exchanges by the venue id this adapter saw for it."""
        if self._client.binance:
            return None, unified, {"origClientOrderId": client_order_id}
        return self._venue_ids.get(client_order_id), unified, {}

    async def fetch_order(self, *, client_order_id: str, symbol: str) -> VenueOrder | None:
        unified = await self._unified(symbol)
        if self._client.binance or client_order_id in self._venue_ids:
            try:
                raw = await self._call(
                    self._ex.fetch_order, *self._order_ref(client_order_id, unified), what="fetch order"
                )
            except Unknown:
                return None
            return self._order(raw, client_order_id=client_order_id)
        return await self._search(client_order_id, unified)

    async def _search(self, client_order_id: str, unified: str) -> VenueOrder | None:
        """The order with ``client_order_id`` among the open, then the closed orders."""
        calls: list[Callable[..., Awaitable[Any]]] = [self._ex.fetch_open_orders]
        if self._ex.has.get("fetchClosedOrders"):
            calls.append(self._ex.fetch_closed_orders)
        for call in calls:
            rows = await self._call(call, unified, None, None, {}, what="search orders")
            if not isinstance(rows, list):
                raise VenueDataError("orders answer is not a list")
            for raw in rows:
                if isinstance(raw, dict) and raw.get("clientOrderId") == client_order_id:
                    return self._order(raw, client_order_id=client_order_id)
        return None

    async def open_orders(self, *, symbol: str | None = None) -> list[VenueOrder]:
        if symbol is not None:
            unified: str | None = await self._unified(symbol)
        else:
            await self.connect()
            unified = None
        rows = await self._call(self._ex.fetch_open_orders, unified, None, None, {}, what="open orders")
        if not isinstance(rows, list):
            raise VenueDataError("open orders answer is not a list")
        orders = [self._order(raw) for raw in rows]
        for order in orders:
            self._markets.watch.setdefault(order.symbol, None)
        return orders

    def _order(self, raw: Any, *, client_order_id: str | None = None) -> VenueOrder:
        """``ccxt_orders.parse_order``, remembering the order's ids and whether it is open."""
        order = parse_order(
            self._client, self._markets, raw, client_order_id=client_order_id, requests=self._requests
        )
        cid = order.client_order_id
        if cid:
            self._venue_ids.put(cid, order.venue_order_id)
            self._client_ids.put(f"{order.symbol}:{order.venue_order_id}", cid)
            if order.status in ("submitted", "partial_fill"):
                self._open.put(cid, order)
            else:
                self._open.pop(cid, None)
        return order

    # ---- fills -------------------------------------------------------------------------------

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        since_ms = None if since_ns is None else since_ns // _NS_PER_MS
        if symbol is not None:
            targets: list[str | None] = [await self._unified(symbol)]
        else:
            await self.connect()
            targets = self._markets.targets()
        rows: list[Any] = []
        for unified in targets:
            rows.extend(await trade_pages(self._client, unified, since_ms))
        out: dict[str, VenueFill] = {}
        for raw in rows:
            fill = await self._fill(raw)
            if (since_ns is None or fill.ts_ns >= since_ns) and client_order_id in (
                None,
                fill.client_order_id,
            ):
                out.setdefault(fill.trade_id, fill)
        return sorted(out.values(), key=fill_order)

    async def _fill(self, raw: Any) -> VenueFill:
        fill = parse_trade(self._markets, raw)
        cid = await self._client_id(fill.symbol, fill.venue_order_id)
        return dataclasses.replace(fill, client_order_id=cid)

    async def _client_id(self, symbol: str, venue_order_id: str) -> str:
        """The client order id of a venue order (this adapter's memory, else the venue's)."""
        key = f"{symbol}:{venue_order_id}"
        known = self._client_ids.get(key)
        if known is not None:
            return str(known)
        unified = self._markets.to_unified[symbol]
        try:
            raw = await self._call(self._ex.fetch_order, venue_order_id, unified, {}, what="fetch order")
        except Unknown as exc:
            raise VenueAmbiguous(
                f"{self.name} reports trades of order {venue_order_id} on {symbol} but no such order",
                code=exc.code,
            ) from exc
        cid = raw.get("clientOrderId") if isinstance(raw, dict) else None
        if not isinstance(cid, str) or not cid:
            cid = ""  # an order placed without a client id (by hand, elsewhere): not ours
        self._client_ids.put(key, cid)
        return cid

    # ---- account -----------------------------------------------------------------------------

    async def balances(self) -> list[VenueBalance]:
        await self.connect()
        raw = await self._call(self._ex.fetch_balance, {}, what="balances")
        if not isinstance(raw, dict) or not isinstance(raw.get("total"), dict):
            raise VenueDataError("balance answer lacks totals")
        free_raw = raw.get("free")
        free: Mapping[str, Any] = free_raw if isinstance(free_raw, dict) else {}
        out = []
        for currency, total_raw in sorted(raw["total"].items()):
            total = req(total_raw, f"{currency} total balance")
            available = req(free.get(currency), f"{currency} free balance")
            if available > total:
                raise VenueDataError(f"{currency}: free balance {available} exceeds the total {total}")
            if total > 0:
                out.append(VenueBalance(currency=str(currency), total=total, free=available))
        return out

    async def positions(self) -> list[VenuePosition]:
        """A spot account has balances, not positions (see ``balances``)."""
        await self.connect()
        return []

    # ---- events ------------------------------------------------------------------------------

    def events(self) -> AsyncIterator[VenueEvent]:
        poller = EventPoller(
            self,
            self._client,
            self._markets,
            seen_open=self._open,
            read_fill=self._fill,
            closed=self._closed,
            interval=self._poll,
        )
        return poller.run()

    # ---- plumbing ----------------------------------------------------------------------------

    async def _call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, what: str, mutation: bool = False
    ) -> Any:
        return await self._client.call(fn, *args, what=what, mutation=mutation)


__all__ = ["CcxtVenue"]
