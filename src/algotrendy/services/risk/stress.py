"""Stress tests of a portfolio's current holdings (``POST /api/v1/risk/stress-test``).

Each scenario moves every position by one return, the first of these that applies to it:

1. an explicit per-symbol ``shocks`` entry (``how: shock``);
2. a historical window (``historical`` by name or ``start``/``end``): the symbol's own close on
   the last day at or before ``end`` over its close on the last day at or before ``start``
   (``history``); a symbol whose stored closes do not span the window moves as its beta times
   the benchmark's window return (``proxy``), and with neither it is left out (``none``, listed
   in ``uncovered``: the scenario's loss is then understated, and says so);
3. a market move ``returns``: times the position's beta to the benchmark over
   ``lookback_days`` (``beta``), or as is with ``use_beta: false`` or no beta (``market``).

P&L is the market value times that return; the scenario's return is P&L over equity (cash does
not move). A ``volatility_multiplier`` stresses the risk instead: the normal VaR and ES of the
holdings with every return's deviation from its mean multiplied (``engine.var.normal``), next to
the unstressed VaR.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from algotrendy.core.errors import Invalid
from algotrendy.engine import var as V
from algotrendy.services.risk import analytics
from algotrendy.services.risk.interface import (
    HISTORICAL_SCENARIOS,
    PriceHistory,
    RiskQuery,
    ScenarioResult,
    StressedPosition,
    StressScenario,
    StressTestRequest,
)
from algotrendy.services.trading.interface import PositionRead

NS_PER_DAY = 86_400 * 1_000_000_000
CENT = Decimal("0.01")
SLACK_DAYS = 7
"""A window is covered when the closes start on or before its first day and reach within a week
of its last (a weekend or holidays at either end)."""


def _day(text: str, field: str) -> int:
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) // 86_400 * NS_PER_DAY
    except ValueError:
        raise Invalid(f"{text!r} is not a date (YYYY-MM-DD)", field=field) from None


def window_of(scenario: StressScenario, i: int) -> tuple[int, int] | None:
    """The scenario's historical window as UTC day starts (ns), checked."""
    where = f"scenarios.{i}"
    if scenario.historical is not None:
        if scenario.start is not None or scenario.end is not None:
            raise Invalid(
                "give a historical scenario by name or by start/end, not both", field=f"{where}.start"
            )
        first, last, _ = HISTORICAL_SCENARIOS[scenario.historical]
        return _day(first, f"{where}.historical"), _day(last, f"{where}.historical")
    if (scenario.start is None) != (scenario.end is None):
        raise Invalid("a historical window needs both start and end", field=f"{where}.start")
    if scenario.start is None or scenario.end is None:
        return None
    start, end = _day(scenario.start, f"{where}.start"), _day(scenario.end, f"{where}.end")
    if start >= end:
        raise Invalid("the window's start must be before its end", field=f"{where}.end")
    return start, end


def check(scenario: StressScenario, i: int) -> None:
    if (
        scenario.returns is None
        and scenario.volatility_multiplier is None
        and not scenario.shocks
        and window_of(scenario, i) is None
    ):
        raise Invalid(
            "a scenario needs returns, volatility_multiplier, shocks or a historical window",
            field=f"scenarios.{i}",
        )


async def window_return(prices: PriceHistory, symbol: str, window: tuple[int, int]) -> float | None:
    """The symbol's close-to-close return over the window (``None``: its closes do not span it)."""
    start, end = window
    days = (end - start) // NS_PER_DAY + 2 * SLACK_DAYS
    found = await prices.daily_closes(symbol, days=int(days), until_ns=end)
    if found is None:
        return None
    ts, close = found
    if len(ts) < 2 or ts[0] > start or ts[-1] < end - SLACK_DAYS * NS_PER_DAY:
        return None
    first = int(np.searchsorted(ts, start, side="right")) - 1
    return float(close[-1] / close[first] - 1.0)


async def run(
    *,
    prices: PriceHistory,
    request: StressTestRequest,
    equity: Decimal,
    positions: list[PositionRead],
) -> list[ScenarioResult]:
    held = [p for p in positions if p.quantity != 0 and p.market_value is not None]
    windows = [window_of(s, i) for i, s in enumerate(request.scenarios)]
    for i, s in enumerate(request.scenarios):
        check(s, i)
    query = RiskQuery(
        confidence=request.confidence, lookback_days=request.lookback_days, benchmark=request.benchmark
    )
    data, _ = await analytics.gather(prices, sorted({p.symbol for p in held}), query)
    betas: dict[str, float | None] = {}
    for i, symbol in enumerate(data.symbols):
        betas[symbol], _ = analytics.beta(data.returns[:, i], data.benchmark)
    weights = np.array(
        [sum(float(p.market_value or 0) for p in held if p.symbol == s) / float(equity) for s in data.symbols]
    )
    out = []
    for scenario, window in zip(request.scenarios, windows, strict=True):
        out.append(await _scenario(prices, scenario, window, held, betas, request, equity, data, weights))
    return out


async def _scenario(
    prices: PriceHistory,
    scenario: StressScenario,
    window: tuple[int, int] | None,
    held: list[PositionRead],
    betas: dict[str, float | None],
    request: StressTestRequest,
    equity: Decimal,
    data: analytics.Aligned,
    weights: np.ndarray,
) -> ScenarioResult:
    bench_move = None
    if window is not None and request.benchmark is not None:
        bench_move = await window_return(prices, request.benchmark, window)
    rows: list[StressedPosition] = []
    uncovered: list[str] = []
    for p in held:
        shock: float | None = None
        how = "none"
        beta = betas.get(p.symbol)
        if p.symbol in scenario.shocks:
            shock, how = scenario.shocks[p.symbol], "shock"
        elif window is not None:
            own = await window_return(prices, p.symbol, window)
            if own is not None:
                shock, how = own, "history"
            elif bench_move is not None and beta is not None:
                shock, how = beta * bench_move, "proxy"
            else:
                uncovered.append(p.symbol)
        elif scenario.returns is not None:
            if scenario.use_beta and beta is not None:
                shock, how = beta * scenario.returns, "beta"
            else:
                shock, how = scenario.returns, "market"
        elif scenario.volatility_multiplier is None:
            shock, how = 0.0, "market"
        value = p.market_value or Decimal(0)
        pnl = None if shock is None else (value * Decimal(repr(shock))).quantize(CENT)
        rows.append(
            StressedPosition(
                position_id=p.position_id,
                symbol=p.symbol,
                market_value=p.market_value,
                shock=shock,
                pnl=pnl,
                how=how,
            )
        )
    total = sum((r.pnl for r in rows if r.pnl is not None), Decimal(0))
    result = ScenarioResult(
        name=scenario.name,
        pnl=total,
        return_=float(total / equity) if equity > 0 else 0.0,
        positions=rows,
        window=None
        if window is None
        else (datetime.fromtimestamp(window[0] / 1e9, UTC), datetime.fromtimestamp(window[1] / 1e9, UTC)),
        uncovered=uncovered,
    )
    if scenario.volatility_multiplier is not None and len(data.days) and np.any(weights):
        m = scenario.volatility_multiplier
        r = data.returns
        stressed = r.mean(axis=0) + (r - r.mean(axis=0)) * m
        base = V.normal(r, weights, confidence=request.confidence)
        hit = V.normal(stressed, weights, confidence=request.confidence)
        result.base_var, result.stressed_var, result.stressed_expected_shortfall = base.var, hit.var, hit.es
    return result
