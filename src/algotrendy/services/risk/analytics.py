"""Ex-ante risk of a portfolio's current holdings: the numbers behind ``GET /risk/portfolio/{id}``
and ``GET /risk/position/{id}``.

What is measured: the positions held now (market value over the account's equity as weights,
cash as the rest, which does not move), against each held symbol's daily closes over the last
``lookback_days`` days that every held symbol (and the benchmark, when one is asked for and
found) has in common. The arithmetic is ``engine.var`` (VaR and ES by method, the Euler split)
and ``engine.metrics`` (Sharpe, Sortino, drawdown, annualization inferred from the dates); the
drawdown and ratios are those of the current weights held through the lookback (a back-cast,
not the account's realized history).

A held symbol with fewer than ``MIN_OBSERVATIONS`` common returns is left out and named in
``unmodelled``; an empty or all-unmodelled portfolio has no risk (zeros, no ratios). A benchmark
that has no data, or no dates in common with the holdings, is a 422 naming ``benchmark``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid
from algotrendy.core.market import F64, I64
from algotrendy.engine import metrics
from algotrendy.engine import var as V
from algotrendy.services.risk.interface import (
    PortfolioRiskRead,
    PositionRisk,
    PriceHistory,
    RiskQuery,
    VarFigures,
    VarMethodName,
)
from algotrendy.services.trading.interface import AccountRead, PositionRead

MIN_OBSERVATIONS = 20
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Aligned:
    days: I64
    returns: F64  # (n, k), one column per modelled symbol
    symbols: list[str]
    benchmark: F64 | None


async def _closes(
    prices: PriceHistory, symbol: str, days: int, until_ns: int | None = None
) -> tuple[I64, F64] | None:
    found = await prices.daily_closes(symbol, days=days, until_ns=until_ns)
    if found is None or len(found[0]) < 2:
        return None
    return found


def _align(series: dict[str, tuple[I64, F64]], lookback: int) -> tuple[I64, dict[str, F64]]:
    """Returns on the days every series has a close (and the day before), last ``lookback``."""
    days: I64 | None = None
    for ts, _ in series.values():
        days = ts if days is None else np.intersect1d(days, ts)
    if days is None or len(days) < 2:
        return np.empty(0, np.int64), {}
    days = days[-(lookback + 1) :]
    out: dict[str, F64] = {}
    for name, (ts, close) in series.items():
        picked = close[np.searchsorted(ts, days)]
        out[name] = picked[1:] / picked[:-1] - 1.0
    return days[1:], out


async def gather(prices: PriceHistory, symbols: list[str], query: RiskQuery) -> tuple[Aligned, list[str]]:
    """The held symbols' aligned daily returns (and the benchmark's), and those left out.

    Series end on different days (a delisted symbol, a stale source): the window ends on the
    last day they all have, and reads enough calendar days before it for ``lookback_days``
    common trading days (crypto trades every day, stocks about 252 a year)."""
    names = [*symbols, *([query.benchmark] if query.benchmark is not None else [])]
    latest: dict[str, int] = {}
    for name in dict.fromkeys(names):
        last = await _closes(prices, name, 2)
        if last is not None:
            latest[name] = int(last[0][-1])
    if query.benchmark is not None and query.benchmark not in latest:
        raise Invalid(f"no daily prices are stored for the benchmark {query.benchmark}", field="benchmark")
    held = [s for s in symbols if s in latest]
    unmodelled = [s for s in symbols if s not in latest]
    empty = Aligned(np.empty(0, np.int64), np.empty((0, 0)), [], None)
    if not held:
        return empty, unmodelled
    until = min(latest[n] for n in (*held, *([query.benchmark] if query.benchmark else [])))
    span = int(query.lookback_days * 1.6) + 10
    series: dict[str, tuple[I64, F64]] = {}
    for name in dict.fromkeys((*held, *([query.benchmark] if query.benchmark else []))):
        found = await _closes(prices, name, span, until)
        if found is None or len(found[0]) <= MIN_OBSERVATIONS:
            if name == query.benchmark:
                raise Invalid(
                    f"the benchmark {query.benchmark} has too little history before the holdings' last "
                    "common day",
                    field="benchmark",
                )
            unmodelled.append(name)
        else:
            series[name] = found
    modelled = [s for s in held if s in series]
    if not modelled:
        return empty, unmodelled
    days, returns = _align(series, query.lookback_days)
    if len(days) < MIN_OBSERVATIONS:
        if query.benchmark is not None:
            raise Invalid(
                f"the benchmark {query.benchmark} has only {len(days)} days in common with the holdings "
                f"(at least {MIN_OBSERVATIONS} are needed)",
                field="benchmark",
            )
        return empty, unmodelled + modelled
    matrix = np.column_stack([returns[s] for s in modelled])
    bench = returns[query.benchmark] if query.benchmark is not None else None
    return Aligned(days, matrix, modelled, bench), unmodelled


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def beta(r: F64, rb: F64 | None) -> tuple[float | None, float | None]:
    """Beta and correlation to the benchmark (``engine.metrics``), none without one."""
    return (None, None) if rb is None else metrics.beta_correlation(r, rb)


def _figures(returns: F64, weights: F64, query: RiskQuery, method: VarMethodName) -> V.VarResult:
    return V.compute(
        method,
        returns,
        weights,
        confidence=query.confidence,
        horizon=query.horizon_days,
        paths=query.paths,
        seed=query.seed,
    )


def portfolio_risk(
    *,
    portfolio_id: uuid.UUID,
    account: AccountRead,
    positions: list[PositionRead],
    data: Aligned,
    unmodelled: list[str],
    query: RiskQuery,
    clock: Clock,
) -> PortfolioRiskRead:
    equity = account.equity
    held = {p.symbol: p for p in positions if p.quantity != ZERO and p.market_value is not None}
    unmodelled = sorted(
        set(unmodelled) | {p.symbol for p in positions if p.quantity != 0 and p.market_value is None}
    )
    weights = np.array(
        [float(held[s].market_value or 0) / float(equity) if equity > 0 else 0.0 for s in data.symbols]
    )
    n = len(data.days)
    methods: dict[VarMethodName, VarFigures] = {}
    per_position: list[PositionRisk] = []
    if n == 0 or not np.any(weights):
        zero = VarFigures(var=0.0, expected_shortfall=0.0)
        methods = {m.value: zero for m in V.VarMethod}
        chosen, var95, parametric = zero, 0.0, 0.0
        vol = mdd = sharpe = sortino = port_beta = corr = None
        per_position = [
            _position_row(p, float(p.market_value or 0) / float(equity) if equity > 0 else 0.0)
            for p in held.values()
        ]
    else:
        for m in V.VarMethod:
            result = _figures(data.returns, weights, query, m.value)
            methods[m.value] = VarFigures(var=result.var, expected_shortfall=result.es)
        chosen = methods[query.method]
        var95 = V.historical(data.returns, weights, confidence=0.95).var
        split = V.var_contributions(
            data.returns, weights, confidence=query.confidence, horizon=query.horizon_days
        )
        parametric = split.var
        rp = data.returns @ weights
        ppy = metrics.periods_per_year(data.days)
        curve = np.concatenate(([1.0], np.cumprod(1.0 + rp)))
        vol = _num(float(np.std(rp, ddof=1)) * math.sqrt(ppy))
        mdd = _num(metrics.max_drawdown_from_equity(curve))
        sharpe = _num(metrics.sharpe_from_equity(curve, ppy))
        sortino = _num(metrics.sortino_from_equity(curve, ppy))
        port_beta, corr = beta(rp, data.benchmark)
        for i, symbol in enumerate(data.symbols):
            column = data.returns[:, i]
            side = np.array([1.0 if weights[i] >= 0 else -1.0])  # a short loses when the price rises
            alone = _figures(column, side, query, query.method)
            b, _ = beta(column, data.benchmark)
            per_position.append(
                _position_row(
                    held[symbol],
                    float(weights[i]),
                    volatility=_num(float(np.std(column, ddof=1)) * math.sqrt(ppy)),
                    beta=b,
                    var=_num(alone.var),
                    marginal=_num(float(split.marginal[i])),
                    component=_num(float(split.component[i])),
                    pct=_num(float(split.component[i]) / parametric) if parametric else None,
                )
            )
        modelled = set(data.symbols)
        per_position += [
            _position_row(p, float(p.market_value or 0) / float(equity))
            for s, p in held.items()
            if s not in modelled
        ]
    return PortfolioRiskRead(
        portfolio_id=portfolio_id,
        as_of=clock.now(),
        currency=account.currency,
        equity=equity,
        confidence=query.confidence,
        horizon_days=query.horizon_days,
        method=query.method,
        observations=n,
        var=chosen.var,
        expected_shortfall=chosen.expected_shortfall,
        var_amount=_amount(chosen.var, equity),
        expected_shortfall_amount=_amount(chosen.expected_shortfall, equity),
        var_95=var95,
        methods=methods,
        parametric_var=parametric,
        volatility=vol,
        max_drawdown=mdd,
        sharpe_ratio=sharpe,
        sortino_ratio=sortino,
        benchmark=query.benchmark,
        beta=port_beta,
        correlation=corr,
        positions=sorted(per_position, key=lambda p: p.symbol),
        unmodelled=unmodelled,
        data_until=datetime.fromtimestamp(int(data.days[-1]) / 1e9, UTC) if n else None,
    )


def _amount(fraction: float, equity: Decimal) -> Decimal:
    return (Decimal(repr(fraction)) * equity).quantize(Decimal("0.01"))


def _position_row(
    p: PositionRead,
    weight: float,
    *,
    volatility: float | None = None,
    beta: float | None = None,
    var: float | None = None,
    marginal: float | None = None,
    component: float | None = None,
    pct: float | None = None,
) -> PositionRisk:
    return PositionRisk(
        position_id=p.position_id,
        symbol=p.symbol,
        market_value=p.market_value,
        weight=weight,
        volatility=volatility,
        beta=beta,
        var=var,
        marginal_var=marginal,
        component_var=component,
        component_var_pct=pct,
    )
