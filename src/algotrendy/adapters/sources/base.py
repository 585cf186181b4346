"""What every bar source promises, and the one place untrusted vendor rows become ``Bars``.

The contract (``services/marketdata/download.py`` relies on it, through its own copy of the
protocol shape, since services may not import adapters):

* ``fetch_bars(symbol, timeframe, *, start_ns, end_ns=None, limit=None)`` makes one page: at most
  ``limit`` (default ``page_limit``) bars with ``start_ns <= ts < end_ns`` (``end_ns=None`` means
  now), in strictly increasing time order. An empty page means the vendor has no bars in that
  range (window-based vendors step over gaps themselves, see each adapter).
* Timestamps are int64 nanoseconds, UTC. Intraday bars are labelled by their open time; daily and
  weekly bars by the session date at 00:00 UTC (``core.market``'s convention), whatever the
  vendor's own label (Alpaca and Polygon: midnight New York; Yahoo: the session's open).

Untrusted upstream data (RELIABILITY.md, API10). A vendor answer is checked at two levels:

* **The envelope** (not JSON, the wrong top-level shape, an error flag inside a 200): the page is
  refused with ``TemporaryError(code="bad_upstream_data")`` naming the source and the symbol.
  A body that is not JSON at all is retried first (proxies and CDNs answer with HTML pages).
  ``NaN``/``Infinity`` tokens are not JSON either: the httpx sources read them and reject the row
  that holds one; the ccxt source refuses the whole body, because ccxt's own parser does.
* **A row** (a field missing, not a number, NaN or infinite, a price <= 0 or above 1e15, a
  volume < 0, ``high < low``, ``high < max(open, close)``, ``low > min(open, close)``, a bad or
  repeated timestamp): that row is *rejected*. It is left out of the page, recorded in the
  page's ``rejected`` tuple (``SourceBars``) with its timestamp when known and the reason, and
  logged as ``sources.rows_rejected``. The download orchestrator counts these into its result
  and progress, so a page with rejected rows is flagged, never stored silently. An adapter built
  with ``strict=True`` raises ``TemporaryError(code="bad_upstream_data")`` on the first bad row
  instead of dropping it.

Rows outside the requested range, and the vendor's ordering (Coinbase answers newest first),
are not faults: out-of-range rows are dropped and pages are sorted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import structlog

from algotrendy.core.errors import Invalid, TemporaryError
from algotrendy.core.market import NS_PER_SECOND, AssetType, Bars, Timeframe

log = structlog.get_logger(__name__)

MAX_PRICE = 1e15
"""Prices above this are treated as corrupt (no instrument trades there)."""
MAX_VOLUME = 1e20
_MIN_TS = 0
_MAX_TS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND
NEW_YORK = ZoneInfo("America/New_York")

T = TypeVar("T")


class BarSource(Protocol):
    """A vendor that pages OHLCV history (see the module docstring for the contract)."""

    @property
    def name(self) -> str:
        """Stable id used in logs, errors and as the default venue: ``binance``, ``yahoo``..."""
        ...

    @property
    def asset_types(self) -> frozenset[AssetType]: ...

    @property
    def timeframes(self) -> frozenset[Timeframe]: ...

    @property
    def page_limit(self) -> int:
        """Most bars one ``fetch_bars`` call returns (the vendor's page size)."""
        ...

    @property
    def rate_limit(self) -> float:
        """Requests per second this source may be sent (the vendor's published budget)."""
        ...

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> Bars: ...


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A vendor row that failed validation: kept for the report, never stored."""

    ts: int | None
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class SourceBars(Bars):
    """``Bars`` as a source returns them, with the rows it rejected (empty when clean)."""

    rejected: tuple[RejectedRow, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.rejected


@dataclass(frozen=True, slots=True)
class OrderBook:
    """An order book snapshot: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    venue: str
    ts: int | None
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    rejected: tuple[RejectedRow, ...] = field(default=())


class BadRow(ValueError):
    """Raised by a vendor's row parser: the row is rejected with this reason."""


def bad_upstream(source: str, symbol: str, what: str) -> TemporaryError:
    """The error for an answer whose envelope cannot be trusted."""
    return TemporaryError(
        f"{source} sent an unusable answer for {symbol!r}: {what}", code="bad_upstream_data"
    )


def short(raw: object, limit: int = 160) -> str:
    """A bounded, printable rendering of untrusted data for logs and error messages."""
    text = repr(raw)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- field parsing ---------------------------------------------------------------------------


def number(value: object, name: str) -> float:
    """A finite float from a JSON number or decimal string; ``BadRow`` otherwise."""
    if value is None:
        raise BadRow(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRow(f"{name} is not a number: {short(value, 40)}")
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise BadRow(f"{name} is not a number: {short(value, 40)}") from None
    if not math.isfinite(out):
        raise BadRow(f"{name} is not finite: {short(value, 40)}")
    return out


def integer(value: object, name: str) -> int:
    """An int from a JSON integer, an integral float or a digit string; ``BadRow`` otherwise."""
    if value is None:
        raise BadRow(f"{name} is missing")
    if isinstance(value, bool):
        raise BadRow(f"{name} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise BadRow(f"{name} is not an integer: {short(value, 40)}")


def iso_to_ns(value: object, name: str = "time") -> int:
    """RFC 3339 / ISO-8601 (``Z`` or an offset; nanosecond fractions allowed) to ns UTC."""
    if not isinstance(value, str):
        raise BadRow(f"{name} is not a timestamp: {short(value, 40)}")
    text = value.strip()
    frac_ns = 0
    if "." in text:  # datetime.fromisoformat keeps microseconds only: split off the fraction
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        if not digits:
            raise BadRow(f"{name} is not a timestamp: {short(value, 40)}")
        frac_ns = int(digits[:9].ljust(9, "0"))
        text = head + tail
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRow(f"{name} is not a timestamp: {short(value, 40)}") from None
    if when.tzinfo is None:
        raise BadRow(f"{name} has no time zone: {short(value, 40)}")
    return int(when.timestamp()) * NS_PER_SECOND + frac_ns


def date_to_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * NS_PER_SECOND


def session_label(ts_ns: int, tz: tzinfo) -> int:
    """The 00:00 UTC label of the local session date that ``ts_ns`` falls on in ``tz``."""
    local = datetime.fromtimestamp(ts_ns // NS_PER_SECOND, tz)
    return date_to_ns(local.date())


def ns_to_datetime(ts_ns: int) -> datetime:
    """Exact to the microsecond (a float division would round 23:59:59.999999999 up a day)."""
    seconds, rest = divmod(int(ts_ns), NS_PER_SECOND)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def rfc3339(ts_ns: int) -> str:
    return ns_to_datetime(ts_ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_bar(
    o: float,
    h: float,
    lo: float,
    c: float,
    v: float,
    names: Sequence[str] = ("open", "high", "low", "close", "volume"),
) -> str | None:
    """Why an OHLCV row cannot be a real bar, or ``None`` when it can."""
    for name, price in zip(names, (o, h, lo, c), strict=False):
        if not price > 0:
            return f"{name} is not positive ({price!r})"
        if price > MAX_PRICE:
            return f"{name} is implausibly large ({price!r})"
    if not 0 <= v <= MAX_VOLUME:
        return f"{names[4]} is out of range ({v!r})"
    if h < lo:
        return f"high {h!r} is below low {lo!r}"
    if h < max(o, c):
        return f"high {h!r} is below open/close"
    if lo > min(o, c):
        return f"low {lo!r} is above open/close"
    return None


Row = tuple[int, float, float, float, float, float]
Parsed = tuple[int, Sequence[object]]
"""What a vendor's row parser returns: the bar's label (ns) and its raw open, high, low, close,
volume values, still unchecked (``build_page`` checks them, so a bad value keeps its ts)."""
FIELDS = ("open", "high", "low", "close", "volume")


def build_page(
    raw_rows: Iterable[T],
    parse: Callable[[T], Parsed],
    *,
    source: str,
    symbol: str,
    start_ns: int,
    end_ns: int | None,
    limit: int | None,
    strict: bool,
    rejected: Sequence[RejectedRow] = (),
    names: Sequence[str] = FIELDS,
) -> SourceBars:
    """Parse, validate, range-filter, sort and cap vendor rows into one page.

    ``parse`` turns one raw row into ``(ts_ns, [open, high, low, close, volume])`` and raises
    ``BadRow`` (or KeyError/IndexError/TypeError/ValueError) for a row it cannot read.
    """
    good: dict[int, Row] = {}
    bad: list[RejectedRow] = list(rejected)
    for raw in raw_rows:
        ts: int | None = None
        try:
            ts, values = parse(raw)
            if not _MIN_TS < ts < _MAX_TS:
                raise BadRow(f"timestamp out of range ({ts})")
            if len(values) != len(FIELDS):
                raise BadRow(f"{len(values)} values instead of OHLCV")
            o, h, lo, c, v = (number(x, name) for x, name in zip(values, names, strict=True))
            reason = check_bar(o, h, lo, c, v, names)
            if reason is not None:
                raise BadRow(reason)
            if ts in good:
                raise BadRow("duplicate timestamp")
        except (BadRow, KeyError, IndexError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, BadRow) else f"malformed row ({type(exc).__name__})"
            if strict:
                raise bad_upstream(source, symbol, f"{reason} in row {short(raw)}") from exc
            bad.append(RejectedRow(ts=ts, reason=reason, raw=short(raw)))
            continue
        if ts >= start_ns and (end_ns is None or ts < end_ns):
            good[ts] = (ts, o, h, lo, c, v)
    if bad:
        log.warning(
            "sources.rows_rejected",
            source=source,
            symbol=symbol,
            count=len(bad),
            first_reason=bad[0].reason,
            first_ts=bad[0].ts,
        )
    rows = [good[t] for t in sorted(good)]
    if limit is not None:
        rows = rows[:limit]
    return make_bars(rows, rejected=tuple(bad))


def make_bars(rows: Sequence[Row], *, rejected: tuple[RejectedRow, ...] = ()) -> SourceBars:
    if not rows:
        empty = Bars.empty()
        return SourceBars(
            empty.ts, empty.open, empty.high, empty.low, empty.close, empty.volume, rejected=rejected
        )
    cols = list(zip(*rows, strict=True))
    f64: Any = np.float64
    return SourceBars(
        np.asarray(cols[0], dtype=np.int64),
        np.asarray(cols[1], dtype=f64),
        np.asarray(cols[2], dtype=f64),
        np.asarray(cols[3], dtype=f64),
        np.asarray(cols[4], dtype=f64),
        np.asarray(cols[5], dtype=f64),
        rejected=rejected,
    )


def check_timeframe(source: str, timeframe: Timeframe, supported: frozenset[Timeframe]) -> None:
    if timeframe not in supported:
        have = ", ".join(str(t) for t in sorted(supported))
        raise Invalid(f"{source} has no {timeframe} bars; it serves {have}", field="timeframe")


def check_symbol(source: str, symbol: str, pattern: re.Pattern[str]) -> str:
    """Refuse a symbol the vendor cannot have before it reaches a URL path."""
    if not isinstance(symbol, str) or not pattern.fullmatch(symbol):
        raise Invalid(f"{short(symbol, 60)} is not a valid {source} symbol", field="symbol")
    return symbol
