"""Turning stored bars into what a caller asked for: the series to read, the time window, the
resampling, the chart style, the indicators, and the JSON columns.

Conventions (documented in the API):
- ``period`` counts back from the series' newest bar (not from today), so the bundled sample
  data, which ends years ago, answers ``period=1y`` with its last year. ``start``/``end`` are
  absolute (``start`` inclusive, ``end`` exclusive). With none of them, the last 1,000 bars.
- Indicators are computed with enough history before ``start`` (20x their lookback plus 1,000
  bars, read and then trimmed) that every returned value equals the one computed over the whole
  series, including EMA- and Wilder-smoothed ones that remember their entire past.
- A coarser ``interval`` than stored is resampled from the finest stored series that divides
  it: UTC days for crypto, the exchange session (America/New_York 09:30-16:00) for US stocks,
  ETFs and indices, and the 17:00 New York roll for FX. A partial first bucket is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from algotrendy.core.errors import Invalid, NotFound
from algotrendy.core.market import (
    F64,
    AssetType,
    Bars,
    SeriesInfo,
    SeriesKey,
    Timeframe,
)
from algotrendy.indicators.charts import apply_chart_style
from algotrendy.indicators.requests import IndicatorRequest, compute_request, parse_request
from algotrendy.indicators.resample import SessionSpec, resample
from algotrendy.indicators.schema import IndicatorError

DEFAULT_BARS = 1000
_PERIOD_DAYS = {
    "1d": 1,
    "5d": 5,
    "1w": 7,
    "1mo": 31,
    "3mo": 92,
    "6mo": 183,
    "1y": 366,
    "2y": 731,
    "5y": 1827,
    "10y": 3653,
}


def normalize_symbol(symbol: str) -> str:
    """``btc/usdt``, ``BTC-USDT`` and ``BTCUSDT`` are one symbol."""
    return symbol.strip().upper().replace("/", "").replace("-", "")


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def datetime_to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000) * 1000


def session_for(asset_type: AssetType) -> SessionSpec:
    if asset_type in (AssetType.STOCK, AssetType.ETF, AssetType.INDEX):
        return SessionSpec.us_equity()
    if asset_type is AssetType.FX:
        return SessionSpec.fx()
    return SessionSpec.utc_days()


def parse_interval(text: str) -> Timeframe:
    try:
        return Timeframe.parse(text)
    except ValueError as exc:
        raise Invalid(str(exc), field="interval", code="bad_interval") from None


def parse_indicators(specs: Sequence[str]) -> list[IndicatorRequest]:
    items = [part for spec in specs for part in spec.split(",") if part.strip()]
    if not items:
        return []
    try:
        return parse_request(items)
    except IndicatorError as exc:
        raise Invalid(str(exc), field="indicators", code="bad_indicator") from None


@dataclass(frozen=True, slots=True)
class Resolved:
    """Which stored series answers a request, and at which interval."""

    info: SeriesInfo
    target: Timeframe

    @property
    def key(self) -> SeriesKey:
        return self.info.key

    @property
    def ratio(self) -> int:
        return max(1, self.target.seconds // self.info.key.timeframe.seconds)


def resolve(catalog: Sequence[SeriesInfo], *, symbol: str, venue: str | None, interval: str) -> Resolved:
    """Pick the stored series for ``symbol`` (and ``venue``) that can produce ``interval``."""
    target = parse_interval(interval)
    wanted = normalize_symbol(symbol)
    mine = [s for s in catalog if s.key.symbol == wanted]
    if not mine:
        raise NotFound(
            f"unknown symbol {symbol!r}; GET /api/v1/market-data/symbols lists them",
            code="unknown_symbol",
            field="symbol",
        )
    if venue is not None:
        mine = [s for s in mine if s.key.venue.lower() == venue.lower()]
        if not mine:
            raise NotFound(f"no data for {wanted} on venue {venue!r}", code="unknown_venue", field="venue")
    venues = sorted({s.key.venue for s in mine})
    if len(venues) > 1:
        raise Invalid(
            f"{wanted} is stored for several venues ({', '.join(venues)}); pass venue=",
            field="venue",
            code="ambiguous_venue",
        )
    usable = [
        s
        for s in mine
        if target.seconds % s.key.timeframe.seconds == 0
        and (
            target.seconds < 86_400
            or s.key.timeframe.seconds <= 86_400
            or target.label == s.key.timeframe.label
        )
    ]
    if not usable:
        have = ", ".join(
            sorted({s.key.timeframe.label for s in mine}, key=lambda t: Timeframe.parse(t).seconds)
        )
        raise Invalid(
            f"{wanted} cannot be served at {target.label}: stored at {have}; use one of those or a "
            "whole multiple of one",
            field="interval",
            code="bad_interval",
        )
    exact = [s for s in usable if s.key.timeframe == target]
    chosen = exact[0] if exact else max(usable, key=lambda s: s.key.timeframe.seconds)
    return Resolved(chosen, target)


@dataclass(frozen=True, slots=True)
class Window:
    start: int | None
    end: int | None
    limit: int | None


def window(
    resolved: Resolved, *, period: str | None, start: datetime | None, end: datetime | None, limit: int | None
) -> Window:
    """The [start, end) span of the request in ns, counted back from the newest bar for ``period``."""
    if start is not None and end is not None and end <= start:
        raise Invalid("end must be after start", field="end", code="bad_window")
    end_ns = datetime_to_ns(end) if end is not None else None
    start_ns = datetime_to_ns(start) if start is not None else None
    if period is not None and start_ns is None:
        anchor = end_ns if end_ns is not None else resolved.info.last_ts + resolved.key.timeframe.nanos
        if period == "max":
            start_ns = None
        elif period == "ytd":
            year = ns_to_datetime(anchor - 1).year
            start_ns = datetime_to_ns(datetime(year, 1, 1, tzinfo=UTC))
        else:
            start_ns = anchor - int(timedelta(days=_PERIOD_DAYS[period]).total_seconds() * 1e9)
    if start_ns is None and end_ns is None and period is None and limit is None:
        limit = DEFAULT_BARS
    return Window(start_ns, end_ns, limit)


def shape(bars: Bars, resolved: Resolved, *, asset_type: AssetType) -> Bars:
    """Resample stored bars to the requested interval (no-op when they match)."""
    source = resolved.key.timeframe
    if source == resolved.target or len(bars) == 0:
        return bars
    try:
        out = resample(bars, source=source, target=resolved.target, session=session_for(asset_type))
    except ValueError as exc:
        raise Invalid(str(exc), field="interval", code="bad_interval") from None
    if out.incomplete_first and len(out) > 0:
        return out.slice(1, len(out))
    return out


def styled(bars: Bars, style: str, params: Mapping[str, object]) -> tuple[Bars, dict[str, np.ndarray]]:
    """Apply a chart style; returns the bars and the style's extra columns."""
    if style == "time" and not params:
        return bars, {}
    try:
        out = apply_chart_style(bars, style, params)
    except ValueError as exc:
        field = "chart_style" if "chart_style" in str(exc) else "style_params"
        raise Invalid(str(exc), field=field, code="bad_chart_style") from None
    return out, dict(out.columns)


def indicator_columns(bars: Bars, requests: Sequence[IndicatorRequest]) -> dict[str, F64]:
    if not requests:
        return {}
    try:
        return compute_request(list(requests), bars)
    except IndicatorError as exc:
        raise Invalid(str(exc), field="indicators", code="bad_indicator") from None


def warmup_bars(requests: Sequence[IndicatorRequest]) -> int:
    from algotrendy.indicators.catalog import get_spec

    return max((get_spec(r.name).warmup(r.params) for r in requests), default=0)


def trim(bars: Bars, columns: dict[str, np.ndarray], win: Window) -> tuple[Bars, dict[str, np.ndarray]]:
    """Cut to the requested window (after the indicators were computed with their warm-up)."""
    lo = 0 if win.start is None else int(np.searchsorted(bars.ts, win.start, side="left"))
    hi = len(bars) if win.end is None else int(np.searchsorted(bars.ts, win.end, side="left"))
    if win.limit is not None:
        lo = max(lo, hi - win.limit)
    return bars.slice(lo, hi), {k: v[lo:hi] for k, v in columns.items()}


def concat(a: Bars, b: Bars) -> Bars:
    if len(a) == 0:
        return b
    if len(b) == 0:
        return a
    return Bars(
        *(
            np.concatenate([getattr(a, c), getattr(b, c)])
            for c in ("ts", "open", "high", "low", "close", "volume")
        )
    )


def to_columns(bars: Bars, extra: Mapping[str, np.ndarray]) -> tuple[list[str], dict[str, list[Any]]]:
    """JSON columns: ISO-8601 UTC timestamps, numbers, ``null`` for NaN."""
    stamps = np.datetime_as_string(bars.ts.astype("datetime64[ns]"), unit="s")
    data: dict[str, list[Any]] = {"timestamp": [s + "Z" for s in stamps.tolist()]}
    for name in ("open", "high", "low", "close", "volume"):
        data[name] = getattr(bars, name).tolist()
    for name, values in extra.items():
        arr = np.asarray(values)
        if arr.dtype.kind == "f":
            nan = np.isnan(arr)
            if nan.any():
                obj = arr.astype(object)
                obj[nan] = None
                data[name] = obj.tolist()
            else:
                data[name] = arr.tolist()
        else:
            data[name] = arr.tolist()
    return list(data), data


def bars_from_columns(data: Mapping[str, Sequence[Any]]) -> Bars:
    """Parse the ``data`` of a transform request (validated; names the bad column and row)."""
    required = ("timestamp", "open", "high", "low", "close", "volume")
    missing = [c for c in required if c not in data]
    if missing:
        raise Invalid(f"data is missing column(s) {', '.join(missing)}", field="data", code="bad_data")
    n = len(data["timestamp"])
    if any(len(data[c]) != n for c in required):
        raise Invalid("data columns must all have the same length", field="data", code="bad_data")
    if n > 100_000:
        raise Invalid("at most 100,000 bars per transform", field="data", code="too_many_bars")
    ts = np.empty(n, dtype=np.int64)
    for i, value in enumerate(data["timestamp"]):
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                ts[i] = int(value) * 1_000_000  # epoch milliseconds
            else:
                ts[i] = datetime_to_ns(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
        except (TypeError, ValueError, OverflowError):
            raise Invalid(
                f"data.timestamp[{i}] is not an ISO-8601 time or epoch milliseconds",
                field="data.timestamp",
                code="bad_data",
            ) from None
    if n > 1 and bool(np.any(np.diff(ts) <= 0)):
        raise Invalid("data.timestamp must be strictly increasing", field="data.timestamp", code="bad_data")
    cols: dict[str, F64] = {}
    for c in required[1:]:
        try:
            arr = np.asarray(data[c], dtype=np.float64)
        except (TypeError, ValueError):
            raise Invalid(f"data.{c} must hold numbers", field=f"data.{c}", code="bad_data") from None
        if not np.all(np.isfinite(arr)):
            raise Invalid(f"data.{c} holds a missing or non-finite value", field=f"data.{c}", code="bad_data")
        cols[c] = arr
    return Bars(ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"])
