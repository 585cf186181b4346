"""Polygon.io aggregates v2 (``GET /v2/aggs/ticker/{ticker}/range/{n}/{span}/{from}/{to}``).

The API key travels in the ``Authorization: Bearer`` header, which Polygon accepts in place of
the ``apiKey`` query parameter, so the key never appears in a URL or a log line. Pagination is
Polygon's ``next_url``: when an answer carries one, the caller's next page (``start_ns`` = the
last bar + one timeframe, same end and limit) follows it. ``next_url`` is untrusted: it must
point at the configured origin, or the page is refused (``bad_upstream_data``) rather than
sending the key to another host.

Daily and weekly aggregates (stamped at midnight New York) are relabelled to the session date
at 00:00 UTC; ranges of daily bars are asked by date, intraday ranges by epoch milliseconds.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from algotrendy.core.market import AssetType, Timeframe

from ._http import Continuations, HttpSource
from .base import (
    NEW_YORK,
    Parsed,
    SourceBars,
    bad_upstream,
    build_page,
    check_symbol,
    check_timeframe,
    integer,
    ns_to_datetime,
    session_label,
)

_TF = Timeframe.parse
_SPANS = {
    _TF("1m"): (1, "minute"),
    _TF("5m"): (5, "minute"),
    _TF("15m"): (15, "minute"),
    _TF("30m"): (30, "minute"),
    _TF("1h"): (1, "hour"),
    _TF("4h"): (4, "hour"),
    _TF("1d"): (1, "day"),
    _TF("1w"): (1, "week"),
}
_SYMBOL = re.compile(r"[A-Za-z0-9.:\-]{1,24}")
_NS_PER_MS = 1_000_000


class PolygonSource(HttpSource):
    NAME = "polygon"
    DEFAULT_BASE_URL = "https://api.polygon.io"
    DEFAULT_RATE_LIMIT = 5 / 60  # the free plan's 5 calls per minute
    DEFAULT_PAGE_LIMIT = 50_000
    ASSET_TYPES = frozenset({AssetType.STOCK, AssetType.ETF, AssetType.INDEX})
    TIMEFRAMES = frozenset(_SPANS)

    def __init__(self, *, api_key: str, adjusted: bool = False, **kwargs: Any) -> None:
        super().__init__(headers={"Authorization": f"Bearer {api_key}"}, **kwargs)
        self._adjusted = "true" if adjusted else "false"
        self._next: Continuations[str] = Continuations()

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> SourceBars:
        check_timeframe(self.name, timeframe, self.TIMEFRAMES)
        check_symbol(self.name, symbol, _SYMBOL)
        limit = min(limit or self.page_limit, self.page_limit)
        key = (symbol, timeframe.seconds, start_ns, end_ns, limit)
        next_url = self._next.pop(key)
        params: dict[str, Any] | None = None
        if next_url is not None:
            url = next_url
        else:
            last_ns = (end_ns if end_ns is not None else self._now_ns()) - 1
            multiplier, span = _SPANS[timeframe]
            if timeframe.intraday:
                first, last = str(start_ns // _NS_PER_MS), str(last_ns // _NS_PER_MS)
            else:
                first = ns_to_datetime(start_ns).date().isoformat()
                last = ns_to_datetime(last_ns).date().isoformat()
            url = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/{multiplier}/{span}/{first}/{last}"
            params = {"adjusted": self._adjusted, "sort": "asc", "limit": limit}
        body = await self._get_json(url, symbol=symbol, params=params)
        if not isinstance(body, dict):
            raise bad_upstream(self.name, symbol, "the answer is not an object")
        if body.get("status") == "ERROR":
            raise bad_upstream(self.name, symbol, f"status ERROR: {body.get('error')!r}")
        raw = body.get("results") or []
        if not isinstance(raw, list):
            raise bad_upstream(self.name, symbol, "'results' is not a list")
        daily = not timeframe.intraday

        def parse(agg: Any) -> Parsed:
            ts = integer(agg["t"], "t") * _NS_PER_MS
            if daily:
                ts = session_label(ts, NEW_YORK)
            return ts, [agg.get(k) for k in ("o", "h", "l", "c", "v")]

        page = build_page(
            raw,
            parse,
            source=self.name,
            symbol=symbol,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=limit,
            strict=self._strict,
        )
        follow = body.get("next_url")
        if isinstance(follow, str) and follow:
            self._check_origin(follow, symbol)
            if raw and len(page) == len(raw) and page.clean:
                next_start = int(page.ts[-1]) + timeframe.nanos
                self._next.put((symbol, timeframe.seconds, next_start, end_ns, limit), follow)
        return page

    def _check_origin(self, url: str, symbol: str) -> None:
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL:
            raise bad_upstream(self.name, symbol, "next_url is not a URL") from None
        base = self._client.base_url
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise bad_upstream(self.name, symbol, f"next_url points at another host ({target.host!r})")
