"""Portfolio report rendering (issue 6 target: a monthly PDF report <= 5 s).

Renders, with ``algotrendy.services.portfolio.render``:

1. a one-month report: 21 trading days, 20 holdings, 60 trades;
2. a one-year report: 252 trading days, 50 holdings, 500 trades;

each as PDF and as Excel, median of ``--runs`` after one warm-up. The first call of each
renderer in the process is timed on its own: it pays for importing matplotlib (and loading its
font cache) or openpyxl, which the module defers so the server starts fast. The bare import
times are measured in fresh interpreters.

The data are synthetic and seeded (a random walk for equity and benchmark); rendering time
depends on the shape (days, holdings, trades), not on the values.

    uv run python bench/report_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial

from algotrendy.services.portfolio.render import render_pdf, render_xlsx
from algotrendy.services.portfolio.render_common import HoldingRow, ReportData, TradeRow


def report(days: int, holdings: int, trades: int, seed: int = 7) -> ReportData:
    rng = random.Random(seed)
    dates: list[date] = []
    d = date(2024, 1, 2)
    while len(dates) < days:
        if d.weekday() < 5:
            dates.append(d)
        d += timedelta(days=1)
    returns = [0.0] + [rng.gauss(0.0004, 0.011) for _ in dates[1:]]
    equity, bench, v, b = [], [], 1_000_000.0, 1_000_000.0
    for r in returns:
        v *= 1 + r
        b *= 1 + 0.8 * r + rng.gauss(0, 0.004)
        equity.append(v)
        bench.append(b)
    prices = [rng.uniform(5, 900) for _ in range(holdings)]
    quantities = [rng.uniform(10, 2_000) for _ in range(holdings)]
    values = [p * q for p, q in zip(prices, quantities, strict=True)]
    scale = 0.95 * equity[-1] / sum(values)
    rows = [
        HoldingRow(f"SYM{i:02d}", q * scale, p, val * scale, val * scale / equity[-1], rng.uniform(-5e3, 5e3))
        for i, (p, q, val) in enumerate(zip(prices, quantities, values, strict=True))
    ]
    rows.append(HoldingRow("CASH", 0.05 * equity[-1], None, 0.05 * equity[-1], 0.05, None))
    start = datetime.combine(dates[0], datetime.min.time(), tzinfo=UTC)
    span = (dates[-1] - dates[0]).total_seconds() or 86_400.0
    trade_rows = [
        TradeRow(
            at=start + timedelta(seconds=span * i / trades + 14 * 3600),
            symbol=f"SYM{rng.randrange(holdings):02d}",
            side=rng.choice(("buy", "sell")),
            quantity=rng.uniform(1, 500),
            price=rng.uniform(5, 900),
            fee=rng.uniform(0, 10),
            order_id=f"ord-{i:06d}-{rng.getrandbits(32):08x}",
        )
        for i in range(trades)
    ]
    metrics: dict[str, float | None] = {
        "total_return": equity[-1] / equity[0] - 1,
        "twr": equity[-1] / equity[0] - 1,
        "mwr": 0.01,
        "volatility": 0.17,
        "sharpe": 1.1,
        "max_drawdown": -0.08,
        "alpha": 0.01,
        "beta": 0.8,
        "tracking_error": 0.06,
        "information_ratio": None,
    }
    return ReportData(
        portfolio_name="Bench portfolio",
        currency="USD",
        period_start=dates[0],
        period_end=dates[-1],
        generated_at=datetime(2025, 1, 1, tzinfo=UTC),
        dates=dates,
        equity=equity,
        returns=returns,
        benchmark_symbol="SPY",
        benchmark=bench,
        holdings=rows,
        trades=trade_rows,
        metrics=metrics,
    )


def once(fn: Callable[[], bytes]) -> tuple[float, bytes]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def median_ms(fn: Callable[[], bytes], runs: int) -> tuple[float, float, float]:
    fn()  # warm-up
    times = [once(fn)[0] for _ in range(runs)]
    return statistics.median(times), min(times), max(times)


def import_ms(modules: str) -> float:
    code = f"import time; t = time.perf_counter(); import {modules}; print((time.perf_counter() - t) * 1000)"
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(3)
    ]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    month, year = report(21, 20, 60), report(252, 50, 500)

    ms, pdf = once(lambda: render_pdf(month))
    print(f"first render_pdf in the process (imports matplotlib, loads fonts): {ms:.0f} ms")
    ms, _ = once(lambda: render_xlsx(month))
    print(f"first render_xlsx in the process (imports openpyxl): {ms:.0f} ms")
    print(
        f"bare import, fresh interpreter: matplotlib PDF backend "
        f"{import_ms('matplotlib.figure, matplotlib.backends.backend_pdf'):.0f} ms, "
        f"openpyxl {import_ms('openpyxl'):.0f} ms"
    )

    for name, data in (
        ("month: 21 days, 20 holdings, 60 trades", month),
        ("year: 252 days, 50 holdings, 500 trades", year),
    ):
        pdf = render_pdf(data)
        pages = len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))
        med, lo, hi = median_ms(partial(render_pdf, data), args.runs)
        print(f"{name}: PDF {med:.0f} ms ({lo:.0f}-{hi:.0f}), {pages} pages, {len(pdf) / 1024:.0f} KiB")
        xlsx = render_xlsx(data)
        med, lo, hi = median_ms(partial(render_xlsx, data), args.runs)
        print(f"{name}: Excel {med:.0f} ms ({lo:.0f}-{hi:.0f}), {len(xlsx) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
