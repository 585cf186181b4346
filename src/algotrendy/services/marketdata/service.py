"""MarketDataService: bar series with indicators and chart styles, catalogs, quality reports,
file import, downloads and order-book snapshots.

Reads are cached as finished JSON (in-process, or Redis in split mode): the cache key carries
a per-series version that every write bumps, so new data invalidates old answers at once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Invalid, NotFound
from algotrendy.core.market import AssetType, Bars, BarStore, SeriesInfo, SeriesKey, Timeframe
from algotrendy.core.ports import Cache
from algotrendy.db.outbox import Outbox
from algotrendy.indicators.catalog import catalog as indicator_catalog
from algotrendy.indicators.charts import CHART_STYLES
from algotrendy.services.marketdata import series as sx
from algotrendy.services.marketdata.download import BarSource, DownloadResult, Progress, download
from algotrendy.services.marketdata.interface import (
    BarSeries,
    BarsQuery,
    BatchRequest,
    BatchResponse,
    ChartStyleRead,
    ImportResult,
    IndicatorRead,
    MarketDataUpdated,
    OrderBookSnapshotRead,
    SeriesRead,
    SymbolRead,
    TokenBalanceRead,
    TokenPricePoint,
    TokenPricesRead,
    TransformRequest,
    WalletBalancesRead,
)
from algotrendy.services.marketdata.quality import assess
from algotrendy.services.marketdata.settings import MarketDataSettings
from algotrendy.services.marketdata.store import OrderBookRow

log = structlog.get_logger(__name__)

SAMPLES: tuple[tuple[str, str, str, str, AssetType], ...] = (
    ("SPY_1d.csv", "SPY", "NYSEARCA", "1d", AssetType.ETF),
    ("SPX_1d.csv", "SPX", "INDEX", "1d", AssetType.INDEX),
    ("AAPL_1d.csv", "AAPL", "NASDAQ", "1d", AssetType.STOCK),
    ("MSFT_1d.csv", "MSFT", "NASDAQ", "1d", AssetType.STOCK),
    ("GOOG_1d.csv", "GOOG", "NASDAQ", "1d", AssetType.STOCK),
    ("EURUSD_1h.csv", "EURUSD", "FX", "1h", AssetType.FX),
    ("BTCUSDT_1h_binance.csv.gz", "BTCUSDT", "BINANCE", "1h", AssetType.CRYPTO),
    ("ETHUSDT_1h_binance.csv.gz", "ETHUSDT", "BINANCE", "1h", AssetType.CRYPTO),
    ("BTCUSDT_1m_binance.csv.gz", "BTCUSDT", "BINANCE", "1m", AssetType.CRYPTO),
    ("ETHUSDT_1m_binance.csv.gz", "ETHUSDT", "BINANCE", "1m", AssetType.CRYPTO),
)
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"

FileReader = Callable[[Path], Bars]
ChainData = Any
"""The on-chain data source (CovalentHQ adapter): ``get_blockchain_data``, ``get_wallet_balances``."""
OrderBookFetcher = Callable[
    [str, str, int], Awaitable[tuple[int, list[tuple[float, float]], list[tuple[float, float]]]]
]


def _symbol_read(info: SeriesInfo) -> SymbolRead:
    return SymbolRead(
        symbol=info.key.symbol,
        venue=info.key.venue,
        interval=info.key.timeframe.label,
        asset_type=info.asset_type,
        first=sx.ns_to_datetime(info.first_ts),
        last=sx.ns_to_datetime(info.last_ts),
        count=info.count,
    )


class MarketDataService:
    def __init__(
        self,
        *,
        store: BarStore,
        cache: Cache,
        clock: Clock,
        settings: MarketDataSettings,
        outbox: Outbox,
        sessions: async_sessionmaker[AsyncSession],
        read_file: FileReader,
        order_book: OrderBookFetcher | None = None,
        chain_data: Callable[[], ChainData] | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._s = settings
        self._outbox = outbox
        self._db = sessions
        self._read_file = read_file
        self._order_book = order_book
        self._chain_data = chain_data
        self._catalog: list[SeriesInfo] | None = None

    @property
    def store(self) -> BarStore:
        return self._store

    # ---- catalog ------------------------------------------------------------------------------

    async def catalog(self) -> list[SeriesInfo]:
        if self._catalog is None:
            self._catalog = await self._store.series()
        return self._catalog

    async def symbols(self, *, symbol: str | None = None) -> list[SymbolRead]:
        rows = await self.catalog()
        if symbol is not None:
            wanted = sx.normalize_symbol(symbol)
            rows = [r for r in rows if r.key.symbol == wanted]
        return [_symbol_read(r) for r in rows]

    async def indicators(self) -> list[IndicatorRead]:
        return [IndicatorRead.model_validate(spec.to_dict()) for spec in indicator_catalog()]

    async def chart_styles(self) -> list[ChartStyleRead]:
        return [ChartStyleRead.model_validate(style.describe()) for style in CHART_STYLES.values()]

    # ---- series -------------------------------------------------------------------------------

    async def _version(self, key: SeriesKey) -> int:
        raw = await self._cache.get(f"mdver:{key}")
        return int(raw) if raw else 0

    async def _bump(self, key: SeriesKey) -> None:
        await self._cache.incr(f"mdver:{key}", ttl=30 * 86_400)
        self._catalog = None

    async def get_bars_json(self, *, query: BarsQuery) -> bytes:
        """The answer to ``query`` as JSON bytes (from the cache when it is fresh)."""
        resolved = sx.resolve(
            await self.catalog(), symbol=query.symbol, venue=query.venue, interval=query.interval
        )
        digest = hashlib.sha1(query.model_dump_json().encode(), usedforsecurity=False).hexdigest()
        cache_key = f"md:{resolved.key}:{await self._version(resolved.key)}:{digest}"
        cached = await self._cache.get(cache_key)
        if cached is not None:
            return cached
        body = (await self._compute(query, resolved)).model_dump_json().encode()
        if self._s.cache_seconds > 0:
            await self._cache.set(cache_key, body, ttl=self._s.cache_seconds)
        return body

    async def get_bars(self, *, query: BarsQuery) -> SeriesRead:
        return SeriesRead.model_validate_json(await self.get_bars_json(query=query))

    async def _compute(self, query: BarsQuery, resolved: sx.Resolved) -> SeriesRead:
        info = resolved.info
        if query.asset_type is not None and query.asset_type != info.asset_type:
            raise NotFound(
                f"{info.key.symbol} is a {info.asset_type.value}, not a {query.asset_type.value}",
                field="asset_type",
                code="asset_type_mismatch",
            )
        requests = sx.parse_indicators(query.indicators)
        win = sx.window(resolved, period=query.period, start=query.start, end=query.end, limit=query.limit)
        warm = sx.warmup_bars(requests)
        # Read the window plus enough history before it for the indicators' warm-up.
        # EMA- and Wilder-smoothed indicators remember their whole past; 20x their lookback plus
        # 1,000 bars of history makes the first returned value equal (to double precision) to
        # one computed over the full series.
        pad = (20 * warm + 1000) * resolved.ratio if warm else 0
        if win.limit is not None and win.start is None:
            bars = await self._store.read(info.key, end=win.end, limit=(win.limit + 1) * resolved.ratio + pad)
        else:
            bars = await self._store.read(info.key, start=win.start, end=win.end)
            if pad and win.start is not None:
                before = await self._store.read(info.key, end=win.start, limit=pad)
                bars = sx.concat(before, bars)
        bars = sx.shape(bars, resolved, asset_type=info.asset_type)
        bars, extra = sx.styled(bars, query.chart_style, query.style_params)
        extra.update(sx.indicator_columns(bars, requests))
        bars, extra = sx.trim(bars, extra, win)
        if len(bars) > self._s.max_bars:
            raise Invalid(
                f"{len(bars)} bars requested; at most {self._s.max_bars} per request: narrow "
                "start/end, use a coarser interval or pass limit",
                field="period",
                code="too_many_bars",
            )
        columns, data = sx.to_columns(bars, extra)
        return SeriesRead(
            symbol=info.key.symbol,
            venue=info.key.venue,
            interval=resolved.target.label,
            asset_type=info.asset_type,
            chart_style=query.chart_style,
            count=len(bars),
            columns=columns,
            data=data,
            source_interval=info.key.timeframe.label,
        )

    async def batch(self, *, request: BatchRequest) -> BatchResponse:
        results: dict[str, SeriesRead] = {}
        errors: dict[str, str] = {}
        for symbol in request.symbols:
            query = BarsQuery(
                symbol=symbol,
                interval=request.interval,
                period=request.period,
                start=request.start,
                end=request.end,
                indicators=request.indicators,
                chart_style=request.chart_style,
            )
            try:
                results[symbol] = await self.get_bars(query=query)
            except (NotFound, Invalid) as exc:
                errors[symbol] = exc.detail
        return BatchResponse(results=results, errors=errors)

    async def transform(self, *, request: TransformRequest) -> SeriesRead:
        bars = sx.bars_from_columns(request.data)
        styled, extra = sx.styled(bars, request.chart_style, request.params)
        columns, data = sx.to_columns(styled, extra)
        return SeriesRead(
            symbol="",
            venue="",
            interval="",
            asset_type=AssetType.STOCK,
            chart_style=request.chart_style,
            count=len(styled),
            columns=columns,
            data=data,
            source_interval="",
        )

    async def read(
        self,
        *,
        symbol: str,
        venue: str | None = None,
        interval: str = "1d",
        start: int | None = None,
        end: int | None = None,
    ) -> tuple[sx.Resolved, Bars]:
        """Bars for the Python API and other services (resampled when needed)."""
        resolved = sx.resolve(await self.catalog(), symbol=symbol, venue=venue, interval=interval)
        bars = await self._store.read(resolved.key, start=start, end=end)
        return resolved, sx.shape(bars, resolved, asset_type=resolved.info.asset_type)

    async def read_bars(
        self,
        *,
        symbol: str,
        venue: str | None = None,
        interval: str = "1d",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> BarSeries:
        if start is not None and end is not None and end <= start:
            raise Invalid("end must be after start", field="end_date", code="bad_window")
        resolved, bars = await self.read(
            symbol=symbol,
            venue=venue,
            interval=interval,
            start=None if start is None else sx.datetime_to_ns(start),
            end=None if end is None else sx.datetime_to_ns(end),
        )
        info = resolved.info
        return BarSeries(info.key.symbol, info.key.venue, resolved.target.label, info.asset_type, bars)

    async def quality(self, *, symbol: str, venue: str | None, interval: str | None) -> dict[str, Any]:
        rows = [r for r in await self.catalog() if r.key.symbol == sx.normalize_symbol(symbol)]
        if not rows:
            raise NotFound(f"unknown symbol {symbol!r}", field="symbol", code="unknown_symbol")
        chosen_interval = interval or min(rows, key=lambda r: r.key.timeframe.seconds).key.timeframe.label
        resolved = sx.resolve(rows, symbol=symbol, venue=venue, interval=chosen_interval)
        if resolved.key.timeframe != resolved.target:
            raise Invalid(
                f"quality is reported on stored series; {resolved.key.symbol} is stored at "
                f"{resolved.key.timeframe.label}",
                field="interval",
                code="bad_interval",
            )
        bars = await self._store.read(resolved.key)
        report = assess(bars, timeframe=resolved.key.timeframe, asset_type=resolved.info.asset_type)
        out: dict[str, Any] = report.model_dump(mode="json")
        out["symbol"], out["venue"] = resolved.key.symbol, resolved.key.venue
        return out

    # ---- writing ------------------------------------------------------------------------------

    async def write(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        """Upsert bars, invalidate cached answers and announce ``market.data.updated``."""
        written = await self._store.upsert(key, bars, asset_type=asset_type)
        await self._bump(key)
        if written and len(bars):
            async with self._db() as session:
                await self._outbox.add(
                    session,
                    MarketDataUpdated(
                        symbol=key.symbol,
                        venue=key.venue,
                        interval=key.timeframe.label,
                        first=sx.ns_to_datetime(int(bars.ts[0])),
                        last=sx.ns_to_datetime(int(bars.ts[-1])),
                        bars=written,
                    ),
                )
                await session.commit()
        return written

    async def import_file(
        self, *, path: Path, symbol: str, venue: str, interval: str, asset_type: AssetType
    ) -> ImportResult:
        """Import a CSV/Parquet file atomically: a bad row imports nothing (the error names it)."""
        tf = sx.parse_interval(interval)
        try:
            bars = self._read_file(path)
        except ValueError as exc:
            raise Invalid(str(exc), field="file", code="bad_file") from None
        key = SeriesKey(sx.normalize_symbol(symbol), venue.upper(), tf)
        written = await self.write(key, bars, asset_type=asset_type)
        return ImportResult(
            symbol=key.symbol,
            venue=key.venue,
            interval=tf.label,
            rows=len(bars),
            written=written,
            first=sx.ns_to_datetime(int(bars.ts[0])) if len(bars) else None,
            last=sx.ns_to_datetime(int(bars.ts[-1])) if len(bars) else None,
        )

    async def download(
        self,
        *,
        source: BarSource,
        key: SeriesKey,
        asset_type: AssetType,
        since_ns: int,
        until_ns: int | None = None,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Page a source's history into the store (resuming), then refresh caches and announce it."""
        result = await download(
            source,
            self._store,
            key,
            asset_type=asset_type,
            since_ns=since_ns,
            until_ns=until_ns,
            progress=progress,
        )
        await self._bump(key)
        if result.written and result.first_ts is not None and result.last_ts is not None:
            async with self._db() as session:
                await self._outbox.add(
                    session,
                    MarketDataUpdated(
                        symbol=key.symbol,
                        venue=key.venue,
                        interval=key.timeframe.label,
                        first=sx.ns_to_datetime(result.first_ts),
                        last=sx.ns_to_datetime(result.last_ts),
                        bars=result.written,
                    ),
                )
                await session.commit()
        return result

    async def load_samples(self) -> int:
        """On first start (empty store), load the bundled real sample data."""
        if not self._s.load_samples or await self._store.series():
            return 0
        total = 0
        for filename, symbol, venue, interval, asset_type in SAMPLES:
            bars = self._read_file(SAMPLE_DIR / filename)
            total += await self._store.upsert(
                SeriesKey(symbol, venue, Timeframe.parse(interval)), bars, asset_type=asset_type
            )
        self._catalog = None
        log.info("marketdata.samples_loaded", bars=total, series=len(SAMPLES))
        return total

    # ---- on-chain data (spec: get_blockchain_data / get_wallet_balances) ------------------------

    def _chain(self) -> ChainData:
        if self._chain_data is None:
            raise Invalid(
                "on-chain data needs ALGO_MARKETDATA__COVALENT_API_KEY", field="chain_id", code="no_source"
            )
        return self._chain_data()

    async def get_blockchain_data(
        self, *, chain_id: int, token_address: str, start_date: date, end_date: date
    ) -> TokenPricesRead:
        """Daily prices of a token from CovalentHQ."""
        source = self._chain()
        try:
            series = await source.get_blockchain_data(chain_id, token_address, start_date, end_date)
        finally:
            await source.close()
        stamps = [sx.ns_to_datetime(int(t)).date().isoformat() for t in series.ts]
        return TokenPricesRead(
            chain_id=chain_id,
            token_address=token_address.lower(),
            quote_currency=series.quote_currency,
            prices=[
                TokenPricePoint(date=d, price=float(p)) for d, p in zip(stamps, series.price, strict=True)
            ],
        )

    async def get_wallet_balances(self, *, chain_id: int, wallet_address: str) -> WalletBalancesRead:
        """Token balances of a wallet from CovalentHQ."""
        source = self._chain()
        try:
            balances = await source.get_wallet_balances(chain_id, wallet_address)
        finally:
            await source.close()
        return WalletBalancesRead(
            chain_id=chain_id,
            wallet_address=wallet_address.lower(),
            balances=[
                TokenBalanceRead(
                    contract_address=b.contract_address,
                    symbol=b.symbol,
                    name=b.name,
                    decimals=b.decimals,
                    balance=format(b.balance, "f"),
                    quote_rate=b.quote_rate,
                    quote=b.quote,
                    native=b.native,
                    spam=b.spam,
                )
                for b in balances.values()
            ],
        )

    # ---- order books --------------------------------------------------------------------------

    async def snapshot_order_book(
        self, *, symbol: str, exchange: str, depth: int = 50
    ) -> OrderBookSnapshotRead:
        if self._order_book is None:
            raise Invalid(
                "no exchange connection is configured for order books", field="exchange", code="no_source"
            )
        ts, bids, asks = await self._order_book(symbol, exchange, depth)
        row = OrderBookRow(
            id=uuid.uuid4(),
            symbol=sx.normalize_symbol(symbol),
            exchange=exchange.lower(),
            timestamp=sx.ns_to_datetime(ts),
            bids=[list(b) for b in bids],
            asks=[list(a) for a in asks],
            created_at=self._clock.now(),
        )
        async with self._db() as session:
            session.add(row)
            await session.commit()
        return _book_read(row)

    async def order_books(
        self, *, symbol: str, exchange: str | None, limit: int
    ) -> list[OrderBookSnapshotRead]:
        stmt = select(OrderBookRow).where(OrderBookRow.symbol == sx.normalize_symbol(symbol))
        if exchange is not None:
            stmt = stmt.where(OrderBookRow.exchange == exchange.lower())
        stmt = stmt.order_by(OrderBookRow.timestamp.desc()).limit(limit)
        async with self._db() as session:
            return [_book_read(r) for r in (await session.execute(stmt)).scalars()]


def _book_read(row: OrderBookRow) -> OrderBookSnapshotRead:
    return OrderBookSnapshotRead(
        id=row.id,
        symbol=row.symbol,
        exchange=row.exchange,
        timestamp=row.timestamp,
        bids=[(float(p), float(q)) for p, q in row.bids],
        asks=[(float(p), float(q)) for p, q in row.asks],
    )


def series_keys(infos: Sequence[SeriesInfo]) -> list[SeriesKey]:
    return [i.key for i in infos]
