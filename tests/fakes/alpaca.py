"""Fake Alpaca: market data v2 bars and the Trading API v2, on one server, from the real samples.

Every route checks Alpaca's key headers (``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``; wrong
or missing -> 401) and answers errors as Alpaca does: ``{"code": 42210000, "message": ...}``.

**Market data** (``GET /v2/stocks/{symbol}/bars``): ``timeframe`` (``1Day`` has data; other valid
ones answer no bars), ``start``/``end`` (RFC 3339 or a date; both inclusive), ``limit`` (default
1000, max 10000), ``page_token``. Daily bars are stamped at midnight New York in UTC
(``2020-08-28T04:00:00Z``), as Alpaca does. When more bars remain, ``next_page_token`` is the
base64 of ``SYMBOL|D|<next t>``, the shape of Alpaca's tokens. A symbol without data answers
``"bars": null``.

**Trading** (one cash account, 100,000 USD, buying power = cash less open buy orders):

* ``POST /v2/orders``: ``client_order_id`` (unique: a reused one -> 422 ``client_order_id must be
  unique``), ``symbol``, ``qty``, ``side``, ``type`` (market, limit, stop, stop_limit,
  trailing_stop with ``trail_percent`` in percent), ``time_in_force`` (day, gtc, ioc, fok),
  ``limit_price``, ``stop_price``. Refusals as Alpaca's: unknown or untradable asset, a
  quantity below ``min_order_size`` or not a multiple of the asset's increment (whole shares for
  a non-fractionable stock), a fractional quantity not ``day``, a sub-penny price (0.01 from 1 USD,
  0.0001 below, or the asset's ``price_increment``) -> 422; ``trading_blocked`` -> 403; a buy
  above the buying power -> 403 ``insufficient buying power``; selling more than a long
  position holds -> 403 ``insufficient qty available``. Every accepted order is recorded
  (``accepted``, ``accepted_count(client_order_id)``).
* Matching: the last price of a symbol is the last close of its daily sample (``BTC/USD``: the
  hourly BTCUSDT sample). A market order fills at once at that price; limit, stop, stop-limit and
  trailing-stop orders fill when marketable on arrival, else rest until the test hook
  ``trade(symbol, price, qty=None)`` crosses them (``qty`` caps what the trade fills, shared in
  arrival order, so fills can be partial). IOC cancels what did not fill; FOK fills entirely or
  is cancelled.
* ``GET /v2/orders:by_client_order_id``, ``GET /v2/orders/{id}``, ``GET /v2/orders`` (``status``
  open/closed/all, ``limit`` <= 500, ``after``/``until`` on ``submitted_at``, ``direction``,
  ``symbols``), ``DELETE /v2/orders/{id}`` (204; 422 ``order is not cancelable`` once final; 404).
* ``GET /v2/account/activities/FILL`` (``direction`` default desc, ``page_size`` <= 100,
  ``page_token``, ``after``/``until``), ids ``<17-digit UTC time>::<uuid>`` as Alpaca's.
* ``GET /v2/account``, ``GET /v2/positions``, ``GET /v2/positions/{symbol}`` (404 when flat),
  ``GET /v2/assets/{symbol}`` (AAPL, SPY: fractionable equities without increment fields; MSFT:
  whole shares; GOOG: whole shares with explicit increments; ``BTC/USD`` (or ``BTCUSD``):
  crypto with ``min_order_size`` 0.0001, ``min_trade_increment`` 1e-9 and ``price_increment``
  1; DELIST: inactive, not tradable).

Test hooks besides ``server.py``'s faults: ``trade``, ``duplicate_fills(times)`` (each activity of
the next answers appears twice), ``reorder_fills(times)`` (the next activity pages come in
reverse), ``hide_orders(n)`` (the next ``n`` by-client-id lookups of an existing order answer
404), ``set_status(client_order_id, status)`` (any Alpaca status), ``trading_blocked`` /
``account_blocked`` (attributes). ``malformed(how, row=i)`` corrupts the orders, activities,
positions, account and asset answers: ``nan``, ``negative``, ``missing``, ``null``, ``text``.
"""

from __future__ import annotations

import base64
import gzip
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Self

import numpy as np
from aiohttp import web

from tests.fakes.data import SAMPLE_DIR, STOCK_DAILY, stock_daily
from tests.fakes.server import FakeServer, Fault, Handler

KEY_ID, SECRET = "PKTEST0000000000", "fake-alpaca-secret"
_TF = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
START_CASH = Decimal("100000")
OPEN_STATUSES = frozenset(
    {
        "new",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "partially_filled",
        "held",
        "done_for_day",
        "pending_cancel",
        "pending_replace",
        "stopped",
        "suspended",
        "calculated",
    }
)
_FRACTION = Decimal("0.000000001")

ASSETS: dict[str, dict[str, Any]] = {
    "AAPL": {"exchange": "NASDAQ", "name": "Apple Inc. Common Stock", "fractionable": True},
    "SPY": {"exchange": "ARCA", "name": "SPDR S&P 500 ETF Trust", "fractionable": True},
    "MSFT": {"exchange": "NASDAQ", "name": "Microsoft Corporation Common Stock", "fractionable": False},
    "GOOG": {
        "exchange": "NASDAQ",
        "name": "Alphabet Inc. Class C Capital Stock",
        "fractionable": False,
        "min_order_size": "1",
        "min_trade_increment": "1",
        "price_increment": "0.01",
    },
    "BTC/USD": {
        "class": "crypto",
        "exchange": "CRYPTO",
        "name": "Bitcoin / US Dollar",
        "fractionable": True,
        "shortable": False,
        "min_order_size": "0.0001",
        "min_trade_increment": "0.000000001",
        "price_increment": "1",
    },
    "DELIST": {
        "exchange": "OTC",
        "name": "Delisted Corp",
        "fractionable": False,
        "status": "inactive",
        "tradable": False,
    },
}


def _seconds(text: str) -> int:
    if len(text) == 10:
        text += "T00:00:00Z"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ns(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


def _parse_time(text: str) -> int:
    """RFC 3339 (fractions allowed) or a date, to epoch ns."""
    if len(text) == 10:
        text += "T00:00:00Z"
    head, _, frac = text.replace("Z", "").partition(".")
    digits = "".join(ch for ch in frac if ch.isdigit())
    whole = datetime.fromisoformat(head).replace(tzinfo=UTC)
    return int(whole.timestamp()) * 1_000_000_000 + int(digits[:9].ljust(9, "0") or 0)


PRICE_FILES = {
    "BTC/USD": "BTCUSDT_1h_binance",
    **{s: STOCK_DAILY[s] for s in ("AAPL", "MSFT", "GOOG", "SPY")},
}
"""The sample whose last close is a symbol's last trade price."""


@cache
def last_close(name: str) -> Decimal:
    """The last close of sample ``name`` (read from the file's end) on the penny grid."""
    path = SAMPLE_DIR / f"{name}.csv"
    if not path.exists():
        path = SAMPLE_DIR / f"{name}.csv.gz"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        last = deque(fh, maxlen=1)[0]
    return Decimal(last.split(",")[4]).quantize(Decimal("0.01"))


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _key(symbol: str) -> str:
    return symbol.replace("/", "").upper()


def corrupt(item: dict[str, Any], how: str, fields: tuple[str, str]) -> None:
    """Spoil ``item`` as a ``malformed`` fault says: ``fields`` = (a number, a required number)."""
    number, required = fields
    if how == "nan":
        item[number] = "NaN"
    elif how == "negative":
        item[required] = "-" + str(item[required]).lstrip("-")
    elif how == "missing":
        item.pop(required, None)
    elif how == "null":
        item[required] = None
    elif how == "text":
        item[number] = "1,5"


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_percent: Decimal | None
    submitted_ns: int
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    updated_ns: int = 0
    filled_ns: int | None = None
    canceled_ns: int | None = None
    triggered: bool = False
    hwm: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def json(self) -> dict[str, Any]:
        avg = self.filled_value / self.filled_qty if self.filled_qty else None
        asset_class = "crypto" if "/" in self.symbol else "us_equity"
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": _iso_ns(self.submitted_ns),
            "updated_at": _iso_ns(self.updated_ns or self.submitted_ns),
            "submitted_at": _iso_ns(self.submitted_ns),
            "filled_at": None if self.filled_ns is None else _iso_ns(self.filled_ns),
            "expired_at": None,
            "canceled_at": None if self.canceled_ns is None else _iso_ns(self.canceled_ns),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)),
            "symbol": self.symbol,
            "asset_class": asset_class,
            "notional": None,
            "qty": _s(self.qty),
            "filled_qty": _s(self.filled_qty),
            "filled_avg_price": _s(avg),
            "order_class": "",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.tif,
            "limit_price": _s(self.limit_price),
            "stop_price": _s(self.stop_price),
            "status": self.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": _s(self.trail_percent),
            "trail_price": None,
            "hwm": _s(self.hwm),
        }


class _Refusal(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeAlpaca(FakeServer):
    vendor = "alpaca"

    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET) -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret
        self._state = threading.Lock()
        self._clear_trading()

    # ---- state and test hooks ----------------------------------------------------------------

    def _clear_trading(self) -> None:
        self.cash = START_CASH
        self.trading_blocked = False
        self.account_blocked = False
        self.orders: dict[str, FakeOrder] = {}
        self.by_client: dict[str, str] = {}
        self.accepted: list[dict[str, Any]] = []
        """A snapshot of every order the venue accepted, in order."""
        self.activities: list[dict[str, Any]] = []
        self.holdings: dict[str, tuple[Decimal, Decimal]] = {}
        """Symbol -> (signed qty, average entry price)."""
        self.last_price: dict[str, Decimal] = {}
        self._hide = 0
        self._duplicate = 0
        self._reorder = 0
        self._last_ms = 0

    def reset(self) -> None:
        super().reset()
        with self._state:
            self._clear_trading()

    def accepted_count(self, client_order_id: str) -> int:
        return sum(1 for o in self.accepted if o["client_order_id"] == client_order_id)

    def order(self, client_order_id: str) -> dict[str, Any]:
        with self._state:
            return self.orders[self.by_client[client_order_id]].json()

    def hide_orders(self, n: int = 1) -> None:
        with self._state:
            self._hide = n

    def duplicate_fills(self, times: int = 1) -> None:
        with self._state:
            self._duplicate = times

    def reorder_fills(self, times: int = 1) -> None:
        with self._state:
            self._reorder = times

    def set_status(self, client_order_id: str, status: str) -> None:
        with self._state:
            order = self.orders[self.by_client[client_order_id]]
            order.status = status
            order.updated_ns = self._now()

    def price(self, symbol: str) -> Decimal:
        with self._state:
            return self._price(symbol)

    def trade(
        self, symbol: str, price: float | str | Decimal, qty: float | str | Decimal | None = None
    ) -> int:
        """A trade prints at ``price`` (for ``qty``, unlimited when ``None``): resting orders it
        crosses fill, oldest first. Answers how many fills it made."""
        px = Decimal(str(price))
        with self._state:
            asset = self._asset(symbol)
            key = asset["symbol"]
            self.last_price[key] = px
            left = None if qty is None else Decimal(str(qty))
            made = 0
            for order in sorted(self.orders.values(), key=lambda o: o.submitted_ns):
                if order.symbol != key or not order.is_open or (left is not None and left <= 0):
                    continue
                size = order.remaining if left is None else min(order.remaining, left)
                if self._crosses(order, px) and size > 0:
                    self._fill(order, size, px)
                    made += 1
                    if left is not None:
                        left -= size
            return made

    def start(self) -> Self:
        for name in PRICE_FILES.values():  # read the prices now, not inside a timed request
            last_close(name)
        return super().start()

    # ---- routes ------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Read a request's body before any fault holds it: an order the client sent whole has
        reached the venue, so a ``delay`` past the client's timeout still places it (aiohttp
        loses an unread body when the client hangs up)."""
        if request.can_read_body:
            await request.read()
        return await super()._middleware(request, handler)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/stocks/{symbol}/bars", self.bars),
            web.get("/v2/account", self.account),
            web.post("/v2/orders", self.place),
            web.get("/v2/orders", self.list_orders),
            web.get("/v2/orders:by_client_order_id", self.by_client_id),
            web.get("/v2/orders/{order_id}", self.get_order),
            web.delete("/v2/orders/{order_id}", self.cancel),
            web.get("/v2/account/activities/{activity_type}", self.list_activities),
            web.get("/v2/positions", self.list_positions),
            web.get("/v2/positions/{symbol}", self.get_position),
            web.get("/v2/assets/{symbol}", self.get_asset),
        ]

    def error_body(self, status: int, message: str) -> Any:
        return {"code": 42910000 if status == 429 else 50010000, "message": message}

    @staticmethod
    def _err(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    def _denied(self, request: web.Request) -> web.Response | None:
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return self._err(401, 40110000, "request is not authorized")
        return None

    # ---- market data -------------------------------------------------------------------------

    async def bars(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        symbol = request.match_info["symbol"]
        q = request.query
        timeframe = q.get("timeframe", "")
        if not _TF.match(timeframe):
            return self._err(422, 42210000, "invalid timeframe")
        try:
            limit = int(q.get("limit", "1000"))
            start = _seconds(q["start"]) if "start" in q else 0
            end = _seconds(q["end"]) if "end" in q else 2**40
        except ValueError:
            return self._err(422, 42210000, "invalid start, end or limit")
        if not 1 <= limit <= 10_000:
            return self._err(422, 42210000, "invalid limit: must be between 1 and 10000")
        if symbol not in STOCK_DAILY or timeframe not in ("1Day", "1D"):
            return web.json_response({"bars": None, "symbol": symbol, "next_page_token": None})
        data, midnight, _opens = stock_daily(symbol)
        if "page_token" in q:
            try:
                sym, _, t_iso = base64.b64decode(q["page_token"]).decode().split("|")
                if sym != symbol:
                    raise ValueError(sym)
                start = _seconds(t_iso)
            except ValueError:
                return self._err(422, 42210000, "invalid page token")
        i = int(np.searchsorted(midnight, start, side="left"))
        j = int(np.searchsorted(midnight, end, side="right"))
        stop = min(j, i + limit)
        out: list[dict[str, Any]] = []
        for k in range(i, stop):
            o, h, lo, c, v = (float(x) for x in data.rows[k])
            out.append(
                {
                    "t": _rfc3339(int(midnight[k])),
                    "o": o,
                    "h": h,
                    "l": lo,
                    "c": c,
                    "v": int(v),
                    "n": int(v) // 250 + 1,
                    "vw": round((h + lo + c) / 3, 4),
                }
            )
        fault = self.malformed(request)
        if fault is not None and out:
            bar = out[min(fault.row, len(out) - 1)]
            if fault.how == "nan":
                bar["o"] = float("nan")
            elif fault.how == "negative":
                bar["v"] = -1
            elif fault.how == "missing":
                del bar["c"]
            elif fault.how == "null":
                bar["h"] = None
            elif fault.how == "high_lt_low":
                bar["h"], bar["l"] = bar["l"], bar["h"]
        token = None
        if stop < j:
            token = base64.b64encode(f"{symbol}|D|{_rfc3339(int(midnight[stop]))}".encode()).decode()
        return web.json_response({"bars": out, "symbol": symbol, "next_page_token": token})

    # ---- trading: helpers (call with self._state held) ---------------------------------------

    @staticmethod
    def _now() -> int:
        return time.time_ns()

    def _asset(self, symbol: str) -> dict[str, Any]:
        for name, info in ASSETS.items():
            if _key(name) == _key(symbol):
                return {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                    "class": "us_equity",
                    "symbol": name,
                    "status": "active",
                    "tradable": True,
                    "marginable": True,
                    "shortable": True,
                    "easy_to_borrow": True,
                    "maintenance_margin_requirement": 30,
                    "attributes": [],
                    **info,
                }
        raise _Refusal(422, 40010001, f'asset "{symbol}" not found')

    def _price(self, symbol: str) -> Decimal:
        key = self._asset(symbol)["symbol"]
        if key not in self.last_price:
            name = PRICE_FILES.get(key)
            if name is None:
                raise _Refusal(422, 42210000, f"no quote for {symbol}")
            self.last_price[key] = last_close(name)
        return self.last_price[key]

    def _reserved(self) -> Decimal:
        """Cash held back for open buy orders."""
        total = Decimal(0)
        for o in self.orders.values():
            if o.is_open and o.side == "buy":
                px = o.limit_price or o.stop_price or self._price(o.symbol)
                total += o.remaining * px
        return total

    def _buying_power(self) -> Decimal:
        return max(Decimal(0), self.cash - self._reserved())

    def _crosses(self, order: FakeOrder, px: Decimal) -> bool:
        buy = order.side == "buy"
        if order.type == "trailing_stop" and not order.triggered:
            assert order.trail_percent is not None
            best = order.hwm if order.hwm is not None else px
            order.hwm = max(best, px) if not buy else min(best, px)
            shift = order.hwm * order.trail_percent / 100
            order.stop_price = (order.hwm + shift if buy else order.hwm - shift).quantize(Decimal("0.01"))
        if order.type in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            assert order.stop_price is not None
            order.triggered = px >= order.stop_price if buy else px <= order.stop_price
            if not order.triggered:
                return False
        if order.type in ("limit", "stop_limit"):
            assert order.limit_price is not None
            return px <= order.limit_price if buy else px >= order.limit_price
        return True

    def _fill(self, order: FakeOrder, qty: Decimal, px: Decimal) -> None:
        now = self._now()
        ms = max(now // 1_000_000, self._last_ms + 1)
        self._last_ms = ms
        order.filled_qty += qty
        order.filled_value += qty * px
        order.updated_ns = now
        order.status = "filled" if order.filled_qty == order.qty else "partially_filled"
        if order.status == "filled":
            order.filled_ns = now
        sign = 1 if order.side == "buy" else -1
        self.cash -= sign * qty * px
        held, avg = self.holdings.get(order.symbol, (Decimal(0), Decimal(0)))
        new = held + sign * qty
        if new == 0:
            self.holdings.pop(order.symbol, None)
        else:
            if held == 0 or (held > 0) != (new > 0):
                avg = px
            elif (held > 0) == (sign > 0):
                avg = (abs(held) * avg + qty * px) / abs(new)
            self.holdings[order.symbol] = (new, avg)
        stamp = datetime.fromtimestamp(ms / 1000, UTC)
        self.activities.append(
            {
                "id": stamp.strftime("%Y%m%d%H%M%S") + f"{ms % 1000:03d}::{uuid.uuid4()}",
                "activity_type": "FILL",
                "transaction_time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
                "type": "fill" if order.status == "filled" else "partial_fill",
                "price": _s(px),
                "qty": _s(qty),
                "side": order.side,
                "symbol": order.symbol,
                "leaves_qty": _s(order.remaining),
                "order_id": order.id,
                "cum_qty": _s(order.filled_qty),
                "order_status": order.status,
            }
        )

    @staticmethod
    def _decimal(body: dict[str, Any], name: str, *, required: bool = False) -> Decimal | None:
        value = body.get(name)
        if value is None or value == "":
            if required:
                raise _Refusal(422, 40010001, f"{name} is required")
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _Refusal(422, 40010001, f"invalid {name}: {value}") from None
        if not number.is_finite() or number <= 0:
            raise _Refusal(422, 40010001, f"{name} must be > 0")
        return number

    def _check_price(self, name: str, value: Decimal, asset: dict[str, Any]) -> None:
        tick = Decimal(asset["price_increment"]) if "price_increment" in asset else None
        if tick is None:
            tick = Decimal("0.01") if value >= 1 else Decimal("0.0001")
        if value % tick:
            raise _Refusal(
                422,
                42210000,
                f"invalid {name} {value}. sub-penny increment does not fulfill minimum pricing criteria",
            )

    def _new_order(self, body: dict[str, Any]) -> FakeOrder:
        if self.trading_blocked or self.account_blocked:
            raise _Refusal(403, 40310000, "trading is blocked for this account")
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(cid, str) or len(cid) > 128:
            raise _Refusal(422, 40010001, "client_order_id must be no more than 128 characters")
        if cid in self.by_client:
            raise _Refusal(422, 40010001, "client_order_id must be unique")
        asset = self._asset(str(body.get("symbol", "")))
        symbol = asset["symbol"]
        if not asset["tradable"] or asset["status"] != "active":
            raise _Refusal(422, 42210000, f'asset "{symbol}" is not tradable')
        side, kind, tif = body.get("side"), body.get("type"), body.get("time_in_force")
        if side not in ("buy", "sell"):
            raise _Refusal(422, 40010001, f"invalid side: {side}")
        if kind not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise _Refusal(422, 40010001, f"invalid order type: {kind}")
        if tif not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
            raise _Refusal(422, 40010001, f"invalid time_in_force: {tif}")
        qty = self._decimal(body, "qty", required=True)
        assert qty is not None
        step = Decimal(asset.get("min_trade_increment") or (_FRACTION if asset["fractionable"] else 1))
        if qty % step:
            if not asset["fractionable"]:
                raise _Refusal(
                    422, 42210000, f"qty must be a whole number: asset {symbol} is not fractionable"
                )
            raise _Refusal(422, 42210000, f"qty {qty} is not a multiple of min_trade_increment {step}")
        if "min_order_size" in asset and qty < Decimal(asset["min_order_size"]):
            raise _Refusal(422, 42210000, f"qty must be >= {asset['min_order_size']}")
        if qty % 1 and asset["class"] == "us_equity" and tif != "day":
            raise _Refusal(422, 42210000, "fractional orders must be DAY orders")
        limit = self._decimal(body, "limit_price", required=kind in ("limit", "stop_limit"))
        stop = self._decimal(body, "stop_price", required=kind in ("stop", "stop_limit"))
        trail = self._decimal(body, "trail_percent", required=kind == "trailing_stop")
        if kind == "trailing_stop" and tif not in ("day", "gtc"):
            raise _Refusal(422, 42210000, "trailing stop orders must be DAY or GTC")
        for name, value in (("limit_price", limit), ("stop_price", stop)):
            if value is not None:
                self._check_price(name, value, asset)
        last = self._price(symbol)
        if side == "buy":
            cost = qty * (limit or stop or last)
            if cost > self._buying_power():
                raise _Refusal(403, 40310000, "insufficient buying power")
        else:
            held = self.holdings.get(symbol, (Decimal(0), Decimal(0)))[0]
            selling = sum(
                (
                    o.remaining
                    for o in self.orders.values()
                    if o.is_open and o.symbol == symbol and o.side == "sell"
                ),
                Decimal(0),
            )
            available = held - selling
            if held > 0 and qty > available:
                raise _Refusal(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {qty}, available: {available})",
                )
            if held <= 0 and not asset["shortable"]:
                raise _Refusal(403, 40310000, f"asset {symbol} cannot be sold short")
        now = self._now()
        return FakeOrder(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=kind,
            tif=tif,
            qty=qty,
            limit_price=limit,
            stop_price=stop,
            trail_percent=trail,
            submitted_ns=now,
            updated_ns=now,
        )

    def _arrive(self, order: FakeOrder) -> None:
        """Match an accepted order against the last price, then apply its time in force."""
        last = self._price(order.symbol)
        if order.tif == "fok" and not self._crosses(order, last):
            order.status, order.canceled_ns = "canceled", self._now()
            return
        if self._crosses(order, last):
            self._fill(order, order.remaining, last)
        if order.tif in ("ioc", "fok") and order.is_open:
            order.status, order.canceled_ns = "canceled", self._now()

    @staticmethod
    def _spoil(fault: Fault | None, items: list[dict[str, Any]], fields: tuple[str, str]) -> None:
        if fault is not None and items:
            corrupt(items[min(fault.row, len(items) - 1)], fault.how, fields)

    # ---- trading: handlers -------------------------------------------------------------------

    async def account(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        with self._state:
            value = sum(
                (q * self._price(s) for s, (q, _a) in self.holdings.items()),
                Decimal(0),
            )
            equity = self.cash + value
            body: dict[str, Any] = {
                "id": "904837e3-3b76-47ec-b432-046db621571b",
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "cash": _s(self.cash),
                "buying_power": _s(self._buying_power()),
                "regt_buying_power": _s(self._buying_power()),
                "non_marginable_buying_power": _s(self._buying_power()),
                "portfolio_value": _s(equity),
                "equity": _s(equity),
                "last_equity": _s(START_CASH),
                "multiplier": "1",
                "pattern_day_trader": False,
                "trading_blocked": self.trading_blocked,
                "transfers_blocked": False,
                "account_blocked": self.account_blocked,
                "trade_suspended_by_user": False,
                "shorting_enabled": True,
                "created_at": "2024-01-02T15:04:05.000000Z",
            }
        self._spoil(self.malformed(request), [body], ("buying_power", "cash"))
        return web.json_response(body)

    async def place(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return self._err(400, 40010000, "request body format is invalid")
        if not isinstance(body, dict):
            return self._err(400, 40010000, "request body format is invalid")
        with self._state:
            try:
                order = self._new_order(body)
            except _Refusal as refusal:
                return self._err(refusal.status, refusal.code, refusal.message)
            self.orders[order.id] = order
            self.by_client[order.client_order_id] = order.id
            self._arrive(order)
            self.accepted.append(order.json())
            answer = order.json()
        self._spoil(self.malformed(request), [answer], ("filled_qty", "qty"))
        return web.json_response(answer)

    async def by_client_id(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        cid = request.query.get("client_order_id", "")
        with self._state:
            order_id = self.by_client.get(cid)
            if order_id is not None and self._hide > 0:
                self._hide -= 1
                order_id = None
            if order_id is None:
                return self._err(404, 40410000, "order not found")
            answer = self.orders[order_id].json()
        self._spoil(self.malformed(request), [answer], ("filled_qty", "qty"))
        return web.json_response(answer)

    async def get_order(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        with self._state:
            order = self.orders.get(request.match_info["order_id"])
            if order is None:
                return self._err(404, 40410000, "order not found")
            answer = order.json()
        self._spoil(self.malformed(request), [answer], ("filled_qty", "qty"))
        return web.json_response(answer)

    async def cancel(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        with self._state:
            order = self.orders.get(request.match_info["order_id"])
            if order is None:
                return self._err(404, 40410000, "order not found")
            if not order.is_open:
                return self._err(422, 42210000, "order is not cancelable")
            order.status = "canceled"
            order.canceled_ns = order.updated_ns = self._now()
        return web.Response(status=204)

    async def list_orders(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        q = request.query
        status = q.get("status", "open")
        try:
            limit = int(q.get("limit", "50"))
            after = _parse_time(q["after"]) if "after" in q else None
            until = _parse_time(q["until"]) if "until" in q else None
        except ValueError:
            return self._err(422, 40010001, "invalid limit, after or until")
        if status not in ("open", "closed", "all") or not 1 <= limit <= 500:
            return self._err(422, 40010001, "invalid status or limit")
        symbols = {_key(s) for s in q["symbols"].split(",")} if q.get("symbols") else None
        with self._state:
            chosen = [
                o
                for o in self.orders.values()
                if (status == "all" or o.is_open == (status == "open"))
                and (symbols is None or _key(o.symbol) in symbols)
                and (after is None or o.submitted_ns > after)
                and (until is None or o.submitted_ns < until)
            ]
            chosen.sort(key=lambda o: o.submitted_ns, reverse=q.get("direction", "desc") == "desc")
            answer = [o.json() for o in chosen[:limit]]
        self._spoil(self.malformed(request), answer, ("filled_qty", "qty"))
        return web.json_response(answer)

    async def list_activities(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        kind = request.match_info["activity_type"]
        if kind not in ("FILL", "TRANS", "DIV", "CFEE", "FEE"):
            return self._err(422, 40010001, f"invalid activity type: {kind}")
        q = request.query
        try:
            page_size = int(q.get("page_size", "100"))
            after = _parse_time(q["after"]) if "after" in q else None
            until = _parse_time(q["until"]) if "until" in q else None
        except ValueError:
            return self._err(422, 40010001, "invalid page_size, after or until")
        if not 1 <= page_size <= 100:
            return self._err(422, 40010001, "page_size must be between 1 and 100")
        descending = q.get("direction", "desc") == "desc"
        token = q.get("page_token")
        with self._state:
            rows = [
                dict(a)
                for a in (self.activities if kind == "FILL" else [])
                if (after is None or _parse_time(a["transaction_time"]) > after)
                and (until is None or _parse_time(a["transaction_time"]) < until)
                and (token is None or (a["id"] < token if descending else a["id"] > token))
            ]
            rows.sort(key=lambda a: a["id"], reverse=descending)
            page = rows[:page_size]
            if self._reorder > 0 and page:
                self._reorder -= 1
                page.reverse()
            if self._duplicate > 0 and page:
                self._duplicate -= 1
                page = [dict(a) for a in page for _ in range(2)]
        self._spoil(self.malformed(request), page, ("price", "qty"))
        return web.json_response(page)

    def _position_json(self, symbol: str, qty: Decimal, avg: Decimal) -> dict[str, Any]:
        price = self._price(symbol)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": _key(symbol),
            "exchange": self._asset(symbol)["exchange"],
            "asset_class": "crypto" if "/" in symbol else "us_equity",
            "avg_entry_price": _s(avg),
            "qty": _s(qty),
            "qty_available": _s(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": _s(qty * price),
            "cost_basis": _s(qty * avg),
            "unrealized_pl": _s((price - avg) * qty),
            "current_price": _s(price),
            "lastday_price": _s(price),
            "change_today": "0",
        }

    async def list_positions(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        with self._state:
            answer = [self._position_json(s, q, a) for s, (q, a) in sorted(self.holdings.items())]
        self._spoil(self.malformed(request), answer, ("avg_entry_price", "qty"))
        return web.json_response(answer)

    async def get_position(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        wanted = _key(request.match_info["symbol"])
        with self._state:
            for symbol, (qty, avg) in self.holdings.items():
                if _key(symbol) == wanted:
                    answer = self._position_json(symbol, qty, avg)
                    break
            else:
                return self._err(404, 40410000, "position does not exist")
        self._spoil(self.malformed(request), [answer], ("avg_entry_price", "qty"))
        return web.json_response(answer)

    async def get_asset(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        symbol = request.match_info["symbol"]
        try:
            answer = self._asset(symbol)
        except _Refusal:
            return self._err(404, 40410000, f"asset not found for {symbol}")
        fault = self.malformed(request)
        if fault is not None:
            answer.setdefault("price_increment", "0.01")
            answer.setdefault("min_order_size", "1")
            corrupt(answer, fault.how, ("price_increment", "min_order_size"))
        return web.json_response(answer)
