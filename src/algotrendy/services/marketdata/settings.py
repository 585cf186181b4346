"""Settings section ``ALGO_MARKETDATA__*``."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class MarketDataSettings(BaseModel):
    load_samples: bool = Field(True, description="Load the bundled real sample data on first start")
    bar_store: str | None = Field(
        None,
        description="DuckDB file for bars (default <data dir>/bars.duckdb); ignored with a PostgreSQL URL",
    )
    bar_store_url: str | None = Field(
        None, description="postgresql+asyncpg://... to keep bars in PostgreSQL (split mode)"
    )
    cache_seconds: float = Field(300.0, ge=0, description="How long a computed series stays cached")
    max_bars: int = Field(100_000, ge=100, description="Most bars one request may return")
    replay_speed: float = Field(
        60.0, ge=0, description="Replay feed speed (x real time; 0 = as fast as possible)"
    )
    replay_loop: bool = Field(
        True, description="The replay feed starts over (with time moving on) when it reaches the end"
    )
    stream_source: str = Field(
        "replay", description="Live feed: 'replay' or a ccxt exchange id (e.g. binance)"
    )
    source_urls: dict[str, str] = Field(
        default_factory=dict, description="Base URL overrides per source (e.g. a mirror or a test server)"
    )
    alpaca_key_id: str | None = None
    alpaca_secret_key: SecretStr | None = None
    polygon_api_key: SecretStr | None = None
    covalent_api_key: SecretStr | None = None
