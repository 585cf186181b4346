"""Fake Binance spot REST API (``/api/v3``) serving the real BTCUSDT/ETHUSDT sample klines.

* ``GET /api/v3/exchangeInfo``: the listed symbols with Binance's filters (what ccxt parses).
* ``GET /api/v3/klines``: ``symbol``, ``interval``, ``startTime``, ``endTime`` (ms, both
  inclusive on the open time), ``limit`` (default 500, max 1000). With ``startTime`` the first
  ``limit`` klines from it; with only ``endTime`` the last ``limit`` up to it; with neither the
  last ``limit``. Rows are Binance's 12-element arrays with decimal strings.
* ``GET /api/v3/trades`` and ``GET /api/v3/depth``: no trade or book sample exists, so these
  are synthesized deterministically around the last sample bar (prices inside its range).
* Errors in Binance's shape: ``{"code": -1121, "msg": "Invalid symbol."}`` with HTTP 400.
"""

from __future__ import annotations

from typing import Any

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


class FakeBinance(FakeServer):
    vendor = "binance"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/trades", self.trades),
            web.get("/api/v3/depth", self.depth),
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
            symbols.append(symbol_info(name, base, quote))
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


def symbol_info(symbol: str, base: str, quote: str) -> dict[str, Any]:
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
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
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
