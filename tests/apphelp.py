"""Running the real app in-process for tests: settings, lifespan, an httpx client on
``ASGITransport`` and helpers that register and log in users.

Every password and token the helpers see is recorded in ``SECRETS``; the session-wide log
capture in ``conftest.py`` fails the run if any of them ever appears in a log line.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from fastapi import FastAPI

from algotrendy.app.asgi import create_app
from algotrendy.app.settings import Settings
from algotrendy.core.auth import Role
from algotrendy.core.clock import Clock

SECRETS: set[str] = set()
_counter = itertools.count()

GENEROUS_LIMITS = {
    "auth_burst": 10_000,
    "auth_rate_per_minute": 600_000,
    "ip_burst": 100_000,
    "ip_rate_per_minute": 6_000_000,
    "user_burst": 100_000,
    "user_rate_per_minute": 6_000_000,
}


def remember(*values: str | None) -> None:
    for v in values:
        if v and len(v) >= 8:
            SECRETS.add(v)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "services": ["all"],
        "gateway": dict(GENEROUS_LIMITS),
        "log": {"level": "INFO"},
        "marketdata": {"load_samples": False},
    }
    return Settings(**_merge(base, overrides))


@asynccontextmanager
async def service_settings(tmp_path: Path, **overrides: Any) -> AsyncIterator[Settings]:
    """Settings on a fresh PostgreSQL database, Redis and a private NATS stream (deleted after)."""
    from tests.pg import fresh_database
    from tests.support import require_service

    redis_url = require_service("redis")
    nats_url = require_service("nats")
    tag = uuid.uuid4().hex[:10]
    async with fresh_database() as db_url:
        settings = make_settings(
            tmp_path,
            database_url=db_url,
            redis_url=redis_url,
            nats_url=nats_url,
            bus={"stream": f"T_{tag}", "subject_prefix": f"t{tag}.events", "dlq_prefix": f"t{tag}.dlq"},
            **overrides,
        )
        try:
            yield settings
        finally:
            await _delete_streams(nats_url, [f"T_{tag}", f"T_{tag}_DLQ"])


async def _delete_streams(url: str, names: list[str]) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for name in names:
            with contextlib.suppress(Exception):  # already gone
                await js.delete_stream(name)
    finally:
        await nc.close()


class Api:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def container(self) -> Any:
        return self.app.state.container

    @property
    def users(self) -> Any:
        return self.app.state.services["users"]

    async def register(
        self, *, username: str | None = None, email: str | None = None, password: str | None = None
    ) -> tuple[dict[str, Any], str]:
        n = next(_counter)
        username = username or f"user{n}_{uuid.uuid4().hex[:6]}"
        email = email or f"{username}@example.com"
        password = password or f"pw-{uuid.uuid4().hex}"
        remember(password, email)
        r = await self.client.post(
            "/api/v1/users/register", json={"email": email, "username": username, "password": password}
        )
        assert r.status_code == 201, r.text
        return r.json(), password

    async def login(self, username: str, password: str, otp: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"username": username, "password": password}
        if otp:
            body["otp"] = otp
        r = await self.client.post("/auth/login", json=body)
        assert r.status_code == 200, r.text
        tokens = r.json()
        remember(tokens["access_token"], tokens["refresh_token"])
        return tokens

    async def user(self, role: Role = Role.TRADER) -> tuple[dict[str, Any], dict[str, str], str]:
        """A fresh logged-in user: (user, auth headers, password)."""
        if role is Role.TRADER:
            user, password = await self.register()
        else:
            from algotrendy.services.users.interface import UserCreate

            n = next(_counter)
            password = f"pw-{uuid.uuid4().hex}"
            remember(password)
            created = await self.users.create_user(
                data=UserCreate(
                    email=f"{role.value}{n}@example.com", username=f"{role.value}{n}x", password=password
                ),
                role=role,
                verified=True,
            )
            user = created.model_dump(mode="json")
        tokens = await self.login(user["username"], password)
        return user, {"Authorization": f"Bearer {tokens['access_token']}"}, password

    def outbox(self) -> list[dict[str, Any]]:
        from algotrendy.adapters.mail.console import read_outbox

        return read_outbox(self.container.settings.data_dir / "mail" / "outbox.jsonl", limit=1000)

    async def mail_token(self, to: str, subject_part: str) -> str:
        """The one-time token in the newest mail to ``to`` whose subject contains ``subject_part``."""
        await self.container.services["users.mail"].run_once()
        for message in reversed(self.outbox()):
            if message["to"].lower() == to.lower() and subject_part in message["subject"]:
                token = re.search(r"token=([A-Za-z0-9_-]+)", message["text"])
                assert token, message
                remember(token.group(1))
                return token.group(1)
        raise AssertionError(f"no mail to {to} about {subject_part}")


@asynccontextmanager
async def running(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Api]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(app, client)


async def record_history(
    api: Api,
    portfolio_id: uuid.UUID,
    inception: datetime,
    days: list[tuple[date, Decimal, Decimal, dict[str, Any]]],
) -> None:
    """Backdate a portfolio to ``inception`` and write recorded days (day, value, cash,
    holdings) into its ``performance_metrics`` series, as the recorder would have."""
    from sqlalchemy import insert, update

    from algotrendy.services.portfolio.store import performance_metrics, portfolios

    rows = [
        {
            "portfolio_id": portfolio_id,
            "day": day,
            "time": datetime(day.year, day.month, day.day, 21, tzinfo=UTC),
            "total_value": value,
            "cash": cash,
            "holdings": holdings,
            "daily_return": 0.0,
            "cumulative_return": 0.0,
            "sharpe_ratio": None,
            "max_drawdown": 0.0,
            "volatility": None,
        }
        for day, value, cash, holdings in days
    ]
    async with api.container.sessions() as session, session.begin():
        await session.execute(
            update(portfolios).where(portfolios.c.id == portfolio_id).values(created_at=inception)
        )
        await session.execute(insert(performance_metrics), rows)


class OrderInsert(NamedTuple):
    durable: bool
    """Whether the transaction's commit waits for the disk (``db.engine``:
    ``make_sessionmaker(durable=False)`` gives sessions whose commits do not)."""
    rows: int
    """How many order rows the statement inserted (one statement per batch of orders)."""


@contextlib.contextmanager
def order_inserts(api: Api, portfolio_id: str) -> Iterator[list[OrderInsert]]:
    """Each insert of order rows of ``portfolio_id``, in order; on SQLite also checks the level
    the driver was set to for its transaction."""
    from sqlalchemy import event

    keys = (portfolio_id, portfolio_id.replace("-", ""))
    seen: list[OrderInsert] = []

    def on_statement(conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO trading_orders") and any(k in repr(params) for k in keys):
            durable = bool(conn.get_execution_options().get("durable_commit", True))
            if conn.dialect.name == "sqlite":
                assert conn.info["synchronous"] == ("FULL" if durable else "NORMAL")
            seen.append(OrderInsert(durable, len(params) if isinstance(params, list) else 1))

    engine = api.container.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
