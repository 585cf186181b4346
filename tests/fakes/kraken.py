"""Fake Kraken public REST API serving the real BTCUSDT 1h sample as pair ``XBTUSDT``.

* ``GET /0/public/AssetPairs``: the pair as Kraken lists it (what ccxt parses into a market).
* ``GET /0/public/OHLC?pair=&interval=<minutes>&since=<seconds>``: like the real endpoint, only
  the *latest 720* intervals are ever served (here: the last 720 of the sample); ``since`` keeps
  those after it. Rows are ``[time, open, high, low, close, vwap, volume, count]`` with decimal
  strings, under ``result[<pair>]`` next to ``result.last``.
* Errors are Kraken's: HTTP 200 with ``{"error": ["EQuery:Unknown asset pair"]}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.binance import corrupt_row
from tests.fakes.data import NS_PER_S, sample
from tests.fakes.server import FakeServer

PAIRS = {
    "XBTUSDT": ("XXBT", "USDT", "XBT/USDT", "BTCUSDT_1h_binance"),
    "ETHUSDT": ("XETH", "USDT", "ETH/USDT", "ETHUSDT_1h_binance"),
}
HISTORY = 720


class FakeKraken(FakeServer):
    vendor = "kraken"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/0/public/AssetPairs", self.asset_pairs), web.get("/0/public/OHLC", self.ohlc)]

    def error_body(self, status: int, message: str) -> Any:
        return {"error": ["EAPI:Rate limit exceeded" if status == 429 else "EService:Unavailable"]}

    async def asset_pairs(self, _request: web.Request) -> web.Response:
        result = {}
        for pair, (base, quote, wsname, _) in PAIRS.items():
            result[pair] = {
                "altname": pair,
                "wsname": wsname,
                "aclass_base": "currency",
                "base": base,
                "aclass_quote": "currency",
                "quote": quote,
                "lot": "unit",
                "cost_decimals": 8,
                "pair_decimals": 1,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [2, 3],
                "leverage_sell": [2, 3],
                "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24]],
                "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.00005",
                "costmin": "0.5",
                "tick_size": "0.1",
                "status": "online",
            }
        return web.json_response({"error": [], "result": result})

    async def ohlc(self, request: web.Request) -> web.Response:
        pair = request.query.get("pair", "")
        if pair not in PAIRS:
            return web.json_response({"error": ["EQuery:Unknown asset pair"]})
        if request.query.get("interval", "1") != "60":
            return web.json_response({"error": [], "result": {pair: [], "last": 0}})
        data = sample(PAIRS[pair][3])
        first = max(0, len(data) - HISTORY)
        secs = data.ts // NS_PER_S
        since = int(request.query.get("since", "0") or 0)
        i = max(first, int(np.searchsorted(secs, since, side="right")))
        rows: list[Any] = []
        for k in range(i, len(data)):
            o, h, lo, c, v = data.rows[k]
            vwap = (float(h) + float(lo) + float(c)) / 3
            rows.append([int(secs[k]), o, h, lo, c, f"{vwap:.1f}", v, int(float(v) * 7) + 1])
        fault = self.malformed(request)
        if fault is not None and rows:
            at = min(fault.row, len(rows) - 1)
            rows[at] = corrupt_row(rows[at], fault.how)
        return web.json_response({"error": [], "result": {pair: rows, "last": int(secs[-1])}})
