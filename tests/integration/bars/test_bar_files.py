"""``read_bar_file``: formats, column names, timestamps, and all-or-nothing validation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from algotrendy.adapters.bars import BarFileError, read_bar_file

HEADER = "timestamp,open,high,low,close,volume"
S = 10**9


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def error_of(path: Path, **kwargs: str) -> BarFileError:
    with pytest.raises(BarFileError) as caught:
        read_bar_file(path, **kwargs)
    return caught.value


GOOD = [
    "2024-01-02T00:00:00Z,10,11,9,10.5,100",
    "2024-01-03T00:00:00Z,10.5,12,10,11,0",
    "2024-01-04T00:00:00Z,11,11.5,10.25,11.25,250.5",
]


def test_plain_csv(tmp_path: Path) -> None:
    bars = read_bar_file(write(tmp_path, csv(*GOOD)))
    day = 86_400 * S
    assert bars.ts.tolist() == [1_704_153_600 * S, 1_704_153_600 * S + day, 1_704_153_600 * S + 2 * day]
    assert bars.close.tolist() == [10.5, 11.0, 11.25]
    assert bars.volume.tolist() == [100.0, 0.0, 250.5]


def test_aliases_case_and_extra_columns(tmp_path: Path) -> None:
    text = csv(
        "2024-01-02,10,11,9,10.5,10.4,100,x",
        "2024-01-03,10.5,12,10,11,10.9,0,y",
        header=" Date ,O,High,low,Close,Adj Close,VOL,Name",
    )
    bars = read_bar_file(write(tmp_path, text))
    assert bars.close.tolist() == [10.5, 11.0]  # 'Adj Close' is not an alias of close
    assert bars.open.tolist() == [10.0, 10.5]


def test_canonical_name_wins_over_aliases(tmp_path: Path) -> None:
    text = csv(
        "2024-01-02T00:00:00Z,monday,10,11,9,10.5,1", header="timestamp,date,open,high,low,close,volume"
    )
    assert len(read_bar_file(write(tmp_path, text))) == 1


def test_two_time_aliases_are_ambiguous(tmp_path: Path) -> None:
    text = csv("2024-01-02,10:00,10,11,9,10.5,1", header="date,time,open,high,low,close,volume")
    error = error_of(write(tmp_path, text))
    assert error.line == 1
    assert "ambiguous" in str(error)
    assert "timestamp_column" in str(error)


def test_explicit_timestamp_column(tmp_path: Path) -> None:
    text = csv("2024-01-02,10:00,10,11,9,10.5,1", header="date,time,open,high,low,close,volume")
    assert read_bar_file(write(tmp_path, text), timestamp_column="Date").ts.tolist() == [1_704_153_600 * S]


def test_missing_column_names_the_header_line(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, csv("2024-01-02,10,11,9,10.5", header="timestamp,open,high,low,close")))
    assert (error.line, error.column) == (1, None)
    assert "volume" in str(error)


def test_rows_out_of_order_are_sorted(tmp_path: Path) -> None:
    bars = read_bar_file(write(tmp_path, csv(GOOD[2], GOOD[0], GOOD[1])))
    assert bool(np.all(np.diff(bars.ts) > 0))
    assert bars.close.tolist() == [10.5, 11.0, 11.25]


def test_ohlc_inconsistency_is_not_an_import_error(tmp_path: Path) -> None:
    # MSFT 2007-02-28 in the sample data: close above high
    bars = read_bar_file(write(tmp_path, csv("2007-02-28T00:00:00Z,27.95,27.96,27.92,28.17,86532702")))
    assert bars.close.tolist() == [28.17]


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("2024-01-05T00:00:00Z,11,12,10,abc,1", "close", "not a number: 'abc'"),
        ("2024-01-05T00:00:00Z,11,12,10,,1", "close", "empty value"),
        ("2024-01-05T00:00:00Z,11,12,10,NaN,1", "close", "NaN"),
        ("2024-01-05T00:00:00Z,11,inf,10,11,1", "high", "infinite"),
        ("2024-01-05T00:00:00Z,-11,12,10,11,1", "open", "price must be > 0"),
        ("2024-01-05T00:00:00Z,11,12,0,11,1", "low", "price must be > 0"),
        ("2024-01-05T00:00:00Z,11,12,10,11,-1", "volume", "volume must be >= 0"),
        ("2024-01-05T25:00:00Z,11,12,10,11,1", "timestamp", "not a timestamp"),
        ("yesterday,11,12,10,11,1", "timestamp", "not a timestamp: 'yesterday'"),
        (",11,12,10,11,1", "timestamp", "empty value"),
        ("2024-01-03T00:00:00Z,11,12,10,11,1", "timestamp", "duplicate timestamp (same as line 3)"),
        ("2024-01-05T00:00:00Z,11,12,10,11", None, "expected 6 fields like the header, found 5"),
    ],
)
def test_a_bad_row_names_its_line_column_and_reason(
    tmp_path: Path, row: str, column: str | None, reason: str
) -> None:
    path = write(tmp_path, csv(*GOOD, row))
    error = error_of(path)
    assert (error.line, error.column) == (5, column)
    assert reason in error.reason
    assert str(error).startswith(f"bars.csv line 5{'' if column is None else f', column {column!r}'}: ")


def test_the_earliest_bad_line_is_named_with_the_total(tmp_path: Path) -> None:
    rows = [*GOOD, "2024-01-05T00:00:00Z,11,12,10,11,-5", "2024-01-06T00:00:00Z,x,12,10,11,1"]
    rows[1] = "2024-01-03T00:00:00Z,10.5,12,10,11,nan"
    error = error_of(write(tmp_path, csv(*rows)))
    assert (error.line, error.column) == (3, "volume")
    assert "3 bad rows in total" in str(error)


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    text = HEADER + "\n\n" + GOOD[0] + "\n\n\n" + "2024-01-03T00:00:00Z,1,1,1,oops,1\n"
    assert error_of(write(tmp_path, text)).line == 6


def test_quoted_fields_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(
        b'"timestamp","open","high","low","close","volume"\r\n"2024-01-02T00:00:00Z","10","11","9","10.5","1"\r\n'
    )
    assert read_bar_file(path).close.tolist() == [10.5]


def test_header_only_is_empty_and_an_empty_file_is_an_error(tmp_path: Path) -> None:
    assert len(read_bar_file(write(tmp_path, HEADER + "\n"))) == 0
    assert error_of(write(tmp_path, "", "empty.csv")).line == 1


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((csv(*GOOD) + "2024-01-05T00:00:00Z,1,1,1,1,1 caf\xe9\n").encode("latin-1"))
    error = error_of(path)
    assert error.line == 5
    assert "UTF-8" in str(error)


def test_gzip_is_detected_from_the_content(tmp_path: Path) -> None:
    path = tmp_path / "bars.data"
    path.write_bytes(gzip.compress(csv(*GOOD).encode()))
    assert len(read_bar_file(path)) == 3


def test_offsets_and_naive_local_times(tmp_path: Path) -> None:
    rows = [
        "2024-01-02T09:30:00-05:00,1,1,1,1,1",
        "2024-01-02T15:00:00+01:00,1,1,1,1,1",
        "2024-01-02 16:00,1,1,1,1,1",
    ]
    bars = read_bar_file(write(tmp_path, csv(*rows)))
    assert bars.ts.tolist() == [1_704_204_000 * S, 1_704_205_800 * S, 1_704_211_200 * S]  # sorted
    ny = read_bar_file(
        write(tmp_path, csv("2024-07-01 09:30,1,1,1,1,1", "2024-01-02,1,1,1,1,1")), tz="America/New_York"
    )
    assert ny.ts.tolist() == [1_704_171_600 * S, 1_719_840_600 * S]  # EST midnight, EDT 09:30


def test_a_local_time_inside_a_dst_gap_is_an_error(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, csv(*GOOD[:2], "2024-03-10 02:30,1,1,1,1,1")), tz="America/New_York")
    assert (error.line, error.column) == (4, "timestamp")
    assert "America/New_York" in str(error)


def test_unknown_time_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time zone"):
        read_bar_file(write(tmp_path, csv(*GOOD)), tz="Mars/Olympus")


@pytest.mark.parametrize("unit", [1, 1_000, 1_000_000, 1_000_000_000])
def test_epoch_seconds_ms_us_and_ns(tmp_path: Path, unit: int) -> None:
    rows = [f"{t * unit},1,1,1,1,1" for t in (1_679_004_900, 1_679_004_960)]
    bars = read_bar_file(write(tmp_path, csv(*rows, header="time,open,high,low,close,volume")))
    assert bars.ts.tolist() == [1_679_004_900 * S, 1_679_004_960 * S]


def test_epoch_mixed_with_text_is_an_error(tmp_path: Path) -> None:
    rows = ["1679004900000,1,1,1,1,1", "2023-03-16T22:16:00Z,1,1,1,1,1"]
    error = error_of(write(tmp_path, csv(*rows)))
    assert (error.line, error.column) == (2, "timestamp")


def test_parquet_with_timestamp_and_numeric_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    ts = np.array([3, 1, 2], dtype=np.int64) * 60 * S + 1_700_000_000 * S
    table = pa.table(
        {
            "Timestamp": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
            "Open": pa.array([1, 2, 3], type=pa.int32()),
            "High": [1.5, 2.5, 3.5],
            "Low": [0.5, 1.5, 2.5],
            "Close": [1.25, 2.25, 3.25],
            "Volume": [0.0, 1.0, 2.0],
        }
    )
    pq.write_table(table, path)
    bars = read_bar_file(path)
    assert bars.ts.tolist() == sorted(ts.tolist())
    assert bars.open.tolist() == [2.0, 3.0, 1.0]


def test_parquet_naive_timestamps_are_in_tz_and_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bars.pq"
    table = pa.table(
        {
            "date": pa.array(
                np.array(["2024-01-02", "2024-01-03"], dtype="datetime64[s]"), type=pa.timestamp("s")
            ),
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, None],
            "volume": [1.0, 1.0],
        }
    )
    pq.write_table(table, path)
    error = error_of(path)
    assert (error.line, error.row, error.column) == (None, 2, "close")
    assert "row 2" in str(error)
    good = table.set_column(4, "close", pa.array([1.0, 2.0]))
    pq.write_table(good, path)
    assert read_bar_file(path, tz="Europe/Berlin").ts.tolist() == [1_704_150_000 * S, 1_704_236_400 * S]


def test_parquet_string_columns_are_parsed_like_csv(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pq.write_table(
        pa.table(
            {
                "timestamp": ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"],
                "open": ["1.5", "x"],
                "high": ["2", "2"],
                "low": ["1", "1"],
                "close": ["1.5", "1.5"],
                "volume": ["0", "0"],
            }
        ),
        path,
    )
    error = error_of(path)
    assert (error.row, error.column) == (2, "open")
    assert "'x'" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    error = error_of(tmp_path / "nope.csv")
    assert "cannot read" in str(error)


def test_parquet_date_and_epoch_columns(tmp_path: Path) -> None:
    prices = {
        "open": [1.0, 2.0],
        "high": [1.0, 2.0],
        "low": [1.0, 2.0],
        "close": [1.0, 2.0],
        "volume": [0, 5],
    }
    dates = tmp_path / "dates.parquet"
    pq.write_table(
        pa.table({"date": pa.array(np.array(["2024-01-02", "2024-01-03"], "datetime64[D]"))} | prices), dates
    )
    assert read_bar_file(dates).ts.tolist() == [1_704_153_600 * S, 1_704_240_000 * S]
    epoch = tmp_path / "epoch.parquet"
    pq.write_table(pa.table({"open_time": pa.array([1_704_153_600_000, 1_704_153_660_000])} | prices), epoch)
    assert read_bar_file(epoch).ts.tolist() == [1_704_153_600 * S, 1_704_153_660 * S]


@pytest.mark.parametrize(
    "variant", ["lf", "crlf", "quoted", "bom", "gzip", "no-final-newline", "blank-lines"]
)
def test_the_line_number_is_right_in_every_layout(tmp_path: Path, variant: str) -> None:
    rows = [f"2024-02-{d:02d}T00:00:00Z,10,11,9,10.5,100" for d in range(1, 29)]
    rows[19] = "2024-02-20T00:00:00Z,10,11,9,-10.5,100"  # data row 20: line 21 after the header
    lines, expected = [HEADER, *rows], 21
    if variant == "quoted":
        lines = [",".join(f'"{f}"' for f in line.split(",")) for line in lines]
    if variant == "blank-lines":
        lines = ["", HEADER, "", *rows[:10], "", *rows[10:]]
        expected = 21 + 3
    sep = "\r\n" if variant == "crlf" else "\n"
    data = (sep.join(lines) + ("" if variant == "no-final-newline" else sep)).encode()
    if variant == "bom":
        data = b"\xef\xbb\xbf" + data
    if variant == "gzip":
        data = gzip.compress(data)
    path = tmp_path / "bars.csv"
    path.write_bytes(data)
    error = error_of(path)
    assert (error.line, error.column) == (expected, "close")
    assert "price must be > 0, got -10.5" in str(error)


def test_a_duplicate_names_the_first_line_of_its_timestamp(tmp_path: Path) -> None:
    rows = [*GOOD, GOOD[0], GOOD[0]]
    error = error_of(write(tmp_path, csv(*rows)))
    assert error.line == 5
    assert "same as line 2" in str(error)
    assert "2 bad rows in total" in str(error)
