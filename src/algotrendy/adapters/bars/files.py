"""Reading bar files (CSV, gzipped CSV, Parquet) into ``Bars``, all or nothing.

``read_bar_file(path)`` returns every bar of the file or raises ``BarFileError``; it never
returns part of a file. The error names the file, the place and the column, and the reason::

    BTC.csv line 57, column 'close': not a number: 'abc' (2 bad rows in total)

Places are **file lines** for CSV (1-based, the header is line 1; blank lines are skipped but
counted) and **rows** for Parquet (1-based data rows). When several rows are bad, the earliest
is named and the total given.

CSV is read by pyarrow's C++ reader and parsed column-wise (about 1 s and a few hundred MB for
a million rows). A file that this fast path rejects, or whose line numbers it cannot be sure
of (blank lines, quoted fields), is read again line by line with the ``csv`` module to name
the exact line: slower, but only for files that are bad or unusual.

Format
  * Kind: Parquet when the file starts with ``PAR1`` (or is named ``*.parquet``/``*.pq``),
    otherwise CSV: comma-separated, UTF-8 (a BOM is allowed), optionally gzip-compressed (detected
    from the content, not the name), double-quoted fields allowed.
  * Columns, matched case-insensitively after trimming spaces; other columns are ignored:
    ``timestamp`` (aliases ``datetime``, ``date``, ``time``, ``ts``, ``open_time``),
    ``open`` (``o``), ``high`` (``h``), ``low`` (``l``), ``close`` (``c``),
    ``volume`` (``vol``, ``v``). The canonical name wins over an alias; two aliases of one field
    and no canonical name (``date`` and ``time``) is an error, as is a missing field.
    ``timestamp_column=`` names the time column explicitly (then no alias is tried).
  * Timestamps, detected per file:
      - all values integers: epoch numbers, UTC. The unit follows the largest magnitude:
        below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds
        (so compact dates like ``20200102`` are *not* understood);
      - otherwise ISO-8601 (``2023-03-16T22:15:00Z``, ``...+02:00``, ``2023-03-16 22:15``,
        ``2023-03-16``). A value with ``Z`` or an offset is exact; a value without one is local
        time in ``tz`` (default UTC), and a local time that does not exist or is ambiguous there
        (a DST change) is an error. Parquet timestamp/date columns follow the same rule (a
        zone-less column is in ``tz``).
    Each bar is labelled by its open time (see ``core.market``).
  * Numbers: decimal text (``1``, ``-0.5``, ``1.5e-3``; surrounding spaces allowed, no ``_``
    or thousands separators) or any numeric Parquet type; the float64 value is the correctly
    rounded one, so shortest round-trip text reads back bit-exact.

Errors (any of them rejects the whole file): wrong number of fields on a line, an empty or
unparseable value, NaN or infinity, a price <= 0, a volume < 0, a duplicate timestamp.
Rows out of time order are **not** an error: they are sorted. OHLC inconsistencies
(``high < max(open, close)``, ``low > min(open, close)``, ``high < low``) are **not** import
errors either: real data has them (MSFT in the sample data) and the quality report flags them.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from algotrendy.core.market import Bars

from ._parse import Reason, numbers, reason_at, timestamps

FIELDS = ("timestamp", "open", "high", "low", "close", "volume")
ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("datetime", "date", "time", "ts", "open_time"),
    "open": ("o",),
    "high": ("h",),
    "low": ("l",),
    "close": ("c",),
    "volume": ("vol", "v"),
}
_PRICES = ("open", "high", "low", "close")


class BarFileError(ValueError):
    """A bar file that cannot be imported; ``line`` (CSV) or ``row`` (Parquet) says where."""

    def __init__(
        self,
        path: Path,
        reason: str,
        *,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path, self.reason, self.line, self.row, self.column = path, reason, line, row, column
        where = [f"line {line}"] if line is not None else [f"row {row}"] if row is not None else []
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{path.name}{' ' + ', '.join(where) if where else ''}: {reason}")


class _NeedLines(Exception):
    """The fast CSV path found a problem but cannot be sure of its line number."""


@dataclass
class _Table:
    """A file's six columns as Arrow arrays, plus where each row came from."""

    path: Path
    columns: dict[str, pa.Array]  # field -> the file's column
    names: dict[str, str]  # field -> column name as written in the file
    rows: int
    places: np.ndarray | None  # file line (CSV) or row (Parquet) of each row; None: unknown
    csv: bool

    def place(self, index: int) -> int:
        if self.places is None:
            raise _NeedLines
        return int(self.places[index])

    def fail(self, index: int, column: str | None, reason: str) -> BarFileError:
        place = self.place(index)
        return BarFileError(
            self.path,
            reason,
            line=place if self.csv else None,
            row=None if self.csv else place,
            column=column,
        )


def read_bar_file(path: Path | str, *, timestamp_column: str = "timestamp", tz: str = "UTC") -> Bars:
    """All bars of a CSV (optionally gzipped) or Parquet file, sorted by time; see the module doc."""
    path = Path(path)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BarFileError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if raw[:4] == b"PAR1" or path.suffix.lower() in {".parquet", ".pq"}:
        return _validate(_parquet_table(path, raw, timestamp_column), zone)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise BarFileError(path, f"damaged gzip data: {exc}") from exc
    fast = _csv_table_fast(path, raw, timestamp_column)
    if fast is not None:
        try:
            return _validate(fast, zone)
        except _NeedLines:
            pass
    return _validate(_csv_table(path, raw, timestamp_column), zone)


# -- reading ----------------------------------------------------------------------------------------


def _match_columns(
    path: Path, header: list[str], timestamp_column: str, *, line: int | None
) -> dict[str, int]:
    """Field -> column index in ``header``."""
    normal = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for field in FIELDS:
        if field == "timestamp" and timestamp_column.lower() != "timestamp":
            names: tuple[str, ...] = (timestamp_column.strip().lower(),)
            aliases: tuple[str, ...] = ()
        else:
            names, aliases = (field,), ALIASES[field]
        for group in (names, aliases):
            hits = [i for i, h in enumerate(normal) if h in group]
            if len(hits) > 1:
                listed = ", ".join(repr(header[i]) for i in hits)
                hint = " (pass timestamp_column=)" if field == "timestamp" else ""
                raise BarFileError(path, f"ambiguous {field} column: {listed}{hint}", line=line)
            if hits:
                found[field] = hits[0]
                break
        else:
            wanted = " or ".join(repr(n) for n in names + aliases)
            columns = ", ".join(repr(h) for h in header)
            raise BarFileError(
                path, f"missing the {field} column ({wanted}); the columns are {columns}", line=line
            )
    return found


def _csv_table_fast(path: Path, raw: bytes, timestamp_column: str) -> _Table | None:
    """The CSV through pyarrow, or None when only the line-by-line reader can judge it."""
    head = raw[:65_536].decode("utf-8-sig", errors="replace").splitlines()
    if not head or not head[0].strip():
        return None  # empty, or blank lines before the header
    header = next(csv.reader(head[:1]))
    if len(set(header)) != len(header):
        return None
    try:
        index = _match_columns(path, header, timestamp_column, line=1)
    except BarFileError:
        return None
    wanted = [header[i] for i in index.values()]
    try:
        data = pacsv.read_csv(
            pa.BufferReader(raw),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError, UnicodeError):
        return None
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    # Row i is on line i + 2 exactly when every line is one row: no blank line, no quoted field
    # (which may span lines), no bare carriage return (a line break to the reader).
    exact = lines == data.num_rows + 1 and b'"' not in raw and raw.count(b"\r") in (0, raw.count(b"\r\n"))
    places = np.arange(2, data.num_rows + 2, dtype=np.int64) if exact else None
    columns = {f: data.column(header[i]).combine_chunks() for f, i in index.items()}
    return _Table(
        path, columns, {f: header[i].strip() for f, i in index.items()}, data.num_rows, places, csv=True
    )


def _csv_table(path: Path, raw: bytes, timestamp_column: str) -> _Table:
    """The CSV line by line (``csv`` module), keeping each row's first line number."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BarFileError(path, f"not UTF-8 text (byte {raw[exc.start]:#04x})", line=line) from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    header_line = 1
    last = 0
    try:
        for record in reader:
            first_line, last = last + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header, header_line = record, first_line
            else:
                records.append(record)
                lines.append(first_line)
    except csv.Error as exc:
        raise BarFileError(path, f"malformed CSV: {exc}", line=reader.line_num) from exc
    if header is None:
        raise BarFileError(path, "empty file: no header line", line=1)
    index = _match_columns(path, header, timestamp_column, line=header_line)
    width = len(header)
    wrong = [i for i, r in enumerate(records) if len(r) != width]
    if wrong:
        more = f" ({len(wrong)} bad rows in total)" if len(wrong) > 1 else ""
        found = len(records[wrong[0]])
        reason = f"expected {width} fields like the header, found {found}{more}"
        raise BarFileError(path, reason, line=lines[wrong[0]])
    columns = {f: pa.array([r[i] for r in records], type=pa.string()) for f, i in index.items()}
    names = {f: header[i].strip() for f, i in index.items()}
    return _Table(path, columns, names, len(records), np.asarray(lines, dtype=np.int64), csv=True)


def _parquet_table(path: Path, raw: bytes, timestamp_column: str) -> _Table:
    try:
        data = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise BarFileError(path, f"not a readable Parquet file: {exc}") from exc
    index = _match_columns(path, data.column_names, timestamp_column, line=None)
    places = np.arange(1, data.num_rows + 1, dtype=np.int64)
    columns = {f: data.column(i).combine_chunks() for f, i in index.items()}
    names = {f: data.column_names[i] for f, i in index.items()}
    return _Table(path, columns, names, data.num_rows, places, csv=False)


# -- validation -------------------------------------------------------------------------------------


@dataclass
class _Problems:
    """Masks of bad rows, each with its column and its reason."""

    n: int
    masks: list[tuple[str | None, np.ndarray, Reason]]

    def add(self, column: str | None, mask: np.ndarray, reason: Reason) -> None:
        if mask.any():
            self.masks.append((column, mask, reason))

    def raise_first(self, table: _Table) -> None:
        if not self.masks:
            return
        bad = np.zeros(self.n, dtype=bool)
        for _, mask, _ in self.masks:
            bad |= mask
        first = int(np.argmax(bad))
        column, _, reason = next(m for m in self.masks if m[1][first])
        total = int(bad.sum())
        more = f" ({total} bad rows in total)" if total > 1 else ""
        raise table.fail(first, column, f"{reason_at(reason, first)}{more}")


def _validate(table: _Table, zone: ZoneInfo) -> Bars:
    n = table.rows
    if n == 0:
        return Bars.empty()
    problems = _Problems(n, [])
    ts_name = table.names["timestamp"]
    ts, ts_bad, ts_reason = timestamps(table.columns["timestamp"], zone)
    problems.add(ts_name, ts_bad, ts_reason)
    values: dict[str, np.ndarray] = {}
    for field in FIELDS[1:]:
        name = table.names[field]
        parsed, bad, reason = numbers(table.columns[field])
        problems.add(name, bad, reason)
        ok = ~bad
        with np.errstate(invalid="ignore"):
            problems.add(name, ok & np.isnan(parsed), "NaN is not a value")
            problems.add(name, ok & np.isinf(parsed), "infinite value")
            if field in _PRICES:
                problems.add(name, ok & (parsed <= 0), _got("price must be > 0", parsed))
            else:
                problems.add(name, ok & (parsed < 0), _got("volume must be >= 0", parsed))
        values[field] = parsed
    good = np.flatnonzero(~ts_bad)
    order = good[np.argsort(ts[good], kind="stable")]
    same = np.flatnonzero(ts[order][1:] == ts[order][:-1])
    if len(same):
        first_of = np.full(n, -1, dtype=np.int64)
        for k in same:  # each later row of a run points at the earliest row of its timestamp
            earlier, later = int(order[k]), int(order[k + 1])
            first_of[later] = first_of[earlier] if first_of[earlier] >= 0 else earlier
        where = "line" if table.csv else "row"
        problems.add(
            ts_name,
            first_of >= 0,
            lambda i: f"duplicate timestamp (same as {where} {table.place(int(first_of[i]))})",
        )
    problems.raise_first(table)
    if bool(np.all(ts[1:] > ts[:-1])):
        return Bars(ts, values["open"], values["high"], values["low"], values["close"], values["volume"])
    order = np.argsort(ts, kind="stable")
    return Bars(ts[order], *(values[f][order] for f in FIELDS[1:]))


def _got(text: str, parsed: np.ndarray) -> Reason:
    return lambda i: f"{text}, got {float(parsed[i])!r}"
