"""Risk API: limits and the kill switch of each portfolio, the pre-trade check, and the risk
figures of a portfolio and of a position (VaR, expected shortfall, drawdown, ratios, beta).

The check itself is ``engine.risk.pre_trade_check``; it runs in-process on the trading
service's order path (ARCHITECTURE rule 5) with the limits this service keeps. A limit left
``null`` is not enforced.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algotrendy.core.events import Event
from algotrendy.core.market import F64, I64
from algotrendy.engine.risk import RiskLimits, TradingState
from algotrendy.services.trading.interface import Dec, OrderBody, OrderCreate, RiskCheckRead

Amount = Annotated[Decimal, Field(gt=0, lt=Decimal("1e15"), allow_inf_nan=False, decimal_places=8)]
Ratio = Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False, decimal_places=8)]
Leverage = Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False, decimal_places=4)]
SymbolKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._/-]+$")]


class RiskLimitsUpdate(BaseModel):
    """The whole set of limits (PUT replaces it)."""

    model_config = ConfigDict(extra="forbid")

    trading_state: TradingState = TradingState.ACTIVE
    max_order_notional: Amount | None = None
    max_position_quantity: Amount | None = None
    max_position_notional: Amount | None = None
    max_concentration: Ratio | None = Field(default=None, description="Largest share of equity in one symbol")
    max_leverage: Leverage | None = Field(default=None, description="Largest gross exposure over equity")
    daily_loss_limit: Amount | None = Field(
        default=None, description="Loss in account currency after which only reducing orders pass"
    )
    max_orders_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    symbol_quantity: dict[SymbolKey, Amount] = Field(default_factory=dict, max_length=200)
    max_var: Ratio | None = Field(
        default=None,
        description="Alert when the 1-day 95% normal VaR of the holdings exceeds this share of equity",
    )
    max_drawdown: Ratio | None = Field(
        default=None, description="Alert when equity falls this far below its high-water mark"
    )


class RiskLimitsRead(BaseModel):
    portfolio_id: uuid.UUID
    trading_state: TradingState
    max_order_notional: Dec | None
    max_position_quantity: Dec | None
    max_position_notional: Dec | None
    max_concentration: Dec | None
    max_leverage: Dec | None
    daily_loss_limit: Dec | None
    max_orders_per_minute: int | None
    symbol_quantity: dict[str, Dec]
    max_var: Dec | None = None
    max_drawdown: Dec | None = None
    updated_at: datetime | None

    def engine_limits(self) -> RiskLimits[Decimal]:
        return RiskLimits(
            state=self.trading_state,
            max_order_notional=self.max_order_notional,
            max_position_quantity=self.max_position_quantity,
            max_position_notional=self.max_position_notional,
            max_concentration=self.max_concentration,
            max_leverage=self.max_leverage,
            daily_loss_limit=self.daily_loss_limit,
            max_orders_per_minute=self.max_orders_per_minute,
            symbol_quantity=dict(self.symbol_quantity),
        )


class PreTradeCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    portfolio_id: uuid.UUID
    order: OrderBody


class RiskLimitsChanged(Event):
    topic: ClassVar[str] = "risk.limits.updated"
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    trading_state: str


VarMethodName = Literal["historical", "normal", "cornish_fisher", "monte_carlo"]


class RiskQuery(BaseModel):
    """How to measure: ``confidence`` in (0, 1), ``horizon_days`` ahead, from the last
    ``lookback_days`` daily returns of what is held now; ``benchmark`` for beta and correlation."""

    model_config = ConfigDict(extra="forbid")

    confidence: float = Field(default=0.95, gt=0, lt=1)
    horizon_days: int = Field(default=1, ge=1, le=250)
    lookback_days: int = Field(default=500, ge=30, le=5000)
    method: VarMethodName = "historical"
    benchmark: SymbolKey | None = "SPY"
    paths: int = Field(default=100_000, ge=1000, le=1_000_000, description="Monte Carlo paths")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Monte Carlo seed")


class VarFigures(BaseModel):
    var: float = Field(description="Loss exceeded with probability 1 - confidence, fraction of equity")
    expected_shortfall: float = Field(description="Mean loss beyond the VaR, fraction of equity")


class PositionRisk(BaseModel):
    position_id: uuid.UUID
    symbol: str
    market_value: Dec | None
    weight: float = Field(description="Market value over the portfolio's equity (negative: short)")
    volatility: float | None = Field(description="Annualized volatility of the symbol's returns")
    beta: float | None
    var: float | None = Field(description="The position alone, fraction of its own value (chosen method)")
    marginal_var: float | None = Field(description="d(portfolio VaR)/d(weight), parametric normal")
    component_var: float | None = Field(description="Its share of the portfolio's parametric VaR")
    component_var_pct: float | None


class PortfolioRiskRead(BaseModel):
    """Ex-ante risk of the current holdings: each held symbol's last ``observations`` daily
    returns, weighted as held now (cash does not move)."""

    portfolio_id: uuid.UUID
    as_of: datetime
    currency: str
    equity: Dec
    confidence: float
    horizon_days: int
    method: VarMethodName
    observations: int
    var: float
    expected_shortfall: float
    var_amount: Dec = Field(description="VaR in the account currency")
    expected_shortfall_amount: Dec
    var_95: float = Field(description="1-day 95% historical VaR (the spec's headline figure)")
    methods: dict[VarMethodName, VarFigures]
    parametric_var: float = Field(description="Normal VaR, the sum of the positions' component VaR")
    volatility: float | None
    max_drawdown: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    benchmark: str | None
    beta: float | None
    correlation: float | None
    positions: list[PositionRisk]
    unmodelled: list[str] = Field(description="Held symbols without enough price history (left out)")
    data_until: datetime | None = Field(
        description="The last day of prices all modelled symbols have: the figures' date (shows stale data)"
    )


class PositionRiskRead(BaseModel):
    portfolio: PortfolioRiskRead
    position: PositionRisk


HISTORICAL_SCENARIOS: dict[str, tuple[str, str, str]] = {
    "financial_crisis_2008": ("2008-09-12", "2009-03-09", "Lehman's collapse to the March 2009 low"),
    "covid_crash_2020": ("2020-02-19", "2020-03-23", "the February 2020 high to the March 2020 low"),
    "crypto_drawdown_2022": ("2021-11-08", "2022-11-21", "the November 2021 crypto high to the FTX low"),
}
"""Named historical windows (first and last day, UTC): each position moves as its own closes did."""

Shock = Annotated[float, Field(gt=-1, le=10, allow_inf_nan=False)]
IsoDay = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class StressScenario(BaseModel):
    """One scenario: a market move (``returns``, scaled by each position's beta to the
    benchmark unless ``use_beta`` is false), a ``volatility_multiplier``, per-symbol ``shocks``
    (they win over the market move for their symbols), or a historical window (``historical``
    by name, or ``start``/``end``). Several kinds in one scenario add up per position, except
    the volatility multiplier, which stresses VaR rather than moving prices."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    returns: Shock | None = Field(default=None, description="Market (benchmark) return, e.g. -0.2")
    use_beta: bool = True
    volatility_multiplier: float | None = Field(default=None, gt=0, le=20, allow_inf_nan=False)
    shocks: dict[SymbolKey, Shock] = Field(default_factory=dict, max_length=500)
    historical: Literal["financial_crisis_2008", "covid_crash_2020", "crypto_drawdown_2022"] | None = None
    start: IsoDay | None = None
    end: IsoDay | None = None


class StressTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    portfolio_id: uuid.UUID
    scenarios: list[StressScenario] = Field(min_length=1, max_length=50)
    confidence: float = Field(default=0.99, gt=0, lt=1, description="For volatility scenarios")
    lookback_days: int = Field(default=500, ge=30, le=5000, description="For betas and volatilities")
    benchmark: SymbolKey | None = "SPY"


class StressedPosition(BaseModel):
    position_id: uuid.UUID
    symbol: str
    market_value: Dec | None
    shock: float | None = Field(description="The return applied (None: no data covers the window)")
    pnl: Dec | None
    how: Literal["shock", "beta", "market", "history", "proxy", "none"]


class ScenarioResult(BaseModel):
    name: str
    pnl: Dec = Field(description="Profit (negative: loss) in the account currency")
    return_: float = Field(alias="return", description="P&L over equity")
    positions: list[StressedPosition]
    window: tuple[datetime, datetime] | None = None
    stressed_var: float | None = Field(default=None, description="Normal VaR with volatility multiplied")
    stressed_expected_shortfall: float | None = None
    base_var: float | None = None
    uncovered: list[str] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)


class StressTestRead(BaseModel):
    portfolio_id: uuid.UUID
    as_of: datetime
    currency: str
    equity: Dec
    benchmark: str | None
    scenarios: list[ScenarioResult]
    worst: str = Field(description="The scenario with the largest loss")


AlertKind = Literal["var", "drawdown", "concentration", "daily_loss"]
AlertStatus = Literal["open", "acknowledged", "resolved"]


class RiskAlertRead(BaseModel):
    """A limit found breached as prices moved. ``open`` until acknowledged; ``resolved_at`` is
    set when the figure came back within the limit. A kind is raised again only after its last
    alert was resolved."""

    alert_id: uuid.UUID
    portfolio_id: uuid.UUID
    kind: AlertKind
    status: AlertStatus
    value: float = Field(description="The figure when raised (a share of equity; daily loss in currency)")
    limit: float
    message: str
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AlertStatus | Literal["all", "active"] = Field(
        default="all", description="'active': not yet resolved (open or acknowledged)"
    )
    limit: int = Field(default=100, ge=1, le=1000)


class RiskThresholdBreached(Event):
    topic: ClassVar[str] = "risk.threshold.breached"
    alert_id: uuid.UUID
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    value: float
    limit: float
    message: str


class PriceHistory(Protocol):
    """Daily closes of a symbol (the app reads them from the bar store)."""

    async def daily_closes(
        self, symbol: str, *, days: int, until_ns: int | None = None
    ) -> tuple[I64, F64] | None:
        """The last ``days`` daily closes up to the UTC day of ``until_ns`` (default: the latest),
        each keyed by its day's UTC midnight (``None``: no data for the symbol)."""
        ...

    async def asset_type(self, symbol: str) -> str | None:
        """The symbol's asset class (``stock``, ``crypto``, ...; ``None``: no data)."""
        ...


class RiskApi(Protocol):
    async def get_limits(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RiskLimitsRead: ...

    async def put_limits(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limits: RiskLimitsUpdate
    ) -> RiskLimitsRead: ...

    async def limits_for(self, *, portfolio_id: uuid.UUID) -> RiskLimitsRead:
        """The limits the order path enforces (no owner check: the caller has done it)."""
        ...

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead: ...

    async def portfolio_risk(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: RiskQuery
    ) -> PortfolioRiskRead: ...

    async def position_risk(
        self, *, owner_id: uuid.UUID, position_id: uuid.UUID, query: RiskQuery
    ) -> PositionRiskRead: ...

    async def stress_test(self, *, owner_id: uuid.UUID, request: StressTestRequest) -> StressTestRead: ...

    async def alerts(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, query: AlertQuery
    ) -> list[RiskAlertRead]:
        """Newest first; ``NotFound`` unless ``owner_id`` owns the portfolio."""
        ...

    async def acknowledge_alert(self, *, owner_id: uuid.UUID, alert_id: uuid.UUID) -> RiskAlertRead: ...
