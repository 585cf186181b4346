"""Wiring of trading, risk and portfolio: the quote source the paper broker trades against, the
paper exchange, the live broker factory (ccxt, Alpaca), and the three services.

The three are hosted together: the pre-trade check reads risk limits in-process on the order
path (ARCHITECTURE rule 5) and an account is opened from its portfolio, so
``--services trading`` without ``risk`` and ``portfolio`` is refused (``ConfigurationError``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from algotrendy.core.errors import ConfigurationError
from algotrendy.core.market import F64, I64, Bars, BarStore, BarUpdate, SeriesInfo, Timeframe
from algotrendy.core.venue import Quote, Venue
from algotrendy.db.outbox import Outbox
from algotrendy.engine.metrics import NS_PER_DAY
from algotrendy.services.trading.venues import Credentials

if TYPE_CHECKING:
    from algotrendy.app.container import Container

LAST_TTL = 2.0


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


class _Fanout:
    """One running feed of a symbol and the queues of everyone streaming it."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[BarUpdate | BaseException | None]] = set()
        self.task: asyncio.Task[None] | None = None


class StoreQuotes:
    """``QuoteSource`` over the bar store and the live feed: the last price is the latest update
    of a running stream, else the close of the newest stored bar of the finest series.

    Streams of one symbol share one feed (the paper broker matching orders and the risk monitor
    see the same prices in the same order); the feed stops when its last reader leaves."""

    def __init__(self, store: BarStore, feed_for: Any) -> None:
        self._store = store
        self._feed_for = feed_for
        self._live: dict[str, Quote] = {}
        self._cached: dict[str, tuple[float, Quote | None]] = {}
        self._fans: dict[str, _Fanout] = {}

    async def _finest(self, symbol: str) -> SeriesInfo | None:
        infos = [i for i in await self._store.series(symbol=symbol) if i.count > 0]
        return min(infos, key=lambda i: i.key.timeframe.seconds) if infos else None

    async def last(self, symbol: str) -> Quote | None:
        live = self._live.get(symbol)
        if live is not None:
            return live
        hit = self._cached.get(symbol)
        now = time.monotonic()
        if hit is not None and now - hit[0] < LAST_TTL:
            return hit[1]
        info = await self._finest(symbol)
        quote = None
        if info is not None:
            bars = await self._store.read(info.key, limit=1)
            if len(bars):
                quote = Quote(
                    symbol=symbol,
                    ts=int(bars.ts[-1]),
                    price=_dec(bars.close[-1]),
                    volume=_dec(bars.volume[-1]),
                )
        self._cached[symbol] = (now, quote)
        return quote

    async def _pump(self, symbol: str, info: SeriesInfo, fan: _Fanout) -> None:
        feed = self._feed_for(info)
        end: BaseException | None = None
        try:
            async for update in feed.bars([info.key]):
                self._live[symbol] = Quote(
                    symbol=symbol, ts=update.ts, price=_dec(update.close), volume=_dec(update.volume)
                )
                for queue in fan.queues:
                    queue.put_nowait(update)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the readers, who decide whether to retry
            end = exc
        finally:
            if self._fans.get(symbol) is fan:
                del self._fans[symbol]
                self._live.pop(symbol, None)
            for queue in fan.queues:
                queue.put_nowait(end)
            await feed.close()

    async def stream(self, symbol: str) -> AsyncIterator[BarUpdate]:
        fan = self._fans.get(symbol)
        if fan is None:
            info = await self._finest(symbol)
            if info is None:
                return
            fan = self._fans.get(symbol)  # another reader may have started it meanwhile
            if fan is None:
                fan = self._fans[symbol] = _Fanout()
                fan.task = asyncio.create_task(self._pump(symbol, info, fan), name=f"quotes-{symbol}")
        queue: asyncio.Queue[BarUpdate | BaseException | None] = asyncio.Queue()
        fan.queues.add(queue)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            fan.queues.discard(queue)
            if not fan.queues and fan.task is not None and not fan.task.done():
                if self._fans.get(symbol) is fan:
                    del self._fans[symbol]
                    self._live.pop(symbol, None)
                fan.task.cancel()


class StoreBars:
    """``BarFeed`` for deployments: history from the bar store, closed bars from the live feed
    (the replay of stored bars by default), both at the deployment's own interval."""

    def __init__(self, store: BarStore, feed_for: Any) -> None:
        self._store = store
        self._feed_for = feed_for

    async def _info(self, symbol: str, interval: str) -> SeriesInfo | None:
        wanted = Timeframe.parse(interval)
        for info in await self._store.series(symbol=symbol):
            if info.key.timeframe == wanted and info.count > 0:
                return info
        return None

    async def has(self, symbol: str, interval: str) -> bool:
        return await self._info(symbol, interval) is not None

    async def history(self, symbol: str, interval: str, *, before_ns: int, limit: int) -> Bars:
        info = await self._info(symbol, interval)
        if info is None:
            return Bars.empty()
        return await self._store.read(info.key, end=before_ns, limit=limit)

    async def closed(self, symbol: str, interval: str) -> AsyncIterator[BarUpdate]:
        info = await self._info(symbol, interval)
        if info is None:
            return
        feed = self._feed_for(info)
        try:
            async for update in feed.bars([info.key]):
                if update.closed:
                    yield update
        finally:
            await feed.close()


class StoreCloses:
    """``PriceHistory`` over the bar store: a symbol's daily series when one is stored, else the
    last close of each UTC day of its coarsest intraday series (crypto ships hourly and minute
    bars). Days are keyed by their UTC midnight, so daily stock bars and crypto days align."""

    def __init__(self, store: BarStore) -> None:
        self._store = store

    async def asset_type(self, symbol: str) -> str | None:
        infos = [i for i in await self._store.series(symbol=symbol) if i.count > 0]
        return str(infos[0].asset_type) if infos else None

    async def daily_closes(
        self, symbol: str, *, days: int, until_ns: int | None = None
    ) -> tuple[I64, F64] | None:
        infos = [i for i in await self._store.series(symbol=symbol) if i.count > 0]
        if not infos:
            return None
        daily = [i for i in infos if i.key.timeframe.seconds == 86_400]
        intraday = [i for i in infos if i.key.timeframe.intraday]
        if daily:
            info, per_day = daily[0], 1
        elif intraday:
            info = max(intraday, key=lambda i: i.key.timeframe.seconds)
            per_day = 86_400 // info.key.timeframe.seconds
        else:
            return None
        end = None if until_ns is None else (until_ns // NS_PER_DAY + 1) * NS_PER_DAY
        bars = await self._store.read(info.key, end=end, limit=(days + 2) * per_day)
        if len(bars) == 0:
            return None
        day = bars.ts // NS_PER_DAY
        last = np.flatnonzero(np.diff(day, append=day[-1] + 1))  # the last bar of each day
        return (day[last] * NS_PER_DAY)[-days:], bars.close[last][-days:]


def live_venue(credentials: Credentials, symbols: Sequence[str], timeout: float, poll: float) -> Venue:
    if credentials.venue == "alpaca":
        from algotrendy.adapters.brokers.alpaca_venue import AlpacaVenue

        return AlpacaVenue(
            key_id=credentials.api_key,
            secret=credentials.secret,
            base_url=credentials.base_url
            or ("https://paper-api.alpaca.markets" if credentials.sandbox else "https://api.alpaca.markets"),
            timeout=timeout,
            poll_interval=poll,
        )
    from algotrendy.adapters.brokers.ccxt_venue import CcxtVenue
    from algotrendy.adapters.sources.ccxt_source import rehost_api_urls

    return CcxtVenue(
        exchange_id=credentials.venue,
        api_key=credentials.api_key,
        secret=credentials.secret,
        password=credentials.password,
        urls=rehost_api_urls(credentials.venue, credentials.base_url) if credentials.base_url else None,
        sandbox=credentials.sandbox,
        timeout=timeout,
        poll_interval=poll,
        symbols=symbols,
    )


def build_trading(container: Container) -> None:
    hosted = container.settings.hosted_services
    group = {"trading", "risk", "portfolio"}
    missing = group - set(hosted)
    if missing and group & set(hosted):
        raise ConfigurationError(
            f"trading, risk and portfolio run in one process (the order path checks risk in-process); "
            f"add {', '.join(sorted(missing))} to --services"
        )
    if not group <= set(hosted):
        return
    if "marketdata" not in hosted:
        raise ConfigurationError("trading needs the marketdata service in the same process (paper prices)")
    from algotrendy.adapters.brokers.paper import PaperExchange
    from algotrendy.services.portfolio.service import PortfolioService
    from algotrendy.services.risk.monitor import RiskMonitor
    from algotrendy.services.risk.service import RiskService
    from algotrendy.services.trading.service import TradingService
    from algotrendy.services.trading.stream import UpdateHub
    from algotrendy.services.trading.venues import Venues

    settings = container.settings.trading
    from algotrendy.app.marketdata import _feed_factory

    store = container.services["marketdata"].store
    feed_for = _feed_factory(container, store)
    quotes = StoreQuotes(store, feed_for)
    exchange = PaperExchange(
        sessions=container.relaxed_sessions,  # the venue's book: durable with the booking after it
        quotes=quotes,
        clock=container.clock,
        fee_rate=settings.paper_fee_rate,
        fee_fixed=settings.paper_fee_fixed,
        slippage=settings.paper_slippage,
        max_participation=settings.paper_max_participation,
    )
    outboxes = {
        name: Outbox(service=name, clock=container.clock) for name in ("trading", "risk", "portfolio")
    }
    services = container.services
    portfolio = PortfolioService(
        sessions=container.sessions,
        clock=container.clock,
        outbox=outboxes["portfolio"],
        trading=lambda: services.get("trading"),
        prices=StoreCloses(store),
        quotes=quotes,
        jobs=services.get("jobs"),
        mailer=container.mailer,
        reports_dir=container.settings.data_dir / "reports",
    )
    if "jobs.registry" in services:
        from algotrendy.services.portfolio import jobs as portfolio_jobs

        portfolio_jobs.register(services["jobs.registry"])
    venues = Venues(
        sessions=container.sessions,
        clock=container.clock,
        secret_box=container.secret_box,
        paper=lambda account_id, currency, cash: exchange.account(account_id, currency, initial_cash=cash),
        live=lambda c, symbols: live_venue(c, symbols, settings.venue_timeout, settings.venue_poll_interval),
    )
    trading = TradingService(
        sessions=container.sessions,
        relaxed_sessions=container.relaxed_sessions,  # intents for the paper venue (same database)
        clock=container.clock,
        outbox=outboxes["trading"],
        settings=settings,
        portfolios=portfolio,
        risk=lambda: services["risk"],
        quotes=quotes,
        venues=venues,
        failpoints=container.failpoints,
        strategies=lambda: services.get("strategies"),
        models=lambda: services.get("ml"),
        bar_feed=StoreBars(store, feed_for),
    )
    risk = RiskService(
        sessions=container.sessions,
        clock=container.clock,
        outbox=outboxes["risk"],
        portfolios=portfolio,
        trading=lambda: services["trading"],
        prices=StoreCloses(store),
    )
    monitor = RiskMonitor(
        sessions=container.sessions,
        clock=container.clock,
        outbox=outboxes["risk"],
        trading=lambda: services["trading"],
        prices=StoreCloses(store),
        quotes=quotes if settings.risk_stream_prices else None,
        limits_for=lambda pid: risk.limits_for(portfolio_id=pid),
        sweep_seconds=settings.risk_sweep_interval,
    )
    services["portfolio"] = portfolio
    services["risk"] = risk
    services["risk.monitor"] = monitor
    services["trading"] = trading
    services["trading.paper"] = exchange
    hub = UpdateHub()
    services["trading.updates"] = hub
    for outbox in outboxes.values():
        container.relays.append(container._relay(outbox))
    container.on_start(exchange.start)
    container.on_start(trading.start)
    container.on_start(portfolio.start)
    container.on_stop("portfolio", portfolio.stop)
    container.on_start(lambda: portfolio.subscribe(container.bus))
    container.on_stop("portfolio.reports", portfolio.unsubscribe)
    container.on_start(lambda: hub.subscribe(container.bus))
    container.on_start(lambda: monitor.start(container.bus))
    container.on_stop("risk.monitor", monitor.stop)
    container.on_stop("trading.updates", hub.unsubscribe)
    container.on_stop("trading", trading.stop)
    container.on_stop("trading.paper", exchange.close)
