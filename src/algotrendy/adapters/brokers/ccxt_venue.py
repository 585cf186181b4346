"""Any ccxt exchange (binance, kraken, coinbase, ...) as a live ``Venue`` on async ccxt.

One ``CcxtVenue`` is one API key at one exchange, spot markets only (a spot account holds
balances, not positions: ``positions()`` is empty and the service reconciles ``balances()``).

* **Symbols.** The platform spells pairs ``BTCUSDT`` (base + quote in ccxt's unified currency
  codes, so Kraken's ``XBTUSDT`` is ``BTCUSDT`` too). ``connect`` loads the markets once and
  builds both maps; the exchange's own id (``BTCUSDT``) and ccxt's ``BTC/USDT`` are accepted as
  well. ``urls`` overrides entries of ccxt's ``urls['api']`` (tests point them at a fake server
  with ``sources.ccxt_source.rehost_api_urls``); ``sandbox`` switches ccxt to the testnet URLs.
  ``symbols`` are watched for fills and events from the start, ``options`` are extra ccxt
  options, ``rate_limit`` is ccxt's own request throttle (keep it on against a real venue).
* **Failures** map to core/venue.py's vocabulary, using the HTTP status and body ccxt saw (an
  ``on_rest_response`` hook records them per task) because ccxt's classes alone cannot tell
  "never sent" from "sent, answer lost": ``InvalidOrder``, ``InsufficientFunds``,
  ``BadSymbol``, ``BadRequest``, ``OrderNotFound``, ``AuthenticationError``,
  ``PermissionDenied`` and other 4xx answers are ``VenueRejected``; 429/418
  (``RateLimitExceeded``/``DDoSProtection``), maintenance (``OnMaintenance``), a refused
  timestamp (``InvalidNonce``) and a connection that could not be opened are
  ``VenueUnavailable`` (``retry_after`` from ``Retry-After``). A timeout, a reset connection,
  a 5xx or an unknown server error after an order was *sent* is ``VenueAmbiguous``; on a read
  (nothing can have changed) the same failures are ``VenueUnavailable``. An answer that is not
  JSON or that ccxt cannot parse is ``VenueDataError``.
* **Untrusted numbers.** Every quantity, price, fee and balance ccxt hands back goes through
  ``_validate.dec``/``req`` (finite, non-negative, present); an order's fill above its
  quantity, a "filled" order with something left to fill, or a status outside ccxt's
  vocabulary is a ``VenueDataError`` as well. A fee may be negative (a maker rebate) but must
  be finite.
* **Orders.** ``submit`` checks everything it can before any network call: side, time in force
  (GTC/IOC/FOK; DAY is not a crypto time in force), the order type against what the exchange
  supports (Binance: the symbol's ``orderTypes``; others: ccxt's ``has`` flags), the prices the
  type needs, and the market's rules (minimum quantity, quantity step, tick size, minimum
  notional when the price is known). ccxt would silently *round* a quantity to the step, so an
  order whose numbers the venue cannot represent exactly is refused instead. Mapping: MARKET and
  LIMIT as such, TAKE_PROFIT as a limit at the target (the platform matches it as one), STOP
  and STOP_LIMIT as ccxt trigger orders (Binance STOP_LOSS / STOP_LOSS_LIMIT), TRAILING_STOP as
  a trailing-percent order (Binance ``trailingDelta`` in basis points). ``reduce_only`` cannot
  be expressed on spot: a reduce-only SELL is sent (a spot sale can only reduce holdings), a
  reduce-only BUY is refused.
* **Idempotency.** The ``client_order_id`` travels as ccxt's ``clientOrderId`` (Binance
  ``newClientOrderId``). Binance answers -2010 "Duplicate order sent." for an id still used by
  an open order; ``submit`` then returns that order (looked up by client id), so resubmitting
  after ``VenueUnavailable`` or a resolved ``VenueAmbiguous`` never places a second order.
  Binance accepts the id again once that order is finished, so a blind resubmit is still wrong:
  an ambiguous order is resolved with ``fetch_order`` first, and a venue that held the request
  (a timeout) may only show the order a moment later.
  ``fetch_order`` asks Binance by ``origClientOrderId`` (-2013 "Order does not exist." is
  ``None``); other exchanges are asked by the venue id this adapter saw, else their open and
  closed orders are searched. ``cancel`` of an order the venue no longer has open (-2011)
  answers the order as it stands, or ``VenueRejected`` when the venue has no such order.
* **Fills** come from ``fetch_my_trades`` (per symbol where the exchange needs one: the symbols
  this adapter has traded, was given, or saw open orders in), paged forward, de-duplicated and
  sorted oldest first (Binance serves 24 hours per request: the window steps forward). Trade
  ids are unique per symbol on most exchanges, so a fill's
  ``trade_id`` is ``"<SYMBOL>:<venue trade id>"``, stable across calls. The order's client id is
  resolved through the orders this adapter saw, else by looking the order up.
* **Permissions.** Binance: ``GET /sapi/v1/account/apiRestrictions`` (``enableWithdrawals``,
  ``enableSpotAndMarginTrading``); its spot testnet has neither that endpoint nor withdrawals
  (``can_withdraw=False``). Other exchanges offer no such API: ``can_withdraw=None``.
* **Events.** ``events()`` polls every ``poll_interval``: the open orders (yielding a
  ``VenueOrder`` whenever an order's status or filled quantity changes, and the final state of
  an order that left the open list) and the trades since a few seconds before the stream
  started (a ``VenueFill`` each, possibly again later: the caller de-duplicates by
  ``trade_id``). A failed poll is logged and retried on the next tick; a malformed trade or
  order is logged and quarantined (not yielded). The stream ends at ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import structlog

from algotrendy.adapters.sources._http import retry_after_seconds
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

from ._validate import dec, req

log = structlog.get_logger(__name__)

_NS_PER_MS = 1_000_000
_BINANCE = frozenset({"binance", "binanceus"})
"""Exchanges with Binance's spot API (client-id lookups, ``orderTypes`` in the market info)."""
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    name: {
        # spot only, and no signed margin-pair requests while loading the markets
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        # open orders of every symbol in one request is what open_orders(symbol=None) means
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    }
    for name in _BINANCE
}
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
_CACHE = 10_000
"""Client ids (and their requests) remembered, oldest forgotten first."""
_PAGE = 1000
_MAX_PAGES = 50
_EVENTS_LOOKBACK_MS = 10_000
_BINANCE_TRADE_WINDOW_MS = 24 * 3_600_000


# ---- what ccxt saw on the wire ---------------------------------------------------------------


@dataclass
class _Http:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    unparsable: bool = False


_LAST_HTTP: contextvars.ContextVar[_Http | None] = contextvars.ContextVar("ccxt_venue_http", default=None)


def _recording(original: Callable[..., Any], parse_json: Callable[[str], Any]) -> Callable[..., Any]:
    def on_rest_response(
        code: int, reason: str, url: str, method: str, headers: Any, body: Any, *rest: Any
    ) -> Any:
        record = _LAST_HTTP.get()
        if record is not None:
            record.status = int(code) if code is not None else None
            record.headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
            record.body = body[:1000] if isinstance(body, str) else ""
            if record.status is not None and 200 <= record.status < 300 and isinstance(body, str):
                record.unparsable = bool(body.strip()) and parse_json(body) is None
        return original(code, reason, url, method, headers, body, *rest)

    return on_rest_response


def _venue_code(record: _Http) -> str | None:
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    if isinstance(body, dict):
        code = body.get("code")
        if code is None and isinstance(body.get("error"), list) and body["error"]:
            code = body["error"][0]
        return None if code is None else str(code)
    return None


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Duplicate(VenueRejected):
    """The venue refused a client order id that an order of this account already uses."""


class _Unknown(VenueRejected):
    """The venue does not know the order (lookup or cancel)."""


# ---- numbers ---------------------------------------------------------------------------------


def precision_step(value: Any, mode: int, what: str) -> Decimal | None:
    """ccxt's ``market['precision'][...]`` as a ``Decimal`` step: ``TICK_SIZE`` gives the step
    itself, ``DECIMAL_PLACES`` a number of places (2 -> 0.01); ``SIGNIFICANT_DIGITS`` has no
    fixed step (``None``)."""
    if value is None or mode == ccxt.SIGNIFICANT_DIGITS:
        return None
    number = dec(value, what, optional=True, positive=mode == ccxt.TICK_SIZE)
    if number is None:
        return None
    if mode == ccxt.DECIMAL_PLACES:
        if number != number.to_integral_value():
            raise VenueDataError(f"venue answer has a fractional number of decimal places for {what}")
        return Decimal(1).scaleb(-int(number))
    return number


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _positive_or_none(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def _signed(value: Any, what: str) -> Decimal:
    """A finite number that may be negative (a fee rebate); missing means zero."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool) and value < 0:
        return -req(-value, what)
    if isinstance(value, str) and value.startswith("-"):
        return -req(value[1:], what)
    number = dec(value, what, optional=True)
    return Decimal(0) if number is None else number


def _ms(value: Any, what: str) -> int:
    number = req(value, what)
    if number != number.to_integral_value():
        raise VenueDataError(f"venue answer has a fractional {what}: {value!r}")
    return int(number)


def _fill_order(fill: VenueFill) -> tuple[int, str, int, str]:
    """Oldest first; within a millisecond by symbol, then by venue id (numeric ids by value)."""
    venue_id = fill.trade_id.partition(":")[2]
    return fill.ts_ns, fill.symbol, len(venue_id), venue_id


def _trade_order(raw: Any) -> tuple[int, str]:
    stamp = raw.get("timestamp") if isinstance(raw, dict) else None
    return (stamp if isinstance(stamp, int) else 0, str(raw.get("id")) if isinstance(raw, dict) else "")


class _Lru(OrderedDict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _CACHE:
            self.popitem(last=False)


# ---- the venue -------------------------------------------------------------------------------


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
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": rate_limit,
            "timeout": max(1, int(timeout * 1000)),
            "options": {**_DEFAULT_OPTIONS.get(exchange_id, {}), **dict(options or {})},
        }
        if password is not None:
            config["password"] = password
        self.reports_positions = False
        self.name = exchange_id
        self._id = exchange_id
        self._ex: Any = getattr(ccxt_async, exchange_id)(config)
        if sandbox:
            self._ex.set_sandbox_mode(True)
        if urls:
            api = self._ex.urls.get("api")
            self._ex.urls["api"] = {**(api if isinstance(api, dict) else {}), **dict(urls)}
        self._ex.has["fetchCurrencies"] = False  # currencies are not needed to trade
        self._ex.on_rest_response = _recording(self._ex.on_rest_response, self._ex.parse_json)
        self._sandbox = sandbox
        self._poll = float(poll_interval)
        self._closed = asyncio.Event()
        self._markets_lock = asyncio.Lock()
        self._connected = False
        self._to_unified: dict[str, str] = {}
        self._to_platform: dict[str, str] = {}
        self._watch: dict[str, None] = dict.fromkeys(symbols)
        self._requests: _Lru = _Lru()  # client order id -> OrderRequest
        self._venue_ids: _Lru = _Lru()  # client order id -> venue order id
        self._client_ids: _Lru = _Lru()  # "<symbol>:<venue order id>" -> client order id
        self._open: _Lru = _Lru()  # client order id -> last VenueOrder seen open

    # ---- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        async with self._markets_lock:
            if not self._connected:
                await self._call(self._ex.load_markets, what="load markets")
                self._index_markets()
                self._connected = True

    async def close(self) -> None:
        self._closed.set()
        await self._ex.close()

    def _index_markets(self) -> None:
        markets: Mapping[str, Any] = self._ex.markets or {}
        chosen = [m for m in markets.values() if m.get("spot")] or list(markets.values())
        chosen.sort(key=lambda m: m.get("active") is False)  # active markets win a clash
        for market in chosen:
            base, quote, unified = market.get("base"), market.get("quote"), market.get("symbol")
            if not (isinstance(base, str) and isinstance(quote, str) and isinstance(unified, str)):
                continue
            platform = (base + quote).upper()
            self._to_unified.setdefault(platform, unified)
            self._to_platform.setdefault(unified, platform)
        watch, self._watch = list(self._watch), {}
        for symbol in watch:
            unified = self._resolve(symbol)
            if unified is None:
                log.warning("venue.unknown_watch_symbol", venue=self.name, symbol=symbol)
            else:
                self._watch.setdefault(self._to_platform[unified], None)

    # ---- symbols -----------------------------------------------------------------------------

    def _resolve(self, symbol: str) -> str | None:
        """ccxt's unified symbol for the platform's (or the exchange's, or ccxt's) spelling."""
        if symbol in self._to_unified:
            return self._to_unified[symbol]
        if symbol in self._to_platform:
            return symbol
        by_id: Mapping[str, Any] = self._ex.markets_by_id or {}
        found = by_id.get(symbol)
        if found:
            spot = [m for m in found if m.get("spot")] or list(found)
            unified = spot[0].get("symbol")
            return unified if unified in self._to_platform else None
        return None

    async def _unified(self, symbol: str) -> str:
        await self.connect()
        unified = self._resolve(symbol)
        if unified is None:
            raise VenueRejected(f"{self.name} lists no market {_short(symbol, 60)}")
        self._watch.setdefault(self._to_platform[unified], None)
        return unified

    def _platform(self, unified: Any) -> str:
        if not isinstance(unified, str) or unified not in self._to_platform:
            raise VenueDataError(f"venue answer names an unknown market {_short(unified, 60)}")
        return self._to_platform[unified]

    def _market(self, unified: str) -> Mapping[str, Any]:
        market: Mapping[str, Any] = self._ex.markets[unified]
        return market

    # ---- rules and permissions ---------------------------------------------------------------

    async def instrument(self, symbol: str) -> InstrumentRules | None:
        await self.connect()
        unified = self._resolve(symbol)
        if unified is None:
            return None
        return self._rules(unified)

    def _rules(self, unified: str) -> InstrumentRules:
        market = self._market(unified)
        mode = int(self._ex.precisionMode)
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        what = f"{unified} rules"
        return InstrumentRules(
            symbol=self._to_platform[unified],
            base=str(market.get("base")),
            quote=str(market.get("quote")),
            min_quantity=_positive_or_none(dec(amount.get("min"), f"{what} min amount", optional=True)),
            quantity_step=precision_step(precision.get("amount"), mode, f"{what} amount precision"),
            tick_size=precision_step(precision.get("price"), mode, f"{what} price precision"),
            min_notional=_positive_or_none(dec(cost.get("min"), f"{what} min cost", optional=True)),
            tradable=market.get("active") is not False,
        )

    async def permissions(self) -> KeyPermissions:
        await self.connect()
        if self._id != "binance":
            return KeyPermissions(
                can_trade=True,
                can_withdraw=None,
                detail=f"{self.name} offers no API to read an API key's permissions: "
                "trading is assumed and withdrawal rights are unknown",
            )
        if self._sandbox:
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
                f"{_short(raw)}"
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
        kind, side, amount, price, params = self._order_args(request, unified)
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
        except _Duplicate as exc:
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
                    symbol=self._to_platform[unified],
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

    def _order_args(
        self, request: OrderRequest, unified: str
    ) -> tuple[str, str, float, float | None, dict[str, Any]]:
        """ccxt's ``create_order`` arguments, or ``VenueRejected`` before any network call."""
        what = f"order {request.client_order_id}"
        if not request.client_order_id:
            raise VenueRejected(f"{what}: a client order id is required")
        if request.side not in ("BUY", "SELL"):
            raise VenueRejected(f"{what}: side {request.side!r} is not BUY or SELL")
        if request.type not in _TYPES:
            raise VenueRejected(f"{what}: unknown order type {request.type!r}")
        if request.time_in_force == "DAY":
            raise VenueRejected(
                f"{what}: time in force DAY does not exist on {self.name} (use GTC, IOC or FOK)"
            )
        if request.time_in_force not in _TIFS:
            raise VenueRejected(f"{what}: unknown time in force {request.time_in_force!r}")
        market = self._market(unified)
        if market.get("active") is False:
            raise VenueRejected(f"{what}: {request.symbol} is not trading on {self.name}")
        if not self._supports(request.type, market):
            raise VenueRejected(
                f"{what}: {self.name} does not support {request.type} orders on {request.symbol}"
            )
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
        if (
            request.type == "TRAILING_STOP"
            and self._id in _BINANCE
            and trail is not None
            and (trail * 10_000) % 1
        ):
            raise VenueRejected(f"{what}: {self.name} trails by whole basis points, not {trail}")
        self._check_rules(request, unified)

        limit_like = request.type in _NEEDS_LIMIT
        kind = "limit" if limit_like else "market"
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if limit_like:
            params["timeInForce"] = request.time_in_force
        if request.type in _NEEDS_STOP:
            assert request.stop_price is not None
            params["triggerPrice"] = self._exact(unified, request.stop_price, "stop price", price=True)
        if request.type == "TRAILING_STOP":
            assert trail is not None
            params["trailingPercent"] = float(trail * 100)
            if self._id in _BINANCE:
                params["stopLossOrTakeProfit"] = "stopLoss"
        amount = self._exact(unified, request.quantity, "quantity", price=False)
        price = (
            self._exact(unified, request.limit_price, "limit price", price=True)
            if limit_like and request.limit_price is not None
            else None
        )
        return kind, request.side.lower(), amount, price, params

    def _supports(self, kind: str, market: Mapping[str, Any]) -> bool:
        if self._id in _BINANCE:
            info = market.get("info") or {}
            types = info.get("orderTypes")
            if not isinstance(types, list) or _BINANCE_TYPE[kind] not in types:
                return False
            return kind != "TRAILING_STOP" or info.get("allowTrailingStop") is True
        has: Mapping[str, Any] = self._ex.has
        return any(has.get(flag) for flag in _HAS_FLAGS[kind])

    def _check_rules(self, request: OrderRequest, unified: str) -> None:
        rules = self._rules(unified)
        what = f"order {request.client_order_id}"
        qty = request.quantity
        if rules.min_quantity is not None and qty < rules.min_quantity:
            raise VenueRejected(
                f"{what}: quantity {qty} is below the minimum {rules.min_quantity} (lot size)"
            )
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

    def _exact(self, unified: str, value: Decimal, what: str, *, price: bool) -> float:
        """``value`` as the float ccxt takes, refused when ccxt would send something else."""
        convert = self._ex.price_to_precision if price else self._ex.amount_to_precision
        try:
            sent = Decimal(str(convert(unified, float(value))))
        except (ccxt.BaseError, ValueError, ArithmeticError) as exc:
            raise VenueRejected(f"{what} {value} cannot be sent to {self.name}: {_short(exc)}") from exc
        if sent != value:
            raise VenueRejected(
                f"{what} {value} is not representable on {self.name} (it would be sent as {sent})"
            )
        return float(value)

    async def cancel(self, *, client_order_id: str, symbol: str) -> VenueOrder:
        unified = await self._unified(symbol)
        if self._id not in _BINANCE and client_order_id not in self._venue_ids:
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
        except _Unknown as exc:
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
        if self._id in _BINANCE:
            return None, unified, {"origClientOrderId": client_order_id}
        return self._venue_ids.get(client_order_id), unified, {}

    async def fetch_order(self, *, client_order_id: str, symbol: str) -> VenueOrder | None:
        unified = await self._unified(symbol)
        if self._id in _BINANCE or client_order_id in self._venue_ids:
            try:
                raw = await self._call(
                    self._ex.fetch_order, *self._order_ref(client_order_id, unified), what="fetch order"
                )
            except _Unknown:
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
            self._watch.setdefault(order.symbol, None)
        return orders

    def _order(self, raw: Any, *, client_order_id: str | None = None) -> VenueOrder:
        """A ccxt order as a ``VenueOrder`` (validated); ``client_order_id`` when the caller
        knows it (a cancel answer carries the cancel's own id on Binance)."""
        if not isinstance(raw, dict):
            raise VenueDataError(f"order answer is not an object: {_short(raw, 80)}")
        venue_id = raw.get("id")
        if venue_id is None or venue_id == "":
            raise VenueDataError("order answer lacks the order id")
        symbol = self._platform(raw.get("symbol"))
        cid = client_order_id or raw.get("clientOrderId") or ""
        what = f"order {cid or venue_id}"
        side = str(raw.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise VenueDataError(f"{what}: side {raw.get('side')!r}")
        quantity = req(raw.get("amount"), f"{what} amount", positive=True)
        filled = req(raw.get("filled"), f"{what} filled quantity")
        if filled > quantity:
            raise VenueDataError(f"{what}: filled {filled} exceeds the quantity {quantity}")
        average = _positive_or_none(dec(raw.get("average"), f"{what} average price", optional=True))
        if average is None and filled > 0:
            cost = _positive_or_none(dec(raw.get("cost"), f"{what} cost", optional=True))
            average = cost / filled if cost is not None else None
        limit = _positive_or_none(dec(raw.get("price"), f"{what} price", optional=True))
        stop_raw = raw.get("triggerPrice")
        stop = _positive_or_none(
            dec(
                stop_raw if stop_raw is not None else raw.get("stopPrice"),
                f"{what} stop price",
                optional=True,
            )
        )
        status = self._status(raw.get("status"), filled, what)
        if status == "filled" and filled != quantity:
            raise VenueDataError(f"{what}: reported filled with {filled} of {quantity} executed")
        request: OrderRequest | None = self._requests.get(cid) if cid else None
        kind = request.type if request is not None else self._kind(raw, stop)
        tif = raw.get("timeInForce")
        if request is not None and kind not in _NEEDS_LIMIT:
            tif = request.time_in_force  # the venue reports a default for orders that take none
        stamp = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
        order = VenueOrder(
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
            reason=f"{self.name} reported the order {raw.get('status')}"
            if status in ("rejected", "expired")
            else None,
            updated_ns=_ms(stamp, f"{what} timestamp") * _NS_PER_MS if stamp is not None else 0,
        )
        if cid:
            self._venue_ids.put(cid, order.venue_order_id)
            self._client_ids.put(f"{symbol}:{order.venue_order_id}", cid)
            if status in ("submitted", "partial_fill"):
                self._open.put(cid, order)
            else:
                self._open.pop(cid, None)
        return order

    @staticmethod
    def _status(value: Any, filled: Decimal, what: str) -> str:
        if value in _OPEN_STATUS:
            return "partial_fill" if filled > 0 else "submitted"
        status = _FINAL_STATUS.get(value) if isinstance(value, str) else None
        if status is None:
            raise VenueDataError(f"{what}: unknown status {value!r}")
        return status

    def _kind(self, raw: Mapping[str, Any], stop: Decimal | None) -> str:
        info = raw.get("info")
        if self._id in _BINANCE and isinstance(info, dict):
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

    # ---- fills -------------------------------------------------------------------------------

    async def fills(
        self, *, symbol: str | None = None, since_ns: int | None = None, client_order_id: str | None = None
    ) -> list[VenueFill]:
        rows = await self._trades(symbol, since_ns)
        out: dict[str, VenueFill] = {}
        for raw in rows:
            fill = await self._fill(raw)
            if (since_ns is None or fill.ts_ns >= since_ns) and client_order_id in (
                None,
                fill.client_order_id,
            ):
                out.setdefault(fill.trade_id, fill)
        return sorted(out.values(), key=_fill_order)

    async def _trades(self, symbol: str | None, since_ns: int | None) -> list[Any]:
        """Raw ccxt trades of ``symbol`` (of the watched symbols, or of every symbol where the
        exchange allows it) since ``since_ns``, paged forward."""
        since_ms = None if since_ns is None else since_ns // _NS_PER_MS
        if symbol is not None:
            targets: list[str | None] = [await self._unified(symbol)]
        else:
            await self.connect()
            targets = (
                [self._to_unified[s] for s in self._watch if s in self._to_unified]
                if self._id in _BINANCE
                else [None]
            )
        rows: list[Any] = []
        for unified in targets:
            rows.extend(await self._trade_pages(unified, since_ms))
        return rows

    async def _trade_pages(self, unified: str | None, since_ms: int | None) -> list[Any]:
        """Every trade from ``since_ms`` on (the latest page without it). Binance serves at most
        24 hours from ``startTime``: the window steps forward until now."""
        window = _BINANCE_TRADE_WINDOW_MS if self._id in _BINANCE else None
        now_ms = int(time.time() * 1000)
        rows: list[Any] = []
        seen: set[tuple[Any, Any]] = set()
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {}
            end = None
            if window is not None and since_ms is not None:
                end = since_ms + window - 1
                params["until"] = end
            page = await self._call(self._ex.fetch_my_trades, unified, since_ms, _PAGE, params, what="fills")
            if not isinstance(page, list):
                raise VenueDataError("trades answer is not a list")
            fresh = [t for t in page if not (isinstance(t, dict) and (t.get("symbol"), t.get("id")) in seen)]
            rows.extend(fresh)
            seen.update((t.get("symbol"), t.get("id")) for t in fresh if isinstance(t, dict))
            stamps = [
                t["timestamp"] for t in page if isinstance(t, dict) and isinstance(t.get("timestamp"), int)
            ]
            latest = max(stamps, default=None)
            if (
                len(page) >= _PAGE
                and fresh
                and latest is not None
                and (since_ms is None or latest > since_ms)
            ):
                since_ms = latest  # inclusive: that millisecond comes again, deduplicated
            elif end is not None and end < now_ms:
                since_ms = end + 1
            else:
                break
        else:
            log.warning("venue.fills_truncated", venue=self.name, symbol=unified, pages=_MAX_PAGES)
        return rows

    async def _fill(self, raw: Any) -> VenueFill:
        if not isinstance(raw, dict):
            raise VenueDataError(f"trade answer is not an object: {_short(raw, 80)}")
        trade_id, venue_order = raw.get("id"), raw.get("order")
        if trade_id is None or trade_id == "" or venue_order is None or venue_order == "":
            raise VenueDataError(f"trade lacks its id or order id: {_short(raw.get('info', raw))}")
        symbol = self._platform(raw.get("symbol"))
        what = f"trade {symbol}:{trade_id}"
        side = str(raw.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise VenueDataError(f"{what}: side {raw.get('side')!r}")
        fee_raw = raw.get("fee")
        fee: Mapping[str, Any] = fee_raw if isinstance(fee_raw, dict) else {}
        quantity = req(raw.get("amount"), f"{what} amount", positive=True)
        price = req(raw.get("price"), f"{what} price", positive=True)
        fee_cost = _signed(fee.get("cost"), f"{what} fee")
        ts_ns = _ms(raw.get("timestamp"), f"{what} timestamp") * _NS_PER_MS
        return VenueFill(
            trade_id=f"{symbol}:{trade_id}",
            client_order_id=await self._client_id(symbol, str(venue_order)),
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

    async def _client_id(self, symbol: str, venue_order_id: str) -> str:
        """The client order id of a venue order (this adapter's memory, else the venue's)."""
        key = f"{symbol}:{venue_order_id}"
        known = self._client_ids.get(key)
        if known is not None:
            return str(known)
        unified = self._to_unified[symbol]
        try:
            raw = await self._call(self._ex.fetch_order, venue_order_id, unified, {}, what="fetch order")
        except _Unknown as exc:
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
        return self._events()

    async def _events(self) -> AsyncIterator[VenueEvent]:
        await self.connect()
        last: dict[str, tuple[str, Decimal]] = {
            cid: (o.status, o.filled_quantity) for cid, o in self._open.items()
        }
        since: dict[str | None, int] = {}
        start_ms = int(time.time() * 1000) - _EVENTS_LOOKBACK_MS
        reported: _Lru = _Lru()
        while not self._closed.is_set():
            try:
                orders = await self._poll_orders()
            except VenueError as exc:
                if self._closed.is_set():
                    return
                log.warning("venue.events_poll_failed", venue=self.name, what="orders", error=_short(exc))
                orders = []
            for order in orders:
                state = (order.status, order.filled_quantity)
                if last.get(order.client_order_id or order.venue_order_id) != state:
                    last[order.client_order_id or order.venue_order_id] = state
                    yield order
            targets = (
                [self._to_unified[s] for s in self._watch if s in self._to_unified]
                if self._id in _BINANCE
                else [None]
            )
            for unified in targets:
                async for fill in self._poll_trades(unified, since, start_ms, reported):
                    yield fill
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout=self._poll)

    async def _poll_orders(self) -> list[VenueOrder]:
        """The open orders, then the final state of those that left the open list."""
        before = dict(self._open)
        if self._id in _BINANCE:
            orders: list[VenueOrder] = []
            for symbol in list(self._watch):
                orders.extend(await self.open_orders(symbol=symbol))
        else:
            orders = await self.open_orders()
        still = {o.client_order_id for o in orders}
        for cid, previous in before.items():
            if cid in still:
                continue
            try:
                final = await self.fetch_order(client_order_id=cid, symbol=previous.symbol)
            except VenueError as exc:
                log.warning(
                    "venue.events_order_lookup_failed",
                    venue=self.name,
                    client_order_id=cid,
                    error=_short(exc),
                )
                continue
            if final is not None:
                orders.append(final)
        return orders

    async def _poll_trades(
        self, unified: str | None, since: dict[str | None, int], start_ms: int, reported: _Lru
    ) -> AsyncIterator[VenueFill]:
        """New fills of ``unified`` (every symbol: ``None``); ``since`` moves past what was
        reported, but never past a trade that was quarantined or could not be resolved."""
        try:
            rows = await self._trade_pages(unified, since.get(unified, start_ms))
        except VenueError as exc:
            if not self._closed.is_set():
                log.warning("venue.events_poll_failed", venue=self.name, what="trades", error=_short(exc))
            return
        stamps = [t["timestamp"] for t in rows if isinstance(t, dict) and isinstance(t.get("timestamp"), int)]
        hold: int | None = None
        for raw in sorted(rows, key=_trade_order):
            try:
                fill = await self._fill(raw)
            except VenueError as exc:
                event = (
                    "venue.fill_quarantined"
                    if isinstance(exc, VenueDataError)
                    else "venue.events_poll_failed"
                )
                log.warning(event, venue=self.name, error=_short(exc), raw=_short(raw))
                stamp = raw.get("timestamp") if isinstance(raw, dict) else None
                held = stamp if isinstance(stamp, int) else since.get(unified, start_ms)
                hold = held if hold is None else min(hold, held)
                continue
            if fill.trade_id in reported:
                continue
            reported.put(fill.trade_id, None)
            yield fill
        if stamps:
            since[unified] = max(stamps) if hold is None else min(max(stamps), hold)

    # ---- plumbing ----------------------------------------------------------------------------

    async def _call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, what: str, mutation: bool = False
    ) -> Any:
        """One ccxt call with its failure mapped to the venue vocabulary."""
        record = _Http()
        token = _LAST_HTTP.set(record)
        try:
            result = await fn(*args)
        except ccxt.BaseError as exc:
            raise self._map(exc, record, what, mutation) from exc
        except (TypeError, KeyError, IndexError, ValueError, AttributeError, ArithmeticError) as exc:
            raise VenueDataError(
                f"{self.name} {what}: ccxt could not read the answer "
                f"({type(exc).__name__}: {_short(exc, 120)})"
            ) from exc
        finally:
            _LAST_HTTP.reset(token)
        if record.unparsable:
            raise VenueDataError(f"{self.name} {what}: the answer is not JSON: {_short(record.body, 80)}")
        return result

    def _map(self, exc: ccxt.BaseError, record: _Http, what: str, mutation: bool) -> VenueError:
        status, code = record.status, _venue_code(record)
        text = f"{self.name} {what}: {type(exc).__name__}: {_short(exc)}"
        cause = exc.__cause__
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection) or status in (418, 429):
            wait = retry_after_seconds(record.headers, time.time())
            return VenueUnavailable(text, code=code, retry_after=wait)
        if isinstance(exc, ccxt.OnMaintenance | ccxt.InvalidNonce):  # answered before acting
            return VenueUnavailable(text, code=code)
        if isinstance(exc, ccxt.ExchangeClosedByUser):  # close() ran first: nothing was sent
            return VenueUnavailable(text, code=code)
        if isinstance(exc, ccxt.BadResponse):
            return VenueDataError(text, code=code)
        if isinstance(cause, aiohttp.ClientConnectorError):  # the connection never opened
            return VenueUnavailable(text, code=code)
        unsure = VenueAmbiguous if mutation else VenueUnavailable
        if status is not None and status >= 500:
            return unsure(text, code=code)
        if isinstance(exc, ccxt.OperationFailed) or isinstance(cause, aiohttp.ClientError | OSError):
            if status is None or status < 400 or code is not None:
                return unsure(text, code=code)  # timeouts, resets, "unknown error" of the venue
            if status in (403, 408):  # a firewall or the server's read timeout: not acted on
                return VenueUnavailable(text, code=code)
            return VenueRejected(text, code=code)  # any other bare 4xx
        if isinstance(exc, ccxt.DuplicateOrderId) or (
            isinstance(exc, ccxt.InvalidOrder) and "duplicate order" in str(exc).lower()
        ):
            return _Duplicate(text, code=code)
        if isinstance(exc, ccxt.OrderNotFound):
            return _Unknown(text, code=code)
        return VenueRejected(text, code=code)


__all__ = ["CcxtVenue", "precision_step"]
