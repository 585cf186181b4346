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

    @property
    def strategies(self) -> Any:
        return self.container.services["strategies"]

    @property
    def backtest(self) -> Any:
        return self.container.services["backtest"]


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


def backtest(
    strategy: Any,
    symbol: str | list[str],
    *,
    interval: str = "1d",
    start: Any = None,
    end: Any = None,
    capital: float = 100_000.0,
    commission: float = 0.0,
    slippage: float = 0.0,
    lot_size: float = 0.0,
    params: dict[str, Any] | None = None,
    engine: str = "auto",
    venue: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Backtest on stored bars, in this process; returns the result (``metrics``, ``equity``,
    ``trades`` ...) the API stores for a run.

    ``strategy`` is a built-in slug (``"sma_crossover"``), a ``StrategyTemplate``, or an instance of
    an ``engine.strategy.Strategy`` subclass (run by the event-driven engine)::

        result = backtest("sma_crossover", "AAPL", commission=0.001, params={"fast": 20})
        result["metrics"]["sharpe_ratio"]
        write_report(result, "aapl.html")
    """
    import uuid

    from algotrendy.engine.builtin import BUILTIN_TEMPLATES
    from algotrendy.engine.strategy import Strategy
    from algotrendy.engine.template import StrategyTemplate
    from algotrendy.services.backtest.interface import BacktestCreate

    symbols = [symbol] if isinstance(symbol, str) else list(symbol)
    chosen = settings or load_settings(services=["users", "jobs", "marketdata", "strategies", "backtest"])

    if isinstance(strategy, Strategy):
        return asyncio.run(
            _python_backtest(
                strategy,
                symbols,
                interval,
                start,
                end,
                venue,
                chosen,
                capital,
                commission,
                slippage,
                lot_size,
            )
        )
    if isinstance(strategy, str):
        if strategy not in BUILTIN_TEMPLATES:
            raise ValueError(f"unknown built-in {strategy!r}; one of {', '.join(BUILTIN_TEMPLATES)}")
        strategy = BUILTIN_TEMPLATES[strategy]
    if not isinstance(strategy, StrategyTemplate):
        raise TypeError("strategy must be a built-in slug, a StrategyTemplate or a Strategy instance")
    body: dict[str, Any] = {
        "template": strategy,
        "interval": interval,
        "start_date": start,
        "end_date": end,
        "venue": venue,
        "initial_capital": capital,
        "commission": commission,
        "slippage": slippage,
        "lot_size": lot_size,
        "params": params or {},
        "engine": engine,
    }
    body |= {"symbol": symbols[0]} if len(symbols) == 1 else {"symbols": symbols}
    request = BacktestCreate.model_validate({k: v for k, v in body.items() if v is not None})

    async def go() -> dict[str, Any]:
        async with Platform.open(chosen) as platform:
            result: dict[str, Any] = await platform.backtest.run_here(owner=uuid.UUID(int=0), request=request)
            return result

    return asyncio.run(go())


async def _python_backtest(
    strategy: Any,
    symbols: list[str],
    interval: str,
    start: Any,
    end: Any,
    venue: str | None,
    settings: Settings,
    capital: float,
    commission: float,
    slippage: float,
    lot_size: float,
) -> dict[str, Any]:
    from datetime import UTC, date, datetime, time

    from algotrendy.engine.backtest import BacktestConfig, EventBacktest
    from algotrendy.services.backtest.compute import outcome

    def instant(value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.combine(date.fromisoformat(str(value)), time(0), tzinfo=UTC)

    async with Platform.open(settings) as platform:
        data = {}
        for s in symbols:
            series = await platform.marketdata.read_bars(
                symbol=s, venue=venue, interval=interval, start=instant(start), end=instant(end)
            )
            if len(series.bars) == 0:
                raise ValueError(f"no {interval} bars of {series.symbol} in the chosen dates")
            data[series.symbol] = series.bars
    config = BacktestConfig(
        initial_capital=capital, fee_rate=commission, slippage=slippage, lot_size=lot_size
    )
    result = EventBacktest(data, strategy, config).run()
    return outcome(result, None, params={}, engine="event")


def write_report(result: dict[str, Any], path: str, *, title: str = "backtest") -> None:
    """The self-contained HTML report of a ``backtest`` result."""
    from pathlib import Path

    from algotrendy.services.backtest.report import render_html

    Path(path).write_text(render_html({**result, "title": title, "strategy_name": title}), encoding="utf-8")
