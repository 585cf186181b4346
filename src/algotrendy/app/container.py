"""The composition root: the one place that decides all-in-one versus split.

Settings choose each part: SQLite or PostgreSQL, in-process bus or NATS JetStream, memory or
Redis cache/limits, console or SMTP mail, local pool or Ray for jobs. Services get their
dependencies here and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from algotrendy.app.settings import Settings
from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import ConfigurationError
from algotrendy.core.events import Bus
from algotrendy.core.failpoints import Failpoints
from algotrendy.core.ports import Cache, Mailer, RateLimiter
from algotrendy.db import migrate
from algotrendy.db.engine import make_engine, make_sessionmaker, ping
from algotrendy.db.outbox import Outbox, OutboxRelay
from algotrendy.gateway import metrics
from algotrendy.gateway.auth import Authenticator, Revocations
from algotrendy.gateway.keys import KeyRing, write_secret_file
from algotrendy.gateway.tokens import TokenCodec

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 20.0


def _bus(settings: Settings) -> Bus:
    if settings.nats_url:
        from algotrendy.adapters.bus.nats import NatsBus

        b = settings.bus
        return NatsBus(
            settings.nats_url,
            stream=b.stream,
            subject_prefix=b.subject_prefix,
            dlq_prefix=b.dlq_prefix,
            max_deliver=b.max_deliver,
            ack_wait=b.ack_wait,
            name=f"algotrendy-{'-'.join(settings.hosted_services)}",
        )
    from algotrendy.adapters.bus.memory import InMemoryBus

    return InMemoryBus()


def _cache_and_limiter(settings: Settings, clock: Clock) -> tuple[Cache, RateLimiter]:
    if settings.redis_url:
        from algotrendy.adapters.cache.redis import RedisCache
        from algotrendy.adapters.ratelimit.redis import RedisRateLimiter

        cache = RedisCache(settings.redis_url)
        return cache, RedisRateLimiter(cache.client)
    from algotrendy.adapters.cache.memory import MemoryCache
    from algotrendy.adapters.ratelimit.memory import MemoryRateLimiter

    return MemoryCache(clock=clock), MemoryRateLimiter(clock=clock)


def _mailer(settings: Settings) -> Mailer:
    m = settings.mail
    if m.backend == "smtp":
        from algotrendy.adapters.mail.smtp import SmtpMailer

        return SmtpMailer(
            host=m.smtp_host,
            port=m.smtp_port,
            sender=m.from_address,
            username=m.smtp_username,
            password=m.smtp_password.get_secret_value() if m.smtp_password else None,
            starttls=m.smtp_starttls,
            tls=m.smtp_tls,
            timeout=m.smtp_timeout,
        )
    from algotrendy.adapters.mail.console import ConsoleMailer

    return ConsoleMailer(settings.data_dir / "mail" / "outbox.jsonl")


def _secret_box(settings: Settings) -> SecretBox:
    given = settings.secrets.encryption_key
    if given is not None:
        keys = [k.strip().encode() for k in given.get_secret_value().split(",") if k.strip()]
        return SecretBox(keys)
    if settings.production:
        raise ConfigurationError("production mode needs ALGO_SECRETS__ENCRYPTION_KEY (a Fernet key)")
    path = settings.data_dir / "secrets" / "encryption.key"
    if not path.is_file():
        write_secret_file(path, SecretBox.generate_key())
    return SecretBox([path.read_bytes().strip()])


def check_production(settings: Settings) -> None:
    """Refuse unsafe production settings before anything starts."""
    if not settings.production:
        return
    if "*" in settings.gateway.cors_origins and settings.gateway.cors_allow_credentials:
        raise ConfigurationError("CORS origin '*' with credentials is not allowed in production")
    if settings.mail.backend == "console" and "users" in settings.hosted_services:
        log.warning("config.console_mail_in_production")


@dataclass
class Container:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # Commits that do not wait for the disk, for records whose loss is recovered by design
    # (outbox relays' marks, the paper venue's book): ``db.engine.make_sessionmaker``.
    relaxed_sessions: async_sessionmaker[AsyncSession]
    bus: Bus
    cache: Cache
    limiter: RateLimiter
    keys: KeyRing
    codec: TokenCodec
    revocations: Revocations
    authenticator: Authenticator
    mailer: Mailer
    secret_box: SecretBox
    services: dict[str, Any] = field(default_factory=dict)
    relays: list[OutboxRelay] = field(default_factory=list)
    _failpoints: Failpoints | None = None
    _on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _on_stop: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    _started: list[Any] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Container:
        check_production(settings)
        clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_dir, 0o700)
        engine = make_engine(settings.effective_database_url)
        sessions = make_sessionmaker(engine)
        cache, limiter = _cache_and_limiter(settings, clock)
        a = settings.auth
        keys = KeyRing.load(
            key_dir=settings.data_dir / "secrets" / "jwt",
            private_key_pem=a.private_key.get_secret_value() if a.private_key else None,
            private_key_file=a.private_key_file,
            public_keys_dir=a.public_keys_dir,
            need_signing="users" in settings.hosted_services,
            production=settings.production,
        )
        codec = TokenCodec(
            keys=keys,
            issuer=a.issuer,
            audience=a.audience,
            access_ttl=a.access_ttl_seconds,
            leeway=a.leeway_seconds,
            clock=clock,
            jwks_url=a.jwks_url,
        )
        revocations = Revocations(cache, ttl_seconds=a.access_ttl_seconds)
        authenticator = Authenticator(
            codec=codec, revocations=revocations, limiter=limiter, settings=settings.gateway
        )
        c = cls(
            settings=settings,
            clock=clock,
            engine=engine,
            sessions=sessions,
            relaxed_sessions=make_sessionmaker(engine, durable=False),
            bus=_bus(settings),
            cache=cache,
            limiter=limiter,
            keys=keys,
            codec=codec,
            revocations=revocations,
            authenticator=authenticator,
            mailer=_mailer(settings),
            secret_box=_secret_box(settings),
        )
        c._build_services()
        return c

    @property
    def public_url(self) -> str:
        return self.settings.public_url or f"http://{self.settings.host}:{self.settings.port}"

    def _build_services(self) -> None:
        hosted = self.settings.hosted_services
        if "users" in hosted:
            self._build_users()
        if "notifications" in hosted:
            from algotrendy.services.notifications.service import NotificationsService

            self.services["notifications"] = NotificationsService(
                sessions=self.sessions,
                mailer=self.mailer,
                clock=self.clock,
                settings=self.settings.notifications,
                product_url=self.public_url,
            )
        if "jobs" in hosted:
            self._build_jobs()
        if "marketdata" in hosted:
            from algotrendy.app.marketdata import build_marketdata

            build_marketdata(self)
        if "strategies" in hosted:
            self._build_strategies()
        if "ml" in hosted:
            from algotrendy.app.ml import build_ml

            build_ml(self)
        if "backtest" in hosted:
            from algotrendy.app.backtest import build_backtest

            build_backtest(self)
        from algotrendy.app.trading import build_trading

        build_trading(self)

    def _build_users(self) -> None:
        from algotrendy.services.users.mail import MailWorker
        from algotrendy.services.users.passwords import Passwords
        from algotrendy.services.users.service import UsersService

        us = self.settings.users
        outbox = Outbox(service="users", clock=self.clock)
        worker = MailWorker(sessions=self.sessions, mailer=self.mailer, clock=self.clock)
        self.services["users"] = UsersService(
            sessions=self.sessions,
            settings=us,
            passwords=Passwords(
                memory_kib=us.argon2_memory_kib,
                time_cost=us.argon2_time_cost,
                parallelism=us.argon2_parallelism,
                max_concurrent=us.max_concurrent_hashes,
            ),
            tokens=self.codec,
            refresh_ttl=self.settings.auth.refresh_ttl_seconds,
            revoker=self.revocations,
            outbox=outbox,
            secret_box=self.secret_box,
            cache=self.cache,
            limiter=self.limiter,
            clock=self.clock,
            public_url=self.public_url,
            mail_worker=worker,
        )
        self.services["users.mail"] = worker
        self.relays.append(self._relay(outbox))

    def _build_strategies(self) -> None:
        from algotrendy.services.strategies.service import StrategiesService

        outbox = Outbox(service="strategies", clock=self.clock)
        self.services["strategies"] = StrategiesService(
            sessions=self.sessions, clock=self.clock, settings=self.settings.strategies, outbox=outbox
        )
        self.relays.append(self._relay(outbox))

    def on_start(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` at start, after the stores are open and samples loaded."""
        self._on_start.append(step)

    def on_stop(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` at stop, before the stores close."""
        self._on_stop.append((name, step))

    def _relay(self, outbox: Outbox) -> OutboxRelay:
        failpoints = self.failpoints
        return OutboxRelay(
            outbox=outbox,
            sessions=self.relaxed_sessions,
            bus=self.bus,
            clock=self.clock,
            on_published=lambda e: metrics.EVENTS_PUBLISHED.labels(e.event_type).inc(),
            before_publish=(
                (lambda e: failpoints.hit("outbox.before_publish") if ".order." in e.event_type else None)
                if failpoints.armed
                else None
            ),
        )

    @property
    def failpoints(self) -> Failpoints:
        if self._failpoints is None:
            self._failpoints = Failpoints(self.settings.failpoints)
        return self._failpoints

    def _build_jobs(self) -> None:
        from algotrendy.app.jobs import build_jobs

        build_jobs(self)

    async def migrate(self) -> None:
        await migrate.upgrade(self.engine)

    async def start(self) -> None:
        """Migrate, connect, subscribe consumers, start relays and workers."""
        await self.migrate()
        await self.bus.start()
        self._started.append(self.bus)
        users = self.services.get("users")
        if users is not None:
            restored = await users.restore_revocations()
            log.info("users.revocations_restored", count=restored)
            self.services["users.mail"].start()
        notifications = self.services.get("notifications")
        if notifications is not None:
            await notifications.subscribe(self.bus)
        jobs = self.services.get("jobs")
        if jobs is not None:
            await jobs.start()
        marketdata = self.services.get("marketdata")
        if marketdata is not None:
            await marketdata.store.open()
            await marketdata.load_samples()
        backtest = self.services.get("backtest")
        if backtest is not None:
            await backtest.subscribe(self.bus)
        for step in self._on_start:
            await step()
        for relay in self.relays:
            relay.start()
        log.info(
            "container.started",
            services=list(self.settings.hosted_services),
            database=self.engine.dialect.name,
            bus=type(self.bus).__name__,
            cache=type(self.cache).__name__,
        )

    async def stop(self) -> None:
        """Stop everything in reverse dependency order. Each part gets ``STOP_TIMEOUT`` seconds:
        a part that hangs is logged and left behind, so shutdown always finishes (a SIGTERM
        has a grace period, and nothing is lost: unsent events stay in the outbox)."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"relay:{r.name}", r.stop) for r in self.relays
        ]
        steps += self._on_stop
        for name, method in (
            ("marketdata.live", "close"),
            ("backtest", "unsubscribe"),
            ("jobs", "stop"),
            ("notifications", "unsubscribe"),
            ("users.mail", "stop"),
        ):
            service = self.services.get(name)
            if service is not None:
                steps.append((name, getattr(service, method)))
        marketdata = self.services.get("marketdata")
        if marketdata is not None:
            steps.append(("marketdata.store", marketdata.store.close))
        steps += [("bus", self.bus.close), ("cache", self.cache.close), ("database", self.engine.dispose)]
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), STOP_TIMEOUT)
            except TimeoutError:
                log.error("container.stop_timeout", part=name, seconds=STOP_TIMEOUT)
            except Exception as exc:
                log.error("container.stop_failed", part=name, error=type(exc).__name__)

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        probes: dict[str, Callable[[], Awaitable[None]]] = {
            "database": partial(ping, self.engine),
            "bus": self.bus.ping,
            "cache": self.cache.ping,
        }
        for name, probe in probes.items():
            try:
                await probe()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {type(exc).__name__}"
        return checks
