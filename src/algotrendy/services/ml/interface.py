"""ML API: train models as jobs, keep their versions in a registry, predict, explain, and turn
predictions into trading signals.

A *model* is one trained version: ``name`` (the owner's lineage, e.g. ``aapl-daily``) and
``version`` (1, 2, ... per name). ``POST /ml/models/train`` with a name that exists trains its next
version. One version per name may be *serving* (``stage``): what ``/ml/registry/{name}/predict``
and signals use; promoting another version swaps it in without dropping requests, and a rollback
returns to the version that served before. Every version is also an MLflow run and registered
model version (parameters, metrics, feature list, data range, artifacts).

Numbers are float64 research figures (ARCHITECTURE: Decimal only on the order/ledger path).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from algotrendy.core.events import Event
from algotrendy.core.market import F64, Bars

ModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._/:-]+$")]
Interval = Annotated[str, StringConstraints(min_length=2, max_length=8, pattern=r"^[0-9]+[mhdw]$")]
Period = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,4}[dwmy]$")]
FeatureSpecs = str | Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=80)]],
                               Field(min_length=1, max_length=300)]  # fmt: skip
ModelType = Literal[
    "lightgbm", "xgboost", "catboost", "logistic", "random_forest", "lstm", "voting", "stacking", "ensemble"
]
"""``ensemble`` is the spec's name for soft voting over the default members (LightGBM, XGBoost and
logistic regression, ``hyperparams.members`` to change them). ``lstm`` (the spec's
``price_prediction_lstm``) needs PyTorch where it is trained (``pip install torch==2.13.0``, the CPU
build); it predicts without it."""

MAX_BATCH = 100_000


class ModelStatus(StrEnum):
    QUEUED = "queued"
    TRAINING = "training"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ModelStage(StrEnum):
    NONE = "none"
    SERVING = "serving"
    ARCHIVED = "archived"
    """Served before, replaced by a promotion (a rollback may bring it back)."""


# --- training ------------------------------------------------------------------------------------


class LabelBody(BaseModel):
    """``engine.ml.pipeline.LabelSpec``: what the model predicts (1 = up, 0 = down)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["direction", "triple_barrier"] = "direction"
    horizon: int = Field(1, ge=1, le=10_000, description="Bars ahead")
    dead_zone: float = Field(0.0, ge=0, lt=1, description="Moves smaller than this are dropped")
    profit_take: float = Field(2.0, ge=0, le=1000, description="Upper barrier in volatilities")
    stop_loss: float = Field(2.0, ge=0, le=1000, description="Lower barrier in volatilities")
    vol_span: int = Field(100, ge=1, le=100_000)


class ModelTrainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ModelName | None = Field(None, description="Lineage name; default '<symbol>-<interval>-<type>'")
    symbol: Symbol
    venue: str | None = Field(None, max_length=40)
    asset_type: str | None = Field(None, max_length=20, description="Checked against the symbol's own")
    interval: Interval = Field("1d", description="Bar interval ('timeframe')")
    start: date | None = None
    end: date | None = None
    training_period: Period | None = Field(
        None, description="Instead of start: this much history before end (e.g. '180d', '5y')"
    )
    model_type: ModelType = "lightgbm"
    features: FeatureSpecs = Field("standard", description="A feature set name or feature specs")
    label: LabelBody = Field(default_factory=LabelBody)
    hyperparams: dict[str, Any] = Field(default_factory=dict, max_length=50)
    optimize_trials: int = Field(0, ge=0, le=500, description="Optuna trials (0 = defaults)")
    optimize_metric: Literal["log_loss", "auc"] = "log_loss"
    selection: Literal["none", "permutation", "mdi"] = "none"
    select_k: int = Field(20, ge=1, le=300)
    cv_splits: int = Field(5, ge=2, le=20)
    embargo: float = Field(0.01, ge=0, description="Bars (>= 1) or a fraction of the bars (< 1)")
    test_fraction: float = Field(0.2, ge=0.05, le=0.5, description="Hold-out block at the end")
    seed: int = Field(0, ge=0, lt=2**31)
    threshold_long: float = Field(0.55, ge=0, le=1, description="P(up) at or above which it buys")
    threshold_short: float | None = Field(None, ge=0, le=1, description="P(up) at or below which it sells")
    fee_rate: float = Field(0.001, ge=0, lt=0.1)
    slippage: float = Field(0.0005, ge=0, lt=0.1)


class TrainAccepted(BaseModel):
    model_id: uuid.UUID
    job_id: uuid.UUID
    name: str
    version: int
    status: ModelStatus


class ModelStatusRead(BaseModel):
    model_id: uuid.UUID
    status: ModelStatus
    progress: float = Field(ge=0, le=1)
    step: str | None = Field(
        None, description="The pipeline step running (DataValidation ... ModelDeployment)"
    )
    message: str | None = None
    eta_seconds: float | None = None
    error: str | None = None


class ModelSummary(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    model_type: str
    symbol: str
    asset_type: str | None
    interval: str
    status: ModelStatus
    stage: ModelStage
    accuracy: float | None = Field(None, description="Hold-out accuracy")
    auc: float | None = Field(None, description="Hold-out ROC AUC")
    created_at: datetime
    trained_at: datetime | None


class ModelRead(ModelSummary):
    venue: str | None
    job_id: uuid.UUID | None
    error: str | None
    config: dict[str, Any] = Field(description="The training settings")
    feature_names: list[str] = Field(default_factory=list, description="Inputs, in order")
    params: dict[str, Any] = Field(default_factory=dict, description="Fitted hyperparameters")
    data_start: datetime | None = None
    data_end: datetime | None = None
    train_range: dict[str, Any] | None = None
    holdout_range: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = Field(
        None, description="Out-of-sample scores (CV and hold-out) against baselines, signal backtests"
    )
    mlflow_run_id: str | None = None
    registry_version: str | None = Field(None, description="The MLflow registered model version")
    promoted_at: datetime | None = None


class RegistryRead(BaseModel):
    name: str
    serving: ModelSummary | None
    versions: list[ModelSummary]


# --- inference -----------------------------------------------------------------------------------


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: dict[str, float] | None = Field(
        None,
        max_length=1000,
        description="Every input of the model by name; omit to compute them from the latest bars",
    )
    prediction_horizon: int | None = Field(
        None, ge=1, description="Must equal the model's label horizon when given"
    )


class PredictionRead(BaseModel):
    model_id: uuid.UUID
    name: str
    version: int
    prediction: float = Field(description="P(up) over the label horizon")
    confidence: float = Field(description="max(P(up), P(down))")
    probabilities: list[float] = Field(description="[P(down), P(up)]")
    direction: Literal["up", "down"]
    signal: Literal["buy", "sell", "hold"]
    horizon: int
    as_of: datetime | None = Field(None, description="The last bar used, when computed from bars")


class BatchPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features_batch: list[dict[str, float]] | None = Field(None, max_length=MAX_BATCH)
    columns: list[str] | None = Field(None, max_length=1000, description="Columnar form: names ...")
    rows: list[list[float | None]] | None = Field(None, max_length=MAX_BATCH, description="... and rows")


class BatchPredictionRead(BaseModel):
    model_id: uuid.UUID
    version: int
    count: int
    predictions: list[float | None] = Field(description="P(up) per row; null where an input is missing")
    signals: list[Literal["buy", "sell", "hold"] | None]


class ImportanceRead(BaseModel):
    model_id: uuid.UUID
    features: list[str]
    gain: dict[str, float] = Field(description="Share of the total split gain (tree models) or |coef|")
    shap: dict[str, float] = Field(description="Mean |SHAP value| on the hold-out rows")
    method: dict[str, str] = Field(description="How each figure was computed for this model type")


# --- features ------------------------------------------------------------------------------------


class RawBars(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: list[datetime] = Field(min_length=1, max_length=200_000)
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]


class FeaturesEngineer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: FeatureSpecs = "standard"
    symbol: Symbol | None = None
    venue: str | None = Field(None, max_length=40)
    interval: Interval = "1d"
    start: date | None = None
    end: date | None = None
    raw_data: RawBars | None = Field(None, description="Bars given inline instead of a symbol")
    asset_type: str | None = Field(None, max_length=20)
    limit: int = Field(1000, ge=1, le=200_000, description="Latest rows returned")
    drop_warmup: bool = Field(True, description="Leave out the rows before every feature has a value")


class FeaturesRead(BaseModel):
    columns: list[str]
    ts: list[datetime]
    rows: list[list[float | None]]
    warmup: int = Field(description="Leading bars without every feature")
    window: int = Field(description="Bars one row reads")


class FeatureSetRead(BaseModel):
    name: str
    features: list[str]


# --- signals -------------------------------------------------------------------------------------

SignalType = Literal["buy", "sell", "hold"]


class SignalGenerate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    venue: str | None = Field(None, max_length=40)
    interval: Interval = "1d"
    model_id: uuid.UUID | None = Field(None, description="A model version; default the serving one")
    model_name: ModelName | None = Field(None, description="Use the serving version of this name")
    use_technical: bool = Field(True, description="Blend in RSI, MACD and trend rules")
    ml_weight: float = Field(0.6, ge=0, le=1, description="Weight of the model against the rules")
    expires_in_minutes: int | None = Field(None, ge=1, le=525_600, description="Default: 3 bars")
    stop_atr: float = Field(2.0, gt=0, le=50, description="Stop-loss distance in ATR(14)")
    take_profit_atr: float = Field(3.0, gt=0, le=50, description="Take-profit distance in ATR(14)")


class SignalRead(BaseModel):
    id: uuid.UUID
    symbol: str
    timeframe: str
    signal_type: SignalType
    strength: float = Field(ge=0, le=1)
    confidence: float = Field(ge=0, le=1)
    price: float | None = Field(None, description="Close of the bar it was computed on")
    price_target: float | None
    stop_loss: float | None
    take_profit: float | None
    reasoning: str
    technical_indicators: dict[str, Any] | None
    ml_predictions: dict[str, Any] | None
    sentiment_score: float | None
    model_id: uuid.UUID | None
    source: str = Field(description="'ml', 'technical' or 'ml+technical'")
    bar_time: datetime | None
    created_at: datetime
    expires_at: datetime | None


# --- events --------------------------------------------------------------------------------------


class ModelTrained(Event):
    """A training finished (completed, failed or cancelled)."""

    topic: ClassVar[str] = "ml.model.trained"
    model_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    version: int
    status: ModelStatus
    accuracy: float | None = None


class ModelPromoted(Event):
    topic: ClassVar[str] = "ml.model.promoted"
    model_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    version: int
    previous_model_id: uuid.UUID | None = None
    rollback: bool = False


class ModelDeleted(Event):
    topic: ClassVar[str] = "ml.model.deleted"
    model_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    version: int


class SignalGenerated(Event):
    topic: ClassVar[str] = "strategy.signal.generated"
    signal_id: uuid.UUID
    owner_id: uuid.UUID
    symbol: str
    timeframe: str
    signal_type: SignalType
    strength: float
    confidence: float
    model_id: uuid.UUID | None = None
    expires_at: datetime | None = None


# --- the API -------------------------------------------------------------------------------------


class MlApi(Protocol):
    async def train(self, *, owner: uuid.UUID, request: ModelTrainCreate) -> TrainAccepted:
        """Validate everything (symbol, range, settings) and start the training job."""
        ...

    async def status(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelStatusRead: ...

    async def get(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead: ...

    async def list(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[ModelSummary]:
        """``status`` is a ``ModelStatus`` or ``active`` (the serving versions)."""
        ...

    async def delete(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> None:
        """Cancels a running training; ``Conflict`` for the serving version (promote another first)."""
        ...

    async def promote(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ModelRead: ...

    async def rollback(self, *, owner: uuid.UUID, name: str) -> ModelRead:
        """Serve the version that served before the current one; ``Conflict`` if there is none."""
        ...

    async def registry(self, *, owner: uuid.UUID, name: str) -> RegistryRead: ...

    async def predict(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: PredictRequest
    ) -> PredictionRead: ...

    async def predict_serving(
        self, *, owner: uuid.UUID, name: str, request: PredictRequest
    ) -> PredictionRead: ...

    async def predict_batch(
        self, *, owner: uuid.UUID, model_id: uuid.UUID, request: BatchPredictRequest
    ) -> BatchPredictionRead: ...

    async def importance(self, *, owner: uuid.UUID, model_id: uuid.UUID) -> ImportanceRead: ...

    async def engineer(self, *, owner: uuid.UUID, request: FeaturesEngineer) -> FeaturesRead: ...

    async def feature_sets(self) -> builtins.list[FeatureSetRead]: ...

    async def generate_signal(self, *, owner: uuid.UUID, request: SignalGenerate) -> SignalRead: ...

    async def signals(
        self,
        *,
        owner: uuid.UUID,
        symbol: str | None = None,
        signal_type: SignalType | None = None,
        active: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[SignalRead]: ...

    async def signal(self, *, owner: uuid.UUID, signal_id: uuid.UUID) -> SignalRead: ...


Scorer = Callable[[Bars], dict[str, F64]]
"""Each alias's P(up) at every bar of the bars given (CPU only, no I/O: call it in a thread)."""


class ModelScores(Protocol):
    """Model probabilities as strategy inputs (in-process only: backtests and live deployments of
    a template with ``models`` run next to the ML service)."""

    async def scorer(self, *, owner: uuid.UUID, models: Mapping[str, str], interval: str) -> Scorer:
        """Resolve each alias's model (a name: its serving version; or a version id), load it, and
        return the scoring function. A bar gets NaN (a condition on it is false) during the
        features' warm-up and up to the last bar any of the model's training labels read, so a
        backtest trades a model only out of sample. ``NotFound``/``Conflict``/``Invalid`` name
        ``models.<alias>``."""
        ...
