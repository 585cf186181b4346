"""Wiring of the market data service: the bar store (DuckDB file, or PostgreSQL in split mode),
the file reader, the live feed (replay of stored bars, or a ccxt websocket stream), order-book
snapshots and the download sources for the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from algotrendy.core.errors import Invalid
from algotrendy.core.market import BarStore, LiveFeed, SeriesInfo
from algotrendy.db.outbox import Outbox
from algotrendy.services.marketdata.live import LiveHub
from algotrendy.services.marketdata.service import MarketDataService

if TYPE_CHECKING:
    from algotrendy.app.container import Container
    from algotrendy.app.settings import Settings

REPLAY_HISTORY_BARS = 500
"""The replay feed starts this many bars before a series' end, then loops."""


def bar_store(settings: Settings) -> BarStore:
    md = settings.marketdata
    if md.bar_store_url:
        from algotrendy.adapters.bars.postgres_store import PostgresBarStore

        return PostgresBarStore(md.bar_store_url)
    from algotrendy.adapters.bars.duckdb_store import DuckDBBarStore

    return DuckDBBarStore(md.bar_store or settings.data_dir / "bars.duckdb")


def _feed_factory(container: Container, store: BarStore) -> Any:
    md = container.settings.marketdata
    if md.stream_source != "replay":
        from algotrendy.adapters.feeds.ccxt_ws import CcxtWebsocketFeed

        shared = CcxtWebsocketFeed(md.stream_source)
        return lambda _info: shared

    from algotrendy.adapters.feeds.replay import ReplayFeed

    def feed_for(info: SeriesInfo) -> LiveFeed:
        start = max(info.first_ts, info.last_ts - REPLAY_HISTORY_BARS * info.key.timeframe.nanos)
        return ReplayFeed(
            store, speed=md.replay_speed, start_ns=start, loop_forever=md.replay_loop, clock=container.clock
        )

    return feed_for


def make_source(settings: Settings, name: str) -> Any:
    """A download source by name: yahoo, alpaca, polygon, or any ccxt exchange id."""
    md = settings.marketdata
    base = md.source_urls.get(name)
    if name == "yahoo":
        from algotrendy.adapters.sources.yahoo import YahooSource

        return YahooSource(base_url=base)
    if name == "alpaca":
        from algotrendy.adapters.sources.alpaca import AlpacaSource

        if not (md.alpaca_key_id and md.alpaca_secret_key):
            raise Invalid("set ALGO_MARKETDATA__ALPACA_KEY_ID and ..._ALPACA_SECRET_KEY", field="source")
        return AlpacaSource(
            key_id=md.alpaca_key_id, secret_key=md.alpaca_secret_key.get_secret_value(), base_url=base
        )
    if name == "polygon":
        from algotrendy.adapters.sources.polygon import PolygonSource

        if not md.polygon_api_key:
            raise Invalid("set ALGO_MARKETDATA__POLYGON_API_KEY", field="source")
        return PolygonSource(api_key=md.polygon_api_key.get_secret_value(), base_url=base)
    import ccxt

    if name not in ccxt.exchanges:
        raise Invalid(
            f"unknown source {name!r}: yahoo, alpaca, polygon or a ccxt exchange id", field="source"
        )
    from algotrendy.adapters.sources.ccxt_source import CcxtSource, rehost_api_urls

    return CcxtSource(name, urls=rehost_api_urls(name, base) if base else None)


def build_marketdata(container: Container) -> None:
    settings = container.settings
    store = bar_store(settings)
    outbox = Outbox(service="marketdata", clock=container.clock)

    async def order_book(symbol: str, exchange: str, depth: int) -> tuple[int, list[Any], list[Any]]:
        source = make_source(settings, exchange)
        try:
            book = await source.fetch_order_book(symbol, limit=depth)
        finally:
            await source.close()
        ts = book.ts if book.ts is not None else int(container.clock.now().timestamp() * 1e9)
        return ts, list(book.bids), list(book.asks)

    from algotrendy.adapters.bars.files import read_bar_file

    chain_data = None
    if settings.marketdata.covalent_api_key is not None:
        key = settings.marketdata.covalent_api_key.get_secret_value()

        def chain_data() -> Any:
            from algotrendy.adapters.sources.covalent import CovalentSource

            return CovalentSource(api_key=key, base_url=settings.marketdata.source_urls.get("covalent"))

    service = MarketDataService(
        store=store,
        cache=container.cache,
        clock=container.clock,
        settings=settings.marketdata,
        outbox=outbox,
        sessions=container.sessions,
        read_file=read_bar_file,
        chain_data=chain_data,
        order_book=order_book,
    )
    container.services["marketdata"] = service
    container.services["marketdata.live"] = LiveHub(
        feed_for=_feed_factory(container, store),
        catalog=service.catalog,
        bus=container.bus,
        clock=container.clock,
    )
    container.relays.append(container._relay(outbox))
