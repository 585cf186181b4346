"""Turning a venue's untrusted stream into clean live updates (pure: no I/O, no asyncio).

- ``ohlcv_problem`` / ``trade_problem`` say why a parsed candle or trade must be dropped (NaN,
  infinite, missing, negative, inconsistent high/low, a timestamp from the future), or ``None``.
- ``BarTracker`` turns the candles a venue pushes for one series into ``BarUpdate``s: every change
  of the forming bar is a ``closed=False`` update, and a bar is closed (``closed=True``, once) when a
  candle with a newer timestamp arrives. Repeated identical candles, candles of bars that already
  closed and invalid candles produce nothing, so a resubscription after a reconnect (which resends
  the forming bar) never duplicates a closed bar. Candles held from before the subscription
  (``prime``) count only once they change.
- ``TradeTracker`` does the same for prints: valid, not seen before (by trade id), in order.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from algotrendy.core.market import BarUpdate, SeriesKey, Trade

NS_PER_MS = 1_000_000
_Candle = tuple[int, float, float, float, float, float]
_FIELDS = ("open", "high", "low", "close", "volume")


def _real(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (bools, strings, NaN and infinities are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _millis(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def ohlcv_problem(row: Any, *, now_ms: int, timeframe_ms: int) -> str | None:
    """Why the candle ``[ts_ms, open, high, low, close, volume]`` is unusable, or ``None`` if it is fine."""
    if not isinstance(row, Sequence) or isinstance(row, str) or len(row) < 6:
        return "not a [timestamp, open, high, low, close, volume] row"
    ts = _millis(row[0])
    if ts is None:
        return "timestamp missing or not an integer"
    if ts <= 0:
        return "timestamp not positive"
    if timeframe_ms < 86_400_000 and ts % timeframe_ms:
        return "timestamp not on a bar boundary"
    if ts > now_ms + 2 * timeframe_ms:
        return "timestamp in the future"
    values: list[float] = []
    for name, raw in zip(_FIELDS, row[1:6], strict=True):
        value = _real(raw)
        if value is None:
            return f"{name} missing, NaN or infinite"
        values.append(value)
    o, h, l, c, v = values  # noqa: E741
    if min(o, h, l, c) <= 0:
        return "price not positive"
    if v < 0:
        return "volume negative"
    if h < max(o, c, l) or l > min(o, c):
        return "high/low inconsistent with open/close"
    return None


def trade_problem(trade: Any, *, now_ms: int, max_ahead_ms: int = 60_000) -> str | None:
    """Why the ccxt trade structure ``trade`` is unusable, or ``None`` if it is fine."""
    if not isinstance(trade, Mapping):
        return "not a trade structure"
    ts = _millis(trade.get("timestamp"))
    if ts is None or ts <= 0:
        return "timestamp missing or not a positive integer"
    if ts > now_ms + max_ahead_ms:
        return "timestamp in the future"
    price, amount = _real(trade.get("price")), _real(trade.get("amount"))
    if price is None or price <= 0:
        return "price missing, not finite or not positive"
    if amount is None or amount <= 0:
        return "amount missing, not finite or not positive"
    return None


class _Seen:
    """A bounded set remembering the most recent ``capacity`` keys."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[Any, None] = OrderedDict()

    def add(self, key: Any) -> bool:
        """Remember ``key``; ``False`` if it was already there."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return True


@dataclass(frozen=True, slots=True)
class Rejected:
    """A candle or trade that was dropped, and why (first sighting only)."""

    reason: str
    item: str


@dataclass
class BarTracker:
    """Candles of one series in, ``BarUpdate``s out (see the module docstring)."""

    key: SeriesKey
    timeframe_ms: int
    _open: _Candle | None = None
    _history: dict[int, _Candle] = field(default_factory=dict)
    _rejected: _Seen = field(default_factory=lambda: _Seen(4096))

    def forming(self) -> BarUpdate | None:
        """The bar being formed (the latest ``closed=False`` state), if any."""
        return None if self._open is None else self._update(self._open, closed=False)

    def _update(self, row: _Candle, *, closed: bool) -> BarUpdate:
        ts, o, h, l, c, v = row  # noqa: E741
        return BarUpdate(self.key, ts * NS_PER_MS, o, h, l, c, v, closed)

    def prime(self, rows: Iterable[Any]) -> None:
        """Remember candles held from before this subscription: unchanged, they are history, not news."""
        for row in rows:
            candle = _candle(row)
            if candle is not None:
                self._history[candle[0]] = candle
            else:
                self._rejected.add(_fingerprint(row))

    def push(self, rows: Iterable[Any], *, now_ms: int) -> tuple[list[BarUpdate], list[Rejected]]:
        """Apply the candles the venue holds now (any order, repeats welcome).

        Returns the updates to emit, in order, and the candles rejected for the first time.
        """
        rejected: list[Rejected] = []
        news: list[_Candle] = []
        for row in rows:
            problem = ohlcv_problem(row, now_ms=now_ms, timeframe_ms=self.timeframe_ms)
            if problem is not None:
                if self._rejected.add(_fingerprint(row)):
                    rejected.append(Rejected(problem, repr(row)[:200]))
                continue
            candle = _candle(row)
            if candle is not None and self._history.get(candle[0]) != candle:
                news.append(candle)
        news.sort(key=lambda r: r[0])
        out: list[BarUpdate] = []
        for candle in news:
            current = self._open
            if current is not None:
                if candle[0] < current[0] or candle == current:
                    continue  # a bar that already closed, or nothing new
                if candle[0] > current[0]:
                    out.append(self._update(current, closed=True))
            self._open = candle
            out.append(self._update(candle, closed=False))
        return out, rejected


def _candle(row: Any) -> _Candle | None:
    try:
        return (int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]))
    except (TypeError, ValueError, IndexError, KeyError):
        return None


@dataclass
class TradeTracker:
    """ccxt trade structures of one market in, new valid ``Trade``s out, each print once."""

    symbol: str
    venue: str
    capacity: int = 8192
    _seen: _Seen = field(init=False)
    _rejected: _Seen = field(default_factory=lambda: _Seen(4096))

    def __post_init__(self) -> None:
        self._seen = _Seen(self.capacity)

    def prime(self, trades: Iterable[Any]) -> None:
        """Mark prints already held (from before this subscription) as seen, so they are not news."""
        for trade in trades:
            identity = _trade_identity(trade)
            if identity is not None:
                self._seen.add(identity)

    def push(self, trades: Iterable[Any], *, now_ms: int) -> tuple[list[Trade], list[Rejected]]:
        out: list[Trade] = []
        rejected: list[Rejected] = []
        for trade in trades:
            problem = trade_problem(trade, now_ms=now_ms)
            if problem is not None:
                if self._rejected.add(_fingerprint(trade)):
                    rejected.append(Rejected(problem, repr(trade)[:200]))
                continue
            if not self._seen.add(_trade_identity(trade)):
                continue
            trade_id = trade.get("id")
            ts = int(trade["timestamp"])
            price, amount = float(trade["price"]), float(trade["amount"])
            out.append(
                Trade(
                    self.symbol,
                    self.venue,
                    ts * NS_PER_MS,
                    price,
                    amount,
                    None if trade_id is None else str(trade_id),
                )
            )
        out.sort(key=lambda t: t.ts)
        return out, rejected


def _trade_identity(trade: Any) -> Any:
    """What makes a print unique: its venue id, else its time, price, size and side."""
    if not isinstance(trade, Mapping):
        return None
    trade_id = trade.get("id")
    if trade_id is not None:
        return ("id", str(trade_id))
    return ("print", trade.get("timestamp"), trade.get("price"), trade.get("amount"), trade.get("side"))


def _fingerprint(item: Any) -> Any:
    """A hashable stand-in for a rejected row or trade, so each is reported once."""
    key: Any
    if isinstance(item, Mapping):
        key = ("map", tuple((k, item.get(k)) for k in ("id", "timestamp", "price", "amount")))
    elif isinstance(item, Sequence) and not isinstance(item, str):
        key = ("seq", *item)
    else:
        key = ("obj", item)
    try:
        hash(key)
    except TypeError:
        return ("repr", repr(item)[:200])
    return key
