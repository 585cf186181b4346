"""The ``BarStore`` contract, run on DuckDB (embedded) and on PostgreSQL (split mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from algotrendy.adapters.bars import DuckDBBarStore, PostgresBarStore
from algotrendy.core.errors import Invalid
from algotrendy.core.market import AssetType, Bars, BarStore, SeriesKey, Timeframe
from tests.pg import fresh_database

MINUTE = 60 * 1_000_000_000
T0 = 1_678_990_500 * 1_000_000_000  # 2023-03-16T18:15:00Z
BTC = SeriesKey("BTCUSDT", "binance", Timeframe.parse("1m"))
ETH = SeriesKey("ETHUSDT", "binance", Timeframe.parse("1m"))
BTC_1H = SeriesKey("BTCUSDT", "binance", Timeframe.parse("1h"))
BTC_OTHER_VENUE = SeriesKey("BTCUSDT", "coinbase", Timeframe.parse("1m"))


@pytest.fixture(params=["duckdb", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BarStore]:
    if request.param == "duckdb":
        duck = DuckDBBarStore(tmp_path / "bars.duckdb")
        yield duck
        await duck.close()
        return
    async with fresh_database() as url:
        pg = PostgresBarStore(url)
        yield pg
        await pg.close()


def make_bars(n: int, *, start: int = T0, step: int = MINUTE, seed: int = 0) -> Bars:
    """Random but awkward floats (full 53-bit mantissas, tiny and huge magnitudes)."""
    rng = np.random.default_rng(seed)
    ts = start + np.arange(n, dtype=np.int64) * step
    base = rng.lognormal(mean=8.0, sigma=3.0, size=n)
    return Bars(
        ts=ts,
        open=base * rng.uniform(0.99, 1.01, n),
        high=base * rng.uniform(1.01, 1.02, n),
        low=base * rng.uniform(0.98, 0.99, n),
        close=base * rng.uniform(0.99, 1.01, n),
        volume=rng.exponential(1e3, n) * rng.choice([0.0, 1e-9, 1.0, 1e9], n),
    )


def assert_same(got: Bars, want: Bars) -> None:
    """Equal bit for bit, dtypes included."""
    assert got.ts.dtype == np.int64
    np.testing.assert_array_equal(got.ts, want.ts)
    for name in ("open", "high", "low", "close", "volume"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == np.float64, name
        assert np.array_equal(a.view(np.int64), np.asarray(b, dtype=np.float64).view(np.int64)), name


def concat(*parts: Bars) -> Bars:
    names = ("ts", "open", "high", "low", "close", "volume")
    return Bars(*(np.concatenate([getattr(p, c) for p in parts]) for c in names))


async def test_round_trip_is_bit_exact(store: BarStore) -> None:
    bars = make_bars(2_000)
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 2_000
    assert_same(await store.read(BTC), bars)


async def test_extreme_floats_round_trip(store: BarStore) -> None:
    ts = T0 + np.arange(4, dtype=np.int64) * MINUTE
    odd = np.array([5e-324, 1.7976931348623157e308, 0.1 + 0.2, 2.0**-1074 * 3], dtype=np.float64)
    bars = Bars(ts, odd, odd, odd, odd, odd[::-1].copy())
    await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO)
    assert_same(await store.read(BTC), bars)


async def test_writing_the_same_bars_again_counts_zero_and_keeps_one_copy(store: BarStore) -> None:
    bars = make_bars(500)
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 500
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 0
    assert await store.upsert(BTC, bars.slice(100, 200), asset_type=AssetType.CRYPTO) == 0
    assert_same(await store.read(BTC), bars)
    (info,) = await store.series()
    assert info.count == 500


async def test_revised_bar_replaces_the_old_one(store: BarStore) -> None:
    bars = make_bars(300)
    await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO)
    revised = bars.slice(0, 300)
    close = revised.close.copy()
    close[[10, 250]] += 1.5
    revised = Bars(revised.ts, revised.open, revised.high, revised.low, close, revised.volume)
    # two changed bars, 298 identical ones, and 5 new ones after the end
    new = make_bars(5, start=int(bars.ts[-1]) + MINUTE, seed=9)
    assert await store.upsert(BTC, concat(revised, new), asset_type=AssetType.CRYPTO) == 7
    got = await store.read(BTC)
    assert_same(got, concat(revised, new))
    (info,) = await store.series()
    assert info.count == 305
    assert info.last_ts == int(new.ts[-1])


async def test_start_is_inclusive_end_exclusive(store: BarStore) -> None:
    bars = make_bars(100)
    await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO)
    got = await store.read(BTC, start=int(bars.ts[10]), end=int(bars.ts[20]))
    assert_same(got, bars.slice(10, 20))
    assert_same(await store.read(BTC, start=int(bars.ts[95])), bars.slice(95, 100))
    assert_same(await store.read(BTC, end=int(bars.ts[3])), bars.slice(0, 3))
    assert_same(await store.read(BTC, start=int(bars.ts[10]) + 1, end=int(bars.ts[12])), bars.slice(11, 12))
    assert len(await store.read(BTC, start=int(bars.ts[50]), end=int(bars.ts[50]))) == 0


async def test_limit_returns_the_last_n_bars_in_time_order(store: BarStore) -> None:
    bars = make_bars(100)
    await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO)
    assert_same(await store.read(BTC, limit=7), bars.slice(93, 100))
    assert_same(await store.read(BTC, end=int(bars.ts[40]), limit=5), bars.slice(35, 40))
    assert_same(await store.read(BTC, start=int(bars.ts[98]), limit=5), bars.slice(98, 100))
    assert_same(await store.read(BTC, limit=1_000), bars)
    assert len(await store.read(BTC, limit=0)) == 0
    with pytest.raises(Invalid):
        await store.read(BTC, limit=-1)


async def test_catalog_tracks_counts_and_first_last(store: BarStore) -> None:
    first = make_bars(50, start=T0 + 100 * MINUTE)
    await store.upsert(BTC, first, asset_type=AssetType.CRYPTO)
    earlier = make_bars(30, start=T0, seed=1)  # back-fill before the stored range
    await store.upsert(BTC, earlier, asset_type=AssetType.CRYPTO)
    (info,) = await store.series()
    assert info.key == BTC
    assert str(info.key.timeframe) == "1m"
    assert info.asset_type is AssetType.CRYPTO
    assert (info.first_ts, info.last_ts, info.count) == (T0, int(first.ts[-1]), 80)
    assert await store.last_ts(BTC) == int(first.ts[-1])
    assert_same(await store.read(BTC), concat(earlier, first))


async def test_series_are_isolated_by_symbol_venue_and_timeframe(store: BarStore) -> None:
    keys = {
        BTC: make_bars(40, seed=1),
        ETH: make_bars(30, seed=2),
        BTC_OTHER_VENUE: make_bars(20, seed=3),
        BTC_1H: make_bars(10, step=60 * MINUTE, seed=4),
    }
    for key, bars in keys.items():
        await store.upsert(key, bars, asset_type=AssetType.CRYPTO)
    for key, bars in keys.items():
        assert_same(await store.read(key), bars)
    catalog = await store.series()
    assert {s.key: s.count for s in catalog} == {k: len(b) for k, b in keys.items()}
    assert [s.key for s in catalog] == [BTC, BTC_1H, BTC_OTHER_VENUE, ETH]  # symbol, venue, timeframe
    assert {s.key for s in await store.series(symbol="BTCUSDT")} == {BTC, BTC_1H, BTC_OTHER_VENUE}
    assert await store.series(symbol="DOGE") == []


async def test_equal_timeframes_name_the_same_series(store: BarStore) -> None:
    bars = make_bars(10, step=60 * MINUTE)
    await store.upsert(
        SeriesKey("BTCUSDT", "binance", Timeframe.parse("60m")), bars, asset_type=AssetType.CRYPTO
    )
    assert_same(await store.read(BTC_1H), bars)
    (info,) = await store.series()
    assert str(info.key.timeframe) == "1h"


async def test_delete_removes_one_series_and_its_catalog_entry(store: BarStore) -> None:
    await store.upsert(BTC, make_bars(60), asset_type=AssetType.CRYPTO)
    await store.upsert(ETH, make_bars(25, seed=5), asset_type=AssetType.CRYPTO)
    assert await store.delete(BTC) == 60
    assert len(await store.read(BTC)) == 0
    assert await store.last_ts(BTC) is None
    assert [s.key for s in await store.series()] == [ETH]
    assert await store.delete(BTC) == 0
    # the same bars can be written again after a delete
    assert await store.upsert(BTC, make_bars(60), asset_type=AssetType.CRYPTO) == 60
    assert (await store.series(symbol="BTCUSDT"))[0].count == 60


async def test_unknown_series_reads_empty(store: BarStore) -> None:
    empty = await store.read(BTC)
    assert len(empty) == 0
    assert empty.ts.dtype == np.int64
    assert empty.close.dtype == np.float64
    assert len(await store.read(BTC, start=T0, end=T0 + MINUTE, limit=5)) == 0
    assert await store.last_ts(BTC) is None
    assert await store.series() == []
    assert await store.upsert(BTC, Bars.empty(), asset_type=AssetType.CRYPTO) == 0
    assert await store.series() == []


async def test_unordered_or_duplicate_timestamps_are_refused_and_change_nothing(store: BarStore) -> None:
    bars = make_bars(5)
    shuffled = Bars(bars.ts[::-1].copy(), bars.open, bars.high, bars.low, bars.close, bars.volume)
    with pytest.raises(Invalid):
        await store.upsert(BTC, shuffled, asset_type=AssetType.CRYPTO)
    twice = Bars(np.repeat(bars.ts[:1], 5), bars.open, bars.high, bars.low, bars.close, bars.volume)
    with pytest.raises(Invalid):
        await store.upsert(BTC, twice, asset_type=AssetType.CRYPTO)
    assert await store.series() == []


async def test_bulk_upsert_of_100k_bars(store: BarStore) -> None:
    bars = make_bars(100_000)
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 100_000
    assert_same(await store.read(BTC), bars)
    assert_same(await store.read(BTC, limit=10), bars.slice(99_990, 100_000))
    (info,) = await store.series()
    assert info.count == 100_000


async def test_concurrent_overlapping_upserts_leave_no_duplicates(store: BarStore) -> None:
    full = make_bars(4_000)
    # four writers, each a window overlapping its neighbours by half
    windows = [full.slice(i * 800, i * 800 + 1_600) for i in range(4)]
    counts = await asyncio.gather(*(store.upsert(BTC, w, asset_type=AssetType.CRYPTO) for w in windows))
    covered = full.slice(0, 3 * 800 + 1_600)
    assert sum(counts) >= len(covered)  # every row was written at least once ...
    got = await store.read(BTC)
    assert_same(got, covered)  # ... and stored exactly once
    (info,) = await store.series()
    assert info.count == len(covered)
    assert (info.first_ts, info.last_ts) == (int(covered.ts[0]), int(covered.ts[-1]))


async def test_every_asset_type_round_trips_in_the_catalog(store: BarStore) -> None:
    keys = {t: SeriesKey(f"SYM_{t.value.upper()}", "venue", Timeframe.parse("1d")) for t in AssetType}
    for asset_type, key in keys.items():
        await store.upsert(key, make_bars(3, step=86_400 * 10**9), asset_type=asset_type)
    catalog = {s.key: s.asset_type for s in await store.series()}
    assert catalog == {key: t for t, key in keys.items()}
    assert all(isinstance(t, AssetType) for t in catalog.values())


async def test_timestamps_far_from_now_round_trip(store: BarStore) -> None:
    # 1900 and 2200: daily bars long before and after the epoch, across many years
    ts = np.array([-2_208_988_800, -86_400, 0, 7_258_118_400], dtype=np.int64) * 10**9
    bars = make_bars(4)
    bars = Bars(ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    await store.upsert(SeriesKey("SPX", "index", Timeframe.parse("1d")), bars, asset_type=AssetType.INDEX)
    assert_same(await store.read(SeriesKey("SPX", "index", Timeframe.parse("1d"))), bars)


async def test_ping_and_close(store: BarStore) -> None:
    await store.ping()


async def test_an_inverted_range_reads_nothing(store: BarStore) -> None:
    bars = make_bars(10)
    await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO)
    assert len(await store.read(BTC, start=int(bars.ts[5]), end=int(bars.ts[2]))) == 0


async def test_nan_values_round_trip_and_rewrite_as_unchanged(store: BarStore) -> None:
    # files refuse NaN, but the store keeps what it is given (e.g. a feed's missing volume)
    bars = make_bars(3)
    volume = bars.volume.copy()
    volume[1] = np.nan
    bars = Bars(bars.ts, bars.open, bars.high, bars.low, bars.close, volume)
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 3
    assert await store.upsert(BTC, bars, asset_type=AssetType.CRYPTO) == 0
    got = await store.read(BTC)
    assert np.isnan(got.volume[1])
    assert_same(got.slice(0, 1), bars.slice(0, 1))
