"""Fake Yahoo Finance v8 chart API serving the real daily samples (SPY, AAPL, MSFT, GOOG, ^GSPC).

``GET /v8/finance/chart/{symbol}?period1=&period2=&interval=1d``: Yahoo's ``chart.result[0]``
shape (``meta``, ``timestamp``, ``indicators.quote[0]`` columns, ``indicators.adjclose``); daily
bars stamped at the session's 09:30 New York open, as Yahoo does; ``period1 <= t < period2``.
A range without bars has no ``timestamp`` key and an empty quote object. An unknown symbol is
HTTP 404 with ``chart.error.code = "Not Found"``; an unsupported interval is 422.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.data import STOCK_DAILY, stock_daily
from tests.fakes.server import FakeServer

VALID = ["1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo"]


class FakeYahoo(FakeServer):
    vendor = "yahoo"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v8/finance/chart/{symbol}", self.chart)]

    def error_body(self, status: int, message: str) -> Any:
        return {"chart": {"result": None, "error": {"code": "Internal Server Error", "description": message}}}

    @staticmethod
    def _chart_error(status: int, code: str, description: str) -> web.Response:
        return web.json_response(
            {"chart": {"result": None, "error": {"code": code, "description": description}}}, status=status
        )

    async def chart(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if symbol not in STOCK_DAILY:
            return self._chart_error(404, "Not Found", "No data found, symbol may be delisted")
        interval = request.query.get("interval", "1d")
        if interval not in VALID:
            return self._chart_error(
                422,
                "Unprocessable Entity",
                f"Invalid input - interval={interval} is not supported. "
                f"Valid intervals: [{', '.join(VALID)}]",
            )
        data, _midnight, opens = stock_daily(symbol)
        p1 = int(request.query.get("period1", "0"))
        p2 = int(request.query.get("period2", str(2**40)))
        i, j = (int(x) for x in np.searchsorted(opens, [p1, p2], side="left"))
        if interval != "1d":
            i = j = 0
        meta = {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "PCX",
            "fullExchangeName": "NYSEArca",
            "instrumentType": "ETF" if symbol == "SPY" else "EQUITY",
            "firstTradeDate": int(opens[0]),
            "regularMarketTime": int(opens[-1]) + 23_400,
            "hasPrePostMarketData": True,
            "gmtoffset": -14400,
            "timezone": "EDT",
            "exchangeTimezoneName": "America/New_York",
            "regularMarketPrice": float(data.rows[-1][3]),
            "chartPreviousClose": float(data.rows[-2][3]),
            "priceHint": 2,
            "dataGranularity": interval,
            "range": "",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        result: dict[str, Any] = {"meta": meta}
        if j > i:
            cols: dict[str, list[Any]] = {"open": [], "high": [], "low": [], "close": [], "volume": []}
            for k in range(i, j):
                o, h, lo, c, v = data.rows[k]
                cols["open"].append(float(o))
                cols["high"].append(float(h))
                cols["low"].append(float(lo))
                cols["close"].append(float(c))
                cols["volume"].append(int(float(v)))
            fault = self.malformed(request)
            if fault is not None:
                at = min(fault.row, j - i - 1)
                if fault.how == "nan":
                    cols["open"][at] = float("nan")
                elif fault.how == "negative":
                    cols["volume"][at] = -100
                elif fault.how in ("null", "missing"):
                    cols["close"][at] = None
                elif fault.how == "high_lt_low":
                    cols["high"][at], cols["low"][at] = cols["low"][at], cols["high"][at]
                elif fault.how == "ragged":
                    cols["close"].pop()
            result["timestamp"] = [int(t) for t in opens[i:j]]
            result["indicators"] = {"quote": [cols], "adjclose": [{"adjclose": list(cols["close"])}]}
        else:
            result["indicators"] = {"quote": [{}], "adjclose": [{}]}
        return web.json_response({"chart": {"result": [result], "error": None}})
