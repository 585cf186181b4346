"""Settings of the backtesting service (``ALGO_BACKTEST__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class BacktestSettings(BaseModel):
    max_combinations: int = Field(100_000, ge=1, description="Largest optimization space accepted")
    max_bars: int = Field(5_000_000, ge=100, description="Longest series a run may use (per symbol)")
    curve_points: int = Field(5_000, ge=100, le=1_000_000, description="Points kept of each curve")
    max_trades: int = Field(50_000, ge=100, description="Trades kept in a run's stored trade list")
    sweep_workers: int = Field(0, ge=0, le=256, description="Threads per sweep; 0 = one per core")
    inputs_dir: Path | None = Field(
        None,
        description="Where the bars a job reads are staged (default <data_dir>/backtest/inputs); "
        "with a remote Ray cluster this must be storage every node sees",
    )
    default_benchmark: str = Field("SPY", description="Benchmark of stock/ETF runs when none is given")
