"""Portfolio API: a portfolio is owned by one user and is what trading, risk limits and reports
are kept for. ``venue`` says where it trades: ``paper`` (the embedded paper broker, the default)
or the id of one of the owner's broker connections (``/api/v1/trading/connections``).
"""

from __future__ import annotations

import builtins
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from algotrendy.core.events import Event
from algotrendy.services.trading.interface import Dec

Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3,5}$")]
Capital = Annotated[Decimal, Field(gt=0, lt=Decimal("1e13"), allow_inf_nan=False, decimal_places=8)]


class RiskProfile(StrEnum):
    CONSERVATIVE = "conservative"
    MODERATE = "moderate"
    AGGRESSIVE = "aggressive"


class PortfolioCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    initial_capital: Capital
    currency: Currency = "USD"
    strategies: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    risk_profile: RiskProfile = RiskProfile.MODERATE
    venue: str = Field(
        default="paper", pattern=r"^(paper|[0-9a-fA-F-]{36})$", description="'paper' or a connection id"
    )
    allow_short: bool = False


class PortfolioUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    strategies: list[uuid.UUID] | None = Field(default=None, max_length=50)
    risk_profile: RiskProfile | None = None


class PortfolioRead(BaseModel):
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str
    initial_capital: Dec
    currency: str
    strategies: list[uuid.UUID]
    risk_profile: RiskProfile
    venue: str
    allow_short: bool
    created_at: datetime
    updated_at: datetime


class PortfolioCreated(Event):
    topic: ClassVar[str] = "portfolio.created"
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    venue: str


class PortfolioDeleted(Event):
    topic: ClassVar[str] = "portfolio.deleted"
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID


Period = Literal["1m", "3m", "6m", "ytd", "1y", "3y", "5y", "all"]
SymbolKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._/-]+$")]


class PerformanceQuery(BaseModel):
    """``period`` back from today (``ytd``: since 1 January; ``all``: since inception);
    ``benchmark``: a symbol with stored daily prices over the period."""

    model_config = ConfigDict(extra="forbid")

    period: Period = "1y"
    benchmark: SymbolKey | None = None
    risk_free_rate: float = Field(default=0.0, ge=-0.05, le=0.5, description="Annual")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date | None = None
    end: date | None = None
    limit: int = Field(default=1000, ge=1, le=10_000)


class DailyMetricsRead(BaseModel):
    """One day of the ``performance_metrics`` series (figures since inception)."""

    day: date
    time: datetime
    total_value: Dec
    cash: Dec
    daily_return: float
    cumulative_return: float
    sharpe_ratio: float | None
    max_drawdown: float
    volatility: float | None


class PerformancePoint(BaseModel):
    day: date
    value: Dec
    daily_return: float
    cumulative_return: float
    drawdown: float
    benchmark_cumulative_return: float | None = None


class BenchmarkFigures(BaseModel):
    symbol: str
    total_return: float
    alpha: float | None
    beta: float | None
    correlation: float | None
    tracking_error: float | None
    information_ratio: float | None
    up_capture: float | None
    down_capture: float | None
    active_return: float | None = Field(description="Annualized portfolio minus benchmark return")
    observations: int


class PerformanceRead(BaseModel):
    """Returns over ``period`` from the recorded daily values: time-weighted (linked daily
    returns) and money-weighted (the IRR of the capital paid in and the value now)."""

    portfolio_id: uuid.UUID
    period: Period
    start: date
    end: date
    currency: str
    start_value: Dec
    end_value: Dec
    observations: int = Field(description="Daily returns in the period")
    periods_per_year: float
    time_weighted_return: float
    annualized_return: float | None
    money_weighted_return: float | None = Field(description="Annual IRR since inception")
    volatility: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown: float
    benchmark: BenchmarkFigures | None
    series: list[PerformancePoint]


Weight = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
LotSize = Annotated[Decimal, Field(gt=0, lt=Decimal("1e9"), allow_inf_nan=False, decimal_places=8)]
AllocationMethod = Literal["equal_weight", "inverse_volatility", "risk_parity", "min_variance", "max_sharpe"]


class AllocationRequest(BaseModel):
    """Target weights from the symbols' daily returns over ``lookback_days`` (the days all share)."""

    model_config = ConfigDict(extra="forbid")

    method: AllocationMethod
    symbols: list[SymbolKey] = Field(min_length=1, max_length=100)
    lookback_days: int = Field(default=252, ge=20, le=5000)
    max_weight: float | None = Field(default=None, gt=0, le=1)
    risk_free_rate: float = Field(default=0.0, ge=-0.05, le=0.5, description="Annual; max_sharpe only")


class AllocationRead(BaseModel):
    method: AllocationMethod
    weights: dict[str, float]
    observations: int = Field(description="Daily returns the estimate used")
    start: date
    end: date


class TaxOptimization(BaseModel):
    """Which tax lots the sells relieve: ``fifo``, ``lifo``, ``hifo`` (highest cost first) or
    ``tax_optimal`` (losses first, short-term before long-term; then long-term gains, smallest
    first; short-term gains last); ``avoid_wash_sales`` puts losses that would be wash sales
    (a buy of the symbol within 30 days) last."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["fifo", "lifo", "hifo", "tax_optimal"] = "tax_optimal"
    avoid_wash_sales: bool = True


TARGET_TOLERANCE = 1e-4
CASH = "CASH"


class RebalanceRequest(BaseModel):
    """Target weights of equity per symbol (``targets``, summing to 1 within 0.0001; name
    ``CASH`` for the share to keep in cash), or an ``allocation`` to compute them. Held symbols
    left out are sold."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("targets")
    @classmethod
    def _sum_to_one(cls, targets: dict[str, float] | None) -> dict[str, float] | None:
        if targets is not None:
            total = sum(targets.values())
            if abs(total - 1.0) > TARGET_TOLERANCE:
                raise ValueError(f"the target weights sum to {total:.6g}, not 1 (name the rest CASH)")
        return targets

    targets: dict[SymbolKey, Weight] | None = Field(default=None, max_length=200)
    allocation: AllocationRequest | None = None
    drift_threshold: float = Field(
        default=0.0, ge=0, lt=1, description="Leave a symbol alone while |weight - target| is below this"
    )
    min_trade_value: Decimal = Field(default=Decimal(0), ge=0, lt=Decimal("1e12"), decimal_places=8)
    cash_buffer: float = Field(default=0.0, ge=0, lt=1, description="Share of equity kept in cash")
    lot_sizes: dict[SymbolKey, LotSize] = Field(default_factory=dict, max_length=200)
    default_lot_size: LotSize | None = Field(
        default=None, description="Quantity step for symbols not in lot_sizes (1: whole shares)"
    )
    tax_optimization: TaxOptimization | None = None
    dry_run: bool = Field(default=False, description="Show the orders without sending them")


class LotPickRead(BaseModel):
    lot_id: str
    quantity: Dec
    cost_per_unit: Dec
    proceeds: Dec
    gain: Dec
    long_term: bool
    wash_sale: bool


class RebalanceTrade(BaseModel):
    symbol: str
    side: Literal["buy", "sell"]
    quantity: Dec
    price: Dec
    value: Dec
    current_weight: float
    target_weight: float
    drift: float
    lots: list[LotPickRead] = Field(default_factory=list, description="Tax lots a sell relieves")
    order_id: uuid.UUID | None = None
    order_status: str | None = None
    reason: str | None = Field(default=None, description="Why the order was not placed or not filled")


class RebalanceRead(BaseModel):
    rebalance_id: uuid.UUID
    portfolio_id: uuid.UUID
    status: Literal["preview", "submitted", "completed", "partial", "failed"]
    dry_run: bool
    created_at: datetime
    equity: Dec
    cash_before: Dec
    cash_after: Dec = Field(description="Planned cash after the trades at the prices used")
    targets: dict[str, float]
    weights_before: dict[str, float]
    weights_after: dict[str, float] = Field(description="Planned weights after the trades")
    trades: list[RebalanceTrade]
    skipped: list[tuple[str, str]] = Field(description="Symbols not traded, and why")
    warnings: list[str]
    realized_gain: Dec = Field(description="Gain the sells realize on the chosen tax lots")


class TaxLotRead(BaseModel):
    lot_id: str
    symbol: str
    quantity: Dec
    cost_per_unit: Dec
    acquired_at: datetime
    market_price: Dec | None
    unrealized_gain: Dec | None
    long_term: bool


ReportFormat = Literal["pdf", "xlsx"]
Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class ReportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ReportCreate(BaseModel):
    """A performance report over a calendar ``month`` ("YYYY-MM"; the month so far if it is the
    current one) or ``start``..``end`` (inclusive; ``end`` defaults to today); neither: the last
    complete month. Rendered as a job; emailed to ``recipients`` with the files attached."""

    model_config = ConfigDict(extra="forbid")

    month: Month | None = None
    start: date | None = None
    end: date | None = None
    formats: list[ReportFormat] = Field(default=["pdf", "xlsx"], min_length=1, max_length=2)
    benchmark: SymbolKey | None = None
    recipients: list[EmailStr] = Field(default_factory=list, max_length=10)

    @field_validator("start", "end")
    @classmethod
    def _not_with_month(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("month") is not None:
            raise ValueError("give either month or start/end, not both")
        if info.field_name == "end" and value is not None:
            start = info.data.get("start")
            if start is not None and value < start:
                raise ValueError("end is before start")
        return value

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("recipients")
    @classmethod
    def _unique_recipients(cls, value: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for v in value:
            seen.setdefault(v.casefold(), v)
        return list(seen.values())


class ReportFileRead(BaseModel):
    format: ReportFormat
    filename: str
    content_type: str
    size: int
    url: str = Field(description="Where to download it")


class ReportRead(BaseModel):
    report_id: uuid.UUID
    portfolio_id: uuid.UUID
    period_start: date
    period_end: date
    formats: list[ReportFormat]
    benchmark: str | None
    recipients: list[str]
    status: ReportStatus
    error: str | None = Field(description="Why the report failed")
    job_id: uuid.UUID | None
    files: list[ReportFileRead]
    email_status: Literal["not_requested", "pending", "sent", "failed", "skipped"]
    emailed_at: datetime | None
    email_error: str | None
    created_at: datetime
    finished_at: datetime | None


class ReportFile(BaseModel):
    """One rendered file of a report, for download."""

    filename: str
    content_type: str
    content: bytes


BenchmarkBlend = Annotated[
    str, StringConstraints(min_length=1, max_length=400, pattern=r"^[A-Za-z0-9._/:, -]+$")
]


class AttributionQuery(BaseModel):
    """``benchmark``: a symbol (``SPY``) or a blend (``SPY:0.6,BTCUSDT:0.4``) for Brinson-Fachler."""

    model_config = ConfigDict(extra="forbid")

    period: Period = "1y"
    benchmark: (
        Annotated[str, StringConstraints(min_length=1, max_length=400, pattern=r"^[A-Za-z0-9._/:, -]+$")]
        | None
    ) = None


class AssetContribution(BaseModel):
    symbol: str = Field(description="A symbol, or 'trading': trades during the day, fees, slippage")
    contribution: float = Field(description="Share of the period's time-weighted return (Carino-linked)")
    average_weight: float | None
    asset_return: float | None = Field(description="The symbol's return over the days it was held")


class StrategyContribution(BaseModel):
    strategy: str = Field(description="A strategy id, or 'manual' for orders placed by hand")
    pnl: Dec
    contribution: float | None = Field(description="Profit over the period's starting value")


class SegmentEffect(BaseModel):
    segment: str = Field(description="An asset class, 'other' or 'cash'")
    portfolio_weight: float = Field(description="Average start-of-day weight")
    benchmark_weight: float
    allocation: float
    selection: float
    interaction: float
    total: float


class AttributionRead(BaseModel):
    portfolio_id: uuid.UUID
    period: Period
    start: date
    end: date
    time_weighted_return: float
    by_asset: list[AssetContribution]
    by_strategy: list[StrategyContribution]
    benchmark: str | None
    brinson: list[SegmentEffect]
    brinson_days: int
    holdings_return: float | None = Field(description="Return of the start-of-day holdings (Brinson's)")
    benchmark_return: float | None
    allocation_effect: float | None
    selection_effect: float | None
    interaction_effect: float | None


class PortfolioApi(Protocol):
    async def create(self, *, owner_id: uuid.UUID, data: PortfolioCreate) -> PortfolioRead: ...

    async def get(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> PortfolioRead:
        """``NotFound`` unless ``owner_id`` owns it."""
        ...

    async def list(self, *, owner_id: uuid.UUID) -> list[PortfolioRead]: ...

    async def update(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, data: PortfolioUpdate
    ) -> PortfolioRead: ...

    async def delete(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> None: ...

    async def rebalance(
        self,
        *,
        owner_id: uuid.UUID,
        portfolio_id: uuid.UUID,
        request: RebalanceRequest,
        idempotency_key: str | None = None,
    ) -> RebalanceRead:
        """Plan the orders to the targets; unless ``dry_run``, record the plan, then send them
        through the trading engine (its risk checks apply). A retry with the same key returns
        the first answer."""
        ...

    async def rebalance_status(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RebalanceRead:
        """The latest rebalance with its orders' current states (``NotFound``: none yet)."""
        ...

    async def allocation(self, *, request: AllocationRequest) -> AllocationRead: ...

    async def tax_lots(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID
    ) -> builtins.list[TaxLotRead]: ...

    async def attribution(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: AttributionQuery
    ) -> AttributionRead: ...

    async def record_day(self, *, portfolio_id: uuid.UUID) -> DailyMetricsRead | None:
        """Write today's ``performance_metrics`` row from the account's value now (``None``: the
        portfolio has no trading account yet)."""
        ...

    async def daily_metrics(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: MetricsQuery
    ) -> builtins.list[DailyMetricsRead]: ...

    async def performance(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: PerformanceQuery
    ) -> PerformanceRead: ...

    async def create_report(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, request: ReportCreate
    ) -> ReportRead:
        """Gather the report's data now and render it as a job (``Invalid`` naming the field for a
        period in the future or before the portfolio existed, or a benchmark without prices)."""
        ...

    async def report(self, *, owner_id: uuid.UUID, report_id: uuid.UUID) -> ReportRead:
        """``NotFound`` also for another owner's report."""
        ...

    async def reports(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limit: int = 50
    ) -> builtins.list[ReportRead]:
        """The portfolio's reports, newest first."""
        ...

    async def report_file(
        self, *, owner_id: uuid.UUID, report_id: uuid.UUID, format: ReportFormat
    ) -> ReportFile:
        """One rendered file; ``Conflict`` while the report is not ready or after it failed."""
        ...
