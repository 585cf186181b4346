"""Fake Binance spot REST API (``/api/v3``, ``/sapi/v1``): the real BTCUSDT/ETHUSDT sample
klines, and a signed spot trading account with a tiny matching engine.

Market data (public):

* ``GET /api/v3/exchangeInfo``: the listed symbols with Binance's filters (what ccxt parses).
* ``GET /api/v3/klines``: ``symbol``, ``interval``, ``startTime``, ``endTime`` (ms, both
  inclusive on the open time), ``limit`` (default 500, max 1000). With ``startTime`` the first
  ``limit`` klines from it; with only ``endTime`` the last ``limit`` up to it; with neither the
  last ``limit``. Rows are Binance's 12-element arrays with decimal strings.
* ``GET /api/v3/trades`` and ``GET /api/v3/depth``: no trade or book sample exists, so these
  are synthesized deterministically around the last sample bar (prices inside its range).
* Errors in Binance's shape: ``{"code": -1121, "msg": "Invalid symbol."}`` with HTTP 400.

Signed trading (``SIGNED`` endpoints: ``X-MBX-APIKEY`` header, ``timestamp`` within
``recvWindow``, ``signature`` = HMAC-SHA256 of the query string or form body with the fake's
secret; a missing/unknown key answers 401 -2014/-2015, a bad signature 401 -1022, a stale
timestamp 400 -1021):

* ``POST /api/v3/order`` (MARKET, LIMIT, LIMIT_MAKER, STOP_LOSS(_LIMIT), TAKE_PROFIT(_LIMIT),
  trailing stops by ``trailingDelta`` in basis points), ``GET``/``DELETE /api/v3/order`` by
  ``orderId`` or ``origClientOrderId``, ``GET /api/v3/openOrders`` (``symbol`` optional),
  ``GET /api/v3/allOrders``, ``GET /api/v3/myTrades``, ``GET /api/v3/account`` and
  ``GET /sapi/v1/account/apiRestrictions`` (``withdrawals_enabled``, ``trading_enabled``).
* Checks as Binance does: the symbol's order types, mandatory and not-required parameters
  (-1102/-1106), the client order id pattern (-1100), the exchangeInfo filters (-1013
  ``Filter failure: LOT_SIZE|PRICE_FILTER|NOTIONAL``), free balance (-2010 insufficient
  balance), a client id already used by an *open* order (-2010 ``Duplicate order sent.``; a
  finished order's id may be reused, as on Binance), stops that would trigger at once (-2010),
  unknown orders (-2013 on lookup, -2011 on cancel).
* Matching against the *last price* (the sample's last close until ``trade`` moves it): a
  market order fills at once, in ``market_splits`` trades one tick apart; a marketable limit
  order fills at the last price (taker), IOC/FOK that do not cross expire; a resting limit order
  waits for ``trade(symbol, price, qty)`` to cross it and fills at its limit (maker), partially
  when ``qty`` is smaller than what rests; stops trigger on ``trade`` and then fill or rest as
  limits. Commission is 0.1 % of what is received. Balances move with the fills.
* Every accepted order is kept in ``accepted`` (``orders_for(client_order_id)`` counts the
  venue's orders per client id) and every execution in ``executions``.

Venue faults besides ``server.py``'s: ``duplicate_trades(n)`` (the next ``n`` myTrades
answers list each trade twice), ``reorder_trades(n)`` (newest first), ``hide_orders(n)``
(the next ``n`` order lookups answer -2013 for an order that exists), and the ``malformed``
fault on the trading endpoints (``nan``/``negative``/``missing``/``null`` on quantities and
prices of the order, the trade row ``row`` or the account's restrictions).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from aiohttp import web

from tests.fakes.data import NS_PER_MS, Sample, sample
from tests.fakes.server import FakeServer

INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,
}
DATASETS = {
    ("BTCUSDT", "1h"): "BTCUSDT_1h_binance",
    ("ETHUSDT", "1h"): "ETHUSDT_1h_binance",
    ("BTCUSDT", "1m"): "BTCUSDT_1m_binance",
    ("ETHUSDT", "1m"): "ETHUSDT_1m_binance",
}
SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
ORDER_TYPES = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
"""What real spot symbols list in ``orderTypes`` (``FakeBinance(order_types=...)`` narrows it)."""
API_KEY = "fake-binance-key"
SECRET = "fake-binance-secret"
BALANCES = {"USDT": "100000", "BTC": "1", "ETH": "10", "BNB": "0"}
COMMISSION = Decimal("0.001")
# the filters of symbol_info(), as numbers
MIN_QTY, MAX_QTY, STEP = Decimal("0.00001"), Decimal("9000"), Decimal("0.00001")
MIN_PRICE, MAX_PRICE, TICK = Decimal("0.01"), Decimal("1000000"), Decimal("0.01")
MIN_NOTIONAL = Decimal("5")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_LIMIT_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
_TIF_TYPES = frozenset({"LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
_STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})


def dec8(text: str) -> str:
    """A decimal string padded to Binance's 8 places (the value is unchanged)."""
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(8, '0')}"


def corrupt_row(row: list[Any], how: str, *, first_value: int = 1) -> list[Any]:
    """Corrupt an OHLCV array row in place of ``[ts, open, high, low, close, volume, ...]``."""
    o, h, lo, v = first_value, first_value + 1, first_value + 2, first_value + 4
    row = list(row)
    if how == "nan":
        row[o] = "NaN" if isinstance(row[o], str) else float("nan")
    elif how == "negative":
        row[v] = "-5.00000000" if isinstance(row[v], str) else -5.0
    elif how == "missing":
        row = row[: first_value + 3]
    elif how == "null":
        row[first_value + 3] = None
    elif how == "high_lt_low":
        row[h], row[lo] = row[lo], row[h]
    elif how == "zero":
        row[o] = "0.00000000" if isinstance(row[o], str) else 0
    elif how == "not_a_row":
        return {"oops": True}  # type: ignore[return-value]
    else:
        raise ValueError(f"unknown corruption {how!r}")
    return row


@dataclass
class FakeOrder:
    """One order the fake accepted (Binance's names in ``side``/``type``/``status``)."""

    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    quantity: Decimal
    time_in_force: str | None
    price: Decimal | None
    stop_price: Decimal | None
    trailing_delta: int | None
    time: int
    update_time: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    working: bool = True
    """Stops: ``False`` until triggered."""
    extreme: Decimal | None = None
    """Trailing stops: the best price seen since placement."""
    locked: Decimal = Decimal(0)
    """Balance locked by the resting order (quote for a BUY, base for a SELL)."""
    lock_per_unit: Decimal = Decimal(0)
    trade_ids: list[int] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN


class FakeBinance(FakeServer):
    vendor = "binance"

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        secret: str = SECRET,
        withdrawals_enabled: bool = False,
        trading_enabled: bool = True,
        order_types: Sequence[str] = ORDER_TYPES,
        balances: Mapping[str, str] | None = None,
        market_splits: int = 2,
    ) -> None:
        super().__init__()
        self.api_key, self.secret = api_key, secret
        self.withdrawals_enabled = withdrawals_enabled
        self.trading_enabled = trading_enabled
        self.order_types = tuple(order_types)
        self.market_splits = max(1, market_splits)
        self.last_price: dict[str, Decimal] = {
            name: Decimal(self._last(name).rows[-1][3]) for name in SYMBOLS
        }
        self.orders: dict[int, FakeOrder] = {}
        self.accepted: list[FakeOrder] = []
        """Every order the venue accepted, in order (the same objects, kept up to date)."""
        self.executions: list[dict[str, Any]] = []
        """Every trade of the account, as ``GET /api/v3/myTrades`` rows."""
        self.balances: dict[str, list[Decimal]] = {
            asset: [Decimal(v), Decimal(0)] for asset, v in (balances or BALANCES).items()
        }
        self._state = threading.RLock()
        self._order_ids = itertools.count(28_457_000_001)
        self._trade_ids = itertools.count(3_512_000_001)
        self._duplicate_trades = 0
        self._reorder_trades = 0
        self._hidden = 0

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.body_exists:
            await request.read()  # the venue has the whole request before any fault or hold
        return await super()._middleware(request, handler)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/trades", self.trades),
            web.get("/api/v3/depth", self.depth),
            web.post("/api/v3/order", self.new_order),
            web.get("/api/v3/order", self.query_order),
            web.delete("/api/v3/order", self.cancel_order),
            web.get("/api/v3/openOrders", self.open_orders),
            web.get("/api/v3/allOrders", self.all_orders),
            web.get("/api/v3/myTrades", self.my_trades),
            web.get("/api/v3/account", self.account),
            web.get("/sapi/v1/account/apiRestrictions", self.api_restrictions),
        ]

    def error_body(self, status: int, message: str) -> Any:
        code = -1003 if status == 429 else -1000
        return {"code": code, "msg": message}

    def _err(self, code: int, msg: str, status: int = 400) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    async def ping(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, _request: web.Request) -> web.Response:
        return web.json_response({"serverTime": 1713708000000})

    async def exchange_info(self, _request: web.Request) -> web.Response:
        symbols = []
        for name, (base, quote) in SYMBOLS.items():
            symbols.append(symbol_info(name, base, quote, order_types=self.order_types))
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": 1713708000000,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    def _symbol(self, request: web.Request) -> str | web.Response:
        symbol = request.query.get("symbol")
        if not symbol:
            return self._err(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        return symbol

    @staticmethod
    def _last(symbol: str) -> Sample:
        return sample(DATASETS[(symbol, "1h")])

    async def klines(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        if isinstance(symbol, web.Response):
            return symbol
        interval = request.query.get("interval", "")
        if interval not in INTERVAL_MS:
            return self._err(-1120, "Invalid interval.")
        try:
            limit = int(request.query.get("limit", "500"))
            start = int(request.query["startTime"]) if "startTime" in request.query else None
            end = int(request.query["endTime"]) if "endTime" in request.query else None
        except ValueError:
            return self._err(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return self._err(-1130, "Data sent for parameter 'limit' is not valid.")
        name = DATASETS.get((symbol, interval))
        if name is None:
            return web.json_response([])
        data = sample(name)
        ms = data.ts // NS_PER_MS
        if start is not None:
            i = int(np.searchsorted(ms, start, side="left"))
            j = int(np.searchsorted(ms, end, side="right")) if end is not None else len(ms)
            j = min(j, i + limit)
        else:
            j = int(np.searchsorted(ms, end, side="right")) if end is not None else len(ms)
            i = max(0, j - limit)
        step = INTERVAL_MS[interval]
        rows: list[Any] = []
        for k in range(i, j):
            o, h, lo, c, v = data.rows[k]
            t = int(ms[k])
            rows.append(
                [
                    t,
                    dec8(o),
                    dec8(h),
                    dec8(lo),
                    dec8(c),
                    dec8(v),
                    t + step - 1,
                    f"{float(v) * float(c):.8f}",
                    int(float(v) * 7) + 1,
                    f"{float(v) / 2:.8f}",
                    f"{float(v) * float(c) / 2:.8f}",
                    "0",
                ]
            )
        fault = self.malformed(request)
        if fault is not None and rows:
            at = min(fault.row, len(rows) - 1)
            rows[at] = corrupt_row(rows[at], fault.how)
        return web.json_response(rows)

    async def trades(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        if isinstance(symbol, web.Response):
            return symbol
        limit = int(request.query.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return self._err(-1130, "Data sent for parameter 'limit' is not valid.")
        out = self.synthetic_trades(symbol, limit)
        fault = self.malformed(request)
        if fault is not None and out:
            at = min(fault.row, len(out) - 1)
            out[at]["price"] = {"nan": "NaN", "negative": "-1.00000000", "zero": "0.00000000"}.get(fault.how)
        return web.json_response(out)

    def synthetic_trades(self, symbol: str, limit: int) -> list[dict[str, Any]]:
        data = self._last(symbol)
        _o, h, lo, _c, _v = (float(x) for x in data.rows[-1])
        t0 = int(data.ts[-1] // NS_PER_MS)
        out = []
        for k in range(limit):
            price = lo + (h - lo) * ((k * 37) % 101) / 100
            qty = 0.001 * (1 + (k * 13) % 17)
            out.append(
                {
                    "id": 3_000_000_000 + k,
                    "price": f"{price:.2f}",
                    "qty": f"{qty:.8f}",
                    "quoteQty": f"{price * qty:.8f}",
                    "time": t0 + k * 1000,
                    "isBuyerMaker": k % 2 == 0,
                    "isBestMatch": True,
                }
            )
        return out

    async def depth(self, request: web.Request) -> web.Response:
        symbol = self._symbol(request)
        if isinstance(symbol, web.Response):
            return symbol
        limit = int(request.query.get("limit", "100"))
        if not 1 <= limit <= 5000:
            return self._err(-1100, "Illegal characters found in parameter 'limit'.")
        close = float(self._last(symbol).rows[-1][3])
        bids = [[f"{close - 0.01 * (k + 1):.2f}", f"{0.1 * (k + 1):.8f}"] for k in range(limit)]
        asks = [[f"{close + 0.01 * (k + 1):.2f}", f"{0.1 * (k + 1):.8f}"] for k in range(limit)]
        fault = self.malformed(request)
        if fault is not None:
            if fault.how == "crossed":
                bids[0][0] = f"{close + 5:.2f}"
            else:
                bids[min(fault.row, limit - 1)][1] = "-1.00000000"
        return web.json_response({"lastUpdateId": 48_913_378_517, "bids": bids, "asks": asks})

    # ---- test hooks --------------------------------------------------------------------------

    def trade(
        self, symbol: str, price: float | str | Decimal, qty: float | str | Decimal | None = None
    ) -> int:
        """A market trade of someone else at ``price`` (``qty``: its size, unlimited when
        ``None``): moves the last price, triggers stops and fills the resting orders it crosses,
        oldest first. Answers how many executions of the account it produced."""
        px = Decimal(str(price))
        left = None if qty is None else Decimal(str(qty))
        with self._state:
            self.last_price[symbol] = px
            before = len(self.executions)
            now = _now_ms()
            for order in sorted(self.orders.values(), key=lambda o: o.order_id):
                if order.symbol != symbol or not order.is_open:
                    continue
                if left is not None and left <= 0:
                    break
                if not order.working and not self._triggered(order, px):
                    continue
                if not order.working:
                    order.working = True
                    order.update_time = now
                if order.type in ("STOP_LOSS", "TAKE_PROFIT"):  # a stop market: takes at the trade
                    size = order.remaining if left is None else min(order.remaining, left)
                    self._fill(order, size, px, maker=False, now=now)
                else:
                    assert order.price is not None
                    crosses = px <= order.price if order.side == "BUY" else px >= order.price
                    if not crosses:
                        continue
                    size = order.remaining if left is None else min(order.remaining, left)
                    self._fill(order, size, order.price, maker=True, now=now)
                if left is not None:
                    left -= size
            return len(self.executions) - before

    def duplicate_trades(self, n: int = 1) -> None:
        """The next ``n`` myTrades answers list every trade twice."""
        with self._state:
            self._duplicate_trades += n

    def reorder_trades(self, n: int = 1) -> None:
        """The next ``n`` myTrades answers list the trades newest first."""
        with self._state:
            self._reorder_trades += n

    def hide_orders(self, n: int = 1) -> None:
        """The next ``n`` order lookups (``GET /api/v3/order``) answer -2013 "Order does not
        exist." although the order exists (Binance's lag between accepting and indexing)."""
        with self._state:
            self._hidden += n

    def orders_for(self, client_order_id: str) -> list[FakeOrder]:
        """The orders the venue accepted with ``client_order_id`` (more than one is a duplicate)."""
        with self._state:
            return [o for o in self.accepted if o.client_order_id == client_order_id]

    def free(self, asset: str) -> Decimal:
        with self._state:
            return self.balances.get(asset, [Decimal(0), Decimal(0)])[0]

    # ---- signing -----------------------------------------------------------------------------

    async def _signed(self, request: web.Request) -> dict[str, str] | web.Response:
        """The parameters of a SIGNED request, or Binance's error answer."""
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            return self._err(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            return self._err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        total = request.rel_url.raw_query_string
        if request.body_exists:
            total += await request.text()
        payload, sep, signature = total.rpartition("&signature=")
        if not sep:
            return self._err(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, signature):
            return self._err(-1022, "Signature for this request is not valid.", 401)
        params = dict(parse_qsl(payload, keep_blank_values=True))
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            return self._err(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        if not 0 < window <= 60_000:
            return self._err(-1131, "recvWindow must be less than 60000")
        now = _now_ms()
        if stamp > now + 1000 or now - stamp > window:
            return self._err(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # ---- trading endpoints -------------------------------------------------------------------

    async def new_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        if not self.trading_enabled:
            return self._err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        with self._state:
            outcome = self._place(params)
        if isinstance(outcome, web.Response):
            return outcome
        order, fills = outcome
        body = self._order_json(order, full=True)
        body["fills"] = fills
        fault = self.malformed(request)
        if fault is not None:
            body = _corrupt_order(body, fault.how)
        return web.json_response(body)

    def _place(self, p: dict[str, str]) -> tuple[FakeOrder, list[dict[str, str]]] | web.Response:
        symbol = p.get("symbol", "")
        if not symbol:
            return self._missing("symbol")
        if symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        for name in ("side", "type"):
            if not p.get(name):
                return self._missing(name)
        side, kind = p["side"], p["type"]
        if side not in ("BUY", "SELL"):
            return self._err(-1117, "Invalid side.")
        if kind not in ORDER_TYPES:
            return self._err(-1116, "Invalid orderType.")
        if kind not in self.order_types:
            return self._err(-2010, "Order type not supported for this symbol.")
        cid = p.get("newClientOrderId") or f"web_{time.time_ns():x}"
        if not _CLIENT_ID.match(cid):
            return self._illegal("newClientOrderId", "^[a-zA-Z0-9-_]{1,36}$")
        if "quantity" not in p:
            return self._missing("quantity")
        numbers: dict[str, Decimal | None] = {}
        for name in ("quantity", "price", "stopPrice"):
            text = p.get(name)
            if text is None:
                numbers[name] = None
            elif not _NUMBER.match(text):
                return self._illegal(name, _NUMBER.pattern)
            else:
                numbers[name] = Decimal(text)
        qty = numbers["quantity"]
        price, stop = numbers["price"], numbers["stopPrice"]
        assert qty is not None
        trailing = p.get("trailingDelta")
        tif = p.get("timeInForce")
        if kind in _LIMIT_TYPES and price is None:
            return self._missing("price")
        if kind not in _LIMIT_TYPES and price is not None:
            return self._err(-1106, "Parameter 'price' sent when not required.")
        if kind in _TIF_TYPES and tif is None:
            return self._missing("timeInForce")
        if kind not in _TIF_TYPES and tif is not None:
            return self._err(-1106, "Parameter 'timeInForce' sent when not required.")
        if tif is not None and tif not in ("GTC", "IOC", "FOK"):
            return self._err(-1115, "Invalid timeInForce.")
        if kind in _STOP_TYPES and stop is None and trailing is None:
            return self._err(
                -1102, "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
            )
        if kind not in _STOP_TYPES and (stop is not None or trailing is not None):
            return self._err(-1106, "Parameter 'stopPrice' sent when not required.")
        delta = None
        if trailing is not None:
            if not trailing.isdigit() or not 10 <= int(trailing) <= 2000:
                return self._err(-2010, "Invalid trailingDelta.")
            delta = int(trailing)
        if qty < MIN_QTY or qty > MAX_QTY or (qty - MIN_QTY) % STEP:
            return self._filter("LOT_SIZE")
        for value in (price, stop):
            if value is not None and (value < MIN_PRICE or value > MAX_PRICE or (value - MIN_PRICE) % TICK):
                return self._filter("PRICE_FILTER")
        last = self.last_price[symbol]
        if qty * (price if price is not None else last) < MIN_NOTIONAL:
            return self._filter("NOTIONAL")
        if any(o.client_order_id == cid and o.is_open for o in self.orders.values()):
            return self._err(-2010, "Duplicate order sent.")
        if (
            kind in _STOP_TYPES
            and stop is not None
            and delta is None
            and self._triggers(kind, side, stop, last)
        ):
            return self._err(-2010, "Stop price would trigger immediately.")
        if kind == "LIMIT_MAKER" and price is not None and self._crosses(side, price, last):
            return self._err(-2010, "Order would immediately match and take.")
        base, quote = SYMBOLS[symbol]
        worst = last + TICK * self.market_splits if side == "BUY" else last
        per_unit = (
            (price if price is not None else max(worst, stop or worst)) if side == "BUY" else Decimal(1)
        )
        spend_asset = quote if side == "BUY" else base
        if self.free(spend_asset) < qty * per_unit:
            return self._err(-2010, "Account has insufficient balance for requested action.")
        now = _now_ms()
        order = FakeOrder(
            order_id=next(self._order_ids),
            symbol=symbol,
            client_order_id=cid,
            side=side,
            type=kind,
            quantity=qty,
            time_in_force=tif,
            price=price,
            stop_price=stop,
            trailing_delta=delta,
            time=now,
            update_time=now,
            working=kind not in _STOP_TYPES,
            extreme=last if delta is not None else None,
        )
        self.orders[order.order_id] = order
        self.accepted.append(order)
        before = len(self.executions)
        if kind == "MARKET":
            self._take(order, last, now)
        elif order.working:
            assert price is not None
            if self._crosses(side, price, last):  # the fake's book is deep: it fills in full
                self._fill(order, order.remaining, last, maker=False, now=now)
            elif tif in ("IOC", "FOK"):
                order.status = "EXPIRED"
        if order.is_open:
            order.lock_per_unit = per_unit
            order.locked = order.remaining * per_unit
            self._move(spend_asset, -order.locked, order.locked)
        fills = [
            {
                "price": t["price"],
                "qty": t["qty"],
                "commission": t["commission"],
                "commissionAsset": t["commissionAsset"],
                "tradeId": t["id"],
            }
            for t in self.executions[before:]
        ]
        return order, fills

    def _take(self, order: FakeOrder, last: Decimal, now: int) -> None:
        """A market order: fills at once, in ``market_splits`` trades a tick apart."""
        parts = self.market_splits
        size = (order.quantity / parts).quantize(STEP, rounding=ROUND_DOWN)
        for k in range(parts):
            qty = order.remaining if k == parts - 1 or size <= 0 else size
            if qty <= 0:
                break
            px = last + TICK * k if order.side == "BUY" else max(MIN_PRICE, last - TICK * k)
            self._fill(order, qty, px, maker=False, now=now)

    @staticmethod
    def _crosses(side: str, price: Decimal, last: Decimal) -> bool:
        return price >= last if side == "BUY" else price <= last

    @staticmethod
    def _triggers(kind: str, side: str, stop: Decimal, px: Decimal) -> bool:
        stop_loss = kind.startswith("STOP_LOSS")
        rising = (side == "BUY") == stop_loss  # a buy stop and a sell take-profit wait for a rise
        return px >= stop if rising else px <= stop

    def _triggered(self, order: FakeOrder, px: Decimal) -> bool:
        if order.trailing_delta is None:
            assert order.stop_price is not None
            return self._triggers(order.type, order.side, order.stop_price, px)
        assert order.extreme is not None
        move = Decimal(order.trailing_delta) / 10_000
        if order.side == "SELL":
            order.extreme = max(order.extreme, px)
            return px <= order.extreme * (1 - move)
        order.extreme = min(order.extreme, px)
        return px >= order.extreme * (1 + move)

    def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool, now: int) -> None:
        base, quote = SYMBOLS[order.symbol]
        notional = qty * price
        if order.locked:
            release = min(order.locked, qty * order.lock_per_unit)
            order.locked -= release
            self._move(quote if order.side == "BUY" else base, release, -release)
        if order.side == "BUY":
            fee, fee_asset = (qty * COMMISSION).quantize(Decimal("1e-8")), base
            self._move(quote, -notional, Decimal(0))
            self._move(base, qty - fee, Decimal(0))
        else:
            fee, fee_asset = (notional * COMMISSION).quantize(Decimal("1e-8")), quote
            self._move(base, -qty, Decimal(0))
            self._move(quote, notional - fee, Decimal(0))
        order.executed += qty
        order.quote += notional
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        order.update_time = now
        trade_id = next(self._trade_ids)
        order.trade_ids.append(trade_id)
        self.executions.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": _d8(price),
                "qty": _d8(qty),
                "quoteQty": _d8(notional),
                "commission": _d8(fee),
                "commissionAsset": fee_asset,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )

    def _move(self, asset: str, free: Decimal, locked: Decimal) -> None:
        row = self.balances.setdefault(asset, [Decimal(0), Decimal(0)])
        row[0] += free
        row[1] += locked

    def _find(self, p: Mapping[str, str]) -> FakeOrder | web.Response | None:
        symbol = p.get("symbol", "")
        if not symbol:
            return self._missing("symbol")
        if symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        if p.get("orderId"):
            try:
                order = self.orders.get(int(p["orderId"]))
            except ValueError:
                return self._illegal("orderId", "^[0-9]{1,20}$")
            return order if order is not None and order.symbol == symbol else None
        cid = p.get("origClientOrderId")
        if not cid:
            return self._err(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        same = [o for o in self.orders.values() if o.symbol == symbol and o.client_order_id == cid]
        return max(same, key=lambda o: o.order_id) if same else None

    async def query_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        with self._state:
            found = self._find(params)
            if isinstance(found, web.Response):
                return found
            if found is not None and self._hidden > 0:
                self._hidden -= 1
                found = None
            if found is None:
                return self._err(-2013, "Order does not exist.")
            body = self._order_json(found)
        fault = self.malformed(request)
        if fault is not None:
            body = _corrupt_order(body, fault.how)
        return web.json_response(body)

    async def cancel_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        with self._state:
            found = self._find(params)
            if isinstance(found, web.Response):
                return found
            if found is None or not found.is_open:
                return self._err(-2011, "Unknown order sent.")
            base, quote = SYMBOLS[found.symbol]
            if found.locked:
                self._move(quote if found.side == "BUY" else base, found.locked, -found.locked)
                found.locked = Decimal(0)
            found.status = "CANCELED"
            found.update_time = _now_ms()
            body = self._order_json(found, full=True)
            body["origClientOrderId"] = found.client_order_id
            body["clientOrderId"] = params.get("newClientOrderId") or f"cancel_{found.order_id:x}"
        fault = self.malformed(request)
        if fault is not None:
            body = _corrupt_order(body, fault.how)
        return web.json_response(body)

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        symbol = params.get("symbol")
        if symbol is not None and symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        with self._state:
            rows = [
                self._order_json(o)
                for o in sorted(self.orders.values(), key=lambda o: o.order_id)
                if o.is_open and (symbol is None or o.symbol == symbol)
            ]
        return web.json_response(self._corrupt_rows(request, rows, _corrupt_order))

    async def all_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        symbol = params.get("symbol", "")
        if not symbol:
            return self._missing("symbol")
        if symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        try:
            limit = int(params.get("limit", "500"))
            first = int(params.get("orderId", "0"))
            start = int(params.get("startTime", "0"))
            end = int(params.get("endTime", str(2**62)))
        except ValueError:
            return self._err(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return self._err(-1130, "Data sent for parameter 'limit' is not valid.")
        with self._state:
            chosen = [
                o
                for o in sorted(self.orders.values(), key=lambda o: o.order_id)
                if o.symbol == symbol and o.order_id >= first and start <= o.time <= end
            ]
            rows = [self._order_json(o) for o in chosen[:limit]]
        return web.json_response(self._corrupt_rows(request, rows, _corrupt_order))

    async def my_trades(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        symbol = params.get("symbol", "")
        if not symbol:
            return self._missing("symbol")
        if symbol not in SYMBOLS:
            return self._err(-1121, "Invalid symbol.")
        try:
            limit = int(params.get("limit", "500"))
            order_id = int(params["orderId"]) if "orderId" in params else None
            from_id = int(params.get("fromId", "0"))
            start = int(params.get("startTime", "0"))
            end = int(params.get("endTime", str(2**62)))
        except ValueError:
            return self._err(-1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return self._err(-1130, "Data sent for parameter 'limit' is not valid.")
        with self._state:
            rows = [
                dict(t)
                for t in self.executions
                if t["symbol"] == symbol
                and (order_id is None or t["orderId"] == order_id)
                and t["id"] >= from_id
                and start <= t["time"] <= end
            ][:limit]
            if self._duplicate_trades > 0:
                self._duplicate_trades -= 1
                rows = [dict(r) for r in rows for _ in range(2)]
            if self._reorder_trades > 0:
                self._reorder_trades -= 1
                rows.reverse()
        return web.json_response(self._corrupt_rows(request, rows, _corrupt_trade))

    async def account(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        omit_zero = params.get("omitZeroBalances") == "true"
        with self._state:
            rows = [
                {"asset": asset, "free": _d8(free), "locked": _d8(locked)}
                for asset, (free, locked) in sorted(self.balances.items())
                if not (omit_zero and free == 0 and locked == 0)
            ]
        rows = self._corrupt_rows(request, rows, _corrupt_balance)
        now = _now_ms()
        return web.json_response(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": self.trading_enabled,
                "canWithdraw": self.withdrawals_enabled,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": now,
                "accountType": "SPOT",
                "balances": rows,
                "permissions": ["SPOT"],
                "uid": 354937868,
            }
        )

    async def api_restrictions(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        body: dict[str, Any] = {
            "ipRestrict": False,
            "createTime": 1698645219000,
            "enableReading": True,
            "enableWithdrawals": self.withdrawals_enabled,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
            "enableSpotAndMarginTrading": self.trading_enabled,
            "enablePortfolioMarginTrading": False,
        }
        fault = self.malformed(request)
        if fault is not None:
            if fault.how == "missing":
                del body["enableWithdrawals"]
            else:
                body["enableWithdrawals"] = None if fault.how == "null" else "maybe"
        return web.json_response(body)

    # ---- answers -----------------------------------------------------------------------------

    def _order_json(self, order: FakeOrder, *, full: bool = False) -> dict[str, Any]:
        """An order as ``GET /api/v3/order`` answers it (``full``: as POST/DELETE do)."""
        body: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": _d8(order.price or Decimal(0)),
            "origQty": _d8(order.quantity),
            "executedQty": _d8(order.executed),
            "cummulativeQuoteQty": _d8(order.quote),
            "status": order.status,
            "timeInForce": order.time_in_force or "GTC",
            "type": order.type,
            "side": order.side,
        }
        if order.stop_price is not None:
            body["stopPrice"] = _d8(order.stop_price)
        if order.trailing_delta is not None:
            body["trailingDelta"] = order.trailing_delta
        if full:
            body["transactTime"] = order.update_time
            body["workingTime"] = order.time if order.working else -1
        else:
            body["stopPrice"] = body.get("stopPrice", _d8(Decimal(0)))
            body["icebergQty"] = _d8(Decimal(0))
            body["time"] = order.time
            body["updateTime"] = order.update_time
            body["isWorking"] = order.working
            body["workingTime"] = order.time if order.working else -1
            body["origQuoteOrderQty"] = _d8(Decimal(0))
        body["selfTradePreventionMode"] = "EXPIRE_MAKER"
        return body

    def _corrupt_rows(self, request: web.Request, rows: list[Any], how: Any) -> list[Any]:
        fault = self.malformed(request)
        if fault is not None and rows:
            at = min(fault.row, len(rows) - 1)
            rows[at] = how(rows[at], fault.how)
        return rows

    def _missing(self, name: str) -> web.Response:
        return self._err(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")

    def _illegal(self, name: str, pattern: str) -> web.Response:
        return self._err(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'."
        )

    def _filter(self, name: str) -> web.Response:
        return self._err(-1013, f"Filter failure: {name}")


def _now_ms() -> int:
    return time.time_ns() // NS_PER_MS


def _d8(value: Decimal) -> str:
    """Binance's 8-place decimal string."""
    return f"{value.quantize(Decimal('1e-8')):f}"


def _corrupt(body: dict[str, Any], how: str, number: str, present: Iterable[str]) -> dict[str, Any]:
    body = dict(body)
    if how == "nan":
        body[number] = "NaN"
    elif how == "negative":
        body[number] = "-" + str(body[number]).lstrip("-")
    elif how == "missing":
        for name in present:
            body.pop(name, None)
    elif how == "null":
        body[number] = None
    elif how == "not_a_row":
        return {"oops": True}
    else:
        raise ValueError(f"unknown corruption {how!r}")
    return body


def _corrupt_order(body: dict[str, Any], how: str) -> dict[str, Any]:
    number = "origQty" if how == "nan" else "executedQty"
    return _corrupt(body, how, number, ("origQty", "executedQty", "fills"))


def _corrupt_trade(row: dict[str, Any], how: str) -> dict[str, Any]:
    return _corrupt(row, how, "qty" if how == "negative" else "price", ("price",))


def _corrupt_balance(row: dict[str, Any], how: str) -> dict[str, Any]:
    return _corrupt(row, how, "free", ("free",))


def symbol_info(
    symbol: str, base: str, quote: str, *, order_types: Sequence[str] = ORDER_TYPES
) -> dict[str, Any]:
    """One entry of Binance's ``exchangeInfo.symbols`` (spot, as the real API answers)."""
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(order_types),
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }
