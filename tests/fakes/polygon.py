"""Fake Polygon.io aggregates v2 serving the real daily samples.

``GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}``: the key as
``apiKey`` query parameter or ``Authorization: Bearer`` (both accepted, as at Polygon; else 401
``{"status": "ERROR", "error": ...}``). ``from``/``to`` are dates (inclusive, by New York
session date) or epoch milliseconds. Daily aggregates are stamped at midnight New York (ms).
``limit`` (default 5000, max 50000) caps the answer; when more remain, ``next_url`` is an
absolute URL on this server carrying a ``cursor`` (and no key, as at Polygon).
"""

from __future__ import annotations

import base64
from datetime import date, datetime, time
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import numpy as np
from aiohttp import web

from tests.fakes.data import STOCK_DAILY, stock_daily
from tests.fakes.server import FakeServer

API_KEY = "fake-polygon-key"
NEW_YORK = ZoneInfo("America/New_York")


def _bound_ms(text: str, *, end: bool) -> int:
    """A ``from``/``to`` path value as epoch ms (dates cover the whole New York session day)."""
    if text.isdigit():
        return int(text)
    midnight = int(datetime.combine(date.fromisoformat(text), time(0), NEW_YORK).timestamp())
    return midnight * 1000 + (86_400_000 - 1 if end else 0)


class FakePolygon(FakeServer):
    vendor = "polygon"

    def __init__(self, api_key: str = API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.request_counter = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}", self.aggs)]

    def error_body(self, status: int, message: str) -> Any:
        return {"status": "ERROR", "request_id": "fake", "error": message}

    async def aggs(self, request: web.Request) -> web.Response:
        self.request_counter += 1
        request_id = f"fake{self.request_counter:08d}"
        auth = request.headers.get("Authorization", "")
        key = request.query.get("apiKey") or (auth[7:] if auth.startswith("Bearer ") else None)
        if key is None:
            return web.json_response(
                {"status": "ERROR", "request_id": request_id, "error": "API Key was not provided"}, status=401
            )
        if key != self.api_key:
            return web.json_response(
                {"status": "ERROR", "request_id": request_id, "error": "Unknown API Key"}, status=401
            )
        m = request.match_info
        ticker, span = m["ticker"], m["timespan"]
        q = dict(request.query)
        if "cursor" in q:
            q.update({k: v[0] for k, v in parse_qs(base64.urlsafe_b64decode(q["cursor"]).decode()).items()})
        try:
            first, last = _bound_ms(m["start"], end=False), _bound_ms(m["end"], end=True)
            limit = int(q.get("limit", "5000"))
        except ValueError:
            return web.json_response(
                {"status": "ERROR", "request_id": request_id, "error": "Could not parse the time range"},
                status=400,
            )
        if not 1 <= limit <= 50_000:
            return web.json_response(
                {"status": "ERROR", "request_id": request_id, "error": "limit must be between 1 and 50000"},
                status=400,
            )
        body: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": 0,
            "resultsCount": 0,
            "adjusted": q.get("adjusted", "true") == "true",
            "status": "OK",
            "request_id": request_id,
            "count": 0,
        }
        if ticker not in STOCK_DAILY or (m["multiplier"], span) != ("1", "day"):
            return web.json_response(body)
        data, midnight, _opens = stock_daily(ticker)
        ms = midnight * 1000
        i = int(np.searchsorted(ms, first, side="left"))
        j = int(np.searchsorted(ms, last, side="right"))
        stop = min(j, i + limit)
        results: list[dict[str, Any]] = []
        for k in range(i, stop):
            o, h, lo, c, v = (float(x) for x in data.rows[k])
            results.append(
                {
                    "v": v,
                    "vw": round((h + lo + c) / 3, 4),
                    "o": o,
                    "c": c,
                    "h": h,
                    "l": lo,
                    "t": int(ms[k]),
                    "n": int(v) // 250 + 1,
                }
            )
        fault = self.malformed(request)
        if fault is not None and results:
            agg = results[min(fault.row, len(results) - 1)]
            if fault.how == "nan":
                agg["o"] = float("nan")
            elif fault.how == "negative":
                agg["v"] = -1.0
            elif fault.how == "missing":
                del agg["c"]
            elif fault.how == "null":
                agg["l"] = None
            elif fault.how == "high_lt_low":
                agg["h"], agg["l"] = agg["l"], agg["h"]
        body.update(queryCount=len(results), resultsCount=len(results), count=len(results), results=results)
        if stop < j:
            cursor = base64.urlsafe_b64encode(
                f"limit={limit}&sort=asc&adjusted={q.get('adjusted', 'true')}".encode()
            ).decode()
            body["next_url"] = (
                f"http://{request.host}/v2/aggs/ticker/{ticker}/range/1/day/"
                f"{int(ms[stop])}/{last}?cursor={cursor}"
            )
        return web.json_response(body)
