"""``MarketDataClient``: the market data API over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``MarketDataService``'s read side; errors
come back as ``core.errors`` classes (``gateway.remote``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.marketdata.interface import (
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

    async def quality(self, *, symbol: str, venue: str | None, interval: str | None) -> dict[str, Any]:
        params = {k: v for k, v in (("venue", venue), ("interval", interval)) if v is not None}
        return self._parse(await self._send("GET", f"{_PREFIX}/quality/{symbol}", params=params), _REPORT)


if TYPE_CHECKING:  # mypy proves the client offers the Protocol

    def _conforms(client: MarketDataClient) -> MarketDataApi:
        return client
