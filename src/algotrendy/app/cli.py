"""The ``algotrendy`` command line (Typer). Front door like the REST routers: it calls the same
service APIs, never business logic of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from algotrendy.app.settings import Settings, load_settings, masked
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


def main() -> None:
    app()
