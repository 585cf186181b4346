"""Column parsers for ``files.read_bar_file``: numbers and timestamps, vectorised.

Each parser returns the values, a mask of the rows it could not parse, and the reason for a
bad row (one text for all, one per row, or a function of the row index), so the caller can
report the earliest bad row of the whole file. Values of bad rows are 0 and must be ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Reason = str | np.ndarray | Callable[[int], str]
Parsed = tuple[np.ndarray, np.ndarray, Reason]

_INTEGER = r"^[+-]?\d+$"
_HAS_OFFSET = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"  # applied to the text after the date part
# largest magnitude below the limit -> ns per unit: seconds, milliseconds, microseconds, else ns
_EPOCH_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))
_NULL = "empty value"


def reason_at(reason: Reason, index: int) -> str:
    if isinstance(reason, str):
        return reason
    if isinstance(reason, np.ndarray):
        return str(reason[index])
    return reason(index)


def _is_number_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _as_text(values: pa.Array) -> pa.Array:
    """Trimmed strings, nulls as ''."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return pc.utf8_trim_whitespace(values).fill_null("")


def numbers(values: pa.Array) -> Parsed:
    """float64 (correctly rounded from decimal text, or cast from a numeric column)."""
    n = len(values)
    if _is_number_type(values.type):
        nulls = values.is_null().to_numpy(zero_copy_only=False)
        out = pc.cast(values, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        return np.asarray(out, dtype=np.float64), nulls, _NULL
    texts = _as_text(values)
    try:
        out = pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(out, dtype=np.float64), np.zeros(n, dtype=bool), _NULL
    except pa.ArrowInvalid:
        pass
    # Slow path, only for a column that has a bad value: find every bad one.
    out = np.zeros(n, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    reasons = np.empty(n, dtype=object)
    for i, text in enumerate(texts.to_pylist()):
        try:
            if "_" in text:  # Python's float() accepts 1_000; CSV readers do not
                raise ValueError(text)
            out[i] = float(text)
        except ValueError:
            bad[i] = True
            reasons[i] = _NULL if not text else f"not a number: {text!r}"
    return out, bad, reasons


def timestamps(values: pa.Array, zone: ZoneInfo) -> Parsed:
    """int64 ns since the epoch, UTC, from epoch numbers, ISO-8601 text or Arrow timestamps."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        series = pd.Series(values.to_pandas())
        if pa.types.is_date(values.type) or getattr(values.type, "tz", None) is None:
            return _localize(pd.to_datetime(series), zone)
        return _ns(pd.to_datetime(series, utc=True)), series.isna().to_numpy(), _NULL
    if pa.types.is_integer(values.type):
        ints = values.cast(pa.int64())
        return _epoch(
            ints.fill_null(0).to_numpy(zero_copy_only=False), ints.is_null().to_numpy(zero_copy_only=False)
        )
    texts = _as_text(values)
    present = pc.not_equal(texts, "").to_numpy(zero_copy_only=False)
    if present.any():
        is_int = pc.match_substring_regex(texts, _INTEGER).to_numpy(zero_copy_only=False)
        if is_int[present].all():
            return _epoch_text(texts, present)
    return _iso(texts, zone)


def _epoch_text(texts: pa.Array, present: np.ndarray) -> Parsed:
    try:
        ints = pc.cast(pc.if_else(pa.array(present), texts, "0"), pa.int64()).to_numpy(zero_copy_only=False)
        return _epoch(ints, ~present)
    except pa.ArrowInvalid:  # a value beyond int64
        values = [int(text) if text else 0 for text in texts.to_pylist()]
        huge = np.array([abs(v) >= 2**63 for v in values], dtype=bool)
        ints = np.array([0 if h else v for v, h in zip(values, huge, strict=True)], dtype=np.int64)
        return _epoch(ints, ~present, huge)


def _iso(texts: pa.Array, zone: ZoneInfo) -> Parsed:
    n = len(texts)
    aware = pc.match_substring_regex(pc.utf8_slice_codeunits(texts, 10), _HAS_OFFSET).to_numpy(
        zero_copy_only=False
    )
    series = texts.to_pandas()
    ts = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    local_reason = np.full(n, None, dtype=object)
    if aware.any():
        parsed = pd.to_datetime(series[aware], format="ISO8601", utc=True, errors="coerce")
        ts[aware], bad[aware] = _ns(parsed), parsed.isna().to_numpy()
    if (~aware).any():
        parsed = pd.to_datetime(series[~aware], format="ISO8601", errors="coerce")
        unparsed = parsed.isna().to_numpy()
        local_ts, local_bad, reason = _localize(parsed, zone)
        ts[~aware], bad[~aware] = local_ts, local_bad
        local_reason[np.flatnonzero(~aware)[local_bad & ~unparsed]] = reason_at(reason, 0)

    def why(i: int) -> str:
        if local_reason[i] is not None:
            return str(local_reason[i])
        text = series.iloc[i]
        return _NULL if not text else f"not a timestamp: {text!r}"

    return ts, bad, why


def _localize(naive: pd.Series, zone: ZoneInfo) -> Parsed:
    """Zone-less times read as local times in ``zone``; a DST gap or overlap is a bad row."""
    missing = naive.isna().to_numpy()
    local = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    bad = local.isna().to_numpy()
    invalid = f"local time that does not exist or is ambiguous in {zone.key}"
    return _ns(local), bad, lambda i: _NULL if missing[i] else invalid


def _ns(parsed: pd.Series) -> np.ndarray:
    """int64 ns of a tz-aware datetime Series (NaT -> 0)."""
    values = parsed.dt.as_unit("ns").dt.tz_convert("UTC")
    out: np.ndarray = np.array(values.array.asi8, dtype=np.int64)
    out[values.isna().to_numpy()] = 0
    return out


def _epoch(ints: np.ndarray, missing: np.ndarray, huge: np.ndarray | None = None) -> Parsed:
    """Epoch numbers to ns; the unit follows the largest magnitude (see ``_EPOCH_UNITS``)."""
    valid = ~missing if huge is None else ~missing & ~huge
    magnitude = int(np.abs(ints[valid]).max()) if valid.any() else 0
    factor = next((f for limit, f in _EPOCH_UNITS if magnitude < limit), 1)
    out_of_range = np.abs(ints) > np.iinfo(np.int64).max // factor
    if huge is not None:
        out_of_range |= huge
    ts: np.ndarray = np.where(out_of_range, 0, ints * factor)
    return ts, missing | out_of_range, lambda i: _NULL if missing[i] else "epoch number out of range"
