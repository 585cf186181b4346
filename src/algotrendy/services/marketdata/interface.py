"""What other services and front doors may use of the market data service: API, DTOs, events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints

from algotrendy.core.events import Event
from algotrendy.core.market import AssetType, Bars

SymbolText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9^._/:-]+$")]
Interval = Annotated[str, StringConstraints(pattern=r"^\d+(m|h|d|w)$")]
ChartStyleName = Literal[
    "time", "heikin_ashi", "renko", "range", "three_line_break", "kagi", "point_figure", "volume", "dollar"
]
"""Must equal ``indicators.charts.CHART_STYLES`` (a unit test checks)."""
Timestamp = Annotated[datetime, Strict()]
"""ISO-8601 only in request bodies (no epoch numbers), as the schema says."""
Period = Literal["1d", "5d", "1w", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesRead(BaseModel):
    """A bar series as columns: ``timestamp`` (ISO-8601 UTC) then OHLCV, then one column per
    requested indicator output; ``null`` where a value is not defined (indicator warm-up)."""

    symbol: str
    venue: str
    interval: str
    asset_type: AssetType
    chart_style: str
    count: int
    columns: list[str]
    data: dict[str, list[Any]]
    source_interval: str = Field(description="Stored interval the bars were built from (resampled if finer)")


class BarsQuery(_In):
    symbol: SymbolText
    venue: str | None = None
    interval: Interval = "1d"
    period: Period | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    chart_style: ChartStyleName = "time"
    style_params: dict[str, float | int | str] = Field(default_factory=dict)
    indicators: list[str] = Field(default_factory=list, max_length=20)
    asset_type: AssetType | None = None
    limit: int | None = Field(None, ge=1, le=100_000)


class BatchRequest(_In):
    symbols: list[SymbolText] = Field(min_length=1, max_length=50)
    period: Period | None = "1y"
    interval: Interval = "1d"
    start: Timestamp | None = None
    end: Timestamp | None = None
    indicators: list[str] = Field(default_factory=list, max_length=20)
    chart_style: ChartStyleName = "time"


class BatchResponse(BaseModel):
    results: dict[str, SeriesRead]
    errors: dict[str, str] = Field(default_factory=dict, description="Symbol -> why it is missing")


class TransformRequest(_In):
    data: dict[str, list[Any]] = Field(
        description="Columns timestamp (ISO-8601 or epoch ms), open, high, low, close, volume"
    )
    chart_style: ChartStyleName
    params: dict[str, float | int | str] = Field(default_factory=dict)


class SymbolRead(BaseModel):
    symbol: str
    venue: str
    interval: str
    asset_type: AssetType
    first: datetime
    last: datetime
    count: int


class IndicatorParamRead(BaseModel):
    name: str
    type: str
    default: float | int
    min_value: float | int
    max_value: float | int
    description: str


class IndicatorRead(BaseModel):
    name: str = Field(description="API name, e.g. rsi; request as rsi, rsi:14, macd:12:26:9")
    title: str
    description: str
    group: str
    inputs: list[str]
    params: list[IndicatorParamRead]
    outputs: list[str]
    warmup: int = Field(description="Leading bars without a value at the default parameters")
    engine: str
    talib_function: str | None


class ChartParamRead(BaseModel):
    name: str
    kind: str
    default: float | int | str | None
    required: bool
    allowed: str
    ge: float | None
    gt: float | None
    le: float | None
    choices: list[str]
    description: str


class ChartStyleRead(BaseModel):
    name: str
    description: str
    params: list[ChartParamRead]
    columns: dict[str, str] = Field(description="Extra columns this style adds")


class ImportResult(BaseModel):
    symbol: str
    venue: str
    interval: str
    rows: int
    written: int
    first: datetime | None
    last: datetime | None


StreamField = Literal["price", "volume", "ohlc", "bars"]
_DEFAULT_FIELDS: tuple[StreamField, ...] = ("price", "volume")


class SubscribeRequest(_In):
    symbols: list[SymbolText] = Field(min_length=1, max_length=50)
    fields: list[StreamField] = Field(default_factory=lambda: list(_DEFAULT_FIELDS))
    interval: Interval = "1m"


class SubscriptionRead(BaseModel):
    subscription_id: str
    symbols: list[str]
    fields: list[str]
    interval: str
    stream_url: str = Field(description="WebSocket URL that streams this subscription")
    created_at: datetime


class OrderBookLevel(BaseModel):
    price: float
    quantity: float


class OrderBookSnapshotRead(BaseModel):
    id: uuid.UUID
    symbol: str
    exchange: str
    timestamp: datetime
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class TokenPricePoint(BaseModel):
    date: str
    price: float


class TokenPricesRead(BaseModel):
    chain_id: int
    token_address: str
    quote_currency: str
    prices: list[TokenPricePoint]


class TokenBalanceRead(BaseModel):
    contract_address: str
    symbol: str | None
    name: str | None
    decimals: int
    balance: str = Field(description="Exact token amount (decimal string)")
    quote_rate: float | None
    quote: float | None
    native: bool
    spam: bool


class WalletBalancesRead(BaseModel):
    chain_id: int
    wallet_address: str
    balances: list[TokenBalanceRead]


# ---- events ----------------------------------------------------------------------------------


class MarketDataUpdated(Event):
    """New or revised stored bars (import, download, live bar closed)."""

    topic = "market.data.updated"
    symbol: str
    venue: str
    interval: str
    first: datetime
    last: datetime
    bars: int


class BarClosed(Event):
    topic = "marketdata.bar.closed"
    symbol: str
    venue: str
    interval: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class BarSeries:
    """Bars as numpy columns for research (backtests, ML), with what identifies them."""

    symbol: str
    venue: str
    interval: str
    asset_type: AssetType
    bars: Bars


class MarketDataApi(Protocol):
    async def get_bars(self, *, query: BarsQuery) -> SeriesRead: ...
    async def read_bars(
        self,
        *,
        symbol: str,
        venue: str | None = None,
        interval: str = "1d",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> BarSeries:
        """Every bar of the series in ``[start, end)`` (resampled to ``interval`` when finer bars
        are stored); ``NotFound`` for an unknown symbol."""
        ...

    async def batch(self, *, request: BatchRequest) -> BatchResponse: ...
    async def transform(self, *, request: TransformRequest) -> SeriesRead: ...
    async def symbols(self, *, symbol: str | None = None) -> list[SymbolRead]: ...
    async def indicators(self) -> list[IndicatorRead]: ...
    async def chart_styles(self) -> list[ChartStyleRead]: ...
    async def quality(self, *, symbol: str, venue: str | None, interval: str | None) -> dict[str, Any]: ...
