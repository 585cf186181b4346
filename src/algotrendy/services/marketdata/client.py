"""``MarketDataClient``: the market data API over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``MarketDataService``'s read side; errors
come back as ``core.errors`` classes (``gateway.remote``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import TypeAdapter

from algotrendy.core.errors import Invalid
from algotrendy.core.market import Bars, Timeframe
from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.marketdata.interface import (
    BarSeries,
    BarsQuery,
    BatchRequest,
    BatchResponse,
    ChartStyleRead,
    IndicatorRead,
    MarketDataApi,
    SeriesRead,
    SymbolRead,
    TransformRequest,
)

_PREFIX = "/api/v1/market-data"
PAGE_BARS = 50_000
"""Bars per page when reading a long series (under the service's per-request maximum)."""
_SYMBOLS = TypeAdapter(list[SymbolRead])
_INDICATORS = TypeAdapter(list[IndicatorRead])
_STYLES = TypeAdapter(list[ChartStyleRead])
_REPORT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class MarketDataClient(RemoteApi):
    service = "marketdata"

    def with_token(self, token: str) -> MarketDataClient:
        return MarketDataClient(self._http, token=token)

    async def get_bars(self, *, query: BarsQuery) -> SeriesRead:
        params: dict[str, Any] = {"interval": query.interval, "chart_style": query.chart_style}
        for name in ("period", "venue", "limit"):
            if getattr(query, name) is not None:
                params[name] = getattr(query, name)
        for name in ("start", "end"):
            if getattr(query, name) is not None:
                params[name] = getattr(query, name).isoformat()
        if query.asset_type is not None:
            params["asset_type"] = query.asset_type.value
        if query.indicators:
            params["indicators"] = ",".join(query.indicators)
        if query.style_params:
            params["chart_params"] = ",".join(f"{k}:{v}" for k, v in query.style_params.items())
        return self._model(
            await self._send("GET", f"{_PREFIX}/{query.symbol.replace('/', '')}", params=params), SeriesRead
        )

    async def batch(self, *, request: BatchRequest) -> BatchResponse:
        return self._model(
            await self._send("POST", f"{_PREFIX}/batch", json=self._body(request)), BatchResponse
        )

    async def transform(self, *, request: TransformRequest) -> SeriesRead:
        return self._model(
            await self._send("POST", f"{_PREFIX}/transform", json=self._body(request)), SeriesRead
        )

    async def symbols(self, *, symbol: str | None = None) -> list[SymbolRead]:
        params = {"symbol": symbol} if symbol else None
        return self._parse(await self._send("GET", f"{_PREFIX}/symbols", params=params), _SYMBOLS)

    async def indicators(self) -> list[IndicatorRead]:
        return self._parse(await self._send("GET", f"{_PREFIX}/indicators"), _INDICATORS)

    async def chart_styles(self) -> list[ChartStyleRead]:
        return self._parse(await self._send("GET", f"{_PREFIX}/chart-styles"), _STYLES)

    async def read_bars(
        self,
        *,
        symbol: str,
        venue: str | None = None,
        interval: str = "1d",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> BarSeries:
        """Pages through ``GET /{symbol}`` in spans of at most ``PAGE_BARS`` bars."""
        if start is not None and end is not None and end <= start:
            raise Invalid("end must be after start", field="end_date", code="bad_window")
        bar = timedelta(seconds=Timeframe.parse(interval).seconds)
        step = bar * PAGE_BARS
        infos = await self.symbols(symbol=symbol)
        first = min((i.first for i in infos), default=None)
        last = max((i.last for i in infos), default=None)
        cursor = max(start, first) if start is not None and first is not None else (start or first)
        stop = min(end, last + bar) if end is not None and last is not None else (end or last)
        pages: list[SeriesRead] = []
        while True:
            page_end = stop if cursor is None or stop is None else min(stop, cursor + step)
            query = BarsQuery(
                symbol=symbol, venue=venue, interval=interval, start=cursor, end=page_end, limit=None
            )
            if cursor is None and page_end is None:
                query = BarsQuery(symbol=symbol, venue=venue, interval=interval, period="max")
            pages.append(await self.get_bars(query=query))
            if cursor is None or page_end is None or stop is None or page_end >= stop:
                break
            cursor = page_end
        head = pages[0]
        cols = {
            c: [v for p in pages for v in p.data[c]]
            for c in ("timestamp", "open", "high", "low", "close", "volume")
        }
        ts = np.array(
            [
                int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1e9)
                for t in cols["timestamp"]
            ],
            dtype=np.int64,
        )
        f = {c: np.array(cols[c], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        bars = Bars(ts, f["open"], f["high"], f["low"], f["close"], f["volume"])
        return BarSeries(head.symbol, head.venue, head.interval, head.asset_type, bars)

    async def quality(self, *, symbol: str, venue: str | None, interval: str | None) -> dict[str, Any]:
        params = {k: v for k, v in (("venue", venue), ("interval", interval)) if v is not None}
        return self._parse(await self._send("GET", f"{_PREFIX}/quality/{symbol}", params=params), _REPORT)


if TYPE_CHECKING:  # mypy proves the client offers the Protocol

    def _conforms(client: MarketDataClient) -> MarketDataApi:
        return client
