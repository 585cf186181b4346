"""Checking a training request before any job starts: the settings as a ``TrainingConfig`` (its
``ValueError`` names the field), the range, and enough bars for the warm-up, horizon and samples."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from algotrendy.core.errors import Invalid
from algotrendy.core.market import Timeframe
from algotrendy.engine.ml.feature_specs import FeatureError, parse
from algotrendy.engine.ml.models import ENSEMBLE_TYPES, torch_available
from algotrendy.engine.ml.pipeline import MIN_SAMPLES, TrainingConfig
from algotrendy.services.marketdata.interface import BarSeries, MarketDataApi
from algotrendy.services.ml.interface import ModelTrainCreate
from algotrendy.services.ml.settings import MlSettings

_PERIOD_DAYS = {"d": 1.0, "w": 7.0, "m": 30.4375, "y": 365.25}
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)")


@dataclass(frozen=True)
class Checked:
    series: BarSeries
    interval: str
    config: dict[str, Any]
    first: datetime
    last: datetime


def invalid_config(exc: ValueError) -> Invalid:
    """A pipeline ``ValueError`` ("label.horizon must be ...") as ``Invalid`` naming its field."""
    text = str(exc)
    m = _FIELD.match(text)
    field = m.group(1) if m else "config"
    if field in ("select_k", "features") or field.split(".")[0] in TrainingConfig.__dataclass_fields__:
        return Invalid(text, field=field)
    return Invalid(text, field="config")


def config_of(request: ModelTrainCreate, *, n_jobs: int) -> dict[str, Any]:
    """The ``TrainingConfig`` dict of a request (checked: ``Invalid`` naming the field)."""
    model_type = "voting" if request.model_type == "ensemble" else request.model_type
    embargo: int | float = int(request.embargo) if request.embargo >= 1 else float(request.embargo)
    if request.embargo >= 1 and not float(request.embargo).is_integer():
        raise Invalid("embargo must be a whole number of bars (>= 1) or a fraction (< 1)", field="embargo")
    data = {
        "features": request.features,
        "label": request.label.model_dump(),
        "model_type": model_type,
        "hyperparams": request.hyperparams,
        "optimize_trials": request.optimize_trials,
        "optimize_metric": request.optimize_metric,
        "selection": request.selection,
        "select_k": request.select_k,
        "cv_splits": request.cv_splits,
        "embargo": embargo,
        "test_fraction": request.test_fraction,
        "seed": request.seed,
        "n_jobs": n_jobs,
        "threshold_long": request.threshold_long,
        "threshold_short": request.threshold_short,
        "fee_rate": request.fee_rate,
        "slippage": request.slippage,
    }
    try:
        config = TrainingConfig.from_dict(data)
    except FeatureError as exc:
        raise Invalid(f"features: {exc}", field="features") from None
    except ValueError as exc:
        raise invalid_config(exc) from None
    _check_sequence(config)
    return config.to_dict()


def _check_sequence(config: TrainingConfig) -> None:
    """An ``lstm`` needs PyTorch to train; ensembles combine row-wise members, so it cannot be
    one. Any label works: bars without one stay in its windows with weight 0 (``steps._engineer``)."""
    members = config.hyperparams.get("members") or () if config.model_type in ENSEMBLE_TYPES else ()
    if "lstm" in members:
        raise Invalid(
            "lstm is a sequence model and cannot be an ensemble member; train it on its own",
            field="hyperparams.members",
        )
    if config.model_type == "lstm" and not torch_available():
        raise Invalid(
            "model type 'lstm' needs PyTorch where models are trained: pip install torch==2.13.0 (CPU build)",
            field="model_type",
        )


def _range(request: ModelTrainCreate, now: datetime) -> tuple[datetime | None, datetime | None]:
    end = (
        None
        if request.end is None
        else datetime.combine(request.end, time(0), tzinfo=UTC) + timedelta(days=1)
    )
    start = None if request.start is None else datetime.combine(request.start, time(0), tzinfo=UTC)
    if request.training_period is not None:
        if start is not None:
            raise Invalid("give start or training_period, not both", field="training_period")
        days = int(request.training_period[:-1]) * _PERIOD_DAYS[request.training_period[-1]]
        start = (end or now) - timedelta(days=days)
    if start is not None and end is not None and start >= end:
        raise Invalid("start must be before end", field="start")
    return start, end


async def check_request(
    request: ModelTrainCreate, *, marketdata: MarketDataApi, settings: MlSettings, now: datetime
) -> Checked:
    try:
        interval = Timeframe.parse(request.interval).label
    except ValueError as exc:
        raise Invalid(str(exc), field="interval") from None
    config = config_of(request, n_jobs=settings.training_threads)
    start, end = _range(request, now)
    series = await marketdata.read_bars(
        symbol=request.symbol, venue=request.venue, interval=interval, start=start, end=end
    )
    if request.asset_type is not None and request.asset_type.lower() != series.asset_type.value:
        raise Invalid(
            f"{series.symbol} is {series.asset_type.value}, not {request.asset_type}", field="asset_type"
        )
    n = len(series.bars)
    plan = parse(config["features"])
    need = max(settings.min_bars, plan.warmup + request.label.horizon + MIN_SAMPLES)
    if n < need:
        raise Invalid(
            f"{n} {interval} bars of {series.symbol} in the range; this training needs at least {need} "
            f"({plan.warmup} warm-up for the features, {request.label.horizon} for the label, "
            f"{MIN_SAMPLES} samples)",
            field="training_period" if request.training_period else "start",
        )
    if n > settings.max_bars:
        raise Invalid(
            f"{n} bars in the range; at most {settings.max_bars} per training (narrow start/end)",
            field="start",
        )
    ts = series.bars.ts
    first = datetime.fromtimestamp(int(ts[0]) / 1e9, tz=UTC)
    last = datetime.fromtimestamp(int(ts[-1]) / 1e9, tz=UTC)
    return Checked(series=series, interval=interval, config=config, first=first, last=last)
