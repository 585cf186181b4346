"""Inference, feature engineering and signals of the ML service (``MlService`` delegates here).

Predictions run on a loaded ``Predictor`` (``serving.ModelCache``); the CPU work of a single row
runs inline (tens of microseconds: a thread hop would cost more than it saves), batches and
feature computations over many bars in a thread. Inputs are checked first: a missing or unknown
feature, a non-finite value, or a horizon other than the model's is ``Invalid`` naming it.
A signal is computed on the latest bars, stored in ``trading_signals`` and published as
``strategy.signal.generated`` through the outbox, in one transaction.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound
from algotrendy.core.market import F64, Bars, Timeframe
from algotrendy.db.outbox import Outbox
from algotrendy.engine.ml.feature_specs import FEATURE_SETS, FeatureError, parse
from algotrendy.engine.ml.features import compute
from algotrendy.services.marketdata.interface import BarSeries, MarketDataApi
from algotrendy.services.ml import artifacts, signals, store
from algotrendy.services.ml.inference import Predictor
from algotrendy.services.ml.interface import (
    BatchPredictionRead,
    BatchPredictRequest,
    FeaturesEngineer,
    FeatureSetRead,
    FeaturesRead,
    ImportanceRead,
    ModelStatus,
    PredictionRead,
    PredictRequest,
    RawBars,
    Scorer,
    SignalGenerate,
    SignalGenerated,
    SignalRead,
    SignalType,
)
from algotrendy.services.ml.serving import ModelCache
from algotrendy.services.ml.settings import MlSettings

Signal = Literal["buy", "sell", "hold"]
_SPAN = 4.0
"""Calendar time read per bar needed: sessions, weekends and holidays leave gaps."""


def _to_ns(values: builtins.list[datetime]) -> np.ndarray:
    return np.array([int(v.astimezone(UTC).timestamp() * 1_000_000) * 1000 for v in values], dtype=np.int64)


def _at(ns: int) -> datetime:
    return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC)


def _raw_bars(raw: RawBars) -> Bars:
    n = len(raw.ts)
    for name in ("open", "high", "low", "close", "volume"):
        if len(getattr(raw, name)) != n:
            raise Invalid(
                f"raw_data.{name} has {len(getattr(raw, name))} values, ts has {n}", field=f"raw_data.{name}"
            )
    ts = _to_ns(raw.ts)
    if n > 1 and not bool(np.all(np.diff(ts) > 0)):
        raise Invalid("raw_data.ts must be strictly increasing", field="raw_data.ts")
    cols = [np.asarray(getattr(raw, c), dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    if not all(bool(np.all(np.isfinite(c))) for c in cols) or bool(np.any(cols[3] <= 0)):
        raise Invalid("raw_data prices must be finite and positive", field="raw_data.close")
    return Bars(ts, *cols)


def _thresholds(config: dict[str, Any]) -> tuple[float, float]:
    long_ = float(config.get("threshold_long", 0.55))
    short = config.get("threshold_short")
    return long_, (1.0 - long_) if short is None else float(short)


def _signal(p: float, long_: float, short: float) -> Signal:
    if p >= long_:
        return "buy"
    if p <= short:
        return "sell"
    return "hold"


def _signal_read(row: Any) -> SignalRead:
    return SignalRead.model_validate(row, from_attributes=True)


class Predicting:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: MlSettings,
        marketdata: MarketDataApi,
        outbox: Outbox,
        cache: ModelCache,
        models_dir: Path,
    ) -> None:
        self._db = sessions
        self._clock = clock
        self._s = settings
        self._md = marketdata
        self._outbox = outbox
        self._cache = cache
        self._dir = models_dir

    # ---- models in memory -----------------------------------------------------------------------

    async def predictor(self, row: Any) -> Predictor:
        if row.status != ModelStatus.COMPLETED.value or not row.model_path:
            raise Conflict(
                f"{row.name} v{row.version} is {row.status}; predictions need a completed model",
                code="model_not_ready",
            )

        def load() -> Predictor:
            trained = artifacts.load(root=self._dir, path=row.model_path, sha256=row.artifact_sha256)
            return Predictor(trained)

        return await self._cache.get(row.id, load)

    async def serving_row(self, owner: uuid.UUID, name: str) -> Any:
        known, model_id = self._cache.serving((owner, name))
        if known and model_id is not None:
            cached = self._cache.row(model_id)
            if cached is not None and cached.owner_id == owner:
                return cached
        async with self._db() as session:
            if known and model_id is not None:
                row = await store.get(session, owner, model_id)
                if row is not None:
                    self._cache.put_row(row)
                    return row
            row = await store.serving(session, owner, name)
            if row is None and not await store.versions(session, owner, name):
                raise NotFound(f"no model named {name}", code="model_not_found")
        self._cache.set_serving((owner, name), None if row is None else row.id)
        if row is None:
            raise Conflict(f"no version of {name} is serving; promote one", code="nothing_serving")
        return row

    async def _latest(self, *, symbol: str, venue: str | None, interval: str, bars: int) -> BarSeries:
        """At least ``bars`` of the latest bars of a series (all it has when shorter)."""
        known = await self._md.symbols(symbol=symbol)
        last = max((s.last for s in known if s.venue == (venue or s.venue)), default=None)
        if last is None:
            raise NotFound(f"no bars for {symbol}", code="symbol_not_found")
        step = Timeframe.parse(interval).seconds
        start = last - timedelta(seconds=step * bars * _SPAN)
        series = await self._md.read_bars(symbol=symbol, venue=venue, interval=interval, start=start)
        if len(series.bars) < bars:
            series = await self._md.read_bars(symbol=symbol, venue=venue, interval=interval)
        return series

    async def scorer(self, owner: uuid.UUID, models: Mapping[str, str], interval: str) -> Scorer:
        """``ModelScores.scorer``: resolve and load every alias's model, then score bars in memory."""
        loaded: list[tuple[str, Predictor, int]] = []
        for alias, ref in models.items():
            field = f"models.{alias}"
            try:
                row = await self._model_ref(owner, ref)
            except (NotFound, Conflict) as exc:
                raise type(exc)(f"{field}: {exc}", code=exc.code, field=field) from None
            if row.interval != interval:
                raise Invalid(f"{field}: {row.name} reads {row.interval} bars, not {interval}", field=field)
            predictor = await self.predictor(row)
            label_end = int(((row.summary or {}).get("train_range") or {}).get("label_end_ts", 0))
            loaded.append((alias, predictor, label_end))

        def score(bars: Bars) -> dict[str, F64]:
            ts = np.asarray(bars.ts, dtype=np.int64)
            out: dict[str, F64] = {}
            for alias, predictor, label_end in loaded:
                p = np.array(predictor.predict_series(bars), dtype=np.float64)
                p[ts <= label_end] = np.nan  # in sample: the model was fitted on these labels
                out[alias] = p
            return out

        return score

    async def _model_ref(self, owner: uuid.UUID, ref: str) -> Any:
        """A model reference: a version id, or a name (its serving version)."""
        try:
            model_id = uuid.UUID(ref)
        except ValueError:
            return await self.serving_row(owner, ref)
        async with self._db() as session:
            row = await store.get(session, owner, model_id)
        if row is None:
            raise NotFound(f"model {ref} not found", code="model_not_found")
        return row

    # ---- inference ------------------------------------------------------------------------------

    async def predict(self, row: Any, request: PredictRequest) -> PredictionRead:
        predictor = await self.predictor(row)
        horizon = int(row.config["label"]["horizon"])
        if request.prediction_horizon is not None and request.prediction_horizon != horizon:
            raise Invalid(
                f"this model predicts {horizon} bars ahead, not {request.prediction_horizon}",
                field="prediction_horizon",
            )
        as_of = None
        if request.features is None:
            series = await self._latest(
                symbol=row.symbol, venue=row.venue, interval=row.interval, bars=predictor.bars_needed
            )
            p = await asyncio.to_thread(predictor.predict_bars, series.bars)
            as_of = _at(int(series.bars.ts[-1]))
            if not math.isfinite(p):
                raise Invalid(f"not enough bars of {row.symbol} for this model's features", field="features")
        elif predictor.sequence > 1:
            raise Invalid(
                f"{row.name} is a sequence model ({row.model_type}): a prediction reads the last "
                f"{predictor.sequence} bars' features, not one row; omit features to predict from the "
                "latest bars, or send the rows in time order to predict/batch",
                field="features",
            )
        else:
            p = predictor.predict_row(self._row_of(predictor, request.features))
        long_, short = _thresholds(row.config)
        return PredictionRead(
            model_id=row.id,
            name=row.name,
            version=row.version,
            prediction=p,
            confidence=max(p, 1.0 - p),
            probabilities=[1.0 - p, p],
            direction="up" if p >= 0.5 else "down",
            signal=_signal(p, long_, short),
            horizon=horizon,
            as_of=as_of,
        )

    @staticmethod
    def _row_of(predictor: Predictor, features: dict[str, float]) -> np.ndarray:
        names = predictor.feature_names
        missing = [n for n in names if n not in features]
        if missing:
            raise Invalid(f"missing {len(missing)} of the model's features: {', '.join(missing[:5])}",
                          field=f"features.{missing[0]}")  # fmt: skip
        extra = [k for k in features if k not in set(names)]
        if extra:
            raise Invalid(f"{extra[0]} is not an input of this model", field=f"features.{extra[0]}")
        row = np.array([features[n] for n in names], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(row))
        if len(bad):
            raise Invalid("features must be finite numbers", field=f"features.{names[int(bad[0])]}")
        return row

    async def predict_batch(self, row: Any, request: BatchPredictRequest) -> BatchPredictionRead:
        predictor = await self.predictor(row)
        names = predictor.feature_names
        if request.features_batch is not None:
            if request.columns is not None or request.rows is not None:
                raise Invalid("give features_batch or columns and rows, not both", field="features_batch")
            for i, item in enumerate(request.features_batch):
                unknown = next((k for k in item if k not in set(names)), None)
                if unknown is not None:
                    raise Invalid(
                        f"{unknown} is not an input of this model", field=f"features_batch[{i}].{unknown}"
                    )
            X = np.array(
                [[item.get(n, math.nan) for n in names] for item in request.features_batch], dtype=np.float64
            )
        elif request.columns is not None and request.rows is not None:
            X = self._columnar(names, request.columns, request.rows)
        else:
            raise Invalid("give features_batch, or columns and rows", field="features_batch")
        X = X.reshape(-1, len(names))
        p = (
            await asyncio.to_thread(predictor.predict_matrix, X)
            if len(X) > 1000
            else predictor.predict_matrix(X)
        )
        long_, short = _thresholds(row.config)
        preds = [float(v) if math.isfinite(v) else None for v in p]
        return BatchPredictionRead(
            model_id=row.id,
            version=row.version,
            count=len(preds),
            predictions=preds,
            signals=[None if v is None else _signal(v, long_, short) for v in preds],
        )

    @staticmethod
    def _columnar(
        names: tuple[str, ...], columns: builtins.list[str], rows: builtins.list[Any]
    ) -> np.ndarray:
        if sorted(columns) != sorted(names) or len(set(columns)) != len(columns):
            unknown = next((c for c in columns if c not in set(names)), None)
            if unknown is not None:
                raise Invalid(f"{unknown} is not an input of this model", field="columns")
            missing = next(n for n in names if n not in set(columns))
            raise Invalid(f"columns must name every input once; {missing} is missing", field="columns")
        width = len(columns)
        bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
        if bad is not None:
            raise Invalid(
                f"rows[{bad}] has {len(rows[bad])} values, columns has {width}", field=f"rows[{bad}]"
            )
        X = np.array([[math.nan if v is None else v for v in r] for r in rows], dtype=np.float64).reshape(
            -1, width
        )
        order = [columns.index(n) for n in names]
        return np.ascontiguousarray(X[:, order])

    def importance(self, row: Any) -> ImportanceRead:
        if row.status != ModelStatus.COMPLETED.value or not row.importance:
            raise Conflict(
                f"{row.name} v{row.version} is {row.status}; it has no importance yet", code="model_not_ready"
            )
        imp = row.importance
        return ImportanceRead(
            model_id=row.id,
            features=list((row.summary or {}).get("feature_names", imp.get("gain", {}).keys())),
            gain={k: float(v or 0.0) for k, v in imp["gain"].items()},
            shap={k: float(v or 0.0) for k, v in imp["shap"].items()},
            method=dict(imp["method"]),
        )

    # ---- features -------------------------------------------------------------------------------

    async def engineer(self, request: FeaturesEngineer) -> FeaturesRead:
        try:
            plan = parse(request.features)
        except FeatureError as exc:
            raise Invalid(f"features: {exc}", field="features") from None
        if request.raw_data is not None:
            if request.symbol is not None:
                raise Invalid("give symbol or raw_data, not both", field="raw_data")
            bars = _raw_bars(request.raw_data)
        elif request.symbol is not None:
            try:
                interval = Timeframe.parse(request.interval).label
            except ValueError as exc:
                raise Invalid(str(exc), field="interval") from None
            start = (
                None
                if request.start is None
                else datetime(request.start.year, request.start.month, request.start.day, tzinfo=UTC)
            )
            end = (
                None
                if request.end is None
                else datetime(request.end.year, request.end.month, request.end.day, tzinfo=UTC)
                + timedelta(days=1)
            )
            bars = (
                await self._md.read_bars(
                    symbol=request.symbol, venue=request.venue, interval=interval, start=start, end=end
                )
            ).bars
        else:
            raise Invalid("give a symbol or raw_data", field="symbol")
        frame = await asyncio.to_thread(compute, bars, plan)
        X = (
            np.column_stack([frame.column(n) for n in plan.names])
            if len(bars)
            else np.empty((0, len(plan.names)))
        )
        first = min(plan.warmup, len(bars)) if request.drop_warmup else 0
        first = max(first, len(bars) - request.limit)
        rows = [[float(v) if math.isfinite(v) else None for v in r] for r in X[first:].tolist()]
        return FeaturesRead(
            columns=plan.names,
            ts=[_at(int(t)) for t in bars.ts[first:]],
            rows=rows,
            warmup=plan.warmup,
            window=plan.window,
        )

    def feature_sets(self) -> builtins.list[FeatureSetRead]:
        return [FeatureSetRead(name=k, features=list(parse(k).names)) for k in FEATURE_SETS]

    # ---- signals --------------------------------------------------------------------------------

    async def generate_signal(self, owner: uuid.UUID, request: SignalGenerate) -> SignalRead:
        row = None
        if request.model_id is not None and request.model_name is not None:
            raise Invalid("give model_id or model_name, not both", field="model_name")
        if request.model_id is not None:
            async with self._db() as session:
                row = await store.get(session, owner, request.model_id)
            if row is None:
                raise NotFound(f"model {request.model_id} not found", code="model_not_found")
        elif request.model_name is not None:
            row = await self.serving_row(owner, request.model_name)
        if row is None and not request.use_technical:
            raise Invalid(
                "a signal needs a model (model_id or model_name) or use_technical", field="model_id"
            )
        try:
            interval = Timeframe.parse(request.interval).label
        except ValueError as exc:
            raise Invalid(str(exc), field="interval") from None
        if row is not None and row.interval != interval:
            raise Invalid(f"the model reads {row.interval} bars, not {interval}", field="interval")
        predictor = None if row is None else await self.predictor(row)
        need = max(self._s.signal_bars, 0 if predictor is None else predictor.bars_needed)
        series = await self._latest(symbol=request.symbol, venue=request.venue, interval=interval, bars=need)
        draft = await asyncio.to_thread(self._draft, request, series.bars, row, predictor)
        bar_time = _at(int(series.bars.ts[-1]))
        now = self._clock.now()
        ttl = (
            timedelta(minutes=request.expires_in_minutes)
            if request.expires_in_minutes
            else timedelta(seconds=3 * Timeframe.parse(interval).seconds)
        )
        values = {
            "id": uuid.uuid4(),
            "owner_id": owner,
            "symbol": series.symbol,
            "timeframe": interval,
            "signal_type": draft.signal_type,
            "strength": draft.strength,
            "confidence": draft.confidence,
            "price": draft.price,
            "price_target": draft.price_target,
            "stop_loss": draft.stop_loss,
            "take_profit": draft.take_profit,
            "reasoning": draft.reasoning,
            "technical_indicators": draft.technical_indicators,
            "ml_predictions": draft.ml_predictions,
            "sentiment_score": None,
            "model_id": None if row is None else row.id,
            "source": draft.source,
            "bar_time": bar_time,
            "created_at": now,
            "expires_at": now + ttl,
        }
        async with self._db.begin() as session:
            await store.add_signal(session, values)
            await self._outbox.add(
                session,
                SignalGenerated(
                    signal_id=values["id"],
                    owner_id=owner,
                    symbol=values["symbol"],
                    timeframe=interval,
                    signal_type=draft.signal_type,
                    strength=draft.strength,
                    confidence=draft.confidence,
                    model_id=values["model_id"],
                    expires_at=values["expires_at"],
                ),
            )
        return SignalRead(**values)

    @staticmethod
    def _draft(
        request: SignalGenerate, bars: Bars, row: Any, predictor: Predictor | None
    ) -> signals.SignalDraft:
        try:
            technical = signals.technical_snapshot(bars)
        except ValueError as exc:
            if request.use_technical or predictor is None:
                raise Invalid(str(exc), field="symbol") from None
            technical = None
        p_up = None
        model = None
        long_, short = 0.55, None
        if predictor is not None:
            p_up = predictor.predict_bars(bars)
            if not math.isfinite(p_up):
                raise Invalid(f"not enough bars of {request.symbol} for the model's features", field="symbol")
            model = {"model_id": str(row.id), "name": row.name, "version": row.version,
                     "horizon": int(row.config["label"]["horizon"]), "symbol": row.symbol}  # fmt: skip
            long_ = float(row.config.get("threshold_long", 0.55))
            short = row.config.get("threshold_short")
        try:
            return signals.combine(
                technical=technical,
                use_rules=request.use_technical,
                p_up=p_up,
                model=model,
                ml_weight=request.ml_weight,
                threshold_long=long_,
                threshold_short=short,
                stop_atr=request.stop_atr,
                take_profit_atr=request.take_profit_atr,
            )
        except ValueError as exc:
            raise Invalid(str(exc), field="model_id") from None

    async def signals(
        self,
        owner: uuid.UUID,
        *,
        symbol: str | None,
        signal_type: SignalType | None,
        active: bool,
        limit: int,
        offset: int,
    ) -> builtins.list[SignalRead]:
        async with self._db() as session:
            rows = await store.list_signals(
                session,
                owner,
                symbol=symbol,
                signal_type=signal_type,
                active_at=self._clock.now() if active else None,
                limit=limit,
                offset=offset,
            )
        return [_signal_read(r) for r in rows]

    async def signal(self, owner: uuid.UUID, signal_id: uuid.UUID) -> SignalRead:
        async with self._db() as session:
            row = await store.get_signal(session, owner, signal_id)
        if row is None:
            raise NotFound(f"signal {signal_id} not found", code="signal_not_found")
        return _signal_read(row)
