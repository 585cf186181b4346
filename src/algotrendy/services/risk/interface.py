"""Risk API: limits and the kill switch of each portfolio, and the pre-trade check.

The check itself is ``engine.risk.pre_trade_check``; it runs in-process on the trading
service's order path (ARCHITECTURE rule 5) with the limits this service keeps. A limit left
``null`` is not enforced.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algotrendy.core.events import Event
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


class RiskApi(Protocol):
    async def get_limits(self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID) -> RiskLimitsRead: ...

    async def put_limits(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limits: RiskLimitsUpdate
    ) -> RiskLimitsRead: ...

    async def limits_for(self, *, portfolio_id: uuid.UUID) -> RiskLimitsRead:
        """The limits the order path enforces (no owner check: the caller has done it)."""
        ...

    async def pre_trade_check(self, *, owner_id: uuid.UUID, request: OrderCreate) -> RiskCheckRead: ...
