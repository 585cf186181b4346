"""The work of a backtest run, as plain functions of a ``Plan`` and bars (what job workers run).

``Plan`` is the JSON a job carries: the template, resolved parameters, symbols, costs and the
kind-specific settings, all already validated by ``BacktestService``. Nothing here does I/O.

- ``backtest``: one run (vectorized kernel for one-symbol signal templates, event-driven engine
  for rotations or when asked), metrics, curves and the trade list.
- ``optimize``: a parameter sweep (grid / random over the kernel, sharing indicators through one
  cache, threads across cores; Bayesian through Optuna's TPE), ranked by the objective, with the
  deflated Sharpe ratio of the winner.
- ``walk_forward``: optimize in-sample, trade the winner out-of-sample, stitch.
- ``monte_carlo``: trade-order bootstrap and block bootstrap of a run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine import expr, metrics, stats
from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.expr import IndicatorCache
from algotrendy.engine.result import RunResult
from algotrendy.engine.signals import compute_signals, param_grid, resolve_params, resolved_risk
from algotrendy.engine.template import ParameterSpec, ParamValue, StrategyTemplate, TemplateError
from algotrendy.engine.templated import RotationStrategy, TemplateStrategy, sizing_fractions
from algotrendy.engine.vector import STAT_NAMES, VectorConfig, run, sweep

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``; raises to stop (a cancelled job)."""


class PartialRun(Exception):
    """A search stopped part-way (it failed, or its job was cancelled): ``cause`` is why,
    ``done`` the result of what finished before (the job keeps it)."""

    def __init__(self, cause: BaseException, done: dict[str, Any]) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.done = done


@dataclass(frozen=True, slots=True)
class Plan:
    template: StrategyTemplate
    params: dict[str, ParamValue]
    symbols: tuple[str, ...]
    config: BacktestConfig
    engine: str = "auto"
    periods_per_year: float | None = None
    risk_free_rate: float = 0.0
    curve_points: int = 5000
    max_trades: int = 50_000
    workers: int = 0
    benchmark: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        c = data["config"]
        return cls(
            template=StrategyTemplate.model_validate(data["template"]),
            params=dict(data["params"]),
            symbols=tuple(data["symbols"]),
            config=BacktestConfig(**c),
            engine=data.get("engine", "auto"),
            periods_per_year=data.get("periods_per_year"),
            risk_free_rate=float(data.get("risk_free_rate", 0.0)),
            curve_points=int(data.get("curve_points", 5000)),
            max_trades=int(data.get("max_trades", 50_000)),
            workers=int(data.get("workers", 0)),
            benchmark=data.get("benchmark"),
        )

    def with_params(self, params: Mapping[str, ParamValue]) -> Plan:
        return replace(self, params=dict(params))


def ppy_of(plan: Plan, bars: Bars) -> float:
    return plan.periods_per_year or metrics.periods_per_year(bars.ts)


def vectorizable(plan: Plan) -> bool:
    return plan.template.rotation is None and len(plan.symbols) == 1 and plan.engine != "event"


# ---- one run -----------------------------------------------------------------------------------


def simulate(plan: Plan, data: Mapping[str, Bars], cache: IndicatorCache | None = None) -> RunResult:
    """Run ``plan`` once; the engines agree, the kernel is faster."""
    first = data[plan.symbols[0]]
    ppy = ppy_of(plan, first)
    t = plan.template
    if t.rotation is not None:
        strategy = RotationStrategy(t, plan.params, symbols=plan.symbols, cache=cache)
        return EventBacktest({s: data[s] for s in plan.symbols}, strategy, plan.config).run()
    symbol = plan.symbols[0]
    if plan.engine == "event":
        ts = TemplateStrategy(t, plan.params, symbol=symbol, periods_per_year=ppy, cache=cache)
        return EventBacktest({symbol: first}, ts, plan.config).run()
    sig = compute_signals(t, first, plan.params, cache)
    frac = sizing_fractions(first, t, plan.params, ppy)
    return run(
        first, sig.long_entry, sig.long_exit, sig.short_entry, sig.short_exit, frac,
        vector_config(plan), symbol=symbol, warmup=sig.warmup,
    )  # fmt: skip


def vector_config(plan: Plan) -> VectorConfig:
    risk = resolved_risk(plan.template, plan.params)
    c = plan.config
    nan = math.nan
    return VectorConfig(
        initial_capital=c.initial_capital,
        fee_rate=c.fee_rate,
        slippage=c.slippage,
        fee_fixed=c.fee_fixed,
        lot_size=c.lot_size,
        leverage=c.leverage,
        fixed_quantity=float(risk.sizing_value) if risk.sizing_method == "fixed_quantity" else nan,
        stop_loss=nan if risk.stop_loss is None else risk.stop_loss,
        take_profit=nan if risk.take_profit is None else risk.take_profit,
        trailing_stop=nan if risk.trailing_stop is None else risk.trailing_stop,
    )


def aligned_close(bench: Bars | None, ts: np.ndarray) -> F64 | None:
    """The benchmark's last close at or before each timestamp (NaN before its first bar)."""
    if bench is None or len(bench) == 0:
        return None
    idx = np.searchsorted(bench.ts, ts, side="right") - 1
    out = np.where(idx >= 0, bench.close[np.clip(idx, 0, None)], np.nan)
    return out.astype(np.float64)


def backtest(
    plan: Plan, data: Mapping[str, Bars], benchmark: Bars | None, progress: Progress
) -> dict[str, Any]:
    progress(0.05, "computing signals")
    result = simulate(plan, data)
    progress(0.8, "computing metrics")
    return describe(plan, result, benchmark)


def describe(plan: Plan, result: RunResult, benchmark: Bars | None) -> dict[str, Any]:
    """The stored outcome of one run of ``plan``."""
    return outcome(
        result,
        benchmark,
        params=plan.params,
        engine="vectorized" if vectorizable(plan) else "event",
        periods_per_year=plan.periods_per_year,
        risk_free_rate=plan.risk_free_rate,
        curve_points=plan.curve_points,
        max_trades=plan.max_trades,
        benchmark_name=plan.benchmark if benchmark is not None else None,
        config={
            "initial_capital": plan.config.initial_capital,
            "commission": plan.config.fee_rate,
            "slippage": plan.config.slippage,
            "fixed_fee": plan.config.fee_fixed,
            "lot_size": plan.config.lot_size,
            "leverage": plan.config.leverage,
        },
    )


def outcome(
    result: RunResult,
    benchmark: Bars | None,
    *,
    params: Mapping[str, Any],
    engine: str,
    periods_per_year: float | None = None,
    risk_free_rate: float = 0.0,
    curve_points: int = 5000,
    max_trades: int = 50_000,
    benchmark_name: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics, curves (downsampled) and trades of any run, a Python strategy's included."""
    ppy = periods_per_year or metrics.periods_per_year(result.ts)
    bench = aligned_close(benchmark, result.ts)
    bench_ok = bench is not None and bool(np.isfinite(bench).all()) and len(bench) > 2
    m = metrics.compute_metrics(
        result,
        periods_per_year=ppy,
        risk_free_rate=risk_free_rate,
        benchmark_close=bench if bench_ok else None,
    )
    m["periods_per_year"] = ppy
    return {
        "metrics": m,
        "equity": curves(result, bench if bench_ok else None, curve_points),
        "trades": trade_rows(result, max_trades),
        "trades_total": len(result.trades),
        "params": dict(params),
        "symbols": list(result.symbols),
        "bars": len(result.ts),
        "warmup": result.warmup,
        "engine": engine,
        "first": iso(int(result.ts[0])) if len(result.ts) else None,
        "last": iso(int(result.ts[-1])) if len(result.ts) else None,
        "benchmark": benchmark_name if bench_ok else None,
        "config": dict(config or {}),
    }


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def curves(result: RunResult, bench: F64 | None, points: int) -> dict[str, list[Any]]:
    """Equity, drawdown (and the benchmark scaled to the capital) at most ``points`` points, always
    keeping the first and last bar, the peak and the deepest drawdown."""
    n = len(result.equity)
    if n == 0:
        return {"timestamp": [], "equity": [], "drawdown": []}
    dd = metrics.drawdown(result.equity)
    idx = np.unique(
        np.concatenate(
            [
                np.linspace(0, n - 1, min(points, n)).round().astype(np.int64),
                [int(np.argmin(dd)), int(np.argmax(result.equity))],
            ]
        )
    )
    out: dict[str, list[Any]] = {
        "timestamp": [iso(int(t)) for t in result.ts[idx]],
        "equity": _floats(result.equity[idx]),
        "drawdown": _floats(dd[idx]),
        "exposure": _floats(result.exposure[idx]),
    }
    if bench is not None:
        out["benchmark"] = _floats(bench[idx] / bench[0] * result.initial_capital)
    return out


def _floats(a: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(x) else round(float(x), 10) for x in a.tolist()]


def trade_rows(result: RunResult, limit: int) -> list[dict[str, Any]]:
    t = result.trades
    ts = result.ts
    rows = []
    for k in range(min(len(t), limit)):
        rows.append(
            {
                "symbol": result.symbols[int(t.symbol[k])],
                "side": "long" if t.side[k] > 0 else "short",
                "quantity": float(t.quantity[k]),
                "entry_time": iso(int(ts[t.entry_index[k]])),
                "exit_time": iso(int(ts[t.exit_index[k]])),
                "entry_index": int(t.entry_index[k]),
                "exit_index": int(t.exit_index[k]),
                "entry_price": float(t.entry_price[k]),
                "exit_price": float(t.exit_price[k]),
                "fees": float(t.fees[k]),
                "pnl": float(t.pnl[k]),
                "return": float(t.ret[k]),
                "bars_held": int(t.exit_index[k] - t.entry_index[k]),
                "exit_reason": t.exit_reason[k] if k < len(t.exit_reason) else "exit",
            }
        )
    return rows


# ---- optimization ------------------------------------------------------------------------------


def search_template(template: StrategyTemplate, space: Mapping[str, Mapping[str, Any]]) -> StrategyTemplate:
    """The template with the optimization's range overrides applied to its parameter specs."""
    if not space:
        return template
    specs = dict(template.parameters)
    for name, entry in space.items():
        spec = specs.get(name)
        if spec is None:
            raise TemplateError(f"unknown parameter {name!r}", field=f"space.{name}")
        given = {k: v for k, v in entry.items() if v is not None}
        data = spec.model_dump() | given
        if "choices" in given:
            data["type"] = "choice"
        specs[name] = ParameterSpec.model_validate(data)
    return template.model_copy(update={"parameters": specs})


def default_names(template: StrategyTemplate) -> list[str]:
    """Parameters an optimization varies when none are named: those with a range or choices."""
    return [
        n
        for n, p in template.parameters.items()
        if (p.type == "choice" and p.choices)
        or (p.min_value is not None and p.max_value is not None and (p.type == "int" or p.step))
    ]


def constraint_check(constraints: Sequence[str]) -> Callable[[Mapping[str, ParamValue]], bool]:
    nodes = [expr.parse(c) for c in constraints]

    def ok(params: Mapping[str, ParamValue]) -> bool:
        return all(expr.constant(node, params) == 1.0 for node in nodes)  # NaN (unknown) fails

    return ok


def candidates(
    template: StrategyTemplate,
    base: Mapping[str, ParamValue],
    opt: Mapping[str, Any],
    *,
    max_combinations: int,
) -> list[dict[str, ParamValue]]:
    """Grid or random combinations (full parameter dicts), constraints applied."""
    names = list(opt.get("parameters") or default_names(template))
    ok = constraint_check(opt.get("constraints") or [])
    grid = param_grid(template, names, max_combinations=max_combinations)
    combos = [p for p in (resolve_params(template, {**base, **g}) for g in grid) if ok(p)]
    if opt.get("optimization_method") == "random_search":
        rng = random.Random(opt.get("seed"))  # noqa: S311 - reproducible sampling, not secrecy
        k = min(int(opt.get("n_trials", 100)), len(combos))
        combos = rng.sample(combos, k)
    return combos


def score_many(
    plan: Plan,
    data: Mapping[str, Bars],
    combos: Sequence[Mapping[str, ParamValue]],
    progress: Callable[[int], None],
    *,
    out: F64 | None = None,
) -> F64:
    """``STAT_NAMES`` for each combination: the kernel on threads, indicators cached once. Rows
    are written into ``out`` (when given) as combinations finish."""
    bars = data[plan.symbols[0]]
    ppy = ppy_of(plan, bars)
    if out is None:
        out = np.full((len(combos), len(STAT_NAMES)), np.nan)
    if not vectorizable(plan):
        shared = IndicatorCache()
        for k, p in enumerate(combos):
            res = simulate(plan.with_params(p), data, shared)
            out[k] = stat_row(res, ppy)
            progress(k + 1)
        return out
    cache = IndicatorCache()
    t = plan.template
    fractions: dict[Any, F64] = {}  # sizing rarely depends on the swept parameters: build it once

    def make(k: int) -> tuple[Any, ...]:
        p = combos[k]
        sig = compute_signals(t, bars, p, cache)
        risk = resolved_risk(t, p)
        frac = fractions.get(risk)
        if frac is None:
            frac = fractions[risk] = sizing_fractions(bars, t, p, ppy)
        return (
            sig.long_entry,
            sig.long_exit,
            sig.short_entry,
            sig.short_exit,
            frac,
            vector_config(plan.with_params(p)),
        )

    return sweep(
        bars, len(combos), make, periods_per_year=ppy, workers=plan.workers, progress=progress, out=out
    )


def stat_row(result: RunResult, ppy: float) -> F64:
    m = metrics.compute_metrics(result, periods_per_year=ppy)
    return np.array([np.nan if m.get(k) is None else float(m[k]) for k in STAT_NAMES], dtype=np.float64)  # type: ignore[arg-type]


def rank(stats_: F64, objective: str, min_trades: int) -> np.ndarray:
    """Indices best first: NaN objectives and too few trades last."""
    col = STAT_NAMES.index(objective)
    trades = stats_[:, STAT_NAMES.index("number_of_trades")]
    value = stats_[:, col].copy()
    bad = ~np.isfinite(value) | (np.nan_to_num(trades) < min_trades)
    value[bad] = -np.inf
    return np.lexsort((np.arange(len(value)), -value))


def optimize(
    plan: Plan,
    data: Mapping[str, Bars],
    benchmark: Bars | None,
    opt: Mapping[str, Any],
    progress: Progress,
    *,
    max_combinations: int,
) -> dict[str, Any]:
    template = search_template(plan.template, opt.get("space") or {})
    plan = replace(plan, template=template)
    objective = str(opt.get("objective", "sharpe_ratio"))
    if opt.get("optimization_method") == "bayesian":
        combos, table = bayesian(plan, data, opt, progress)
    else:
        combos = candidates(template, plan.params, opt, max_combinations=max_combinations)
        if not combos:
            raise TemplateError("no parameter combination satisfies the constraints", field="constraints")
        total = len(combos)
        table = np.full((total, len(STAT_NAMES)), np.nan)

        def tick(done: int) -> None:
            progress(0.9 * done / total, f"{done}/{total} combinations")

        try:
            score_many(plan, data, combos, tick, out=table)
        except BaseException as exc:
            finished = np.isfinite(table[:, STAT_NAMES.index("final_equity")])
            if not finished.any():
                raise
            kept = [c for c, ok in zip(combos, finished, strict=True) if ok]
            top_n, min_trades = int(opt.get("top_n", 10)), int(opt.get("min_trades", 1))
            done = partial_search(kept, table[finished], objective, top_n, min_trades, total)
            raise PartialRun(exc, done) from exc
    return summarize_search(
        plan,
        data,
        benchmark,
        combos,
        table,
        objective,
        int(opt.get("top_n", 10)),
        int(opt.get("min_trades", 1)),
    )


def top_rows(
    combos: Sequence[Mapping[str, ParamValue]], table: F64, objective: str, top_n: int, min_trades: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    order = rank(table, objective, min_trades)
    top = [
        {"rank": r + 1, "params": dict(combos[i]), **{k: _num(table[i, j]) for j, k in enumerate(STAT_NAMES)}}
        for r, i in enumerate(order[:top_n])
    ]
    return order, top


def partial_search(
    combos: Sequence[Mapping[str, ParamValue]],
    table: F64,
    objective: str,
    top_n: int,
    min_trades: int,
    total: int,
) -> dict[str, Any]:
    """What an interrupted search had found: the ranking of the combinations it finished."""
    _order, top = top_rows(combos, table, objective, top_n, min_trades)
    return {
        "objective": objective,
        "combinations": total,
        "completed": len(table),
        "top": top,
        "best_params": top[0]["params"] if top else None,
    }


def summarize_search(
    plan: Plan,
    data: Mapping[str, Bars],
    benchmark: Bars | None,
    combos: Sequence[Mapping[str, ParamValue]],
    table: F64,
    objective: str,
    top_n: int,
    min_trades: int,
) -> dict[str, Any]:
    order, top = top_rows(combos, table, objective, top_n, min_trades)
    best = dict(combos[int(order[0])])
    winner = simulate(plan.with_params(best), data)
    best_run = describe(plan.with_params(best), winner, benchmark)
    ppy = best_run["metrics"]["periods_per_year"]
    sharpes = table[:, STAT_NAMES.index("sharpe_ratio")] / math.sqrt(ppy)
    finite = sharpes[np.isfinite(sharpes)]
    returns = metrics.returns_from_equity(np.r_[plan.config.initial_capital, winner.equity])
    dsr = None
    if len(finite) >= 2 and len(returns) > 3:
        value = stats.deflated_sharpe_ratio(
            returns, n_trials=len(table), sharpe_variance=float(np.var(finite, ddof=1))
        )
        dsr = _num(value)
    return {
        "objective": objective,
        "combinations": len(table),
        "completed": len(table),
        "top": top,
        "best_params": best,
        "best": best_run,
        "deflated_sharpe": dsr,
        "deflated_sharpe_note": (
            "Probability that the winner's true Sharpe ratio is above zero after accounting for "
            f"{len(table)} trials (Bailey & Lopez de Prado); below 0.95 the edge may be luck."
        ),
    }


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def bayesian(
    plan: Plan, data: Mapping[str, Bars], opt: Mapping[str, Any], progress: Progress
) -> tuple[list[dict[str, ParamValue]], F64]:
    """Optuna TPE (seeded) over the named parameters; every trial's stats are kept."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    template = plan.template
    names = list(opt.get("parameters") or default_names(template))
    ok = constraint_check(opt.get("constraints") or [])
    objective = str(opt.get("objective", "sharpe_ratio"))
    col = STAT_NAMES.index(objective)
    n_trials = int(opt.get("n_trials", 100))
    bars = data[plan.symbols[0]]
    ppy = ppy_of(plan, bars)
    cache = IndicatorCache()
    combos: list[dict[str, ParamValue]] = []
    rows: list[F64] = []

    def suggest(trial: optuna.Trial) -> float:
        over: dict[str, ParamValue] = {}
        for n in names:
            spec = template.parameters[n]
            if spec.type == "choice":
                choice = trial.suggest_categorical(n, list(spec.choices or []))
                if choice is not None:
                    over[n] = choice
            elif spec.type == "int":
                over[n] = trial.suggest_int(
                    n, int(spec.min_value or 0), int(spec.max_value or 0), step=int(spec.step or 1)
                )
            else:
                over[n] = trial.suggest_float(
                    n, float(spec.min_value or 0), float(spec.max_value or 0), step=spec.step
                )
        params = resolve_params(template, {**plan.params, **over})
        if not ok(params):
            raise optuna.TrialPruned()
        row = (
            stat_row(simulate(plan.with_params(params), data, cache), ppy)
            if not vectorizable(plan)
            else _kernel_row(plan, bars, params, cache, ppy)
        )
        combos.append(params)
        rows.append(row)
        progress(0.9 * len(rows) / n_trials, f"trial {len(rows)}/{n_trials}")
        value = row[col]
        return float(value) if math.isfinite(value) else -1e12

    sampler = optuna.samplers.TPESampler(seed=opt.get("seed"))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(suggest, n_trials=n_trials, catch=())
    if not rows:
        raise TemplateError("no trial satisfied the constraints", field="constraints")
    return combos, np.vstack(rows)


def _kernel_row(
    plan: Plan, bars: Bars, params: Mapping[str, ParamValue], cache: IndicatorCache, ppy: float
) -> F64:
    t = plan.template
    p = dict(params)

    def make(_k: int) -> tuple[Any, ...]:
        sig = compute_signals(t, bars, p, cache)
        return (
            sig.long_entry,
            sig.long_exit,
            sig.short_entry,
            sig.short_exit,
            sizing_fractions(bars, t, p, ppy),
            vector_config(plan.with_params(p)),
        )

    row: F64 = sweep(bars, 1, make, periods_per_year=ppy, workers=1)[0]
    return row
