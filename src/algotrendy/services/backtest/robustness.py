"""Is the edge real? Walk-forward analysis and Monte Carlo resampling of a run.

Walk-forward: for each window, optimize on ``training_window`` bars (in-sample), then trade the
winner on the next ``testing_window`` bars (out-of-sample) with indicators warmed up on the bars
before it; every out-of-sample window starts flat and is closed out on its last bar's open. The
out-of-sample pieces are chained into one equity curve, whose metrics are the honest estimate.
``efficiency`` is out-of-sample annualized return over in-sample annualized return (Pardo's
walk-forward efficiency): well below 0.5 suggests the optimization fits noise.

Monte Carlo: ``engine.montecarlo`` on the run's trades (order bootstrap of each trade's return
on equity) and on its bar returns (moving-block bootstrap, which keeps short-range dependence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from algotrendy.core.market import Bars
from algotrendy.engine import metrics, montecarlo
from algotrendy.engine.result import RunResult, Trades
from algotrendy.engine.signals import compute_signals, signal_warmup
from algotrendy.engine.template import TemplateError
from algotrendy.engine.templated import sizing_fractions
from algotrendy.engine.vector import STAT_NAMES, run
from algotrendy.services.backtest.compute import (
    PartialRun,
    Plan,
    Progress,
    candidates,
    curves,
    iso,
    ppy_of,
    rank,
    score_many,
    search_template,
    trade_rows,
    vector_config,
)


def windows(n: int, train: int, test: int, step: int, anchored: bool) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` bar ranges, half-open."""
    out = []
    start = 0
    while start + train + test <= n:
        ts = start + train
        out.append((0 if anchored else start, ts, ts, ts + test))
        start += step
    return out


def walk_forward(
    plan: Plan, data: Mapping[str, Bars], wf: Mapping[str, Any], progress: Progress, *, max_combinations: int
) -> dict[str, Any]:
    if plan.template.rotation is not None or len(plan.symbols) != 1:
        raise TemplateError("walk-forward analysis runs one-symbol signal templates", field="template")
    template = search_template(plan.template, wf.get("space") or {})
    plan = replace(plan, template=template)
    bars = data[plan.symbols[0]]
    train, test = int(wf["training_window"]), int(wf["testing_window"])
    step = int(wf.get("step_size") or test)
    spans = windows(len(bars), train, test, step, bool(wf.get("anchored")))
    if not spans:
        raise TemplateError(
            f"{len(bars)} bars are too few for one window of {train} training + {test} testing bars",
            field="training_window",
        )
    objective = str(wf.get("objective", "sharpe_ratio"))
    ppy = ppy_of(plan, bars)
    combos = candidates(template, plan.params, wf, max_combinations=max_combinations)
    if not combos:
        raise TemplateError("no parameter combination satisfies the constraints", field="constraints")
    capital = plan.config.initial_capital
    done: list[dict[str, Any]] = []
    pieces: list[RunResult] = []
    for w, (a, b, c, d) in enumerate(spans):
        base = w / len(spans)

        def tick(k: int, base: float = base, label: str = f"window {w + 1}/{len(spans)}") -> None:
            progress(base + 0.9 / len(spans) * k / len(combos), label)

        try:
            table = score_many(plan, {plan.symbols[0]: bars.slice(a, b)}, combos, tick)
            order = rank(table, objective, int(wf.get("min_trades", 1)))
            best = combos[int(order[0])]
            oos = _out_of_sample(
                replace(plan, config=replace(plan.config, initial_capital=capital)), bars, best, c, d
            )
        except BaseException as exc:  # failed or cancelled: keep the windows that finished
            if not done:
                raise
            raise PartialRun(exc, _stitch(plan, done, pieces, ppy)) from exc
        capital = float(oos.equity[-1]) if len(oos.equity) else capital
        pieces.append(oos)
        col = list(metrics.METRIC_NAMES)
        om = metrics.compute_metrics(oos, periods_per_year=ppy)
        done.append(
            {
                "window": w + 1,
                "train_start": iso(int(bars.ts[a])),
                "train_end": iso(int(bars.ts[b - 1])),
                "test_start": iso(int(bars.ts[c])),
                "test_end": iso(int(bars.ts[d - 1])),
                "params": best,
                "in_sample": {k: _num(table[int(order[0]), i]) for i, k in enumerate(STAT_NAMES)},
                "out_of_sample": {k: om.get(k) for k in col if k in _OOS_KEYS},
            }
        )
    return _stitch(plan, done, pieces, ppy)


_OOS_KEYS = (
    "total_return",
    "annualized_return",
    "sharpe_ratio",
    "max_drawdown",
    "number_of_trades",
    "win_rate",
)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _out_of_sample(plan: Plan, bars: Bars, params: Mapping[str, Any], c: int, d: int) -> RunResult:
    """Trade ``params`` on bars ``[c, d)``: signals computed with history before ``c`` (warm-up),
    no entry before ``c``, and the position closed at the open of bar ``d - 1``."""
    t = plan.template
    warm = signal_warmup(t, params)
    lo = max(0, c - 20 * warm - 1000) if warm else c
    hist = bars.slice(lo, d)
    sig = compute_signals(t, hist, params)
    k = c - lo
    ppy = ppy_of(plan, bars)
    le, se = sig.long_entry.copy(), sig.short_entry.copy()
    lx, sx = sig.long_exit.copy(), sig.short_exit.copy()
    le[:k] = se[:k] = False
    m = len(hist)
    le[m - 2 :] = se[m - 2 :] = False
    lx[m - 2] = sx[m - 2] = True
    window = bars.slice(c, d)
    frac = sizing_fractions(hist, t, params, ppy)[k:]
    res = run(
        window, le[k:], lx[k:], se[k:], sx[k:], frac, vector_config(plan.with_params(params)),
        symbol=plan.symbols[0],
    )  # fmt: skip
    return res


def _stitch(plan: Plan, done: list[dict[str, Any]], pieces: list[RunResult], ppy: float) -> dict[str, Any]:
    if not pieces:
        return {"windows": done, "equity": {}, "metrics": {}, "trades": [], "efficiency": None}
    offsets = np.cumsum([0] + [len(p.ts) for p in pieces[:-1]])
    parts = [p.trades for p in pieces]
    trades = Trades(
        symbol=np.concatenate([t.symbol for t in parts]),
        side=np.concatenate([t.side for t in parts]),
        quantity=np.concatenate([t.quantity for t in parts]),
        entry_index=np.concatenate([t.entry_index + o for t, o in zip(parts, offsets, strict=True)]),
        exit_index=np.concatenate([t.exit_index + o for t, o in zip(parts, offsets, strict=True)]),
        entry_price=np.concatenate([t.entry_price for t in parts]),
        exit_price=np.concatenate([t.exit_price for t in parts]),
        fees=np.concatenate([t.fees for t in parts]),
        pnl=np.concatenate([t.pnl for t in parts]),
        ret=np.concatenate([t.ret for t in parts]),
        exit_reason=[r for t in parts for r in t.exit_reason],
    )
    equity = np.concatenate([p.equity for p in pieces])
    stitched = RunResult(
        symbols=pieces[0].symbols,
        ts=np.concatenate([p.ts for p in pieces]),
        equity=equity,
        cash=np.concatenate([p.cash for p in pieces]),
        exposure=np.concatenate([p.exposure for p in pieces]),
        trades=trades,
        initial_capital=plan.config.initial_capital,
        fees_paid=float(sum(p.fees_paid for p in pieces)),
        turnover=float(sum(p.turnover for p in pieces)),
        orders=sum(p.orders for p in pieces),
    )
    m = metrics.compute_metrics(stitched, periods_per_year=ppy)
    ins = [w["in_sample"].get("annualized_return") for w in done]
    ins_mean = float(np.mean([x for x in ins if x is not None])) if any(x is not None for x in ins) else None
    oos = m.get("annualized_return")
    efficiency = float(oos) / ins_mean if oos is not None and ins_mean else None
    return {
        "windows": done,
        "equity": curves(stitched, None, plan.curve_points),
        "metrics": m,
        "trades": trade_rows(stitched, plan.max_trades),
        "trades_total": len(trades),
        "efficiency": efficiency,
    }


def monte_carlo(plan: Plan, result: RunResult, mc: Mapping[str, Any]) -> dict[str, Any]:
    method = mc.get("method", "both")
    capital = plan.config.initial_capital
    sims = int(mc.get("num_simulations", 1000))
    seed = mc.get("seed")
    conf = float(mc.get("confidence_level", 0.95))
    ruin = float(mc.get("ruin_threshold", 0.5))
    horizon = mc.get("time_horizon")
    out: dict[str, Any] = {"trades": len(result.trades), "bars": len(result.ts)}
    if method in ("trade_bootstrap", "both"):
        if len(result.trades) == 0:
            if method == "trade_bootstrap":
                raise TemplateError("the run made no trades to resample", field="method")
            out["trade_bootstrap"] = None
        else:
            r = montecarlo.trade_bootstrap(
                montecarlo.trade_returns_on_equity(result), initial_capital=capital, n_simulations=sims,
                n_trades=horizon, seed=seed, confidence=conf, ruin_threshold=ruin,
            )  # fmt: skip
            out["trade_bootstrap"] = r.to_dict()
    if method in ("block_bootstrap", "both"):
        rets = metrics.returns_from_equity(np.r_[capital, result.equity])
        r = montecarlo.block_bootstrap(
            rets, block_size=mc.get("block_size"), n_simulations=sims, horizon=horizon, seed=seed,
            confidence=conf, initial_capital=capital, ruin_threshold=ruin,
        )  # fmt: skip
        out["block_bootstrap"] = r.to_dict()
    return out
