"""Where a portfolio's return came from: ``GET /portfolio/{id}/attribution``.

From the recorded days (``performance_metrics`` rows with each day's holdings: quantity, price,
value per symbol) over the period:

* **By asset**: each day, a symbol held at the previous day's end contributes its weight then
  times its price return over the day (``w_i r_i``); the rest of the day's return (trades made
  during the day, fees, slippage) is the ``trading`` line, so the lines add up to the period's
  time-weighted return exactly once linked (Carino, ``engine.performance.contributions``).
* **By strategy**: the profit of each strategy deployment's own fills (and ``manual`` for the
  rest), valued at the period's first and last recorded prices: ``q_end p_end - q_start p_start``
  plus the period's sell proceeds minus buy costs and fees, over the period's starting value.
  They add up to the portfolio's profit over its starting value.
* **Brinson-Fachler** against the benchmark (``SPY`` or a blend ``SPY:0.6,BTCUSDT:0.4``): the
  segments are asset classes (``equity`` for stocks, ETFs and indices; ``crypto``, ``fx``, ...),
  those of the benchmark's components; held symbols of other classes form ``other``, with the
  benchmark's total return as theirs; and ``cash``. Allocation, selection and interaction per
  day from the holdings' weights and returns and the components' closes, Carino-linked
  (``engine.performance.brinson_fachler_linked``). Days without a fresh close (``STALE_DAYS``)
  of every component are left out; none left is a 422 naming ``benchmark``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np

from algotrendy.core.errors import Invalid
from algotrendy.core.market import F64
from algotrendy.engine import performance as perf
from algotrendy.services.portfolio.interface import (
    AssetContribution,
    AttributionQuery,
    AttributionRead,
    SegmentEffect,
    StrategyContribution,
)
from algotrendy.services.portfolio.performance import closes_on, period_start
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import FillRead

TRADING = "trading"
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    value: float
    holdings: dict[str, tuple[float, float]]  # symbol -> (quantity, price)


def day_of(day: date, value: Decimal, holdings: Mapping[str, Any]) -> Day:
    held: dict[str, tuple[float, float]] = {}
    for symbol, h in holdings.items():
        try:
            held[symbol] = (float(h["quantity"]), float(h["price"]))
        except (KeyError, TypeError, ValueError):
            continue
    return Day(day, float(value), held)


EQUITY = {"stock", "etf", "index"}


def asset_class(kind: str | None) -> str:
    """Stocks, ETFs and indices are one class, ``equity``; the others keep their asset type."""
    if kind is None:
        return "other"
    return "equity" if kind in EQUITY else kind


def parse_benchmark(text: str) -> dict[str, float]:
    """``SPY`` or ``SPY:0.6,BTCUSDT:0.4`` (weights summing to 1)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        symbol, _, weight = part.strip().partition(":")
        if not symbol:
            raise Invalid("a benchmark component has no symbol", field="benchmark")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise Invalid(f"the weight of {symbol} is not a number", field="benchmark") from None
        if not 0 < w <= 1:
            raise Invalid(f"the weight of {symbol} must be in (0, 1]", field="benchmark")
        out[symbol] = out.get(symbol, 0.0) + w
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise Invalid("the benchmark weights must sum to 1", field="benchmark")
    return out


def by_asset(days: list[Day]) -> tuple[list[AssetContribution], float]:
    """Contribution of each symbol (and of ``trading``) to the linked return of ``days``."""
    symbols = sorted({s for d in days[:-1] for s in d.holdings})
    names = [*symbols, TRADING]
    n, k = len(days) - 1, len(names)
    w, r = np.zeros((n, k)), np.zeros((n, k))
    for t in range(1, len(days)):
        before, now = days[t - 1], days[t]
        if before.value <= 0:
            continue
        explained = 0.0
        for i, s in enumerate(symbols):
            held = before.holdings.get(s)
            if held is None or held[1] <= 0:
                continue
            q, p0 = held
            p1 = now.holdings.get(s, (0.0, p0))[1] or p0
            w[t - 1, i] = q * p0 / before.value
            r[t - 1, i] = p1 / p0 - 1.0
            explained += w[t - 1, i] * r[t - 1, i]
        w[t - 1, k - 1] = 1.0
        r[t - 1, k - 1] = now.value / before.value - 1.0 - explained
    result = perf.contributions(w, r) if n else None
    out = []
    for i, name in enumerate(names):
        mask: np.ndarray = w[:, i] != 0
        some = i < k - 1 and bool(mask.any())
        out.append(
            AssetContribution(
                symbol=name,
                contribution=float(result.total[i]) if result is not None else 0.0,
                average_weight=float(w[mask, i].mean()) if some else None,
                asset_return=float(np.prod(1.0 + r[mask, i]) - 1.0) if some else None,
            )
        )
    total = float(result.portfolio_return) if result is not None else 0.0
    return out, total


def by_strategy(
    days: list[Day], fills: list[FillRead], strategy_of: Mapping[uuid.UUID, str]
) -> list[StrategyContribution]:
    """Profit of each strategy's fills over the period, valued at the recorded prices."""
    start, end = days[0], days[-1]
    held0: dict[tuple[str, str], Decimal] = {}
    held1: dict[tuple[str, str], Decimal] = {}
    cash: dict[str, Decimal] = {}
    last: dict[str, Decimal] = {}
    for f in sorted(fills, key=lambda f: f.executed_at):
        who = strategy_of.get(f.order_id, "manual")
        key = (who, f.symbol)
        signed = f.quantity if f.side.value == "BUY" else -f.quantity
        last[f.symbol] = f.price
        if f.executed_at.date() <= start.day:
            held0[key] = held0.get(key, ZERO) + signed
        if f.executed_at.date() <= end.day:
            held1[key] = held1.get(key, ZERO) + signed
            if f.executed_at.date() > start.day:
                cash[who] = cash.get(who, ZERO) - signed * f.price - f.fee

    def price(day: Day, symbol: str) -> Decimal:
        held = day.holdings.get(symbol)
        if held is not None:
            return Decimal(repr(held[1]))
        return last.get(symbol, ZERO)

    pnl: dict[str, Decimal] = dict(cash)
    for (who, symbol), q in held1.items():
        pnl[who] = pnl.get(who, ZERO) + q * price(end, symbol)
    for (who, symbol), q in held0.items():
        pnl[who] = pnl.get(who, ZERO) - q * price(start, symbol)
    base = Decimal(repr(start.value)) if start.value > 0 else None
    return [
        StrategyContribution(
            strategy=who, pnl=value, contribution=float(value / base) if base is not None else None
        )
        for who, value in sorted(pnl.items())
    ]


async def brinson(
    days: list[Day], benchmark: dict[str, float], prices: PriceHistory
) -> tuple[list[SegmentEffect], perf.Attribution, int]:
    classes: dict[str, str] = {}
    for symbol in benchmark:
        kind = await prices.asset_type(symbol)
        if kind is None:
            raise Invalid(f"no daily prices are stored for the benchmark {symbol}", field="benchmark")
        classes[symbol] = asset_class(kind)
    segments = sorted(set(classes.values()))
    names = [*segments, "other", "cash"]
    k = len(names)
    held = sorted({s for d in days[:-1] for s in d.holdings})
    kind_of = {s: asset_class(await prices.asset_type(s)) for s in held}
    day_list = [d.day for d in days]
    comp: dict[str, F64] = {}
    for s in benchmark:
        found = await closes_on(prices, s, day_list)
        comp[s] = found if found is not None else np.full(len(day_list), np.nan)
    wp_rows, wb_rows, rp_rows, rb_rows = [], [], [], []
    for t in range(1, len(days)):
        before, now = days[t - 1], days[t]
        rets = {s: c[t] / c[t - 1] - 1.0 for s, c in comp.items()}
        if before.value <= 0 or any(not np.isfinite(x) for x in rets.values()):
            continue
        rb = np.zeros(k)
        wb = np.zeros(k)
        for s, weight in benchmark.items():
            j = names.index(classes[s])
            wb[j] += weight
            rb[j] += weight * rets[s]
        rb[: len(segments)] = np.divide(rb[: len(segments)], wb[: len(segments)])
        total_b = float(sum(weight * rets[s] for s, weight in benchmark.items()))
        rb[names.index("other")] = total_b
        wp = np.zeros(k)
        gain = np.zeros(k)
        for s in held:
            h = before.holdings.get(s)
            if h is None or h[1] <= 0:
                continue
            q, p0 = h
            p1 = now.holdings.get(s, (0.0, p0))[1] or p0
            seg = kind_of[s] if kind_of[s] in segments else "other"
            j = names.index(seg)
            wi = q * p0 / before.value
            wp[j] += wi
            gain[j] += wi * (p1 / p0 - 1.0)
        wp[k - 1] = 1.0 - wp[: k - 1].sum()
        rp = np.where(wp[:] != 0, np.divide(gain, np.where(wp == 0, 1.0, wp)), np.nan)
        rp[k - 1] = 0.0
        wp_rows.append(wp)
        wb_rows.append(wb)
        rp_rows.append(rp)
        rb_rows.append(rb)
    if not wp_rows:
        raise Invalid("the benchmark has no prices overlapping the period's recorded days", field="benchmark")
    result = perf.brinson_fachler_linked(
        np.array(wp_rows), np.array(wb_rows), np.array(rp_rows), np.array(rb_rows)
    )
    wp_avg = np.array(wp_rows).mean(axis=0)
    wb_avg = np.array(wb_rows).mean(axis=0)
    effects = [
        SegmentEffect(
            segment=name,
            portfolio_weight=float(wp_avg[j]),
            benchmark_weight=float(wb_avg[j]),
            allocation=float(result.allocation[j]),
            selection=float(result.selection[j]),
            interaction=float(result.interaction[j]),
            total=float(result.total[j]),
        )
        for j, name in enumerate(names)
        if wp_avg[j] != 0 or wb_avg[j] != 0
    ]
    return effects, result, len(wp_rows)


async def build(
    *,
    portfolio_id: uuid.UUID,
    inception: date,
    initial_capital: Decimal,
    history: list[Day],
    fills: list[FillRead],
    strategy_of: Mapping[uuid.UUID, str],
    query: AttributionQuery,
    prices: PriceHistory,
    today: date,
) -> AttributionRead:
    start = period_start(query.period, today, inception)
    window = [d for d in history if d.day >= start]
    earlier = [d for d in history if d.day < start]
    base = earlier[-1] if earlier else Day(inception, float(initial_capital), {})
    days = [base, *window]
    assets, total = by_asset(days)
    strategies = by_strategy(days, fills, strategy_of)
    effects: list[SegmentEffect] = []
    bf: perf.Attribution | None = None
    observations = 0
    if query.benchmark is not None:
        effects, bf, observations = await brinson(days, parse_benchmark(query.benchmark), prices)
    return AttributionRead(
        portfolio_id=portfolio_id,
        period=query.period,
        start=days[0].day,
        end=days[-1].day,
        time_weighted_return=total,
        by_asset=assets,
        by_strategy=strategies,
        benchmark=query.benchmark,
        brinson=effects,
        brinson_days=observations,
        holdings_return=bf.portfolio_return if bf is not None else None,
        benchmark_return=bf.benchmark_return if bf is not None else None,
        allocation_effect=bf.total_allocation if bf is not None else None,
        selection_effect=bf.total_selection if bf is not None else None,
        interaction_effect=bf.total_interaction if bf is not None else None,
    )
