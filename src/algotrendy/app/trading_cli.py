"""``algotrendy portfolio|trading|risk ...``: portfolios, orders, positions and limits on the
command line.

Like the rest of the CLI it builds the container in-process (users, market data, portfolio, risk
and trading) and calls the same ``*Api`` methods the REST routes call; ``--user`` names the owner.
After placing or cancelling an order it reconciles the account with the venue, so what it prints
includes the fills the paper broker made meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from algotrendy.app.strategies_cli import User, _fail, _owner, _parsed, _run

T = TypeVar("T")

portfolio_app = typer.Typer(help="Portfolios: create, list, show, delete.", no_args_is_help=True)
trading_app = typer.Typer(help="Orders, positions and accounts.", no_args_is_help=True)
risk_app = typer.Typer(help="Risk limits, the kill switch and risk figures.", no_args_is_help=True)

Portfolio = Annotated[str, typer.Option("--portfolio", "-P", help="Portfolio id")]
SERVICES = ["users", "jobs", "marketdata", "portfolio", "risk", "trading"]


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        _fail(f"invalid {what}: {value!r} is not an id")


async def _with(user: str, fn: Callable[[Any, uuid.UUID], Awaitable[T]]) -> T:
    from algotrendy.app import cli
    from algotrendy.app.container import Container

    container = Container.build(cli._settings(services=SERVICES))
    try:
        await container.start()
        owner = await _owner(container, user)
        return await fn(container.services, owner)
    finally:
        await container.stop()


def _show(model: Any) -> None:
    typer.echo(model.model_dump_json(indent=2))


@portfolio_app.command("create")
def portfolio_create(
    user: User,
    name: Annotated[str, typer.Option(help="Name, unique among yours")],
    capital: Annotated[str, typer.Option(help="Initial capital")],
    currency: Annotated[str, typer.Option(help="Account currency")] = "USD",
    venue: Annotated[str, typer.Option(help="'paper' or a broker connection id")] = "paper",
    allow_short: Annotated[bool, typer.Option(help="Allow short selling")] = False,
) -> None:
    """Create a portfolio; trading on it starts with its capital in cash."""
    from algotrendy.services.portfolio.interface import PortfolioCreate

    data = _parsed(
        PortfolioCreate,
        {
            "name": name,
            "initial_capital": capital,
            "currency": currency,
            "venue": venue,
            "allow_short": allow_short,
        },
        "portfolio",
    )
    created = _run(lambda: _with(user, lambda s, owner: s["portfolio"].create(owner_id=owner, data=data)))
    typer.echo(
        f"created portfolio {created.name} ({created.portfolio_id}) "
        f"with {created.initial_capital} {created.currency}"
    )


@portfolio_app.command("list")
def portfolio_list(user: User) -> None:
    """Your portfolios."""
    rows = _run(lambda: _with(user, lambda s, owner: s["portfolio"].list(owner_id=owner)))
    for p in rows:
        typer.echo(f"{p.portfolio_id}  {p.name:<24} {p.initial_capital} {p.currency}  {p.venue}")


@trading_app.command("order")
def trading_order(
    user: User,
    portfolio: Portfolio,
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. AAPL or BTCUSDT")],
    side: Annotated[str, typer.Option(help="BUY or SELL")],
    quantity: Annotated[str, typer.Option(help="Units")],
    order_type: Annotated[
        str, typer.Option("--type", help="MARKET, LIMIT, STOP, STOP_LIMIT, ...")
    ] = "MARKET",
    limit_price: Annotated[str | None, typer.Option("--limit", help="Limit price")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop", help="Stop price")] = None,
    trail: Annotated[str | None, typer.Option(help="Trailing distance as a fraction (0.02)")] = None,
    tif: Annotated[str, typer.Option(help="DAY, GTC, IOC or FOK")] = "GTC",
    reduce_only: Annotated[bool, typer.Option(help="Only reduce a position")] = False,
    client_order_id: Annotated[str | None, typer.Option(help="Your id for this intent (retry-safe)")] = None,
) -> None:
    """Place an order; prints it after the venue answered."""
    from algotrendy.services.trading.interface import OrderCreate

    body = {
        "portfolio_id": portfolio,
        "symbol": symbol,
        "side": side.upper(),
        "quantity": quantity,
        "order_type": order_type.upper(),
        "limit_price": limit_price,
        "stop_price": stop_price,
        "trail_percent": trail,
        "time_in_force": tif.upper(),
        "reduce_only": reduce_only,
        "client_order_id": client_order_id,
    }
    request = _parsed(OrderCreate, body, "order")

    async def place(s: Any, owner: uuid.UUID) -> Any:
        order, _ = await s["trading"].submit_order(owner_id=owner, request=request)
        await s["trading"].reconcile(portfolio_id=request.portfolio_id)
        return await s["trading"].get_order(owner_id=owner, order_id=order.order_id)

    _show(_run(lambda: _with(user, place)))


@trading_app.command("cancel")
def trading_cancel(user: User, order_id: Annotated[str, typer.Argument(help="Order id")]) -> None:
    """Cancel an open order."""
    oid = _uuid(order_id, "order id")
    _show(_run(lambda: _with(user, lambda s, owner: s["trading"].cancel_order(owner_id=owner, order_id=oid))))


@trading_app.command("orders")
def trading_orders(
    user: User,
    portfolio: Annotated[str | None, typer.Option("--portfolio", "-P", help="Portfolio id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Your orders, newest first."""
    pid = _uuid(portfolio, "portfolio id") if portfolio else None
    page = _run(
        lambda: _with(
            user, lambda s, owner: s["trading"].list_orders(owner_id=owner, portfolio_id=pid, limit=limit)
        )
    )
    for o in page.items:
        price = o.average_price if o.average_price is not None else o.limit_price or ""
        typer.echo(
            f"{o.order_id}  {o.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{o.side.value:<4} {o.quantity:>12} {o.symbol:<10} "
            f"{o.order_type.value:<12} {o.status.value:<12} filled {o.filled_quantity} @ {price}"
        )


@trading_app.command("positions")
def trading_positions(user: User, portfolio: Portfolio) -> None:
    """Open positions with market value and P&L."""
    pid = _uuid(portfolio, "portfolio id")
    rows = _run(
        lambda: _with(user, lambda s, owner: s["trading"].positions(owner_id=owner, portfolio_id=pid))
    )
    if not rows:
        typer.echo("no open positions")
    for p in rows:
        typer.echo(
            f"{p.symbol:<10} {p.side:<5} {p.quantity:>14} avg {p.average_price}  mark {p.market_price}  "
            f"unrealized {p.unrealized_pnl}  realized {p.realized_pnl}"
        )


@trading_app.command("account")
def trading_account(user: User, portfolio: Portfolio) -> None:
    """Cash, reservations, equity and P&L."""
    pid = _uuid(portfolio, "portfolio id")
    _show(_run(lambda: _with(user, lambda s, owner: s["trading"].account(owner_id=owner, portfolio_id=pid))))


@risk_app.command("limits")
def risk_limits(
    user: User,
    portfolio: Portfolio,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE to change (repeatable); the others keep their values"),
    ] = None,
) -> None:
    """Show the limits, or change some (``--set max_order_notional=5000 --set trading_state=HALTED``)."""
    from algotrendy.services.risk.interface import RiskLimitsUpdate

    pid = _uuid(portfolio, "portfolio id")

    async def run(s: Any, owner: uuid.UUID) -> Any:
        current = await s["risk"].get_limits(owner_id=owner, portfolio_id=pid)
        if not set_:
            return current
        data = current.model_dump(mode="json", exclude={"portfolio_id", "updated_at"})
        for item in set_:
            name, sep, value = item.partition("=")
            if not sep or name not in data:
                _fail(f"invalid --set {item!r}: NAME=VALUE with NAME one of {', '.join(sorted(data))}")
            data[name] = None if value in ("", "none", "null") else value
        update = _parsed(RiskLimitsUpdate, data, "limits")
        return await s["risk"].put_limits(owner_id=owner, portfolio_id=pid, limits=update)

    _show(_run(lambda: _with(user, run)))


@risk_app.command("portfolio")
def risk_portfolio(
    user: User,
    portfolio: Portfolio,
    confidence: Annotated[float, typer.Option(help="VaR confidence in (0, 1)")] = 0.95,
    horizon: Annotated[int, typer.Option(help="Horizon in days")] = 1,
    lookback: Annotated[int, typer.Option(help="Daily returns to measure on")] = 500,
    method: Annotated[
        str, typer.Option(help="historical, normal, cornish_fisher or monte_carlo")
    ] = "historical",
    benchmark: Annotated[str, typer.Option(help="Benchmark symbol for beta ('' for none)")] = "SPY",
) -> None:
    """VaR, expected shortfall (every method), drawdown, ratios, beta and each position's share."""
    from algotrendy.services.risk.interface import RiskQuery

    pid = _uuid(portfolio, "portfolio id")
    query = _parsed(
        RiskQuery,
        {
            "confidence": confidence,
            "horizon_days": horizon,
            "lookback_days": lookback,
            "method": method,
            "benchmark": benchmark or None,
        },
        "risk query",
    )
    _show(
        _run(
            lambda: _with(
                user, lambda s, owner: s["risk"].portfolio_risk(owner_id=owner, portfolio_id=pid, query=query)
            )
        )
    )


@risk_app.command("stress")
def risk_stress(
    user: User,
    portfolio: Portfolio,
    market: Annotated[list[float] | None, typer.Option(help="A market move, e.g. -0.2 (repeatable)")] = None,
    volatility: Annotated[
        list[float] | None, typer.Option(help="A volatility multiplier (repeatable)")
    ] = None,
    historical: Annotated[
        list[str] | None,
        typer.Option(help="financial_crisis_2008, covid_crash_2020 or crypto_drawdown_2022 (repeatable)"),
    ] = None,
    shock: Annotated[list[str] | None, typer.Option(help="SYMBOL=RETURN, together one scenario")] = None,
) -> None:
    """Run stress scenarios on the holdings: P&L per position and in total for each."""
    from algotrendy.services.risk.interface import StressTestRequest

    pid = _uuid(portfolio, "portfolio id")
    scenarios: list[dict[str, Any]] = [{"name": f"market {m:+g}", "returns": m} for m in market or []]
    scenarios += [{"name": f"volatility x{v:g}", "volatility_multiplier": v} for v in volatility or []]
    scenarios += [{"name": h, "historical": h} for h in historical or []]
    if shock:
        pairs = [item.partition("=") for item in shock]
        if any(not sep for _, sep, _ in pairs):
            _fail("invalid --shock: SYMBOL=RETURN, e.g. AAPL=-0.3")
        scenarios.append({"name": "shocks", "shocks": {k: v for k, _, v in pairs}})
    if not scenarios:
        _fail("give at least one of --market, --volatility, --historical, --shock")
    request = _parsed(StressTestRequest, {"portfolio_id": str(pid), "scenarios": scenarios}, "stress test")
    _show(_run(lambda: _with(user, lambda s, owner: s["risk"].stress_test(owner_id=owner, request=request))))


@risk_app.command("alerts")
def risk_alerts(
    user: User,
    portfolio: Portfolio,
    status: Annotated[str, typer.Option(help="all, active, open, acknowledged or resolved")] = "active",
    ack: Annotated[str | None, typer.Option(help="Acknowledge this alert id")] = None,
) -> None:
    """Limits breached as prices moved (VaR, drawdown, concentration, daily loss); ``--ack`` one."""
    from algotrendy.services.risk.interface import AlertQuery

    pid = _uuid(portfolio, "portfolio id")
    query = _parsed(AlertQuery, {"status": status}, "alert query")

    async def run(s: Any, owner: uuid.UUID) -> Any:
        if ack is not None:
            await s["risk"].acknowledge_alert(owner_id=owner, alert_id=_uuid(ack, "alert id"))
        return await s["risk"].alerts(owner_id=owner, portfolio_id=pid, query=query)

    for alert in _run(lambda: _with(user, run)):
        typer.echo(f"{alert.alert_id}  {alert.created_at:%Y-%m-%d %H:%M}  {alert.status:<12} {alert.message}")


@portfolio_app.command("performance")
def portfolio_performance(
    user: User,
    portfolio: Portfolio,
    period: Annotated[str, typer.Option(help="1m, 3m, 6m, ytd, 1y, 3y, 5y or all")] = "1y",
    benchmark: Annotated[str | None, typer.Option(help="Benchmark symbol, e.g. SPY")] = None,
) -> None:
    """Time- and money-weighted return, risk figures and the benchmark comparison."""
    from algotrendy.services.portfolio.interface import PerformanceQuery

    pid = _uuid(portfolio, "portfolio id")
    query = _parsed(PerformanceQuery, {"period": period, "benchmark": benchmark}, "performance query")
    read = _run(
        lambda: _with(
            user, lambda s, owner: s["portfolio"].performance(owner_id=owner, portfolio_id=pid, query=query)
        )
    )
    typer.echo(read.model_dump_json(indent=2, exclude={"series"}))


@portfolio_app.command("attribution")
def portfolio_attribution(
    user: User,
    portfolio: Portfolio,
    period: Annotated[str, typer.Option(help="1m, 3m, 6m, ytd, 1y, 3y, 5y or all")] = "1y",
    benchmark: Annotated[str | None, typer.Option(help="SPY or a blend SPY:0.6,BTCUSDT:0.4")] = None,
) -> None:
    """Contribution to return by asset and by strategy; Brinson-Fachler effects by asset class."""
    from algotrendy.services.portfolio.interface import AttributionQuery

    pid = _uuid(portfolio, "portfolio id")
    query = _parsed(AttributionQuery, {"period": period, "benchmark": benchmark}, "attribution query")
    _show(
        _run(
            lambda: _with(
                user,
                lambda s, owner: s["portfolio"].attribution(owner_id=owner, portfolio_id=pid, query=query),
            )
        )
    )


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    pairs = [item.partition("=") for item in items or []]
    if any(not sep for _, sep, _ in pairs):
        _fail(f"invalid --{what}: SYMBOL=VALUE, e.g. AAPL=0.3")
    return {k: v for k, _, v in pairs}


@portfolio_app.command("rebalance")
def portfolio_rebalance(
    user: User,
    portfolio: Portfolio,
    target: Annotated[list[str] | None, typer.Option(help="SYMBOL=WEIGHT (repeatable)")] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="Allocate instead: equal_weight, inverse_volatility, risk_parity, min_variance, max_sharpe"
        ),
    ] = None,
    symbol: Annotated[list[str] | None, typer.Option(help="Symbols for --method (repeatable)")] = None,
    drift: Annotated[float, typer.Option(help="Leave symbols within this weight of target")] = 0.0,
    buffer: Annotated[float, typer.Option(help="Share of equity kept in cash")] = 0.0,
    lot: Annotated[str | None, typer.Option(help="Quantity step, e.g. 1 for whole shares")] = None,
    tax: Annotated[str | None, typer.Option(help="Tax lots: fifo, lifo, hifo or tax_optimal")] = None,
    execute: Annotated[bool, typer.Option(help="Send the orders (default: preview only)")] = False,
) -> None:
    """Preview (default) or send the orders that bring the holdings to the targets."""
    from algotrendy.services.portfolio.interface import RebalanceRequest

    pid = _uuid(portfolio, "portfolio id")
    body: dict[str, Any] = {
        "drift_threshold": drift,
        "cash_buffer": buffer,
        "default_lot_size": lot,
        "dry_run": not execute,
    }
    if target:
        body["targets"] = _pairs(target, "target")
    if method:
        body["allocation"] = {"method": method, "symbols": symbol or []}
    if tax:
        body["tax_optimization"] = {"method": tax}
    request = _parsed(RebalanceRequest, body, "rebalance")
    read = _run(
        lambda: _with(
            user, lambda s, owner: s["portfolio"].rebalance(owner_id=owner, portfolio_id=pid, request=request)
        )
    )
    typer.echo(f"{read.status}: equity {read.equity}, cash {read.cash_before} -> {read.cash_after}")
    for t in read.trades:
        state = f"  {t.order_status or ''} {t.reason or ''}".rstrip()
        typer.echo(
            f"  {t.side:<4} {t.quantity} {t.symbol} @ {t.price} "
            f"({t.current_weight:.2%} -> {t.target_weight:.2%}){state}"
        )
    for symbol_, why in read.skipped:
        typer.echo(f"  skipped {symbol_}: {why}")
    for warning in read.warnings:
        typer.echo(f"  warning: {warning}")


@portfolio_app.command("lots")
def portfolio_lots(user: User, portfolio: Portfolio) -> None:
    """Open tax lots: quantity, cost, age and unrealized gain."""
    pid = _uuid(portfolio, "portfolio id")
    for lot in _run(
        lambda: _with(user, lambda s, owner: s["portfolio"].tax_lots(owner_id=owner, portfolio_id=pid))
    ):
        term = "long" if lot.long_term else "short"
        typer.echo(
            f"{lot.symbol:<10} {lot.quantity} @ {lot.cost_per_unit} since {lot.acquired_at:%Y-%m-%d} "
            f"({term}-term)  gain {lot.unrealized_gain}"
        )


@portfolio_app.command("report")
def portfolio_report(
    user: User,
    portfolio: Portfolio,
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: the last complete month)")] = None,
    start: Annotated[str | None, typer.Option(help="YYYY-MM-DD, instead of --month")] = None,
    end: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today)")] = None,
    format_: Annotated[
        list[str] | None, typer.Option("--format", help="pdf or xlsx (repeatable; default both)")
    ] = None,
    benchmark: Annotated[str | None, typer.Option(help="Benchmark symbol, e.g. SPY")] = None,
    email: Annotated[list[str] | None, typer.Option(help="Also mail the files here (repeatable)")] = None,
    out: Annotated[Path, typer.Option(help="Directory to save the files in", file_okay=False)] = Path("."),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the report")] = 300.0,
) -> None:
    """Render a performance report (PDF, Excel) as a job, wait for it and save the files."""
    from algotrendy.services.portfolio.interface import ReportCreate

    pid = _uuid(portfolio, "portfolio id")
    body: dict[str, Any] = {"month": month, "start": start, "end": end, "benchmark": benchmark}
    if format_:
        body["formats"] = [f.lower() for f in format_]
    if email:
        body["recipients"] = email
    request = _parsed(ReportCreate, {k: v for k, v in body.items() if v is not None}, "report")

    async def run(s: Any, owner: uuid.UUID) -> Any:
        report = await s["portfolio"].create_report(owner_id=owner, portfolio_id=pid, request=request)
        await s["jobs"].wait(owner=owner, job_id=report.job_id, timeout=timeout)
        report = await s["portfolio"].report(owner_id=owner, report_id=report.report_id)
        if report.status != "succeeded":
            return report, []
        files = [
            await s["portfolio"].report_file(owner_id=owner, report_id=report.report_id, format=f.format)
            for f in report.files
        ]
        return report, files

    report, files = _run(lambda: _with(user, run))
    if report.status == "failed":
        _fail(f"report {report.report_id} failed: {report.error}")
    if report.status != "succeeded":
        _fail(f"report {report.report_id} is still {report.status} after {timeout:g} s")
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        (out / f.filename).write_bytes(f.content)
        typer.echo(f"wrote {out / f.filename} ({len(f.content)} bytes)")
    if report.recipients:
        why = f" ({report.email_error})" if report.email_error else ""
        typer.echo(f"email: {report.email_status}{why}")


__all__ = ["portfolio_app", "risk_app", "trading_app"]
