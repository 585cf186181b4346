"""Fake Alpaca market data v2 (``GET /v2/stocks/{symbol}/bars``) serving the real daily samples.

Checks Alpaca's key headers (``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``; wrong or missing ->
401). ``timeframe`` (``1Day`` has data; other valid ones answer no bars), ``start``/``end``
(RFC 3339 or a date; both inclusive), ``limit`` (default 1000, max 10000), ``page_token``.
Daily bars are stamped at midnight New York in UTC (``2020-08-28T04:00:00Z``), as Alpaca does.
When more bars remain, ``next_page_token`` is the base64 of ``SYMBOL|D|<next t>``, the shape of
Alpaca's tokens. A symbol without data answers ``"bars": null``.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.data import STOCK_DAILY, stock_daily
from tests.fakes.server import FakeServer

KEY_ID, SECRET = "PKTEST0000000000", "fake-alpaca-secret"
_TF = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")


def _seconds(text: str) -> int:
    if len(text) == 10:
        text += "T00:00:00Z"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeAlpaca(FakeServer):
    vendor = "alpaca"

    def __init__(self, key_id: str = KEY_ID, secret: str = SECRET) -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/stocks/{symbol}/bars", self.bars)]

    def error_body(self, status: int, message: str) -> Any:
        return {"code": 42910000 if status == 429 else 50010000, "message": message}

    @staticmethod
    def _err(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    async def bars(self, request: web.Request) -> web.Response:
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return self._err(401, 40110000, "request is not authorized")
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
