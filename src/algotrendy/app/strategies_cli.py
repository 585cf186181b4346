"""``algotrendy strategies ...``: the strategies front door on the command line.

Like the rest of the CLI it builds the container in-process and calls the same ``StrategiesApi``
methods the REST routes call. ``--user`` names the owner (username, email or id).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

T = TypeVar("T")

strategies_app = typer.Typer(
    help="Strategies: built-in templates, validate, create, list.", no_args_is_help=True
)


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    from algotrendy.app import cli  # the shared runner (errors -> exit 1); imported late, cli imports us

    return cli._run(factory)


def _container() -> Any:
    """The container with only what these commands use (users for ``--user``), on the usual data."""
    from algotrendy.app import cli
    from algotrendy.app.container import Container

    return Container.build(cli._settings(services=["users", "strategies"]))


User = Annotated[str, typer.Option("--user", "-u", help="Owner: username, email or user id")]
Params = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE parameter default (repeatable)")
]


def _fail(message: str) -> NoReturn:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(2)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _fail(f"invalid input: {file} is not readable JSON ({exc})")


def _parsed(model: Any, data: Any, what: str) -> Any:
    """``model`` validated from ``data``, or exit 2 naming the first bad field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        _fail(f"invalid {what}: {field or what}: {first['msg']}{more}")


def _param_values(items: list[str] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            _fail(f"invalid --param {item!r}: expected NAME=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        values[name.strip()] = (
            value if isinstance(value, int | float | str) and not isinstance(value, bool) else raw
        )
    return values


async def _owner(container: Any, user: str) -> Any:
    import uuid

    from algotrendy.core.errors import Invalid, NotFound

    try:
        return uuid.UUID(user)
    except ValueError:
        pass
    users = container.services.get("users")
    if users is None:
        raise Invalid("the users service is not hosted here: give --user as a user id", field="user")
    found = await users.list_users(limit=200, offset=0, q=user, role=None, active=None)
    for candidate in found.items:
        if user.lower() in (candidate.username.lower(), candidate.email.lower()):
            return candidate.id
    raise NotFound(f"no user {user!r}", code="user_not_found")


async def _with_strategies(user: str | None, fn: Callable[[Any, Any], Awaitable[T]], *, db: bool = True) -> T:
    container = _container()
    try:
        if db:
            await container.migrate()
        owner = await _owner(container, user) if user is not None else None
        return await fn(container.services["strategies"], owner)
    finally:
        await container.stop()


@strategies_app.command("templates")
def strategies_templates() -> None:
    """List the built-in strategy templates and their parameter defaults."""
    rows = _run(lambda: _with_strategies(None, lambda s, _o: s.templates(), db=False))
    for t in rows:
        params = ", ".join(f"{n}={p.default}" for n, p in t.template.parameters.items())
        typer.echo(f"{t.slug:<22} {t.kind:<8} {t.name}  ({params})")


@strategies_app.command("validate")
def strategies_validate(
    file: Annotated[Path, typer.Option("--file", "-f", exists=True, dir_okay=False, help="Template JSON")],
    param: Params = None,
) -> None:
    """Check a template file: prints ok, or the error naming the field (exit status 1)."""
    from algotrendy.engine.template import StrategyTemplate

    template = _parsed(StrategyTemplate, _read_json(file), "template")
    params = _param_values(param)
    report = _run(
        lambda: _with_strategies(
            None, lambda s, _o: s.validate(template=template, parameters=params), db=False
        )
    )
    if report.ok:
        typer.echo(f"ok: {template.name}")
        return
    for issue in report.errors:
        typer.secho(f"invalid: {issue.field}: {issue.message}", fg="red", err=True)
    raise typer.Exit(1)


@strategies_app.command("create")
def strategies_create(
    user: User,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False, help="Template JSON")
    ] = None,
    builtin: Annotated[str | None, typer.Option(help="Slug of a built-in template instead of a file")] = None,
    name: Annotated[str | None, typer.Option(help="Name (default: the template's name)")] = None,
    description: Annotated[str, typer.Option(help="Description")] = "",
    param: Params = None,
    symbol: Annotated[
        list[str] | None,
        typer.Option("--symbol", help="SYMBOL or SYMBOL@VENUE traded by default (repeatable)"),
    ] = None,
    interval: Annotated[str, typer.Option(help="Bar interval of the --symbol series")] = "1d",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag (repeatable)")] = None,
) -> None:
    """Save a strategy from a template file or a built-in template."""
    from algotrendy.engine.template import StrategyTemplate
    from algotrendy.services.strategies.interface import StrategyCreate

    if (file is None) == (builtin is None):
        _fail("invalid input: give either --file or --builtin")
    template = _parsed(StrategyTemplate, _read_json(file), "template") if file is not None else None
    symbols = []
    for item in symbol or []:
        sym, _, venue = item.partition("@")
        symbols.append({"symbol": sym, "venue": venue or None, "interval": interval})
    body = {
        "name": name or (template.name if template is not None else builtin),
        "description": description,
        "template": template,
        "builtin": builtin,
        "parameters": _param_values(param),
        "symbols": symbols,
        "tags": tag or [],
    }
    data = _parsed(StrategyCreate, body, "strategy")
    created = _run(lambda: _with_strategies(user, lambda s, owner: s.create(owner=owner, data=data)))
    typer.echo(f"created strategy {created.name} ({created.id}) version {created.version}")


@strategies_app.command("list")
def strategies_list(
    user: User,
    name: Annotated[str | None, typer.Option(help="Part of the name")] = None,
    tag: Annotated[str | None, typer.Option(help="Only strategies with this tag")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many")] = 50,
) -> None:
    """List a user's strategies, newest first."""
    rows = _run(
        lambda: _with_strategies(
            user, lambda s, owner: s.list(owner=owner, name=name, tag=tag, limit=limit, offset=0)
        )
    )
    if not rows:
        typer.echo("no strategies")
    for r in rows:
        tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
        typer.echo(f"{r.id}  v{r.version:<3} {r.status.value:<8} {r.name}{tags}")


@strategies_app.command("show")
def strategies_show(
    strategy_id: Annotated[str, typer.Argument(help="Strategy id")],
    user: User,
    version: Annotated[int | None, typer.Option(min=1, help="A past version (default: the latest)")] = None,
) -> None:
    """Print a strategy (or one of its versions) as JSON."""
    import uuid

    try:
        sid = uuid.UUID(strategy_id)
    except ValueError:
        _fail(f"invalid input: {strategy_id!r} is not a strategy id")

    async def show(s: Any, owner: Any) -> Any:
        if version is not None:
            return await s.version(owner=owner, strategy_id=sid, version=version)
        return await s.get(owner=owner, strategy_id=sid)

    typer.echo(_run(lambda: _with_strategies(user, show)).model_dump_json(indent=2))
