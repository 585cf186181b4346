"""A portfolio's performance: the daily ``performance_metrics`` series it records and the
returns and benchmark-relative figures of ``GET /portfolio/{id}/performance``.

The series: one row per UTC day, the account's value at the day's last valuation (cash plus
positions at their marks) and the since-inception figures then. The value before the first day
is the portfolio's ``initial_capital`` (the cash it opened with). There are no deposits or
withdrawals after that, so each day's time-weighted return is the value's change; the
arithmetic is ``engine.performance`` (TWR, IRR, relative figures) and ``engine.metrics``
(Sharpe, Sortino, drawdown, periods per year inferred from the recorded days: every calendar
day recorded is 365 a year).

The benchmark is read from stored daily closes: each recorded day takes the benchmark's last
close on or before it, if that close is at most ``STALE_DAYS`` old; the relative figures use the
days where both are known. A benchmark with fewer than two such days is a 422 naming it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.errors import Invalid
from algotrendy.core.market import F64
from algotrendy.engine import metrics
from algotrendy.engine import performance as perf
from algotrendy.services.portfolio.interface import (
    BenchmarkFigures,
    DailyMetricsRead,
    PerformancePoint,
    PerformanceQuery,
    PerformanceRead,
    PortfolioRead,
)
from algotrendy.services.portfolio.store import performance_metrics as table
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import AccountView

STALE_DAYS = 5
NS_PER_DAY = 86_400 * 1_000_000_000


def _ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000


def _ppy(days: list[date]) -> float:
    if len(days) < 3:
        return 252.0
    return metrics.periods_per_year(np.array([_ns(d) for d in days], dtype=np.int64))


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _row(r: Any) -> DailyMetricsRead:
    return DailyMetricsRead(
        day=r["day"],
        time=r["time"],
        total_value=r["total_value"],
        cash=r["cash"],
        daily_return=r["daily_return"],
        cumulative_return=r["cumulative_return"],
        sharpe_ratio=r["sharpe_ratio"],
        max_drawdown=r["max_drawdown"],
        volatility=r["volatility"],
    )


async def rows(
    session: AsyncSession, portfolio_id: uuid.UUID, start: date | None = None, end: date | None = None
) -> list[DailyMetricsRead]:
    stmt = select(table).where(table.c.portfolio_id == portfolio_id)
    if start is not None:
        stmt = stmt.where(table.c.day >= start)
    if end is not None:
        stmt = stmt.where(table.c.day <= end)
    return [_row(r) for r in (await session.execute(stmt.order_by(table.c.day))).mappings()]


async def holdings_rows(session: AsyncSession, portfolio_id: uuid.UUID) -> list[tuple[date, Decimal, Any]]:
    """Each recorded day's value and holdings (symbol -> quantity, price, value), ascending."""
    stmt = (
        select(table.c.day, table.c.total_value, table.c.holdings)
        .where(table.c.portfolio_id == portfolio_id)
        .order_by(table.c.day)
    )
    return [(d, v, h) for d, v, h in await session.execute(stmt)]


async def record(
    session: AsyncSession, portfolio: PortfolioRead, view: AccountView, now: datetime
) -> DailyMetricsRead:
    """Write (or rewrite) today's row: today's value and the figures since inception."""
    today = now.astimezone(UTC).date()
    before = [r for r in await rows(session, portfolio.portfolio_id) if r.day < today]
    values = np.array(
        [float(portfolio.initial_capital), *(float(r.total_value) for r in before), float(view.equity)]
    )
    series = perf.daily_series(values, np.zeros(len(values) - 1), ppy=_ppy([*(r.day for r in before), today]))
    holdings = {
        s: {"quantity": str(q), "price": str(view.prices.get(s, "")), "value": str(q * view.prices[s])}
        for s, q in view.positions.items()
        if s in view.prices
    }
    row = {
        "portfolio_id": portfolio.portfolio_id,
        "day": today,
        "time": now,
        "total_value": view.equity,
        "cash": view.cash,
        "holdings": holdings,
        "daily_return": float(series.returns[-1]),
        "cumulative_return": float(series.cumulative_return[-1]),
        "sharpe_ratio": _none(series.sharpe_ratio[-1]),
        "max_drawdown": float(series.max_drawdown[-1]),
        "volatility": _none(series.volatility[-1]),
    }
    await session.execute(
        delete(table).where(table.c.portfolio_id == portfolio.portfolio_id, table.c.day == today)
    )
    await session.execute(insert(table).values(**row))
    return _row(row)


def period_start(period: str, today: date, inception: date) -> date:
    months = {"1m": 1, "3m": 3, "6m": 6, "1y": 12, "3y": 36, "5y": 60}
    if period == "all":
        return inception
    if period == "ytd":
        start = date(today.year, 1, 1)
    else:
        m = today.month - 1 - months[period]
        year, month = today.year + m // 12, m % 12 + 1
        start = date(year, month, min(today.day, 28))
    return max(start, inception)


async def closes_on(prices: PriceHistory, symbol: str, days: list[date]) -> F64 | None:
    """``symbol``'s close on each of ``days`` (ascending): its last close on or before the day,
    NaN where that is more than ``STALE_DAYS`` old; ``None`` when nothing is stored for it."""
    span = (days[-1] - days[0]).days + STALE_DAYS + 10
    found = await prices.daily_closes(symbol, days=span, until_ns=_ns(days[-1]))
    if found is None or len(found[0]) == 0:
        return None
    ts, close = found
    want = np.array([_ns(d) for d in days], dtype=np.int64)
    at = np.searchsorted(ts, want, side="right") - 1
    out = np.full(len(days), np.nan)
    ok = at >= 0
    fresh = ok.copy()
    fresh[ok] = want[ok] - ts[at[ok]] <= STALE_DAYS * NS_PER_DAY
    out[fresh] = close[at[fresh]]
    return out


async def build(
    *,
    portfolio: PortfolioRead,
    history: list[DailyMetricsRead],
    query: PerformanceQuery,
    prices: PriceHistory,
    today: date,
    start: date | None = None,
) -> PerformanceRead:
    """The performance over ``query.period`` from the recorded days (``history``, ascending,
    today's row included); or, given ``start``, from ``start`` over all of ``history`` (a report
    passes the rows up to its period's end, and that end as ``today``)."""
    inception = portfolio.created_at.astimezone(UTC).date()
    start = period_start(query.period, today, inception) if start is None else start
    window = [r for r in history if r.day >= start]
    earlier = [r for r in history if r.day < start]
    base_day, base_value = (
        (earlier[-1].day, earlier[-1].total_value) if earlier else (inception, portfolio.initial_capital)
    )
    days = [base_day, *(r.day for r in window)]
    values = np.array([float(base_value), *(float(r.total_value) for r in window)])
    r = perf.time_weighted_returns(values, np.zeros(len(values) - 1))
    ppy = _ppy(days[1:] if len(days) > 3 else days)
    total = perf.linked_return(r)
    n = len(r)
    index = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    dd = metrics.drawdown(index)
    end_value = window[-1].total_value if window else base_value
    years_since = (today - inception).days / 365.0
    mwr = (
        perf.money_weighted_return(
            [0.0], [float(portfolio.initial_capital)], float(end_value), end_time=years_since
        )
        if years_since > 0
        else None
    )
    bench: BenchmarkFigures | None = None
    bench_cum: list[float | None] = [None] * len(days)
    if query.benchmark is not None:
        b = await closes_on(prices, query.benchmark, days)
        if b is None:
            raise Invalid(
                f"no daily prices are stored for the benchmark {query.benchmark}", field="benchmark"
            )
        both = np.flatnonzero(np.isfinite(b))
        if len(both) < 2:
            raise Invalid(
                f"the benchmark {query.benchmark} has no prices overlapping the period {days[0]}..{days[-1]}",
                field="benchmark",
            )
        rb = b[both[1:]] / b[both[:-1]] - 1.0
        rp = values[both[1:]] / values[both[:-1]] - 1.0
        rel = perf.relative_metrics(rp, rb, ppy, query.risk_free_rate)
        bench = BenchmarkFigures(
            symbol=query.benchmark,
            total_return=float(b[both[-1]] / b[both[0]] - 1.0),
            observations=len(rb),
            alpha=rel["alpha"],
            beta=rel["beta"],
            correlation=rel["correlation"],
            tracking_error=rel["tracking_error"],
            information_ratio=rel["information_ratio"],
            up_capture=rel["up_capture"],
            down_capture=rel["down_capture"],
            active_return=rel["active_return"],
        )
        first = b[both[0]]
        bench_cum = [None if not np.isfinite(x) else float(x / first - 1.0) for x in b]
    series = [
        PerformancePoint(
            day=days[i],
            value=Decimal(str(base_value)) if i == 0 else window[i - 1].total_value,
            daily_return=0.0 if i == 0 else float(r[i - 1]),
            cumulative_return=float(index[i] - 1.0),
            drawdown=float(dd[i]),
            benchmark_cumulative_return=bench_cum[i],
        )
        for i in range(len(days))
    ]
    return PerformanceRead(
        portfolio_id=portfolio.portfolio_id,
        period=query.period,
        start=days[0],
        end=days[-1],
        currency=portfolio.currency,
        start_value=base_value,
        end_value=end_value,
        observations=n,
        periods_per_year=ppy,
        time_weighted_return=total,
        annualized_return=perf.annualized(total, n / ppy) if n else None,
        money_weighted_return=mwr,
        volatility=_none(float(np.std(r, ddof=1)) * np.sqrt(ppy)) if n > 1 else None,
        sharpe_ratio=_none(metrics.sharpe_from_equity(values, ppy, risk_free_rate=query.risk_free_rate)),
        sortino_ratio=_none(metrics.sortino_from_equity(values, ppy, risk_free_rate=query.risk_free_rate)),
        max_drawdown=float(dd.min()),
        benchmark=bench,
        series=series,
    )


def today_of(now: datetime) -> date:
    return now.astimezone(UTC).date()
