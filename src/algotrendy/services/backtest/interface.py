"""Backtesting API, DTOs and events: backtests, parameter optimization, walk-forward analysis,
Monte Carlo simulation and comparison of runs.

Every run is a job on the platform's job runner (local process pool, or Ray when configured):
``POST`` answers at once with the run's id and ``status``; ``GET .../status`` shows progress and
ETA; ``GET .../results`` the outcome. A run that fails keeps its error and what it computed
before failing (``partial``). Bad requests (a template that does not validate, a date range with
no data, a series shorter than the indicators' warm-up, a parameter space over the configured
maximum) are refused with the field named, and no job is started.

Conventions (the engines' ``engine.vector`` / ``engine.backtest``): signals on a bar's close,
fills on the next bar's open, ``commission`` a fraction of the notional per side, ``slippage`` a
fraction of the price against the taker.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from algotrendy.core.events import Event
from algotrendy.engine.template import ParamValue, StrategyTemplate

SymbolText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9^._/:-]+$")]
VenueText = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")]
Interval = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}(m|h|d|w)$")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z_][a-z0-9_]*$")]
When = date | datetime
Objective = Literal["sharpe_ratio", "total_return", "calmar_ratio", "sortino_ratio"]
OBJECTIVE_ALIASES = {
    "sharpe": "sharpe_ratio",
    "max_sharpe": "sharpe_ratio",
    "return": "total_return",
    "max_return": "total_return",
    "calmar": "calmar_ratio",
    "max_calmar": "calmar_ratio",
    "sortino": "sortino_ratio",
    "max_sortino": "sortino_ratio",
}
METHOD_ALIASES = {"grid": "grid_search", "random": "random_search", "bayes": "bayesian", "optuna": "bayesian"}


class RunKind(StrEnum):
    BACKTEST = "backtest"
    OPTIMIZE = "optimize"
    WALK_FORWARD = "walk_forward"
    MONTE_CARLO = "monte_carlo"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSettings(_In):
    """What to run on and at what cost. Symbols default to the strategy's universe."""

    symbol: SymbolText | None = Field(None, description="One symbol (signal templates)")
    symbols: list[SymbolText] = Field(default_factory=list, max_length=50, description="Rotation templates")
    venue: VenueText | None = None
    interval: Interval | None = Field(None, description="Bar interval; default the strategy's, else 1d")
    start_date: When | None = None
    end_date: When | None = Field(None, description="Exclusive")
    initial_capital: float = Field(100_000.0, gt=0, le=1e12)
    commission: float = Field(0.0, ge=0, lt=0.1, description="Fraction of the notional per side")
    slippage: float = Field(0.0, ge=0, lt=0.1, description="Fraction of the price, against the taker")
    fixed_fee: float = Field(0.0, ge=0, le=1e6, description="Per fill, in account currency")
    lot_size: float = Field(0.0, ge=0, le=1e9, description="Quantities round down to it; 0 = fractional")
    leverage: float = Field(1.0, gt=0, le=100)
    params: dict[ParamName, ParamValue] = Field(
        default_factory=dict, max_length=50, description="Parameter values (others keep their defaults)"
    )
    engine: Literal["auto", "vectorized", "event"] = Field(
        "auto", description="auto: vectorized for one-symbol signal templates, else event-driven"
    )
    benchmark: SymbolText | None = Field(None, description="For alpha/beta; default SPY for stocks")
    risk_free_rate: float = Field(0.0, ge=-0.5, le=1.0, description="Annual")


class Target(_In):
    """A stored strategy (``strategy_id``, optionally an older ``version``) or an inline template."""

    strategy_id: uuid.UUID | None = None
    version: int | None = Field(None, ge=1)
    template: StrategyTemplate | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if (self.strategy_id is None) == (self.template is None):
            raise ValueError("give exactly one of strategy_id and template")
        return self


class BacktestCreate(RunSettings, Target):
    name: str | None = Field(None, max_length=100)


class StrategyBacktestCreate(RunSettings):
    """``POST /api/v1/strategies/{strategy_id}/backtest``."""

    version: int | None = Field(None, ge=1)
    name: str | None = Field(None, max_length=100)


class SpaceEntry(_In):
    """Overrides a parameter's range for an optimization."""

    min_value: float | None = None
    max_value: float | None = None
    step: float | None = Field(None, gt=0)
    choices: list[ParamValue] | None = Field(None, max_length=1000)


class OptimizeSettings(_In):
    parameters: list[ParamName] = Field(
        default_factory=list, max_length=10, description="Which to optimize; default all numeric ones"
    )
    space: dict[ParamName, SpaceEntry] = Field(default_factory=dict, max_length=10)
    optimization_method: str = Field("grid_search", description="grid_search, random_search or bayesian")
    objective: str = Field(
        "sharpe_ratio", description="sharpe_ratio, total_return, calmar_ratio, sortino_ratio"
    )
    n_trials: int = Field(100, ge=1, le=100_000, description="random_search / bayesian trials")
    top_n: int = Field(10, ge=1, le=100)
    min_trades: int = Field(1, ge=0, le=100_000, description="Combinations with fewer trades rank last")
    seed: int | None = None
    constraints: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Conditions on parameters that a combination must satisfy, e.g. 'fast < slow'",
    )

    @model_validator(mode="after")
    def _names(self) -> OptimizeSettings:
        self.optimization_method = METHOD_ALIASES.get(self.optimization_method, self.optimization_method)
        if self.optimization_method not in ("grid_search", "random_search", "bayesian"):
            raise ValueError("optimization_method must be grid_search, random_search or bayesian")
        self.objective = OBJECTIVE_ALIASES.get(self.objective, self.objective)
        if self.objective not in ("sharpe_ratio", "total_return", "calmar_ratio", "sortino_ratio"):
            raise ValueError("objective must be sharpe_ratio, total_return, calmar_ratio or sortino_ratio")
        return self


class OptimizeCreate(RunSettings, OptimizeSettings, Target):
    """``POST /api/v1/backtest/optimize``."""


class StrategyOptimizeCreate(RunSettings, OptimizeSettings):
    """``POST /api/v1/strategies/{strategy_id}/optimize``."""

    version: int | None = Field(None, ge=1)


class WalkForwardCreate(RunSettings, OptimizeSettings, Target):
    """Optimize on ``training_window`` bars, test the winner on the next ``testing_window`` bars,
    move by ``step_size`` bars; the out-of-sample pieces are stitched into one equity curve."""

    training_window: int = Field(252, ge=10, le=10_000_000)
    testing_window: int = Field(21, ge=2, le=10_000_000)
    step_size: int | None = Field(None, ge=1, le=10_000_000, description="Default: testing_window")
    anchored: bool = Field(False, description="Training always starts at the first bar")


class MonteCarloCreate(RunSettings, _In):
    """Resample a finished backtest (``backtest_id``), or run one first (``strategy_id``/``template``)."""

    backtest_id: uuid.UUID | None = None
    strategy_id: uuid.UUID | None = None
    version: int | None = Field(None, ge=1)
    template: StrategyTemplate | None = None
    method: Literal["trade_bootstrap", "block_bootstrap", "both"] = "both"
    num_simulations: int = Field(1000, ge=10, le=1_000_000)
    time_horizon: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Bars (block bootstrap) / trades (trade bootstrap); default the run's",
    )
    block_size: int | None = Field(None, ge=1, le=100_000)
    confidence_level: float = Field(0.95, gt=0.5, lt=1)
    ruin_threshold: float = Field(
        0.5, gt=0, lt=1, description="Ruin: equity at or below this fraction of the start"
    )
    seed: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MonteCarloCreate:
        given = sum(x is not None for x in (self.backtest_id, self.strategy_id, self.template))
        if given != 1:
            raise ValueError("give exactly one of backtest_id, strategy_id and template")
        return self


class CompareRequest(_In):
    backtest_ids: list[uuid.UUID] = Field(min_length=2, max_length=20)
    metrics: list[str] = Field(default_factory=list, max_length=40, description="Default: the main ones")


# ---- reads --------------------------------------------------------------------------------------


class RunAccepted(BaseModel):
    backtest_id: uuid.UUID
    kind: RunKind
    status: RunStatus
    job_id: uuid.UUID
    status_url: str
    results_url: str


class RunStatusRead(BaseModel):
    backtest_id: uuid.UUID
    kind: RunKind
    status: RunStatus
    progress: float = Field(ge=0, le=1)
    eta_seconds: float | None = None
    message: str | None = None
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class RunSummary(BaseModel):
    backtest_id: uuid.UUID
    kind: RunKind
    status: RunStatus
    name: str | None
    strategy_id: uuid.UUID | None
    strategy_version: int | None
    strategy_name: str
    symbols: list[str]
    interval: str
    metrics: dict[str, Any] = Field(default_factory=dict, description="Headline numbers once completed")
    created_at: datetime
    finished_at: datetime | None = None


class RunResults(RunSummary):
    """The whole outcome. Its ``result`` depends on ``kind``:

    - backtest: ``metrics``, ``equity`` (timestamps, equity, drawdown, benchmark; at most
      ``curve_points`` points), ``trades``, ``params``, ``config``;
    - optimize: ``top`` (the best ``top_n`` combinations with their metrics), ``best_params``,
      ``deflated_sharpe``, ``combinations``;
    - walk_forward: ``windows`` (per window: ranges, parameters, in- and out-of-sample metrics),
      ``equity`` (stitched out-of-sample), ``metrics`` (of that), ``efficiency``;
    - monte_carlo: ``trade_bootstrap`` / ``block_bootstrap`` distributions.
    """

    request: dict[str, Any]
    result: dict[str, Any] | None = None
    partial: bool = Field(False, description="The run failed or was cancelled; result holds what was done")
    error: str | None = None


class CompareRead(BaseModel):
    metrics: list[str]
    runs: list[RunSummary]
    table: dict[str, dict[str, Any]] = Field(description="metric -> backtest_id -> value")
    best: dict[str, uuid.UUID | None] = Field(description="metric -> the run that does best on it")


# ---- events -------------------------------------------------------------------------------------


class BacktestCompleted(Event):
    topic: ClassVar[str] = "backtest.run.completed"
    backtest_id: uuid.UUID
    owner_id: uuid.UUID
    kind: RunKind
    status: RunStatus


class BacktestApi(Protocol):
    async def backtest(self, *, owner: uuid.UUID, request: BacktestCreate) -> RunAccepted: ...
    async def backtest_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyBacktestCreate
    ) -> RunAccepted: ...
    async def optimize(self, *, owner: uuid.UUID, request: OptimizeCreate) -> RunAccepted: ...
    async def optimize_strategy(
        self, *, owner: uuid.UUID, strategy_id: uuid.UUID, request: StrategyOptimizeCreate
    ) -> RunAccepted: ...
    async def walk_forward(self, *, owner: uuid.UUID, request: WalkForwardCreate) -> RunAccepted: ...
    async def monte_carlo(self, *, owner: uuid.UUID, request: MonteCarloCreate) -> RunAccepted: ...
    async def status(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead: ...
    async def results(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunResults: ...
    async def list(
        self, *, owner: uuid.UUID, kind: RunKind | None = None, strategy_id: uuid.UUID | None = None,
        limit: int = 50, offset: int = 0,
    ) -> builtins.list[RunSummary]: ...  # fmt: skip
    async def cancel(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> RunStatusRead: ...
    async def delete(self, *, owner: uuid.UUID, backtest_id: uuid.UUID) -> None: ...
    async def compare(self, *, owner: uuid.UUID, request: CompareRequest) -> CompareRead: ...
