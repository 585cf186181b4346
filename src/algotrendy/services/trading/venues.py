"""Which venue each trading account talks to, and the one task per venue that feeds its
execution reports into the service.

The container injects how venues are made (services never import adapters): ``paper(account_id,
currency, initial_cash)`` answers the paper broker's account, ``live(credentials)`` builds a
ccxt or Alpaca venue from a stored connection. Instrument rules are cached per venue and symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import ConfigurationError, NotFound, TemporaryError
from algotrendy.core.venue import InstrumentRules, Venue, VenueError, VenueFill, VenueOrder
from algotrendy.services.portfolio.interface import PortfolioRead
from algotrendy.services.trading import store
from algotrendy.services.trading.accounts import Books

log = structlog.get_logger(__name__)

RULES_TTL = 300.0


@dataclass(frozen=True, slots=True)
class Credentials:
    venue: str
    api_key: str
    secret: str
    password: str | None
    sandbox: bool
    base_url: str | None


PaperAccounts = Callable[[str, str, Decimal], Awaitable[Venue]]
LiveFactory = Callable[[Credentials, Sequence[str]], Venue]
"""Builds a live venue; the symbols are those the account trades (watched for fills)."""
EventSink = Callable[[uuid.UUID, VenueOrder | VenueFill, Venue], Awaitable[None]]


class Venues:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        secret_box: SecretBox,
        paper: PaperAccounts,
        live: LiveFactory | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.secret_box = secret_box
        self._paper = paper
        self._live = live
        self._venues: dict[uuid.UUID, Venue] = {}
        self._pumps: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._rules: dict[tuple[int, str], tuple[float, InstrumentRules | None]] = {}
        self._lock = asyncio.Lock()
        self.on_event: EventSink | None = None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for task in self._pumps.values():
            task.cancel()
        for task in self._pumps.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pumps.clear()
        for venue in self._venues.values():
            with contextlib.suppress(Exception):
                await venue.close()
        self._venues.clear()

    async def open_account(self, portfolio: PortfolioRead) -> dict[str, Any]:
        """The trading account of ``portfolio``, funded with its initial capital on creation."""
        now = self._clock.now()
        connection_id = None if portfolio.venue == "paper" else uuid.UUID(portfolio.venue)
        venue_name = "paper"
        if connection_id is not None:
            async with self._sessions() as session:
                conn = (
                    (
                        await session.execute(
                            select(store.connections).where(store.connections.c.id == connection_id)
                        )
                    )
                    .mappings()
                    .first()
                )
            if conn is None or conn["owner_id"] != portfolio.owner_id:
                raise NotFound(f"connection {connection_id} not found")
            venue_name = conn["venue"]
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(store.accounts).values(
                        portfolio_id=portfolio.portfolio_id,
                        owner_id=portfolio.owner_id,
                        venue=venue_name,
                        connection_id=connection_id,
                        currency=portfolio.currency,
                        allow_short=portfolio.allow_short,
                        halted_reason=None,
                        reconciled_at=None,
                        created_at=now,
                        lock_seq=0,
                    )
                )
                # The portfolio's capital is what the platform may commit (paper: all of it;
                # live: its allocation of the venue account, which enforces its own funds too).
                books = await Books.load(session, portfolio.portfolio_id)
                books.ledger.deposit(
                    f"deposit:{portfolio.portfolio_id}:initial", portfolio.currency, portfolio.initial_capital
                )
                await books.save(session, now)
        except IntegrityError:
            pass  # created concurrently
        async with self._sessions() as session:
            row = await store.get_account(session, portfolio.portfolio_id)
        assert row is not None
        return row

    async def venue(self, account: dict[str, Any]) -> Venue:
        pid: uuid.UUID = account["portfolio_id"]
        found = self._venues.get(pid)
        if found is not None:
            return found
        async with self._lock:
            found = self._venues.get(pid)
            if found is not None:
                return found
            venue = await self._make(account)
            try:
                await venue.connect()
            except VenueError as exc:
                raise TemporaryError(f"cannot reach {venue.name}: {exc}") from exc
            self._venues[pid] = venue
            self._pumps[pid] = asyncio.get_running_loop().create_task(self._pump(pid, venue))
            return venue

    async def _make(self, account: dict[str, Any]) -> Venue:
        if account["connection_id"] is None:
            async with self._sessions() as session:
                deposits = (
                    await session.execute(
                        select(store.ledger.c.amount).where(
                            store.ledger.c.portfolio_id == account["portfolio_id"],
                            store.ledger.c.kind == "deposit",
                            store.ledger.c.account == "cash",
                        )
                    )
                ).scalars()
                initial = sum(deposits, Decimal(0))
            return await self._paper(str(account["portfolio_id"]), account["currency"], initial)
        async with self._sessions() as session:
            pid = account["portfolio_id"]
            traded = {
                r[0]
                for r in await session.execute(
                    select(store.orders.c.symbol).where(store.orders.c.portfolio_id == pid).distinct()
                )
            }
        return self.build_live(await self.credentials(account["connection_id"]), sorted(traded))

    def build_live(self, credentials: Credentials, symbols: Sequence[str] = ()) -> Venue:
        if self._live is None:
            raise ConfigurationError("live brokers are not configured in this process")
        return self._live(credentials, symbols)

    def accounts_open(self) -> list[uuid.UUID]:
        return list(self._venues)

    async def credentials(self, connection_id: uuid.UUID) -> Credentials:
        async with self._sessions() as session:
            row = (
                (
                    await session.execute(
                        select(store.connections).where(store.connections.c.id == connection_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"connection {connection_id} not found")
        return Credentials(
            venue=row["venue"],
            api_key=self.secret_box.decrypt(row["api_key"]),
            secret=self.secret_box.decrypt(row["secret"]),
            password=self.secret_box.decrypt(row["password"]) if row["password"] else None,
            sandbox=row["sandbox"],
            base_url=row["base_url"],
        )

    async def rules(self, venue: Venue, symbol: str) -> InstrumentRules | None:
        key = (id(venue), symbol)
        hit = self._rules.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < RULES_TTL:
            return hit[1]
        try:
            rules = await venue.instrument(symbol)
        except VenueError as exc:
            raise TemporaryError(f"{venue.name} did not answer its trading rules: {exc}") from exc
        self._rules[key] = (now, rules)
        return rules

    async def _pump(self, portfolio_id: uuid.UUID, venue: Venue) -> None:
        """Feed the venue's execution reports to the service, for as long as the venue is open."""
        while True:
            try:
                async for event in venue.events():
                    if self.on_event is not None:
                        try:
                            await self.on_event(portfolio_id, event, venue)
                        except Exception:
                            log.exception("trading.venue_event.failed", portfolio_id=str(portfolio_id))
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trading.venue_stream.failed", venue=venue.name)
                await asyncio.sleep(1.0)
