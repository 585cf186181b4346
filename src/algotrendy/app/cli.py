"""The ``algotrendy`` command line (Typer). Front door like the REST routers: it calls the same
service APIs, never business logic of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from algotrendy.app.backtest_cli import backtest_app
from algotrendy.app.ml_cli import ml_app
from algotrendy.app.settings import Settings, load_settings, masked
from algotrendy.app.strategies_cli import strategies_app
from algotrendy.app.trading_cli import portfolio_app, risk_app, trading_app
from algotrendy.core.errors import AlgoTrendyError

T = TypeVar("T")

app = typer.Typer(
    help="AlgoTrendy: algorithmic trading platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Records database.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="JWT signing keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
data_app = typer.Typer(help="Market data: import, download, inspect.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(strategies_app, name="strategies")
app.add_typer(backtest_app, name="backtest")
app.add_typer(portfolio_app, name="portfolio")
app.add_typer(trading_app, name="trading")
app.add_typer(risk_app, name="risk")
app.add_typer(ml_app, name="ml")


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # pydantic's ValidationError: show it plainly
        typer.secho(f"invalid configuration: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except AlgoTrendyError as exc:
        typer.secho(f"error: {exc.detail}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    services: Annotated[str | None, typer.Option(help="Comma-separated services to host, or 'all'")] = None,
) -> None:
    """Run the API server (all services in one process unless --services says otherwise)."""
    import uvicorn

    from algotrendy.app.asgi import create_app
    from algotrendy.core.errors import ConfigurationError

    settings = _settings(host=host, port=port, services=services)
    try:
        application = create_app(settings)
    except ConfigurationError as exc:
        typer.secho(f"refusing to start: {exc.detail}", fg="red", err=True)
        raise typer.Exit(2) from None
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    typer.echo(
        f"AlgoTrendy {', '.join(settings.hosted_services)} on http://{settings.host}:{settings.port} "
        f"(docs: /docs, data: {settings.data_dir})",
        err=True,
    )
    uvicorn.Server(config).run()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the records database."""
    from algotrendy.db import migrate
    from algotrendy.db.engine import make_engine

    settings = _settings()

    async def go() -> str | None:
        engine = make_engine(settings.effective_database_url)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    revision = _run(go)
    typer.echo(f"database at revision {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision and the latest one."""
    from algotrendy.db import migrate
    from algotrendy.db.engine import make_engine

    settings = _settings()

    async def go() -> str | None:
        engine = make_engine(settings.effective_database_url)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    typer.echo(f"current: {_run(go)}  head: {migrate.head_revision()}")


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration as JSON, secrets masked."""
    typer.echo(json.dumps(masked(_settings()), indent=2, sort_keys=True))


def _container() -> Any:
    from algotrendy.app.container import Container

    return Container.build(_settings())


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address")],
    username: Annotated[str, typer.Option(help="Username")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="Password (prompted when omitted)"
        ),
    ],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role")] = False,
    role: Annotated[str, typer.Option(help="Role when not --admin: trader or viewer")] = "trader",
) -> None:
    """Create a verified account (use --admin for the first administrator)."""
    from pydantic import ValidationError

    from algotrendy.core.auth import Role
    from algotrendy.services.users.interface import UserCreate

    try:
        data = UserCreate(email=email, username=username, password=password)
        chosen = Role.ADMIN if admin else Role(role)
    except (ValidationError, ValueError) as exc:
        typer.secho(f"invalid input: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    container = _container()

    async def go() -> Any:
        await container.migrate()
        try:
            return await container.services["users"].create_user(data=data, role=chosen, verified=True)
        finally:
            await container.stop()

    user = _run(go)
    typer.echo(f"created {user.role.value} {user.username} ({user.id})")


@users_app.command("outbox")
def users_outbox(limit: Annotated[int, typer.Option(min=1, max=1000, help="How many messages")] = 10) -> None:
    """Show the newest emails written by the console mail backend (the embedded default)."""
    from algotrendy.adapters.mail.console import read_outbox

    settings = _settings()
    messages = read_outbox(settings.data_dir / "mail" / "outbox.jsonl", limit=limit)
    if not messages:
        typer.echo("no messages (the console mail backend writes here; SMTP sends instead)")
    for m in messages:
        typer.echo(f"--- {m['at']}  To: {m['to']}\nSubject: {m['subject']}\n\n{m['text']}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Create a new JWT signing key; older keys keep verifying until removed. Restart to use it."""
    from algotrendy.gateway.keys import generate_key_file

    key = generate_key_file(_settings().data_dir / "secrets" / "jwt")
    typer.echo(f"new signing key {key.kid}")


@keys_app.command("list")
def keys_list() -> None:
    """List the key ids in the data directory (newest signs)."""
    directory = _settings().data_dir / "secrets" / "jwt"
    for f in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        typer.echo(f.stem)


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does")],
) -> None:
    """(Developers) write a migration from the difference between the models and the database."""
    from algotrendy.app.models import all_metadata
    from algotrendy.db import migrate
    from algotrendy.db.engine import make_engine

    settings = _settings()

    async def go() -> Any:
        engine = make_engine(settings.effective_database_url)
        try:
            await migrate.upgrade(engine)
            return await migrate.autogenerate(engine, all_metadata(), message)
        finally:
            await engine.dispose()

    script = _run(go)
    typer.echo(f"wrote {getattr(script, 'path', script)}")


# ---- market data ------------------------------------------------------------------------------


async def _with_marketdata(fn: Callable[[Any], Awaitable[T]]) -> T:
    container = _container()
    await container.migrate()
    service = container.services["marketdata"]
    try:
        return await fn(service)
    finally:
        await container.stop()


@data_app.command("import")
def data_import(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV (optionally .gz) or Parquet")
    ],
    symbol: Annotated[str, typer.Option(help="Symbol, e.g. AAPL or BTC/USDT")],
    interval: Annotated[str, typer.Option("--interval", "--timeframe", help="Bar length: 1m, 1h, 1d, ...")],
    asset_type: Annotated[str, typer.Option(help="stock, etf, index, crypto, fx or futures")] = "stock",
    venue: Annotated[str, typer.Option(help="Venue or exchange name")] = "LOCAL",
) -> None:
    """Import bars from a file: all rows or none (a bad row is named with its line)."""
    from algotrendy.core.market import AssetType

    try:
        kind = AssetType(asset_type)
    except ValueError:
        typer.secho(
            f"invalid --asset-type {asset_type!r}: {', '.join(a.value for a in AssetType)}",
            err=True,
            fg="red",
        )
        raise typer.Exit(2) from None
    result = _run(
        lambda: _with_marketdata(
            lambda md: md.import_file(
                path=file, symbol=symbol, venue=venue, interval=interval, asset_type=kind
            )
        )
    )
    typer.echo(
        f"imported {result.rows} bars of {result.symbol}@{result.venue}/{result.interval} "
        f"({result.written} new or changed) {result.first} .. {result.last}"
    )


@data_app.command("download")
def data_download(
    source: Annotated[
        str, typer.Option(help="binance, coinbase, kraken (any ccxt id), yahoo, alpaca, polygon")
    ],
    symbol: Annotated[str, typer.Option(help="e.g. BTC/USDT or AAPL")],
    since: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="First bar (UTC)")
    ],
    timeframe: Annotated[str, typer.Option("--timeframe", "--interval", help="1m, 1h, 1d, ...")] = "1d",
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])] = None,
    asset_type: Annotated[str, typer.Option(help="Asset type of the series")] = "",
    venue: Annotated[str | None, typer.Option(help="Venue name to store under (default: the source)")] = None,
) -> None:
    """Page through a source's history into the bar store; re-running resumes where it stopped."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from algotrendy.app.marketdata import make_source
    from algotrendy.core.market import AssetType, SeriesKey, Timeframe
    from algotrendy.services.marketdata import series as sx

    settings = _settings()
    try:
        tf = Timeframe.parse(timeframe)
        kind = (
            AssetType(asset_type)
            if asset_type
            else (AssetType.CRYPTO if source not in {"yahoo", "alpaca", "polygon"} else AssetType.STOCK)
        )
    except ValueError as exc:
        typer.secho(f"invalid input: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None
    key = SeriesKey(sx.normalize_symbol(symbol), (venue or source).upper(), tf)

    async def go(md: Any) -> Any:
        src = make_source(settings, source)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[bars]} bars"),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task(f"{symbol} {tf.label} from {source}", total=1.0, bars=0)

            def progress(p: Any) -> None:
                bar.update(task, completed=p.fraction, bars=p.bars)

            try:
                return await md.download(
                    source=src,
                    key=key,
                    asset_type=kind,
                    since_ns=sx.datetime_to_ns(since),
                    until_ns=sx.datetime_to_ns(until) if until else None,
                    progress=progress,
                )
            finally:
                await src.close()

    result = _run(lambda: _with_marketdata(go))
    resumed = f", resumed from {sx.ns_to_datetime(result.resumed_from)}" if result.resumed_from else ""
    rejected = f", {result.rejected_count} bad rows rejected" if result.rejected_count else ""
    typer.echo(
        f"{key}: {result.bars} bars in {result.pages} pages, {result.written} written{resumed}{rejected}"
    )


@data_app.command("symbols")
def data_symbols() -> None:
    """List stored series."""
    rows = _run(lambda: _with_marketdata(lambda md: md.symbols()))
    for r in rows:
        typer.echo(
            f"{r.symbol:<10} {r.venue:<10} {r.interval:<4} {r.asset_type.value:<7} {r.count:>8} bars  "
            f"{r.first:%Y-%m-%d %H:%M} .. {r.last:%Y-%m-%d %H:%M}"
        )


@data_app.command("show")
def data_show(
    symbol: Annotated[str, typer.Argument(help="Symbol")],
    interval: Annotated[str, typer.Option(help="Bar length")] = "1d",
    indicators: Annotated[str, typer.Option(help="e.g. rsi,macd,sma:50")] = "",
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Last N bars")] = 20,
    chart_style: Annotated[str, typer.Option(help="time, heikin_ashi, renko, ...")] = "time",
    venue: Annotated[str | None, typer.Option(help="Venue, when a symbol has several")] = None,
) -> None:
    """Print the last bars of a series with indicator columns."""
    from algotrendy.services.marketdata.interface import BarsQuery

    query = BarsQuery(
        symbol=symbol,
        venue=venue,
        interval=interval,
        limit=limit,
        chart_style=chart_style,
        indicators=[indicators] if indicators else [],
    )
    series = _run(lambda: _with_marketdata(lambda md: md.get_bars(query=query)))
    cols = series.columns
    typer.echo("  ".join(f"{c:>20}" if c == "timestamp" else f"{c:>12}" for c in cols))
    for i in range(series.count):
        cells = []
        for c in cols:
            v = series.data[c][i]
            cells.append(f"{v:>20}" if c == "timestamp" else f"{'' if v is None else f'{v:.6g}':>12}")
        typer.echo("  ".join(cells))


@data_app.command("quality")
def data_quality(
    symbol: Annotated[str, typer.Argument(help="Symbol")],
    interval: Annotated[str | None, typer.Option(help="Stored interval (default: finest)")] = None,
    venue: Annotated[str | None, typer.Option(help="Venue")] = None,
) -> None:
    """Report gaps, bad prints and stale runs of a stored series (JSON)."""
    report = _run(
        lambda: _with_marketdata(lambda md: md.quality(symbol=symbol, venue=venue, interval=interval))
    )
    typer.echo(json.dumps(report, indent=2))


def main() -> None:
    app()
