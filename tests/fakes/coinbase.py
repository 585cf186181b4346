"""Fake Coinbase Exchange public REST API (ccxt's ``coinbaseexchange``), real BTCUSDT 1h sample
served as product ``BTC-USDT``.

* ``GET /products``: the products (what ccxt parses into markets).
* ``GET /products/{id}/candles?granularity=&start=&end=``: ``start``/``end`` ISO-8601, both
  inclusive, at most 300 candles per request (more is HTTP 400, as at Coinbase); rows
  ``[time, low, high, open, close, volume]`` as JSON numbers, **newest first**.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.data import NS_PER_S, sample
from tests.fakes.server import FakeServer

PRODUCTS = {"BTC-USDT": "BTCUSDT_1h_binance", "ETH-USDT": "ETHUSDT_1h_binance"}
GRANULARITIES = {60, 300, 900, 3600, 21600, 86400}
MAX_CANDLES = 300


def _iso_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class FakeCoinbase(FakeServer):
    vendor = "coinbase"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/products", self.products), web.get("/products/{id}/candles", self.candles)]

    async def products(self, _request: web.Request) -> web.Response:
        out = []
        for pid in PRODUCTS:
            base, quote = pid.split("-")
            out.append(
                {
                    "id": pid,
                    "base_currency": base,
                    "quote_currency": quote,
                    "quote_increment": "0.01",
                    "base_increment": "0.00000001",
                    "display_name": f"{base}/{quote}",
                    "min_market_funds": "1",
                    "margin_enabled": False,
                    "post_only": False,
                    "limit_only": False,
                    "cancel_only": False,
                    "status": "online",
                    "status_message": "",
                    "auction_mode": False,
                    "trading_disabled": False,
                    "fx_stablecoin": False,
                    "max_slippage_percentage": "0.03000000",
                }
            )
        return web.json_response(out)

    async def candles(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        if pid not in PRODUCTS:
            return web.json_response({"message": "NotFound"}, status=404)
        try:
            granularity = int(request.query.get("granularity", "60"))
        except ValueError:
            return web.json_response({"message": "Unsupported granularity"}, status=400)
        if granularity not in GRANULARITIES:
            return web.json_response({"message": "Unsupported granularity"}, status=400)
        data = sample(PRODUCTS[pid])
        secs = data.ts // NS_PER_S
        try:
            start = _iso_seconds(request.query["start"]) if "start" in request.query else None
            end = _iso_seconds(request.query["end"]) if "end" in request.query else None
        except ValueError:
            return web.json_response({"message": "Invalid start or end"}, status=400)
        if start is not None and end is not None and (end - start) // granularity + 1 > MAX_CANDLES:
            return web.json_response(
                {
                    "message": "granularity too small for the requested time range. "
                    "Count of aggregations requested exceeds 300"
                },
                status=400,
            )
        if granularity != 3600:
            return web.json_response([])
        if start is None:
            i, j = max(0, len(secs) - MAX_CANDLES), len(secs)
        else:
            i = int(np.searchsorted(secs, start, side="left"))
            j = int(np.searchsorted(secs, end, side="right")) if end is not None else i + MAX_CANDLES
        rows: list[Any] = []
        for k in range(j - 1, i - 1, -1):
            o, h, lo, c, v = (float(x) for x in data.rows[k])
            rows.append([int(secs[k]), lo, h, o, c, v])
        fault = self.malformed(request)
        if fault is not None and rows:
            at = min(fault.row, len(rows) - 1)
            row = rows[at]
            if fault.how == "nan":
                row[3] = float("nan")
            elif fault.how == "negative":
                row[5] = -5.0
            elif fault.how == "missing":
                rows[at] = row[:4]
            elif fault.how == "null":
                row[4] = None
            elif fault.how == "high_lt_low":
                row[1], row[2] = row[2], row[1]
        return web.json_response(rows)
