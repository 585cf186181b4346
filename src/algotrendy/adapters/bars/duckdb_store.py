# ruff: noqa: S608 - SQL text is built only from this module's constants; values are bound parameters
"""The embedded bar store: one DuckDB file (the all-in-one default).

Schema (created on first use, idempotent)::

    marketdata_bars(symbol VARCHAR, venue VARCHAR, timeframe VARCHAR, ts BIGINT,
                    open, high, low, close, volume DOUBLE,       -- all NOT NULL
                    PRIMARY KEY (symbol, venue, timeframe, ts))
    marketdata_series(symbol, venue, timeframe, asset_type VARCHAR, first_ts BIGINT,
                      last_ts BIGINT, bar_count BIGINT, updated_at TIMESTAMPTZ,
                      PRIMARY KEY (symbol, venue, timeframe))

``ts`` is nanoseconds since the epoch, UTC (``Bars.ts`` as is); ``timeframe`` is the canonical
label (``1h``, never ``60m``). The catalog is updated in the same transaction as the bars.

DuckDB's Python API is synchronous and one file admits one writing process, so the store owns
ONE connection used only from its own single worker thread: every call is queued to that thread
(``run_in_executor``) and the event loop never blocks. Calls therefore run one at a time, in order.

``upsert`` registers the incoming columns as an Arrow table (zero-copy from numpy) and, in one
transaction, joins them against the stored bars of the same key and time range: rows that are
new go in with a plain ``INSERT ... ORDER BY ts``, rows whose values differ are rewritten with
one ``UPDATE ... FROM``, identical rows are left alone. The number of new plus changed rows is
the return value, so writing identical bars again returns 0 and touches nothing. This is the
effect of ``INSERT ... ON CONFLICT DO UPDATE`` without its costs: measured on DuckDB 2.0,
ON CONFLICT loses the insertion order (so every full read would need a sort) and is slower on
large batches. It is race-free because the one connection runs one call at a time and DuckDB
admits one writing process; the primary key still refuses a duplicate if that ever changed.
Floats compare with ``IS DISTINCT FROM`` (NaN equals NaN; ``-0.0`` equals ``0.0``, so such a
rewrite counts 0 and keeps the stored sign).

``read`` fetches numpy columns directly (``fetchnumpy``) without ``ORDER BY``: DuckDB returns a
scan in insertion order, and the store checks the order in numpy and sorts only when a
back-filled range made it necessary (a sort would double the time of a full read).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa

from algotrendy.core.errors import TemporaryError
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
    sort_catalog,
)

T = TypeVar("T")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {BARS_TABLE} (
    symbol VARCHAR NOT NULL,
    venue VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    ts BIGINT NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL,
    PRIMARY KEY (symbol, venue, timeframe, ts)
);
CREATE TABLE IF NOT EXISTS {SERIES_TABLE} (
    symbol VARCHAR NOT NULL,
    venue VARCHAR NOT NULL,
    timeframe VARCHAR NOT NULL,
    asset_type VARCHAR NOT NULL,
    first_ts BIGINT NOT NULL,
    last_ts BIGINT NOT NULL,
    bar_count BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (symbol, venue, timeframe)
);
"""

_KEY = "symbol = ? AND venue = ? AND timeframe = ?"
_SELECT = ", ".join(COLUMNS)
_DIFFERS = " OR ".join(f"o.{c} IS DISTINCT FROM i.{c}" for c in PRICE_COLUMNS)
_INCOMING = "_algotrendy_bars_incoming"
_CHANGED = "_algotrendy_bars_changed"

_FIND_CHANGED = f"""
CREATE OR REPLACE TEMP TABLE {_CHANGED} AS
SELECT i.ts, {", ".join(f"i.{c}" for c in PRICE_COLUMNS)}, o.ts IS NULL AS is_new
FROM {_INCOMING} AS i
LEFT JOIN (SELECT {_SELECT} FROM {BARS_TABLE} WHERE {_KEY} AND ts BETWEEN ? AND ?) AS o ON o.ts = i.ts
WHERE o.ts IS NULL OR {_DIFFERS}
"""

_INSERT_NEW = f"""
INSERT INTO {BARS_TABLE} (symbol, venue, timeframe, {_SELECT})
SELECT ?, ?, ?, {_SELECT} FROM {_CHANGED} WHERE is_new ORDER BY ts
"""

_UPDATE_CHANGED = f"""
UPDATE {BARS_TABLE} AS b SET {", ".join(f"{c} = c.{c}" for c in PRICE_COLUMNS)}
FROM {_CHANGED} AS c
WHERE NOT c.is_new AND b.symbol = ? AND b.venue = ? AND b.timeframe = ? AND b.ts = c.ts
"""

_UPSERT_SERIES = f"""
INSERT INTO {SERIES_TABLE} (symbol, venue, timeframe, asset_type, first_ts, last_ts, bar_count, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, now())
ON CONFLICT (symbol, venue, timeframe) DO UPDATE SET
    asset_type = EXCLUDED.asset_type,
    first_ts = least({SERIES_TABLE}.first_ts, EXCLUDED.first_ts),
    last_ts = greatest({SERIES_TABLE}.last_ts, EXCLUDED.last_ts),
    bar_count = {SERIES_TABLE}.bar_count + EXCLUDED.bar_count,
    updated_at = EXCLUDED.updated_at
"""


class DuckDBBarStore:
    """``BarStore`` on one DuckDB file (``":memory:"`` for a throwaway in-memory store)."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="duckdb-bars"
        )
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- plumbing ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the DuckDB bar store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The store's connection (worker thread only); opens the file and the schema once."""
        if self._con is None:
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            try:
                con = duckdb.connect(self._path)
            except duckdb.IOException as exc:
                raise TemporaryError(f"cannot open the bar store {self._path}: {exc}") from exc
            try:
                con.execute(_SCHEMA)
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con

    # -- BarStore -----------------------------------------------------------------------------------

    async def upsert(self, key: SeriesKey, bars: Bars, *, asset_type: AssetType) -> int:
        params = key_params(key)
        cols = checked_columns(bars)
        if len(cols["ts"]) == 0:
            return 0
        return await self._run(self._upsert, params, cols, AssetType(asset_type).value)

    def _upsert(self, params: tuple[str, str, str], cols: dict[str, np.ndarray], asset_type: str) -> int:
        con = self._connection()
        ts = cols["ts"]
        incoming = pa.table({name: pa.array(values) for name, values in cols.items()})
        con.register(_INCOMING, incoming)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(_FIND_CHANGED, [*params, int(ts[0]), int(ts[-1])])
                changed, new = _one(
                    con.execute(f"SELECT count(*), count(*) FILTER (WHERE is_new) FROM {_CHANGED}")
                )
                if new:
                    con.execute(_INSERT_NEW, list(params))
                if changed - new:
                    con.execute(_UPDATE_CHANGED, list(params))
                con.execute(_UPSERT_SERIES, [*params, asset_type, int(ts[0]), int(ts[-1]), int(new)])
                con.execute(f"DROP TABLE IF EXISTS {_CHANGED}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.unregister(_INCOMING)
        return int(changed)

    async def read(
        self, key: SeriesKey, *, start: int | None = None, end: int | None = None, limit: int | None = None
    ) -> Bars:
        params = key_params(key)
        check_read_args(limit)
        if limit == 0:
            return Bars.empty()
        return await self._run(self._read, params, start, end, limit)

    def _read(
        self, params: tuple[str, str, str], start: int | None, end: int | None, limit: int | None
    ) -> Bars:
        con = self._connection()
        where, args = _KEY, list[Any](params)
        if start is not None:
            where += " AND ts >= ?"
            args.append(int(start))
        if end is not None:
            where += " AND ts < ?"
            args.append(int(end))
        sql = f"SELECT {_SELECT} FROM {BARS_TABLE} WHERE {where}"
        if limit is not None:
            sql += " ORDER BY ts DESC LIMIT ?"
            args.append(int(limit))
        # ``sql(...).fetchnumpy()`` is about twice as fast as ``execute(...).fetchnumpy()``.
        data = con.sql(sql, params=args).fetchnumpy()
        cols: dict[str, np.ndarray] = {
            c: np.asarray(data[c], dtype=np.int64 if c == "ts" else np.float64) for c in COLUMNS
        }
        if limit is not None:
            cols = {c: np.ascontiguousarray(v[::-1]) for c, v in cols.items()}
        elif len(cols["ts"]) > 1 and not bool(np.all(cols["ts"][1:] > cols["ts"][:-1])):
            # Without ORDER BY a scan returns insertion order, which is time order unless older
            # bars were added later; checking costs ~1 ms per million bars, sorting ~30 ms.
            order = np.argsort(cols["ts"], kind="stable")
            cols = {c: v[order] for c, v in cols.items()}
        return Bars(cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"])

    async def series(self, *, symbol: str | None = None) -> list[SeriesInfo]:
        return await self._run(self._series, symbol)

    def _series(self, symbol: str | None) -> list[SeriesInfo]:
        sql = f"SELECT symbol, venue, timeframe, asset_type, first_ts, last_ts, bar_count FROM {SERIES_TABLE}"
        args: list[Any] = []
        if symbol is not None:
            sql += " WHERE symbol = ?"
            args.append(symbol)
        rows = self._connection().execute(sql, args).fetchall()
        return sort_catalog([series_info(*row) for row in rows])

    async def delete(self, key: SeriesKey) -> int:
        return await self._run(self._delete, key_params(key))

    def _delete(self, params: tuple[str, str, str]) -> int:
        con = self._connection()
        con.execute("BEGIN TRANSACTION")
        try:
            (deleted,) = _one(con.execute(f"DELETE FROM {BARS_TABLE} WHERE {_KEY}", list(params)))
            con.execute(f"DELETE FROM {SERIES_TABLE} WHERE {_KEY}", list(params))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return int(deleted)

    async def last_ts(self, key: SeriesKey) -> int | None:
        return await self._run(self._last_ts, key_params(key))

    def _last_ts(self, params: tuple[str, str, str]) -> int | None:
        rows = (
            self._connection()
            .execute(f"SELECT last_ts FROM {SERIES_TABLE} WHERE {_KEY}", list(params))
            .fetchall()
        )
        return int(rows[0][0]) if rows else None

    async def ping(self) -> None:
        await self._run(lambda: self._connection().execute("SELECT 1").fetchall())

    async def open(self) -> None:
        """Make a closed store usable again (the file is reopened on first use)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-bars")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._close_connection)
        finally:
            executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()


def _one(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    rows = result.fetchall()  # fetch to the end: DuckDB 2 refuses new work while a result is open
    if len(rows) != 1:  # pragma: no cover - aggregate and DML queries always return one row
        raise RuntimeError(f"DuckDB returned {len(rows)} rows where one was expected")
    return tuple(rows[0])
