"""The Python API: the platform in your own process, no server needed.

    from algotrendy.app.api import Platform, bars

    df = bars("SPY", interval="1d", indicators="rsi,macd", period="1y")   # a pandas DataFrame

    async with Platform.open() as platform:                              # everything, async
        series = await platform.marketdata.get_bars(query=BarsQuery(symbol="BTCUSDT", interval="4h"))

``Platform.open()`` builds the same container as ``algotrendy serve`` (same settings, same data
directory: ``ALGO_DATA_DIR``), migrates and starts it, and stops it on exit. Front doors are
equal: this calls the same service methods the REST routers call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from algotrendy.app.container import Container
from algotrendy.app.settings import Settings, load_settings
from algotrendy.services.marketdata.interface import BarsQuery


@dataclass
class Platform:
    container: Container

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings | None = None, **overrides: Any) -> AsyncIterator[Platform]:
        container = Container.build(settings or load_settings(**overrides))
        await container.start()
        try:
            yield cls(container)
        finally:
            await container.stop()

    @property
    def marketdata(self) -> Any:
        return self.container.services["marketdata"]

    @property
    def users(self) -> Any:
        return self.container.services["users"]

    @property
    def jobs(self) -> Any:
        return self.container.services["jobs"]


def bars(
    symbol: str,
    *,
    interval: str = "1d",
    indicators: str = "",
    period: str | None = None,
    limit: int | None = None,
    chart_style: str = "time",
    venue: str | None = None,
    settings: Settings | None = None,
) -> Any:
    """A bar series with indicator columns as a pandas DataFrame indexed by UTC timestamp."""
    import pandas as pd

    query = BarsQuery(
        symbol=symbol,
        venue=venue,
        interval=interval,
        period=period,
        limit=limit,
        chart_style=chart_style,
        indicators=[indicators] if indicators else [],
    )

    async def fetch() -> Any:
        async with Platform.open(settings or load_settings(services=["marketdata"])) as platform:
            return await platform.marketdata.get_bars(query=query)

    series = asyncio.run(fetch())
    frame = pd.DataFrame(series.data)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.set_index("timestamp").astype("float64")
