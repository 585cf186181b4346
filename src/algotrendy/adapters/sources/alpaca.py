"""Alpaca market data v2 stock bars (``GET /v2/stocks/{symbol}/bars``) over httpx.

Authentication is Alpaca's header pair ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` (never in
the URL, so never in a log line). Pagination is Alpaca's own: an answer that carries a
``next_page_token`` is remembered, and the caller's next page (``start_ns`` = the last bar + one
timeframe, same end and limit) is fetched with that token and the original query, as Alpaca
requires. Any other request is a plain ``start``/``end``/``limit`` query, which Alpaca answers
with the first ``limit`` bars from ``start``.

Daily and weekly bars, which Alpaca stamps at midnight New York (04:00 or 05:00 UTC), are
relabelled to the session date at 00:00 UTC. ``bars: null`` (a symbol with no data in the range)
is an empty page.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

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
    iso_to_ns,
    rfc3339,
    session_label,
)

_TF = Timeframe.parse
_TIMEFRAMES = {
    _TF("1m"): "1Min",
    _TF("5m"): "5Min",
    _TF("15m"): "15Min",
    _TF("30m"): "30Min",
    _TF("1h"): "1Hour",
    _TF("4h"): "4Hour",
    _TF("1d"): "1Day",
    _TF("1w"): "1Week",
}
_SYMBOL = re.compile(r"[A-Za-z0-9.\-]{1,20}")


class AlpacaSource(HttpSource):
    NAME = "alpaca"
    DEFAULT_BASE_URL = "https://data.alpaca.markets"
    DEFAULT_RATE_LIMIT = 200 / 60  # the free plan's 200 requests per minute
    DEFAULT_PAGE_LIMIT = 10_000
    ASSET_TYPES = frozenset({AssetType.STOCK, AssetType.ETF})
    TIMEFRAMES = frozenset(_TIMEFRAMES)

    def __init__(
        self, *, key_id: str, secret_key: str, feed: str = "iex", adjustment: str = "raw", **kwargs: Any
    ) -> None:
        headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key, "Accept": "application/json"}
        super().__init__(headers=headers, **kwargs)
        self._feed, self._adjustment = feed, adjustment
        self._next: Continuations[tuple[str, dict[str, Any]]] = Continuations()

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
        continued = self._next.pop(key)
        query: dict[str, Any]
        if continued is not None:
            token, query = continued
            params = {**query, "page_token": token}
        else:
            query = {
                "timeframe": _TIMEFRAMES[timeframe],
                "start": rfc3339(start_ns),
                "limit": limit,
                "adjustment": self._adjustment,
                "feed": self._feed,
                "sort": "asc",
            }
            if end_ns is not None:
                query["end"] = rfc3339(end_ns - 1)  # Alpaca's end is inclusive
            params = query
        body = await self._get_json(f"/v2/stocks/{quote(symbol, safe='')}/bars", symbol=symbol, params=params)
        if not isinstance(body, dict):
            raise bad_upstream(self.name, symbol, "the answer is not an object")
        raw = body.get("bars")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise bad_upstream(self.name, symbol, "'bars' is not a list")
        daily = not timeframe.intraday

        def parse(bar: Any) -> Parsed:
            ts = iso_to_ns(bar["t"], "t")
            if daily:
                ts = session_label(ts, NEW_YORK)
            return ts, [bar.get(k) for k in ("o", "h", "l", "c", "v")]

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
        next_token = body.get("next_page_token")
        if isinstance(next_token, str) and next_token and raw and len(page) == len(raw) and page.clean:
            next_start = int(page.ts[-1]) + timeframe.nanos
            self._next.put((symbol, timeframe.seconds, next_start, end_ns, limit), (next_token, query))
        return page
