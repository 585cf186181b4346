"""Risk analytics benchmarks (issue 6 targets), engine level (no I/O):

1. historical + parametric (normal and Cornish-Fisher) VaR and ES of a 500-asset portfolio over
   1,000 days of returns, 99%, 1 and 10 days: target <= 50 ms for the set;
2. Monte Carlo VaR + ES of that portfolio with 100,000 paths: target <= 1 s;
3. marginal and component VaR of the 500 positions;
4. the risk monitor's work on one price update of a 50-position portfolio (reprice, equity, VaR,
   drawdown, concentration, daily loss, compare with four limits): target <= 1 ms.

The returns are synthetic (a one-factor model with fat-tailed noise, seeded): the figures depend
on the shape of the problem, not on the values.

    uv run python bench/risk_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from algotrendy.engine import var as V
from algotrendy.services.risk.exposure import Exposure, breaches
from algotrendy.services.risk.interface import RiskLimitsRead


def problem(days: int = 1000, assets: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    market = rng.standard_t(4, days) * 0.01
    beta = rng.uniform(0.5, 1.5, assets)
    noise = rng.standard_t(4, (days, assets)) * 0.015
    returns = np.clip(market[:, None] * beta + noise, -0.5, 0.5)
    weights = rng.dirichlet(np.ones(assets))
    return returns, weights


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: imports, BLAS threads
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    r, w = problem()

    def closed_forms() -> None:
        for h in (1, 10):
            V.historical(r, w, confidence=0.99, horizon=h)
            V.normal(r, w, confidence=0.99, horizon=h)
            V.cornish_fisher(r, w, confidence=0.99, horizon=h)

    print(f"historical + normal + Cornish-Fisher, 1 and 10 days: {timed(closed_forms, args.runs):.1f} ms")
    mc = timed(lambda: V.monte_carlo(r, w, confidence=0.99, paths=100_000, seed=1), args.runs)
    print(f"Monte Carlo, 100k paths: {mc:.0f} ms")
    contrib = timed(lambda: V.var_contributions(r, w, confidence=0.99), args.runs)
    print(f"marginal + component VaR, 500 positions: {contrib:.1f} ms")
    tick_p50, tick_p99 = monitor_tick()
    print(f"monitor, one price update, 50 positions: p50 {tick_p50:.1f} us, p99 {tick_p99:.1f} us")


def monitor_tick(ticks: int = 20_000) -> tuple[float, float]:
    import uuid

    r, _ = problem(days=250, assets=50)
    rng = np.random.default_rng(7)
    symbols = [f"S{i}" for i in range(50)]
    qty = rng.uniform(10, 100, 50)
    px = rng.uniform(20, 200, 50)
    exposure = Exposure(
        portfolio_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        symbols=symbols,
        quantities=qty,
        prices=px.copy(),
        other=100_000.0,
        day_start=float(qty @ px) + 100_000.0,
        peak=float(qty @ px) + 120_000.0,
        modelled=np.arange(50),
        mean=r.mean(axis=0),
        cov=np.cov(r, rowvar=False),
    )
    limits = RiskLimitsRead.model_validate(
        {
            "portfolio_id": exposure.portfolio_id,
            "trading_state": "ACTIVE",
            "max_order_notional": None,
            "max_position_quantity": None,
            "max_position_notional": None,
            "max_concentration": "0.9",
            "max_leverage": None,
            "daily_loss_limit": "1000000",
            "max_orders_per_minute": None,
            "symbol_quantity": {},
            "max_var": "0.9",
            "max_drawdown": "0.9",
            "updated_at": None,
        }
    )
    moves = px[rng.integers(0, 50, ticks)] * rng.uniform(0.98, 1.02, ticks)
    which = [symbols[i] for i in rng.integers(0, 50, ticks)]
    times = np.empty(ticks)
    for i in range(ticks):
        t = time.perf_counter_ns()
        exposure.reprice(which[i], float(moves[i]))
        found = breaches(exposure.figures(), limits)
        times[i] = (time.perf_counter_ns() - t) / 1000
        assert not found
    return float(np.median(times[1000:])), float(np.quantile(times[1000:], 0.99))


if __name__ == "__main__":
    main()
