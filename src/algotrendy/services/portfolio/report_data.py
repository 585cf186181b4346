"""What a portfolio report shows, gathered in the service: the period, the performance over it
from the recorded ``performance_metrics`` days (``performance.build``), the holdings at its end
(the positions now while the period runs to today, else the holdings recorded on its last day),
the fills in it and the figures; as a ``render.ReportData`` for the ``portfolio.report`` job."""

from __future__ import annotations

import calendar
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.errors import Invalid, NotFound
from algotrendy.services.portfolio import performance
from algotrendy.services.portfolio.interface import (
    PerformanceQuery,
    PerformanceRead,
    PortfolioApi,
    PortfolioRead,
    ReportCreate,
)
from algotrendy.services.portfolio.render_common import HoldingRow, ReportData, TradeRow
from algotrendy.services.portfolio.store import performance_metrics
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import TradingApi

MAX_TRADES = 10_000


def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def resolve_period(request: ReportCreate, today: date, inception: date) -> tuple[date, date, str]:
    """``(start, end, label)`` of the report; ``Invalid`` naming the field when impossible."""
    if request.month is not None:
        year, month = (int(p) for p in request.month.split("-"))
        start = date(year, month, 1)
        end, label, fields = min(_month_end(start), today), request.month, ("month", "month")
    elif request.start is not None or request.end is not None:
        if request.start is None:
            raise Invalid("give start with end", field="start")
        start, end = request.start, request.end or today
        label, fields = f"{start.isoformat()}_{end.isoformat()}", ("start", "end")
    else:  # the last complete month
        end = today.replace(day=1) - timedelta(days=1)
        start = end.replace(day=1)
        label, fields = f"{start:%Y-%m}", ("month", "month")
    if start > today:
        raise Invalid(f"the period starts in the future ({start}; today is {today})", field=fields[0])
    if end > today:
        raise Invalid(f"the period ends in the future ({end}; today is {today})", field=fields[1])
    if end < inception:
        raise Invalid(
            f"the period ends on {end}, before the portfolio was created ({inception})", field=fields[1]
        )
    return max(start, inception), end, label


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _metrics(perf: PerformanceRead, fees: float) -> dict[str, float | None]:
    calmar = (
        perf.annualized_return / abs(perf.max_drawdown)
        if perf.annualized_return is not None and perf.max_drawdown < 0
        else None
    )
    out: dict[str, float | None] = {
        "twr": perf.time_weighted_return,
        "cagr": perf.annualized_return,
        "mwr": perf.money_weighted_return,
        "volatility": perf.volatility,
        "sharpe": perf.sharpe_ratio,
        "sortino": perf.sortino_ratio,
        "calmar": calmar,
        "max_drawdown": perf.max_drawdown,
        "fees": fees,
    }
    b = perf.benchmark
    if b is not None:
        out.update(
            benchmark_return=b.total_return,
            alpha=b.alpha,
            beta=b.beta,
            tracking_error=b.tracking_error,
            information_ratio=b.information_ratio,
            up_capture=b.up_capture,
            down_capture=b.down_capture,
        )
    return out


def _series(perf: PerformanceRead) -> tuple[list[date], list[float], list[float], list[float] | None]:
    """The period's days (without the base day before it), values, daily returns and the
    benchmark rebased to the first value it shares with the portfolio."""
    points = perf.series[1:]
    dates = [p.day for p in points]
    equity = [float(p.value) for p in points]
    returns = [p.daily_return for p in points]
    if perf.benchmark is None:
        return dates, equity, returns, None
    cum = [p.benchmark_cumulative_return for p in points]
    first = next((i for i, c in enumerate(cum) if c is not None), None)
    if first is None:
        return dates, equity, returns, [math.nan] * len(points)
    base = 1.0 + cum[first]  # type: ignore[operator]
    bench = [math.nan if c is None else equity[first] * (1.0 + c) / base for c in cum]
    return dates, equity, returns, bench


async def gather(
    *,
    sessions: async_sessionmaker[AsyncSession],
    portfolios: PortfolioApi,
    trading: TradingApi | None,
    prices: PriceHistory | None,
    owner_id: uuid.UUID,
    portfolio: PortfolioRead,
    start: date,
    end: date,
    benchmark: str | None,
    now: datetime,
) -> ReportData:
    """Everything the report over ``start``..``end`` shows, as of ``now``."""
    pid = portfolio.portfolio_id
    today = performance.today_of(now)
    if end >= today:
        await portfolios.record_day(portfolio_id=pid)
    async with sessions() as session:
        history = await performance.rows(session, pid, None, end)
    perf = await performance.build(
        portfolio=portfolio,
        history=history,
        query=PerformanceQuery(period="all", benchmark=benchmark),
        prices=prices,  # type: ignore[arg-type]
        today=end,
        start=start,
    )
    dates, equity, returns, bench = _series(perf)
    trades = await _trades(trading, owner_id, pid, start, end)
    return ReportData(
        portfolio_name=portfolio.name,
        currency=portfolio.currency,
        period_start=start,
        period_end=end,
        generated_at=now,
        dates=dates,
        equity=equity,
        returns=returns,
        benchmark_symbol=benchmark,
        benchmark=bench,
        holdings=await _holdings(sessions, trading, owner_id, pid, end, today),
        trades=trades,
        metrics=_metrics(perf, sum(t.fee for t in trades)),
    )


async def _trades(
    trading: TradingApi | None, owner_id: uuid.UUID, pid: uuid.UUID, start: date, end: date
) -> list[TradeRow]:
    if trading is None:
        return []
    try:
        fills = await trading.fills(owner_id=owner_id, portfolio_id=pid)
    except NotFound:  # never traded
        return []
    chosen = sorted(
        (f for f in fills if start <= f.executed_at.astimezone(UTC).date() <= end),
        key=lambda f: f.executed_at,
    )[-MAX_TRADES:]
    return [
        TradeRow(
            at=f.executed_at,
            symbol=f.symbol,
            side=f.side.value,
            quantity=float(f.quantity),
            price=float(f.price),
            fee=float(f.fee),
            order_id=str(f.order_id),
        )
        for f in chosen
    ]


async def _holdings(
    sessions: async_sessionmaker[AsyncSession],
    trading: TradingApi | None,
    owner_id: uuid.UUID,
    pid: uuid.UUID,
    end: date,
    today: date,
) -> list[HoldingRow]:
    """At the period's end: the positions now if it ends today, else the day's record."""
    if end >= today and trading is not None:
        try:
            account = await trading.account(owner_id=owner_id, portfolio_id=pid)
            positions = await trading.positions(owner_id=owner_id, portfolio_id=pid)
        except NotFound:
            return []
        total = float(account.equity) or math.nan
        rows = [
            HoldingRow(
                symbol=p.symbol,
                quantity=float(p.quantity),
                price=_f(p.market_price),
                value=float(p.market_value or 0),
                weight=float(p.market_value or 0) / total,
                unrealized_pnl=_f(p.unrealized_pnl),
            )
            for p in positions
        ]
        cash = float(account.cash)
    else:
        async with sessions() as session:
            row = (
                (
                    await session.execute(
                        select(performance_metrics)
                        .where(performance_metrics.c.portfolio_id == pid, performance_metrics.c.day <= end)
                        .order_by(performance_metrics.c.day.desc())
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return []
        total = float(row["total_value"]) or math.nan
        rows = []
        for symbol, h in sorted((row["holdings"] or {}).items()):
            value = float(h.get("value") or 0)
            price = h.get("price")
            rows.append(
                HoldingRow(
                    symbol=symbol,
                    quantity=float(h.get("quantity") or 0),
                    price=float(price) if price not in (None, "") else None,
                    value=value,
                    weight=value / total,
                    unrealized_pnl=None,
                )
            )
        cash = float(row["cash"])
    rows.sort(key=lambda h: (-abs(h.value), h.symbol))
    rows.append(HoldingRow("CASH", cash, 1.0, cash, cash / total, None))
    return rows
