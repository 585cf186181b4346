"""Risk analytics benchmarks (issue 6 targets), engine level (no I/O):

1. historical + parametric (normal and Cornish-Fisher) VaR and ES of a 500-asset portfolio over
   1,000 days of returns, 99%, 1 and 10 days: target <= 50 ms for the set;
2. Monte Carlo VaR + ES of that portfolio with 100,000 paths: target <= 1 s;
3. marginal and component VaR of the 500 positions.

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


if __name__ == "__main__":
    main()
