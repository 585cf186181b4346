"""What both bar stores share: key columns, input checks, the catalog row type.

Both stores keep timestamps as BIGINT nanoseconds since the epoch (UTC), exactly the
``Bars.ts`` values, so a round trip is bit-exact and reads need no conversion. The timeframe
column holds a canonical label (``60m`` and ``1h`` are the same ``Timeframe``, stored as ``1h``).
"""

from __future__ import annotations

import hashlib

import numpy as np

from algotrendy.core.errors import Invalid
from algotrendy.core.market import AssetType, Bars, SeriesInfo, SeriesKey, Timeframe

BARS_TABLE = "marketdata_bars"
SERIES_TABLE = "marketdata_series"
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
COLUMNS = ("ts", *PRICE_COLUMNS)

_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60))


def timeframe_label(tf: Timeframe) -> str:
    """The canonical label of ``tf`` (largest whole unit): 60m -> 1h, 7d -> 1w, 90m -> 90m."""
    for unit, seconds in _UNITS:
        if tf.seconds % seconds == 0:
            return f"{tf.seconds // seconds}{unit}"
    return f"{tf.seconds}s"  # pragma: no cover - Timeframe.parse only makes whole minutes


def key_params(key: SeriesKey) -> tuple[str, str, str]:
    if not key.symbol or not key.venue:
        raise Invalid(
            "a series key needs a symbol and a venue", field="symbol" if not key.symbol else "venue"
        )
    return key.symbol, key.venue, timeframe_label(key.timeframe)


def series_lock_id(key: SeriesKey) -> int:
    """A stable signed 64-bit id of the series (for PostgreSQL advisory locks)."""
    digest = hashlib.blake2b(str(key_params(key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def checked_columns(bars: Bars) -> dict[str, np.ndarray]:
    """The bars as contiguous int64/float64 arrays; refuses timestamps that are not strictly increasing."""
    ts = np.ascontiguousarray(bars.ts, dtype=np.int64)
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        bad = int(np.argmax(ts[1:] <= ts[:-1])) + 1
        raise Invalid(
            f"bars.ts must be strictly increasing (row {bad}: {ts[bad]} after {ts[bad - 1]})", field="ts"
        )
    cols: dict[str, np.ndarray] = {"ts": ts}
    for name in PRICE_COLUMNS:
        cols[name] = np.ascontiguousarray(getattr(bars, name), dtype=np.float64)
    return cols


def check_read_args(limit: int | None) -> None:
    """``limit`` must not be negative (an empty or inverted [start, end) simply reads nothing)."""
    if limit is not None and limit < 0:
        raise Invalid(f"limit must be >= 0, got {limit}", field="limit")


def series_info(
    symbol: str, venue: str, timeframe: str, asset_type: str, first_ts: int, last_ts: int, count: int
) -> SeriesInfo:
    return SeriesInfo(
        key=SeriesKey(symbol, venue, Timeframe.parse(timeframe)),
        asset_type=AssetType(asset_type),
        first_ts=int(first_ts),
        last_ts=int(last_ts),
        count=int(count),
    )


def sort_catalog(rows: list[SeriesInfo]) -> list[SeriesInfo]:
    return sorted(rows, key=lambda s: (s.key.symbol, s.key.venue, s.key.timeframe.seconds))
