"""The one ``Settings`` object: env prefix ``ALGO_``, nested sections with ``__``.

Built once (``load_settings``) and injected; nothing reads the environment at import time.
``ALGO_USERS__ARGON2_TIME_COST=3`` sets ``settings.users.argon2_time_cost``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_data_path
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from algotrendy.gateway.settings import AuthSettings, GatewaySettings, _split_csv
from algotrendy.services.backtest.settings import BacktestSettings
from algotrendy.services.jobs.settings import JobsSettings
from algotrendy.services.marketdata.settings import MarketDataSettings
from algotrendy.services.ml.settings import MlSettings
from algotrendy.services.notifications.settings import NotificationsSettings
from algotrendy.services.strategies.settings import StrategiesSettings
from algotrendy.services.trading.settings import TradingSettings
from algotrendy.services.users.settings import UsersSettings

SERVICES = (
    "users",
    "notifications",
    "jobs",
    "marketdata",
    "strategies",
    "backtest",
    "portfolio",
    "risk",
    "trading",
    "ml",
)
"""Services this build can host; ``all`` means every one of them."""


class MailSettings(BaseModel):
    backend: Literal["console", "smtp"] = "console"
    from_address: str = "AlgoTrendy <no-reply@algotrendy.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_tls: bool = False
    smtp_timeout: float = Field(15.0, gt=0)


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(True, alias="json", description="JSON lines (default) or console text")
    access_log: bool = Field(True, description="One line per HTTP request")

    model_config = {"populate_by_name": True}


class OtelSettings(BaseModel):
    endpoint: str | None = Field(None, description="OTLP/HTTP collector, e.g. http://127.0.0.1:4318")
    service_name: str = "algotrendy"
    sample_ratio: float = Field(1.0, ge=0, le=1)


class BusSettings(BaseModel):
    stream: str = Field("ALGOTRENDY", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream name")
    subject_prefix: str = Field("algotrendy.events", pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    dlq_prefix: str = Field("algotrendy.dlq", pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    max_deliver: int = Field(10, ge=1)
    ack_wait: float = Field(30.0, gt=0)


class SecretsSettings(BaseModel):
    encryption_key: SecretStr | None = Field(
        None, description="Fernet key(s), comma separated, first encrypts; generated in the data dir if unset"
    )


def default_data_dir() -> Path:
    return user_data_path("algotrendy", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALGO_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    services: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["all"])
    public_url: str | None = Field(None, description="Base URL users reach (links in emails)")

    database_url: str | None = Field(None, description="Default: SQLite file in the data dir")
    redis_url: str | None = Field(None, description="Shared cache and rate limits (split mode)")
    nats_url: str | None = Field(None, description="NATS JetStream event bus (split mode)")
    ray_address: str | None = Field(None, description="Ray cluster for long jobs ('local' starts one)")
    failpoints: str = Field(
        "", description="Reliability tests only: crash points to arm (core.failpoints); refused in production"
    )

    bus: BusSettings = Field(default_factory=BusSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    otel: OtelSettings = Field(default_factory=OtelSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    users: UsersSettings = Field(default_factory=UsersSettings)
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    marketdata: MarketDataSettings = Field(default_factory=MarketDataSettings)
    strategies: StrategiesSettings = Field(default_factory=StrategiesSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    trading: TradingSettings = Field(default_factory=TradingSettings)
    ml: MlSettings = Field(default_factory=MlSettings)

    _csv = field_validator("services", mode="before")(_split_csv)

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value if v.strip()]
        if not names:
            return ["all"]
        unknown = [n for n in names if n != "all" and n not in SERVICES]
        if unknown:
            raise ValueError(f"unknown service(s) {unknown}; known: {', '.join(SERVICES)} or all")
        return names

    @field_validator("failpoints")
    @classmethod
    def _failpoints(cls, value: str, info: Any) -> str:
        from algotrendy.core.failpoints import Failpoints

        if value and info.data.get("env") == "production":
            raise ValueError("failpoints are for tests; they cannot be armed in production")
        Failpoints(value)  # unknown names fail here, at start
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def hosted_services(self) -> tuple[str, ...]:
        if "all" in self.services:
            return SERVICES
        return tuple(s for s in SERVICES if s in self.services)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'algotrendy.db'}"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def docs_enabled(self) -> bool:
        return self.gateway.docs if self.gateway.docs is not None else not self.production


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and any overrides) into a validated ``Settings``."""
    return Settings(**overrides)


def _mask_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _mask_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_all(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return value


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration with every secret hidden (``algotrendy config show``):
    ``SecretStr`` values print as stars and any URL's password as ``***``."""
    data = settings.model_dump(mode="json")
    data["database_url"] = settings.effective_database_url
    data["hosted_services"] = list(settings.hosted_services)
    result: dict[str, Any] = _mask_all(data)
    return result
