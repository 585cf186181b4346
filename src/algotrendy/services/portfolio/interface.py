"""Portfolio API: a portfolio is owned by one user and is what trading, risk limits and reports
are kept for. ``venue`` says where it trades: ``paper`` (the embedded paper broker, the default)
or the id of one of the owner's broker connections (``/api/v1/trading/connections``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
