"""Store life cycle: PostgreSQL schema/partition creation under concurrency, restarts, outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from algotrendy.adapters.bars import DuckDBBarStore, PostgresBarStore
from algotrendy.adapters.bars.postgres_store import decode_copy, encode_copy
from algotrendy.core.errors import TemporaryError
from algotrendy.core.market import AssetType, Bars, SeriesKey, Timeframe
from tests.pg import fresh_database

DAY = 86_400 * 10**9
SPY = SeriesKey("SPY", "arca", Timeframe.parse("1d"))


def daily(first_day: int, n: int) -> Bars:
    days = first_day + np.arange(n, dtype=np.int64)
    ts = days * DAY
    price = 100.0 + (days % 1000) * 0.25  # a bar's values depend only on its day
    return Bars(ts, price, price + 1, price - 1, price + 0.5, np.full(n, 1e6))


def test_binary_copy_codec_round_trips() -> None:
    bars = daily(10_000, 1_000)
    cols = {c: getattr(bars, c) for c in ("ts", "open", "high", "low", "close", "volume")}
    back = decode_copy(encode_copy(cols))
    for c, values in cols.items():
        assert np.array_equal(getattr(back, c), values)
    assert len(decode_copy(b"")) == 0


async def _partitions(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'marketdata_bars'::regclass "
            "ORDER BY 1"
        )
        return [r["relname"] for r in rows]
    finally:
        await conn.close()


async def test_processes_starting_together_create_the_schema_once() -> None:
    async with fresh_database() as url:
        stores = [PostgresBarStore(url, max_connections=2) for _ in range(4)]
        try:
            # four "processes" (own pools) start and write different years at the same moment
            await asyncio.gather(
                *(
                    s.upsert(SPY, daily(365 * (30 + i), 400), asset_type=AssetType.ETF)
                    for i, s in enumerate(stores)
                )
            )
            layouts = {s.layout for s in stores}
            assert len(layouts) == 1
            (info,) = await stores[0].series()
            assert info.count == len(
                np.unique(np.concatenate([daily(365 * (30 + i), 400).ts for i in range(4)]))
            )
            if layouts == {"partitioned"}:
                names = await _partitions(url)
                days = np.concatenate([daily(365 * (30 + i), 400).ts for i in range(4)]).astype(
                    "datetime64[ns]"
                )
                years = sorted({int(str(y)) for y in days.astype("datetime64[Y]")})
                assert names == [f"marketdata_bars_y{y}" for y in years]
        finally:
            for s in stores:
                await s.close()


async def test_a_restarted_store_finds_its_tables_and_partitions() -> None:
    async with fresh_database() as url:
        first = PostgresBarStore(url)
        await first.upsert(SPY, daily(18_000, 30), asset_type=AssetType.ETF)  # 2019
        await first.close()
        again = PostgresBarStore(url)
        try:
            assert await again.upsert(SPY, daily(18_000, 400), asset_type=AssetType.ETF) == 370
            assert again.layout == first.layout
            (info,) = await again.series()
            assert info.count == 400
            if again.layout == "partitioned":
                assert await _partitions(url) == ["marketdata_bars_y2019", "marketdata_bars_y2020"]
        finally:
            await again.close()


async def test_an_unreachable_server_is_a_temporary_error() -> None:
    store = PostgresBarStore("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    with pytest.raises(TemporaryError):
        await store.ping()
    await store.close()


async def test_duckdb_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bars.duckdb"
    store = DuckDBBarStore(path)
    await store.upsert(SPY, daily(18_000, 50), asset_type=AssetType.ETF)
    await store.close()
    await store.close()  # closing twice is fine
    with pytest.raises(RuntimeError):
        await store.read(SPY)
    again = DuckDBBarStore(path)
    try:
        assert len(await again.read(SPY)) == 50
        assert (await again.series())[0].count == 50
    finally:
        await again.close()


async def test_duckdb_reads_stay_in_time_order_after_a_back_fill(tmp_path: Path) -> None:
    store = DuckDBBarStore(tmp_path / "bars.duckdb")
    try:
        await store.upsert(SPY, daily(18_100, 100), asset_type=AssetType.ETF)
        await store.upsert(SPY, daily(18_000, 100), asset_type=AssetType.ETF)  # older bars, stored later
        bars = await store.read(SPY)
        assert np.array_equal(bars.ts, daily(18_000, 200).ts)
        assert np.array_equal(bars.close[:100], daily(18_000, 100).close)
    finally:
        await store.close()


async def test_duckdb_in_memory(tmp_path: Path) -> None:
    store = DuckDBBarStore(":memory:")
    try:
        await store.upsert(SPY, daily(18_000, 5), asset_type=AssetType.ETF)
        assert await store.last_ts(SPY) == 18_004 * DAY
    finally:
        await store.close()


async def test_a_closed_postgres_store_refuses_work() -> None:
    async with fresh_database() as url:
        store = PostgresBarStore(url)
        await store.ping()
        await store.close()
        with pytest.raises(RuntimeError):
            await store.read(SPY)
