"""Importing the real sample data (``read_bar_file`` + ``BarStore.upsert``) on DuckDB and PostgreSQL."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import algotrendy
from algotrendy.adapters.bars import BarFileError, DuckDBBarStore, PostgresBarStore, read_bar_file
from algotrendy.core.market import AssetType, BarStore, SeriesKey, Timeframe
from tests.pg import fresh_database

SAMPLES = Path(algotrendy.__file__).parent / "sample_data"
NS_PER_DAY = 86_400 * 10**9
ASSET_TYPES = {
    "SPY": AssetType.ETF,
    "SPX": AssetType.INDEX,
    "AAPL": AssetType.STOCK,
    "MSFT": AssetType.STOCK,
    "GOOG": AssetType.STOCK,
    "EURUSD": AssetType.FX,
    "BTCUSDT": AssetType.CRYPTO,
    "ETHUSDT": AssetType.CRYPTO,
}


@dataclass(frozen=True)
class Sample:
    file: str
    timeframe: str
    first: str
    last: str
    bars: int

    @property
    def key(self) -> SeriesKey:
        symbol = self.file.split("_")[0]
        venue = "binance" if "_binance" in self.file else "sample"
        return SeriesKey(symbol, venue, Timeframe.parse(self.timeframe))

    @property
    def asset_type(self) -> AssetType:
        return ASSET_TYPES[self.file.split("_")[0]]


def readme_samples() -> list[Sample]:
    """The files table of sample_data/README.md: file, bar, first bar, last bar, bar count."""
    row = re.compile(r"^\| `([^`]+)` \| [^|]+ \| (\w+) \| ([\dT:Z-]+) \| ([\dT:Z-]+) \| ([\d,]+) \|", re.M)
    text = (SAMPLES / "README.md").read_text()
    return [Sample(f, tf, a, b, int(n.replace(",", ""))) for f, tf, a, b, n in row.findall(text)]


SAMPLE_FILES = readme_samples()


def ns(text: str) -> int:
    """README dates (``1999-11-01``) or minutes (``2017-08-17T04:00Z``) as ns since the epoch, UTC."""
    if "T" not in text:
        return (date.fromisoformat(text) - date(1970, 1, 1)).days * NS_PER_DAY
    return int(np.datetime64(text.removesuffix("Z"), "ns").astype(np.int64))


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


def test_the_readme_lists_every_sample_file() -> None:
    listed = {s.file for s in SAMPLE_FILES}
    on_disk = {p.name for p in SAMPLES.iterdir() if p.name != "README.md" and not p.name.startswith(".")}
    assert listed == on_disk
    assert len(listed) == 10


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda s: s.file)
def test_each_sample_file_reads_whole(sample: Sample) -> None:
    bars = read_bar_file(SAMPLES / sample.file)
    assert len(bars) == sample.bars
    assert int(bars.ts[0]) == ns(sample.first)
    assert int(bars.ts[-1]) == ns(sample.last)
    assert bool(np.all(np.diff(bars.ts) > 0))


async def test_import_every_sample_file(store: BarStore) -> None:
    for sample in SAMPLE_FILES:
        bars = read_bar_file(SAMPLES / sample.file)
        assert await store.upsert(sample.key, bars, asset_type=sample.asset_type) == sample.bars
    catalog = {s.key: s for s in await store.series()}
    assert len(catalog) == len(SAMPLE_FILES)
    for sample in SAMPLE_FILES:
        info = catalog[sample.key]
        assert info.count == sample.bars, sample.file
        assert (info.first_ts, info.last_ts) == (ns(sample.first), ns(sample.last)), sample.file
        assert info.asset_type is sample.asset_type
        assert len(await store.read(sample.key)) == sample.bars
    # importing everything again changes nothing
    for sample in SAMPLE_FILES:
        assert (
            await store.upsert(sample.key, read_bar_file(SAMPLES / sample.file), asset_type=sample.asset_type)
            == 0
        )


async def test_a_bad_row_on_line_57_names_it_and_leaves_the_store_unchanged(
    store: BarStore, tmp_path: Path
) -> None:
    spy = next(s for s in SAMPLE_FILES if s.file == "SPY_1d.csv")
    await store.upsert(spy.key, read_bar_file(SAMPLES / spy.file), asset_type=spy.asset_type)
    before_bars, before_catalog = await store.read(spy.key), await store.series()

    lines = (SAMPLES / spy.file).read_text().splitlines()
    fields = lines[56].split(",")  # line 57 of the file (the header is line 1)
    fields[4] = "12..5"
    lines[56] = ",".join(fields)
    bad = tmp_path / "SPY_bad.csv"
    bad.write_text("\n".join(lines) + "\n")

    with pytest.raises(BarFileError) as caught:
        read_bar_file(bad)
    error = caught.value
    assert (error.line, error.column) == (57, "close")
    assert "line 57" in str(error)
    assert "'close'" in str(error)
    assert "12..5" in str(error)
    assert isinstance(error, ValueError)

    after = await store.read(spy.key)
    assert np.array_equal(after.ts, before_bars.ts)
    assert np.array_equal(after.close, before_bars.close)
    assert await store.series() == before_catalog


async def test_gzip_parquet_and_epoch_ms_copies_import_identically(store: BarStore, tmp_path: Path) -> None:
    eur = next(s for s in SAMPLE_FILES if s.file == "EURUSD_1h.csv")
    reference = read_bar_file(SAMPLES / eur.file)

    gz = tmp_path / "eurusd.csv.gz"
    gz.write_bytes(gzip.compress((SAMPLES / eur.file).read_bytes()))

    parquet = tmp_path / "eurusd.parquet"
    columns = {"timestamp": pa.array(reference.ts, type=pa.timestamp("ns", tz="UTC"))}
    columns |= {c: pa.array(getattr(reference, c)) for c in ("open", "high", "low", "close", "volume")}
    pq.write_table(pa.table(columns), parquet)

    epoch_ms = tmp_path / "eurusd_ms.csv"
    text = (SAMPLES / eur.file).read_text().splitlines()
    rows = [
        f"{int(t) // 1_000_000},{line.split(',', 1)[1]}"
        for t, line in zip(reference.ts, text[1:], strict=True)
    ]
    epoch_ms.write_text("Time,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")

    for copy in (gz, parquet, epoch_ms):
        bars = read_bar_file(copy)
        assert np.array_equal(bars.ts, reference.ts), copy.name
        for c in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(bars, c).view(np.int64), getattr(reference, c).view(np.int64)), (
                copy.name
            )
        await store.upsert(eur.key, bars, asset_type=eur.asset_type)
    (info,) = await store.series()
    assert info.count == eur.bars == len(reference)
