# ruff: noqa: S608 - SQL text is built only from this module's constants; values are bound parameters
"""The split-mode bar store: PostgreSQL, a TimescaleDB hypertable when the extension exists.

Same tables and semantics as ``DuckDBBarStore``::

    marketdata_bars(symbol text, venue text, timeframe text, ts bigint,
                    open, high, low, close, volume double precision,   -- all NOT NULL
                    PRIMARY KEY (symbol, venue, timeframe, ts))
    marketdata_series(symbol, venue, timeframe, asset_type text, first_ts bigint, last_ts bigint,
                      bar_count bigint, updated_at timestamptz, PRIMARY KEY (symbol, venue, timeframe))

``ts`` is BIGINT nanoseconds since the epoch, UTC (``Bars.ts``), so round trips are exact.

Layout, chosen once when the table is first created (later starts keep whatever exists):

* ``timescaledb`` listed in ``pg_available_extensions`` and ``CREATE EXTENSION`` succeeds: a
  plain table turned into a hypertable on ``ts`` (integer time, 30-day chunks).
* otherwise: ``PARTITION BY RANGE (ts)`` with one partition per calendar year (UTC),
  ``marketdata_bars_y2023`` covering [2023-01-01, 2024-01-01). There is no default partition:
  the partitions an upsert needs are created before it, in a short transaction of their own
  (``CREATE TABLE IF NOT EXISTS ... PARTITION OF``), so a year's rows never sit in a default
  partition that would block creating that year later.

Schema and partition creation take a transaction-level advisory lock, so processes starting
together do not race. Each upsert takes an advisory lock on its series, so writers of one
series run one after another (different series proceed in parallel) and the catalog's count
is exact: it is updated by the number of new rows in the same transaction.

Bulk paths never go row by row: ``upsert`` streams the columns as binary ``COPY`` built from
numpy into a session temp table, then one ``INSERT ... ON CONFLICT DO UPDATE`` writes only the
rows that are new or differ (``IS DISTINCT FROM``; NaN equals NaN), and returns their number:
identical rewrites return 0. ``read`` runs ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and
decodes it with one numpy structured view. Needs the ``postgres`` extra (asyncpg).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from algotrendy.core.errors import ConfigurationError, TemporaryError
from algotrendy.core.market import AssetType, Bars, SeriesInfo, SeriesKey

from ._common import (
    BARS_TABLE,
    COLUMNS,
    PRICE_COLUMNS,
    SERIES_TABLE,
    check_read_args,
    checked_columns,
    key_params,
    series_info,
    series_lock_id,
    sort_catalog,
)

if TYPE_CHECKING:
    import asyncpg

_SCHEMA_LOCK = 0x616C676F_62617273  # "algobars": schema and partition DDL
_CHUNK_NS = 30 * 86_400 * 1_000_000_000
_INCOMING = "_algotrendy_bars_in"
_PARTITION = re.compile(rf"^{BARS_TABLE}_y(\d{{4}})$")

_COLUMNS_DDL = """
    symbol text NOT NULL,
    venue text NOT NULL,
    timeframe text NOT NULL,
    ts bigint NOT NULL,
    open double precision NOT NULL,
    high double precision NOT NULL,
    low double precision NOT NULL,
    close double precision NOT NULL,
    volume double precision NOT NULL,
    PRIMARY KEY (symbol, venue, timeframe, ts)
"""

_SERIES_DDL = f"""
CREATE TABLE IF NOT EXISTS {SERIES_TABLE} (
    symbol text NOT NULL,
    venue text NOT NULL,
    timeframe text NOT NULL,
    asset_type text NOT NULL,
    first_ts bigint NOT NULL,
    last_ts bigint NOT NULL,
    bar_count bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, venue, timeframe)
)
"""

_INCOMING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_INCOMING} (ts bigint, open float8, high float8, low float8, "
    "close float8, volume float8) ON COMMIT DELETE ROWS"
)

_KEY = "symbol = $1 AND venue = $2 AND timeframe = $3"
_SELECT = ", ".join(COLUMNS)
_PRICES = ", ".join(PRICE_COLUMNS)

_UPSERT = f"""
WITH changed AS (
    SELECT i.ts, {", ".join(f"i.{c}" for c in PRICE_COLUMNS)}, b.ts IS NULL AS is_new
    FROM {_INCOMING} AS i
    LEFT JOIN {BARS_TABLE} AS b
      ON b.symbol = $1 AND b.venue = $2 AND b.timeframe = $3 AND b.ts = i.ts
         AND b.ts BETWEEN $4 AND $5
    WHERE b.ts IS NULL
       OR ({", ".join(f"b.{c}" for c in PRICE_COLUMNS)}) IS DISTINCT FROM
          ({", ".join(f"i.{c}" for c in PRICE_COLUMNS)})
), written AS (
    INSERT INTO {BARS_TABLE} (symbol, venue, timeframe, {_SELECT})
    SELECT $1, $2, $3, {_SELECT} FROM changed
    ON CONFLICT (symbol, venue, timeframe, ts) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in PRICE_COLUMNS)}
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS changed,
       (SELECT count(*) FROM changed WHERE is_new) AS new
"""

_UPSERT_SERIES = f"""
INSERT INTO {SERIES_TABLE} (symbol, venue, timeframe, asset_type, first_ts, last_ts, bar_count)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (symbol, venue, timeframe) DO UPDATE SET
    asset_type = EXCLUDED.asset_type,
    first_ts = LEAST({SERIES_TABLE}.first_ts, EXCLUDED.first_ts),
    last_ts = GREATEST({SERIES_TABLE}.last_ts, EXCLUDED.last_ts),
    bar_count = {SERIES_TABLE}.bar_count + EXCLUDED.bar_count,
    updated_at = now()
"""

# PostgreSQL binary COPY: a 19-byte header, per row an int16 field count then (int32 length,
# value) per field, and an int16 -1 trailer. Every column here is a NOT NULL 8-byte value.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_ROW = np.dtype(
    [("nfields", ">i2")]
    + [f for c in COLUMNS for f in ((f"len_{c}", ">i4"), (c, ">i8" if c == "ts" else ">f8"))]
)


def _asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy style) or ``postgres://...`` -> a libpq URL."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def encode_copy(cols: dict[str, np.ndarray]) -> bytes:
    """The columns as a PostgreSQL binary COPY stream (no per-row Python work)."""
    rows = np.empty(len(cols["ts"]), dtype=_ROW)
    rows["nfields"] = len(COLUMNS)
    for c in COLUMNS:
        rows[f"len_{c}"] = 8
        rows[c] = cols[c]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def decode_copy(data: bytes) -> Bars:
    """Bars from a binary COPY of ``SELECT ts, open, high, low, close, volume``."""
    if not data:
        return Bars.empty()
    if data[:11] != _COPY_HEADER[:11]:
        raise ValueError("not a PostgreSQL binary COPY stream")
    start = 19 + int.from_bytes(data[15:19], "big")
    body = len(data) - start - len(_COPY_TRAILER)
    if body % _ROW.itemsize or data[-2:] != _COPY_TRAILER:
        raise ValueError("unexpected binary COPY layout (a NULL or a changed column type?)")
    rows = np.frombuffer(data, dtype=_ROW, count=body // _ROW.itemsize, offset=start)
    if len(rows) and (
        np.any(rows["nfields"] != len(COLUMNS)) or any(np.any(rows[f"len_{c}"] != 8) for c in COLUMNS)
    ):
        raise ValueError("unexpected binary COPY row layout")
    return Bars(rows["ts"].astype(np.int64), *(rows[c].astype(np.float64) for c in PRICE_COLUMNS))


def _year_bounds(year: int) -> tuple[str, str]:
    """Partition bounds of a calendar year in ns (MINVALUE/MAXVALUE at the int64 ns limits)."""

    def start_of(y: int) -> str:
        if y <= 1677:
            return "MINVALUE"
        if y >= 2263:
            return "MAXVALUE"
        return str(int(np.datetime64(f"{y:04d}-01-01", "ns").astype(np.int64)))

    return start_of(year), start_of(year + 1)


def _years(ts: np.ndarray) -> list[int]:
    """The calendar years (UTC) that ``ts`` touches."""
    years = np.unique(ts.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64))
    return [int(y) + 1970 for y in years]


class PostgresBarStore:
    """``BarStore`` on PostgreSQL (TimescaleDB when available). Connects on first use."""

    def __init__(
        self, url: str, *, min_connections: int = 1, max_connections: int = 10, command_timeout: float = 300.0
    ) -> None:
        self._dsn = _asyncpg_dsn(url)
        self._min = min_connections
        self._max = max_connections
        self._timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._setup = asyncio.Lock()
        self._partitioned = False
        self._years: set[int] = set()
        self._transient: tuple[type[BaseException], ...] = (OSError, TimeoutError)
        self._closed = False
        self.layout = "unknown"
        """``timescaledb``, ``partitioned`` or ``table`` once connected."""

    # -- plumbing ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._start()
        try:
            async with pool.acquire() as conn:
                yield conn
        except self._transient as exc:
            raise TemporaryError(f"the bar store is unavailable ({type(exc).__name__}: {exc})") from exc

    async def _start(self) -> asyncpg.Pool:
        async with self._setup:
            if self._closed:
                raise RuntimeError("the PostgreSQL bar store is closed")
            if self._pool is not None:
                return self._pool
            try:
                import asyncpg
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                raise ConfigurationError(
                    "PostgreSQL needs the 'postgres' extra: pip install 'algotrendy[postgres]'"
                ) from exc
            self._transient = (
                OSError,
                TimeoutError,
                asyncpg.PostgresConnectionError,
                asyncpg.exceptions.OperatorInterventionError,
                asyncpg.exceptions.InsufficientResourcesError,
            )
            try:
                pool = await asyncpg.create_pool(
                    self._dsn, min_size=self._min, max_size=self._max, command_timeout=self._timeout
                )
            except self._transient as exc:
                raise TemporaryError(f"cannot connect to the bar store ({type(exc).__name__})") from exc
            try:
                async with pool.acquire() as conn:
                    await self._create_schema(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            return pool

    async def _create_schema(self, conn: asyncpg.Connection) -> None:
        import asyncpg

        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            kind = await conn.fetchval(
                f"SELECT relkind::text FROM pg_class WHERE oid = to_regclass('{BARS_TABLE}')"
            )
            if kind is None:
                kind = "p"
                if await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
                    try:
                        async with conn.transaction():  # a savepoint: failure falls back below
                            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                            await conn.execute(f"CREATE TABLE {BARS_TABLE} ({_COLUMNS_DDL})")
                            await conn.execute(
                                f"SELECT create_hypertable('{BARS_TABLE}', 'ts', "
                                f"chunk_time_interval => {_CHUNK_NS}::bigint, if_not_exists => TRUE)"
                            )
                        kind = "h"
                    except asyncpg.PostgresError:
                        kind = "p"
                if kind == "p":
                    await conn.execute(f"CREATE TABLE {BARS_TABLE} ({_COLUMNS_DDL}) PARTITION BY RANGE (ts)")
            await conn.execute(_SERIES_DDL)
            self._partitioned = kind == "p"
            if self._partitioned:
                self.layout = "partitioned"
                names = await conn.fetch(
                    f"SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    f"WHERE i.inhparent = '{BARS_TABLE}'::regclass"
                )
                self._years = {int(m.group(1)) for r in names if (m := _PARTITION.match(r["relname"]))}
            elif kind == "h" or await self._is_hypertable(conn):
                self.layout = "timescaledb"
            else:
                self.layout = "table"

    @staticmethod
    async def _is_hypertable(conn: asyncpg.Connection) -> bool:
        if not await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
            return False
        return bool(
            await conn.fetchval(
                "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = $1", BARS_TABLE
            )
        )

    async def _ensure_partitions(self, ts: np.ndarray) -> None:
        missing = [y for y in _years(ts) if y not in self._years]
        if not self._partitioned or not missing:
            return
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            for year in missing:
                lo, hi = _year_bounds(year)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {BARS_TABLE}_y{year:04d} PARTITION OF {BARS_TABLE} "
                    f"FOR VALUES FROM ({lo}) TO ({hi})"
                )
        self._years.update(missing)

    # -- BarStore -----------------------------------------------------------------------------------

    async def upsert(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        params = key_params(key)
        cols = checked_columns(bars)
        kind = AssetType(asset_type).value
        ts = cols["ts"]
        if len(ts) == 0:
            return 0
        payload = encode_copy(cols)
        if self._pool is None:
            await self._start()
        await self._ensure_partitions(ts)
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", series_lock_id(key))
            await conn.execute(_INCOMING_DDL)
            await conn.copy_to_table(_INCOMING, source=memoryview(payload), format="binary")
            if len(ts) > 10_000:  # plan the join on real numbers, and hash it in memory
                await conn.execute(f"ANALYZE {_INCOMING}")
                await conn.execute("SET LOCAL work_mem = '64MB'")
            row = await conn.fetchrow(_UPSERT, *params, int(ts[0]), int(ts[-1]))
            changed, new = int(row["changed"]), int(row["new"])
            await conn.execute(_UPSERT_SERIES, *params, kind, int(ts[0]), int(ts[-1]), new)
        return changed

    async def read(
        self, key: SeriesKey, *, start: int | None = None, end: int | None = None, limit: int | None = None
    ) -> Bars:
        params = key_params(key)
        check_read_args(limit)
        if limit == 0:
            return Bars.empty()
        where, args = _KEY, list[Any](params)
        if start is not None:
            args.append(int(start))
            where += f" AND ts >= ${len(args)}::bigint"
        if end is not None:
            args.append(int(end))
            where += f" AND ts < ${len(args)}::bigint"
        sql = f"SELECT {_SELECT} FROM {BARS_TABLE} WHERE {where}"
        if limit is None:
            sql += " ORDER BY ts"
        else:
            args.append(int(limit))
            sql = f"SELECT * FROM ({sql} ORDER BY ts DESC LIMIT ${len(args)}::bigint) AS newest ORDER BY ts"
        chunks: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            chunks.append(chunk)

        async with self._connection() as conn:
            await conn.copy_from_query(sql, *args, output=sink, format="binary")
        return decode_copy(b"".join(chunks))

    async def series(self, *, symbol: str | None = None) -> list[SeriesInfo]:
        sql = f"SELECT symbol, venue, timeframe, asset_type, first_ts, last_ts, bar_count FROM {SERIES_TABLE}"
        async with self._connection() as conn:
            if symbol is None:
                rows = await conn.fetch(sql)
            else:
                rows = await conn.fetch(sql + " WHERE symbol = $1", symbol)
        return sort_catalog([series_info(*r) for r in rows])

    async def delete(self, key: SeriesKey) -> int:
        params = key_params(key)
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", series_lock_id(key))
            status = await conn.execute(f"DELETE FROM {BARS_TABLE} WHERE {_KEY}", *params)
            await conn.execute(f"DELETE FROM {SERIES_TABLE} WHERE {_KEY}", *params)
        return int(status.split()[-1])

    async def last_ts(self, key: SeriesKey) -> int | None:
        params = key_params(key)
        async with self._connection() as conn:
            value = await conn.fetchval(f"SELECT last_ts FROM {SERIES_TABLE} WHERE {_KEY}", *params)
        return None if value is None else int(value)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    async def open(self) -> None:
        """Make a closed store usable again (the pool reconnects on first use)."""
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
