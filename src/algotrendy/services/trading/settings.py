"""Settings section ``ALGO_TRADING__*``."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field


class TradingSettings(BaseModel):
    paper_fee_rate: Decimal = Field(Decimal("0.001"), ge=0, lt=1, description="Paper broker commission rate")
    paper_fee_fixed: Decimal = Field(Decimal(0), ge=0, description="Paper broker fixed fee per fill")
    paper_slippage: Decimal = Field(
        Decimal("0.0005"), ge=0, lt=1, description="Paper broker slippage fraction"
    )
    paper_max_participation: Decimal | None = Field(
        Decimal("0.1"), gt=0, le=1, description="Largest share of a bar's volume one paper order takes"
    )
    market_reserve_buffer: Decimal = Field(
        Decimal("0.02"), ge=0, lt=1, description="Cash set aside for a market buy above its last price"
    )
    reserve_fee_rate: Decimal = Field(
        Decimal("0.001"), ge=0, lt=1, description="Fee rate included in a buy order's reservation"
    )
    venue_timeout: float = Field(
        10.0, gt=0, description="Seconds a live venue call may take before it is ambiguous"
    )
    venue_poll_interval: float = Field(
        1.0, gt=0, description="Seconds between polls of a live venue for order updates and fills"
    )
    reconcile_interval: float = Field(60.0, gt=0, description="Seconds between reconciliations")
    risk_stream_prices: bool = Field(
        True, description="The risk monitor reprices on every live price update (off: on rebuilds only)"
    )
    risk_sweep_interval: float = Field(
        60.0, gt=0, description="Seconds between the risk monitor's rebuilds of every watched portfolio"
    )
    unknown_grace: float = Field(
        120.0, gt=0, description="Seconds a never-seen order may stay unknown before it counts as not placed"
    )
    allow_custom_venue_urls: bool = Field(
        False, description="Let users point a connection at another API address (tests, private gateways)"
    )
