"""Yahoo Finance bars from the v8 chart API (``GET /v8/finance/chart/{symbol}``) over httpx.

Yahoo has no page size: it answers a ``period1``..``period2`` window in one go. A page is
therefore a window sized to hold about ``limit`` bars (calendar time x a trading-hours factor,
never wider than Yahoo allows for the interval), capped to ``limit`` bars. A window with no bars
(a long halt) is stepped over, up to ``end_ns``; intraday history starts at Yahoo's horizon
(1m: 30 days, 5m-30m: 60 days, 1h: 730 days), so that stepping is bounded.

Daily and weekly bars are relabelled from Yahoo's session-open timestamp to the session date at
00:00 UTC, using the exchange time zone Yahoo reports (``meta.exchangeTimezoneName``). Rows with
a ``null`` in any OHLCV column (Yahoo's way of saying "no print") are rejected like any other
bad row (see ``base``).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from algotrendy.core.errors import NotFound
from algotrendy.core.market import NS_PER_SECOND, AssetType, Timeframe

from ._http import HttpSource
from .base import (
    NEW_YORK,
    Parsed,
    SourceBars,
    bad_upstream,
    build_page,
    check_symbol,
    check_timeframe,
    integer,
    make_bars,
    session_label,
)

_TF = Timeframe.parse
_INTERVALS = {
    _TF("1m"): "1m",
    _TF("5m"): "5m",
    _TF("15m"): "15m",
    _TF("30m"): "30m",
    _TF("1h"): "60m",
    _TF("1d"): "1d",
    _TF("1w"): "1wk",
}
_DAY = 86_400 * NS_PER_SECOND
_SPAN = {
    _TF("1m"): 7 * _DAY,
    _TF("5m"): 59 * _DAY,
    _TF("15m"): 59 * _DAY,
    _TF("30m"): 59 * _DAY,
    _TF("1h"): 729 * _DAY,
}
"""The widest window Yahoo serves per request at an interval (intraday)."""
_HORIZON = {
    _TF("1m"): 29 * _DAY,
    _TF("5m"): 59 * _DAY,
    _TF("15m"): 59 * _DAY,
    _TF("30m"): 59 * _DAY,
    _TF("1h"): 729 * _DAY,
}
"""How far back Yahoo keeps intraday bars."""
_SYMBOL = re.compile(r"[A-Za-z0-9^=._\-]{1,32}")


class YahooSource(HttpSource):
    NAME = "yahoo"
    DEFAULT_BASE_URL = "https://query1.finance.yahoo.com"
    DEFAULT_RATE_LIMIT = 0.5
    DEFAULT_PAGE_LIMIT = 5000
    ASSET_TYPES = frozenset(AssetType)
    TIMEFRAMES = frozenset(_INTERVALS)

    def __init__(self, **kwargs: Any) -> None:
        headers = {
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AlgoTrendy/0.1",
            "Accept": "application/json",
        }
        headers.update(kwargs.pop("headers", None) or {})
        super().__init__(headers=headers, **kwargs)

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
        now = self._now_ns()
        end = min(end_ns, now) if end_ns is not None else now
        start = start_ns
        if timeframe.intraday:
            start = max(start, now - _HORIZON[timeframe])
        factor = 6.0 if timeframe.intraday else 1.6  # trading hours / calendar time, with margin
        span = math.ceil(limit * factor) * timeframe.nanos
        span = min(span, _SPAN.get(timeframe, span))
        while start < end:
            window_end = min(end, start + span)
            body = await self._get_json(
                f"/v8/finance/chart/{quote(symbol, safe='')}",
                symbol=symbol,
                params={
                    "period1": start // NS_PER_SECOND,
                    "period2": -(-window_end // NS_PER_SECOND),
                    "interval": _INTERVALS[timeframe],
                    "includePrePost": "false",
                    "events": "div,split",
                },
            )
            page = self._page(body, symbol, timeframe, start_ns=start_ns, end_ns=end, limit=limit)
            if len(page) or page.rejected:
                return page
            start = window_end
            if start < end:
                await self._pause()
        return make_bars([])

    def _page(
        self, body: Any, symbol: str, timeframe: Timeframe, *, start_ns: int, end_ns: int, limit: int
    ) -> SourceBars:
        chart = body.get("chart") if isinstance(body, dict) else None
        if not isinstance(chart, dict):
            raise bad_upstream(self.name, symbol, "no 'chart' object")
        error = chart.get("error")
        if error:
            description = error.get("description") if isinstance(error, dict) else error
            if isinstance(error, dict) and error.get("code") == "Not Found":
                raise NotFound(f"{self.name} has no data for symbol {symbol!r}: {description}")
            raise bad_upstream(self.name, symbol, f"chart error {description!r}")
        results = chart.get("result")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise bad_upstream(self.name, symbol, "no chart result")
        result = results[0]
        stamps = result.get("timestamp") or []
        quotes = (result.get("indicators") or {}).get("quote") or [{}]
        if not isinstance(stamps, list) or not isinstance(quotes, list) or not isinstance(quotes[0], dict):
            raise bad_upstream(self.name, symbol, "timestamp/indicators have the wrong shape")
        columns = [quotes[0].get(k) or [] for k in ("open", "high", "low", "close", "volume")]
        if stamps and any(not isinstance(c, list) or len(c) != len(stamps) for c in columns):
            raise bad_upstream(self.name, symbol, "quote columns do not match the timestamps")
        tz = _zone(result.get("meta"))
        daily = not timeframe.intraday

        def parse(raw: tuple[Any, ...]) -> Parsed:
            ts = integer(raw[0], "timestamp") * NS_PER_SECOND
            if daily:
                ts = session_label(ts, tz)
            return ts, raw[1:]

        return build_page(
            zip(stamps, *columns, strict=False),
            parse,
            source=self.name,
            symbol=symbol,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=limit,
            strict=self._strict,
        )


def _zone(meta: object) -> tzinfo:
    """The exchange's time zone from Yahoo's meta (name first, then the fixed offset)."""
    if isinstance(meta, dict):
        name = meta.get("exchangeTimezoneName")
        if isinstance(name, str):
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        offset = meta.get("gmtoffset")
        if isinstance(offset, int) and not isinstance(offset, bool) and abs(offset) < 86_400:
            return timezone(timedelta(seconds=offset))
    return NEW_YORK
