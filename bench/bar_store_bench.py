"""Bar store speed: bulk upsert and read-to-numpy of 1M one-minute bars, DuckDB and PostgreSQL.

For each store, ``--upsert-runs`` times on an empty store: upsert N synthetic 1m bars (one
series), then upsert the same bars again (idempotent: 0 rows change), then ``--runs`` reads of
the whole series into numpy, reads of the last 1,000 bars and reads of one day ([start, end)).
Reports the median (and range) of each. PostgreSQL runs when reachable at
``ALGO_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test) in a throwaway
database that is dropped afterwards. Then ``read_bar_file`` of the same bars written as a CSV
(ISO-8601 timestamps), a gzipped CSV and a Parquet file (``--file-runs`` times each).

    uv run python bench/bar_store_bench.py [--bars 1000000] [--runs 7] [--upsert-runs 3]
                                           [--file-runs 3] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import service_url

from algotrendy.adapters.bars import DuckDBBarStore, PostgresBarStore, read_bar_file
from algotrendy.core.market import AssetType, Bars, BarStore, SeriesKey, Timeframe

MINUTE = 60 * 1_000_000_000
Factory = Callable[[], AbstractAsyncContextManager[BarStore]]
KEY = SeriesKey("BTCUSDT", "binance", Timeframe.parse("1m"))


def synthetic_bars(n: int, *, seed: int = 7) -> Bars:
    """A random walk of n one-minute bars from 2020-01-01T00:00Z (about 1.9 years for 1M)."""
    rng = np.random.default_rng(seed)
    ts = 1_577_836_800 * 1_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.0005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.exponential(12.5, n)
    return Bars(ts, open_, high, low, close, volume)


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = await fn()
    return time.perf_counter() - t0, result


def summary(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    med = statistics.median(ms)
    text = f"{med:,.0f} ms" if med >= 10 else f"{med:.1f} ms"
    if len(ms) > 1:
        text += f" ({min(ms):,.1f}–{max(ms):,.1f})"
    return text


async def measure(make_store: Factory, bars: Bars, runs: int, upsert_runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "upsert": [],
        "again": [],
        "read_all": [],
        "read_last_1000": [],
        "read_day": [],
    }
    day_start = int(bars.ts[len(bars) // 2])
    for _ in range(upsert_runs):
        async with make_store() as store:
            t, written = await timed(lambda s=store: s.upsert(KEY, bars, asset_type=AssetType.CRYPTO))
            assert written == len(bars), written
            out["upsert"].append(t)
            t, written = await timed(lambda s=store: s.upsert(KEY, bars, asset_type=AssetType.CRYPTO))
            assert written == 0, written
            out["again"].append(t)
            await store.read(KEY, limit=10)  # warm
            for _ in range(runs):
                t, got = await timed(lambda s=store: s.read(KEY))
                assert len(got) == len(bars) and np.array_equal(got.close, bars.close)
                out["read_all"].append(t)
                t, got = await timed(lambda s=store: s.read(KEY, limit=1000))
                assert len(got) == 1000
                out["read_last_1000"].append(t)
                t, got = await timed(
                    lambda s=store: s.read(KEY, start=day_start, end=day_start + 1440 * MINUTE)
                )
                assert len(got) == 1440
                out["read_day"].append(t)
    return out


@asynccontextmanager
async def duckdb_store() -> AsyncIterator[BarStore]:
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBBarStore(Path(tmp) / "bars.duckdb")
        try:
            yield store
        finally:
            await store.close()


def postgres_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout=1.0):
            return True
    except OSError:
        return False


def postgres_store_factory(base_url: str) -> Factory:
    import asyncpg

    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")

    @asynccontextmanager
    async def make() -> AsyncIterator[BarStore]:
        name = f"algotrendy_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            store = PostgresBarStore(dsn.rsplit("/", 1)[0] + "/" + name)
            try:
                yield store
            finally:
                await store.close()
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await admin.close()

    return make


def write_files(bars: Bars, folder: Path) -> dict[str, Path]:
    import gzip

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    stamps = (
        np.datetime_as_string(bars.ts.astype("datetime64[ns]").astype("datetime64[s]")).astype(object) + "Z"
    )
    table = pa.table(
        {"timestamp": pa.array(stamps, pa.string())}
        | {c: pa.array(getattr(bars, c)) for c in ("open", "high", "low", "close", "volume")}
    )
    paths = {
        "CSV": folder / "bars.csv",
        "CSV, gzip": folder / "bars.csv.gz",
        "Parquet": folder / "bars.parquet",
    }
    pacsv.write_csv(table, paths["CSV"], pacsv.WriteOptions(quoting_style="none"))
    paths["CSV, gzip"].write_bytes(gzip.compress(paths["CSV"].read_bytes(), compresslevel=6))
    pq.write_table(
        table.set_column(0, "timestamp", pa.array(bars.ts, pa.timestamp("ns", "UTC"))), paths["Parquet"]
    )
    return paths


def measure_files(bars: Bars, runs: int) -> None:
    print()
    print("| `read_bar_file` | size | time |")
    print("| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_files(bars, Path(tmp)).items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                got = read_bar_file(path)
                times.append(time.perf_counter() - t0)
                assert len(got) == len(bars) and np.array_equal(got.ts, bars.ts)
            print(f"| {name} | {path.stat().st_size / 1e6:,.0f} MB | {summary(times)} |", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--upsert-runs", type=int, default=3)
    ap.add_argument("--file-runs", type=int, default=3)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()

    bars = synthetic_bars(args.bars)
    stores: list[tuple[str, Factory]] = [("DuckDB (file)", duckdb_store)]
    pg_url = service_url("postgres")
    if not args.no_postgres:
        if postgres_reachable(pg_url):
            stores.append(("PostgreSQL", postgres_store_factory(pg_url)))
        else:
            print(f"PostgreSQL not reachable at {pg_url}: skipped", file=sys.stderr)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.bars:,} bars, {args.upsert_runs} fresh stores x {args.runs} reads"
    )
    print()
    print("| store | upsert (new) | upsert again (0 changed) | read all to numpy | last 1,000 | one day |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, factory in stores if args.upsert_runs else []:
        r = await measure(factory, bars, args.runs, args.upsert_runs)
        print(
            f"| {name} | {summary(r['upsert'])} | {summary(r['again'])} | **{summary(r['read_all'])}** | "
            f"{summary(r['read_last_1000'])} | {summary(r['read_day'])} |",
            flush=True,
        )

    if args.file_runs:
        measure_files(bars, args.file_runs)


if __name__ == "__main__":
    asyncio.run(main())
