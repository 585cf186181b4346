"""Checking a run request and building its plan, before any job starts: the strategy (stored,
at a version, or an inline template), the parameters against their specs, an optimization's
search space (at most ``max_combinations`` for a grid), the bars of every symbol in the range
(with the P(up) series of the template's ML models), the warm-up, and the benchmark. Each
failure is ``Invalid``/``NotFound`` naming the field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from typing import Any

from algotrendy.core.errors import Invalid, NotFound
from algotrendy.core.market import AssetType, Bars
from algotrendy.engine.backtest import BacktestConfig
from algotrendy.engine.signals import grid_size, resolve_params, signal_warmup, validate_template
from algotrendy.engine.template import ParamValue, StrategyTemplate, TemplateError
from algotrendy.services.backtest import compute
from algotrendy.services.backtest.interface import (
    MonteCarloCreate,
    OptimizeCreate,
    RunSettings,
    WalkForwardCreate,
)
from algotrendy.services.backtest.settings import BacktestSettings
from algotrendy.services.marketdata.interface import MarketDataApi
from algotrendy.services.ml.interface import ModelScores
from algotrendy.services.strategies.interface import StrategiesApi

STOCKS = (AssetType.STOCK, AssetType.ETF)


def instant(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def invalid(exc: TemplateError, prefix: str) -> Invalid:
    field = exc.field or prefix
    if field.startswith("params."):
        field = "parameters." + field.removeprefix("params.")
    elif not field.startswith(("parameters", "space", "constraints")):
        field = f"{prefix}.{field}" if prefix and not field.startswith(prefix) else field
    return Invalid(f"{field}: {exc}", field=field, code="invalid_template")


class RunTarget:
    def __init__(
        self,
        template: StrategyTemplate,
        strategy_id: uuid.UUID | None,
        version: int | None,
        name: str,
        universe: list[Any],
    ) -> None:
        self.template = template
        self.strategy_id = strategy_id
        self.version = version
        self.name = name
        self.universe = universe


def mc_settings(request: MonteCarloCreate) -> dict[str, Any]:
    if request.num_simulations * (request.time_horizon or 1) > 200_000_000:
        raise Invalid("num_simulations x time_horizon must be at most 200,000,000", field="num_simulations")
    keep = {
        "method",
        "num_simulations",
        "time_horizon",
        "block_size",
        "confidence_level",
        "ruin_threshold",
        "seed",
    }
    return request.model_dump(include=keep)


class Planner:
    def __init__(
        self,
        *,
        settings: BacktestSettings,
        strategies: StrategiesApi,
        marketdata: MarketDataApi,
        models: ModelScores | None,
    ) -> None:
        self._s = settings
        self._strategies = strategies
        self._md = marketdata
        self._models = models

    async def target(
        self,
        owner: uuid.UUID,
        strategy_id: uuid.UUID | None,
        version: int | None,
        template: StrategyTemplate | None,
    ) -> RunTarget:
        if strategy_id is not None:
            s = await self._strategies.get(owner=owner, strategy_id=strategy_id)
            t = s.template
            if version is not None and version != s.version:
                t = (
                    await self._strategies.version(owner=owner, strategy_id=strategy_id, version=version)
                ).template
            return RunTarget(t, s.id, version or s.version, s.name, list(s.symbols))
        assert template is not None  # the DTO requires one of the two
        try:
            validate_template(template)
        except TemplateError as exc:
            raise invalid(exc, "template") from None
        return RunTarget(template, None, None, template.name, [])

    def search_settings(
        self, template: StrategyTemplate, request: OptimizeCreate | WalkForwardCreate
    ) -> dict[str, Any]:
        settings = request.model_dump(
            include={
                "parameters",
                "space",
                "optimization_method",
                "objective",
                "n_trials",
                "top_n",
                "min_trades",
                "seed",
                "constraints",
            }
        )
        try:
            searched = compute.search_template(
                template, {k: v.model_dump() for k, v in request.space.items()}
            )
            names = list(request.parameters) or compute.default_names(searched)
            if not names:
                raise Invalid("the template has no parameter with a range to optimize", field="parameters")
            if request.optimization_method != "bayesian":
                size = grid_size(searched, names)
                limit = self._s.max_combinations
                if size > limit:
                    raise Invalid(
                        f"the parameter space has {size} combinations, more than the maximum of {limit}: "
                        "narrow the ranges, raise the steps, or use random_search / bayesian",
                        field="parameters",
                        code="too_many_combinations",
                    )
            for c in request.constraints:
                compute.constraint_check([c])(resolve_params(searched, {}))
        except TemplateError as exc:
            raise invalid(exc, "template") from None
        settings["parameters"] = names
        settings["space"] = {k: v.model_dump() for k, v in request.space.items()}
        return settings

    def walk_forward_settings(self, template: StrategyTemplate, request: WalkForwardCreate) -> dict[str, Any]:
        """The search settings with the walk-forward windows."""
        return self.search_settings(template, request) | {
            "training_window": request.training_window,
            "testing_window": request.testing_window,
            "step_size": request.step_size or request.testing_window,
            "anchored": request.anchored,
        }

    async def prepare(
        self,
        owner: uuid.UUID,
        target: RunTarget,
        req: RunSettings,
        *,
        search: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job's plan, and what staying here needs: the target, bars, benchmark, interval and
        the shortest series' length."""
        t = target.template
        try:
            params = resolve_params(t, req.params)
        except TemplateError as exc:
            raise invalid(exc, "parameters") from None
        first = target.universe[0] if target.universe else None
        symbols = list(req.symbols) or ([req.symbol] if req.symbol else [u.symbol for u in target.universe])
        venue = req.venue or (first.venue if first else None)
        interval = req.interval or (first.interval if first else "1d")
        if not symbols:
            raise Invalid("give symbol (or symbols): the strategy has no default universe", field="symbol")
        if t.rotation is None and len(symbols) != 1:
            raise Invalid(
                "a signal template trades one symbol; rotation templates take several", field="symbols"
            )
        if t.rotation is not None and len(symbols) < 2:
            raise Invalid("a rotation template needs at least two symbols", field="symbols")
        start, end = instant(req.start_date), instant(req.end_date)
        if start is not None and end is not None and end <= start:
            raise Invalid("end_date must be after start_date", field="end_date", code="bad_window")
        data: dict[str, Bars] = {}
        asset = None
        for sym in symbols:
            series = await self._md.read_bars(
                symbol=sym, venue=venue, interval=interval, start=start, end=end
            )
            asset = asset or series.asset_type
            if len(series.bars) == 0:
                raise Invalid(
                    f"no {interval} bars of {series.symbol} between {start or 'the start'} "
                    f"and {end or 'the end'}",
                    field="start_date",
                    code="no_data",
                )
            if len(series.bars) > self._s.max_bars:
                raise Invalid(
                    f"{len(series.bars)} bars of {series.symbol}; at most {self._s.max_bars} per run: "
                    "narrow the dates or use a coarser interval",
                    field="start_date",
                    code="too_many_bars",
                )
            data[series.symbol] = series.bars
        if t.models:
            data = await self._with_models(owner, t, data, interval)
        n = min(len(b) for b in data.values())
        warm = self._warmup(t, params, search)
        if warm >= n - 1:
            raise Invalid(
                f"{n} bars are too few: the indicators need {warm} bars of warm-up before the first signal",
                field="start_date",
                code="series_too_short",
            )
        bench, bench_name = await self._benchmark(req, asset, list(data), interval, start, end)
        config = BacktestConfig(
            initial_capital=req.initial_capital,
            fee_rate=req.commission,
            slippage=req.slippage,
            fee_fixed=req.fixed_fee,
            lot_size=req.lot_size,
            leverage=req.leverage,
        )
        plan = {
            "template": t.model_dump(mode="json"),
            "params": params,
            "symbols": list(data),
            "config": asdict(config),
            "engine": req.engine,
            "risk_free_rate": req.risk_free_rate,
            "curve_points": self._s.curve_points,
            "max_trades": self._s.max_trades,
            "workers": self._s.sweep_workers,
            "benchmark": bench_name,
        }
        meta = {"target": target, "data": data, "benchmark": bench, "interval": interval, "bars": n}
        return plan, meta

    async def _with_models(
        self, owner: uuid.UUID, t: StrategyTemplate, data: dict[str, Bars], interval: str
    ) -> dict[str, Bars]:
        """The bars with the P(up) series of the template's ``models`` (out of sample only)."""
        if self._models is None:
            raise Invalid(
                "this template reads ML models; the ml service must run in this process",
                field="template.models",
                code="ml_unavailable",
            )
        score = await self._models.scorer(owner=owner, models=t.models, interval=interval)
        out: dict[str, Bars] = {}
        for symbol, bars in data.items():
            out[symbol] = bars.with_series(await asyncio.to_thread(score, bars))
        return out

    def _warmup(self, t: StrategyTemplate, params: dict[str, Any], search: Mapping[str, Any] | None) -> int:
        """The warm-up of the run, or of the slowest parameter values an optimization may try."""
        try:
            warm = signal_warmup(t, params)
            if search:
                searched = compute.search_template(t, search.get("space") or {})
                worst: dict[str, ParamValue] = {}
                for n in search.get("parameters") or []:
                    spec = searched.parameters[n]
                    if spec.type != "choice" and spec.max_value is not None:
                        worst[n] = int(spec.max_value) if spec.type == "int" else spec.max_value
                warm = max(warm, signal_warmup(searched, resolve_params(searched, {**params, **worst})))
        except TemplateError as exc:
            raise invalid(exc, "template") from None
        return warm

    async def _benchmark(
        self,
        req: RunSettings,
        asset: AssetType | None,
        symbols: list[str],
        interval: str,
        start: datetime | None,
        end: datetime | None,
    ) -> tuple[Bars | None, str | None]:
        name = req.benchmark
        if name is None and asset in STOCKS and self._s.default_benchmark not in symbols:
            name = self._s.default_benchmark
        if name is None:
            return None, None
        try:
            series = await self._md.read_bars(symbol=name, interval=interval, start=start, end=end)
        except NotFound:
            if req.benchmark is not None:
                raise Invalid(
                    f"no benchmark series {name!r}", field="benchmark", code="unknown_benchmark"
                ) from None
            return None, None
        return (series.bars, series.symbol) if len(series.bars) else (None, None)
