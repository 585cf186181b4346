"""HTTP and WebSocket front door of the market data service: ``/api/v1/market-data/*``."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, WebSocket, WebSocketDisconnect

from algotrendy.core.auth import Permission, Principal
from algotrendy.core.errors import AlgoTrendyError, Invalid
from algotrendy.core.market import AssetType
from algotrendy.gateway.auth import authenticator, require
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.marketdata.interface import (
    BarsQuery,
    BatchRequest,
    BatchResponse,
    ChartStyleName,
    ChartStyleRead,
    ImportResult,
    IndicatorRead,
    OrderBookSnapshotRead,
    Period,
    SeriesRead,
    SubscribeRequest,
    SubscriptionRead,
    SymbolRead,
    TokenPricesRead,
    TransformRequest,
    WalletBalancesRead,
)
from algotrendy.services.marketdata.live import LiveHub
from algotrendy.services.marketdata.service import MarketDataService


async def marketdata_api(request: Request) -> MarketDataService:
    api: MarketDataService = request.app.state.services["marketdata"]
    return api


async def live_hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.services["marketdata.live"]
    return hub


MarketData = Annotated[MarketDataService, Depends(marketdata_api)]
Live = Annotated[LiveHub, Depends(live_hub)]
Reader = Annotated[Principal, Depends(require(Permission.READ_MARKET_DATA))]
Importer = Annotated[Principal, Depends(require(Permission.IMPORT_MARKET_DATA))]
JSON = "application/json"
Symbol = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9^._:-]+$")]

router = APIRouter(prefix="/api/v1/market-data", tags=["market-data"], responses=PROBLEM_RESPONSES)


def _style_params(text: str | None) -> dict[str, float | int | str]:
    """``brick:2,atr_period:14`` -> {"brick": 2, "atr_period": 14}."""
    out: dict[str, float | int | str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition(":")
        if not sep or not name.strip():
            raise Invalid(f"chart_params item {part!r} is not name:value", field="chart_params")
        raw = value.strip()
        try:
            out[name.strip()] = int(raw)
        except ValueError:
            try:
                out[name.strip()] = float(raw)
            except ValueError:
                out[name.strip()] = raw
    return out


@router.get("/symbols")
async def symbols(
    _user: Reader, md: MarketData, symbol: Annotated[str | None, Query(max_length=40)] = None
) -> list[SymbolRead]:
    """The symbol catalog: every stored series with its interval, asset type and time span."""
    return await md.symbols(symbol=symbol)


@router.get("/indicators")
async def indicators(_user: Reader, md: MarketData) -> list[IndicatorRead]:
    """The indicator catalog: names, parameters (defaults and ranges) and output columns."""
    return await md.indicators()


@router.get("/chart-styles")
async def chart_styles(_user: Reader, md: MarketData) -> list[ChartStyleRead]:
    """Chart styles for ``chart_style`` and ``/transform``, with their parameters."""
    return await md.chart_styles()


@router.get("/quality/{symbol}")
async def quality(
    symbol: Symbol,
    _user: Reader,
    md: MarketData,
    venue: Annotated[str | None, Query(max_length=40)] = None,
    interval: Annotated[str | None, Query(pattern=r"^\d+(m|h|d|w)$")] = None,
) -> dict[str, Any]:
    """Gaps against the asset's calendar, duplicates, OHLC violations, zero-volume and stale runs,
    outliers: each with exact timestamps, plus a score."""
    return await md.quality(symbol=symbol, venue=venue, interval=interval)


@router.post("/batch")
async def batch(body: BatchRequest, _user: Reader, md: MarketData) -> BatchResponse:
    """Several symbols at once; symbols that cannot be served are listed in ``errors``."""
    return await md.batch(request=body)


@router.post("/transform")
async def transform(body: TransformRequest, _user: Reader, md: MarketData) -> SeriesRead:
    """Apply a chart style (renko, kagi, point & figure, ...) to bars you send."""
    return await md.transform(request=body)


@router.post("/import", status_code=201)
async def import_csv(
    request: Request,
    _user: Importer,
    md: MarketData,
    symbol: Annotated[str, Query(min_length=1, max_length=40)],
    interval: Annotated[str, Query(pattern=r"^\d+(m|h|d|w)$")],
    asset_type: AssetType,
    venue: Annotated[str, Query(min_length=1, max_length=40)] = "LOCAL",
) -> ImportResult:
    """Import a CSV body (``timestamp,open,high,low,close,volume``): all rows or none."""
    body = await request.body()
    if not body:
        raise Invalid("the request body must be the CSV file", field="body", code="empty_file")
    with tempfile.TemporaryDirectory() as tmp:
        path = FilePath(tmp) / "upload.csv"
        path.write_bytes(body)
        return await md.import_file(
            path=path, symbol=symbol, venue=venue, interval=interval, asset_type=asset_type
        )


@router.post("/realtime/subscribe", status_code=201)
async def subscribe(body: SubscribeRequest, user: Reader, live: Live) -> SubscriptionRead:
    """Start streaming bars of these symbols; connect to ``stream_url`` (WebSocket) to receive them."""
    return await live.subscribe(owner=user.user_id, request=body)


@router.get("/realtime")
async def subscriptions(user: Reader, live: Live) -> list[SubscriptionRead]:
    return live.list(owner=user.user_id)


@router.delete("/realtime/{subscription_id}", status_code=204)
async def unsubscribe(subscription_id: Symbol, user: Reader, live: Live) -> Response:
    await live.unsubscribe(owner=user.user_id, subscription_id=subscription_id)
    return Response(status_code=204)


@router.get("/orderbook/{symbol}")
async def order_books(
    symbol: Symbol,
    _user: Reader,
    md: MarketData,
    exchange: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[OrderBookSnapshotRead]:
    """Stored order-book snapshots, newest first."""
    return await md.order_books(symbol=symbol, exchange=exchange, limit=limit)


@router.post("/orderbook/{symbol}/snapshot", status_code=201)
async def snapshot(
    symbol: Symbol,
    _user: Importer,
    md: MarketData,
    exchange: Annotated[str, Query(min_length=2, max_length=40)],
    depth: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> OrderBookSnapshotRead:
    """Fetch the exchange's order book now and store it."""
    return await md.snapshot_order_book(symbol=symbol, exchange=exchange, depth=depth)


@router.get("/blockchain/{chain_id}/{token_address}")
async def blockchain_prices(
    chain_id: Annotated[int, Path(ge=1, le=10_000_000)],
    token_address: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")],
    _user: Reader,
    md: MarketData,
    start_date: date,
    end_date: date,
) -> TokenPricesRead:
    """Daily token prices on a chain (CovalentHQ; needs its API key)."""
    return await md.get_blockchain_data(
        chain_id=chain_id, token_address=token_address, start_date=start_date, end_date=end_date
    )


@router.get("/wallets/{chain_id}/{wallet_address}")
async def wallet_balances(
    chain_id: Annotated[int, Path(ge=1, le=10_000_000)],
    wallet_address: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")],
    _user: Reader,
    md: MarketData,
) -> WalletBalancesRead:
    """Token balances of a wallet (CovalentHQ; needs its API key)."""
    return await md.get_wallet_balances(chain_id=chain_id, wallet_address=wallet_address)


@router.websocket("/ws")
async def stream(websocket: WebSocket, subscription_id: str, access_token: str | None = None) -> None:
    """Live bars of a subscription as JSON messages. Authenticate with ``access_token=`` (browsers
    cannot set headers on a WebSocket) or an ``Authorization: Bearer`` header."""
    token = access_token
    header = websocket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:]
    try:
        principal = await authenticator(websocket).authenticate(token)  # type: ignore[arg-type]
        if not principal.can(Permission.READ_MARKET_DATA):
            raise Invalid("this needs the read_market_data permission", code="permission_denied")
        hub: LiveHub = websocket.app.state.services["marketdata.live"]
        hub.get(owner=principal.user_id, subscription_id=subscription_id)  # 404 unless it is yours
        messages = hub.stream(owner=principal.user_id, subscription_id=subscription_id)
    except AlgoTrendyError as exc:
        await websocket.close(
            code=4401 if exc.status == 401 else 4404 if exc.status == 404 else 4403, reason=exc.detail[:120]
        )
        return
    await websocket.accept()
    await websocket.send_json({"type": "subscribed", "subscription_id": subscription_id})
    with contextlib.suppress(WebSocketDisconnect):
        async for message in messages:
            await websocket.send_json(message)
        await websocket.close()


@router.get("/{symbol}", response_model=SeriesRead)
async def bars(
    symbol: Symbol,
    _user: Reader,
    md: MarketData,
    interval: Annotated[
        str, Query(pattern=r"^\d+(m|h|d|w)$", description="1m, 5m, 15m, 1h, 4h, 1d, 1w, ...")
    ] = "1d",
    period: Period | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    chart_style: ChartStyleName = "time",
    chart_params: Annotated[
        str | None, Query(max_length=200, description="e.g. brick:2,atr_period:14")
    ] = None,
    indicators: Annotated[
        str | None, Query(max_length=500, description="e.g. rsi,macd:12:26:9,sma:50")
    ] = None,
    asset_type: AssetType | None = None,
    venue: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """OHLCV bars with the requested indicator columns, in any interval and chart style."""
    query = BarsQuery(
        symbol=symbol,
        venue=venue,
        interval=interval,
        period=period,
        start=start,
        end=end,
        chart_style=chart_style,
        style_params=_style_params(chart_params),
        indicators=[indicators] if indicators else [],
        asset_type=asset_type,
        limit=limit,
    )
    return Response(await md.get_bars_json(query=query), media_type=JSON)
