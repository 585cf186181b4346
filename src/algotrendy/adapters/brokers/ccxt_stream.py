"""A ccxt account's fills and events: ``fetch_my_trades`` paged forward, and ``events()`` as a
poll of the open orders and the new trades.

* **Fills** are asked per symbol where the exchange needs one (Binance: the symbols the adapter
  has traded, was given, or saw open orders in), paged forward and de-duplicated (Binance serves
  24 hours per request: the window steps forward).
* **Events.** Every ``poll_interval``: the open orders (a ``VenueOrder`` whenever an order's
  status or filled quantity changes, and the final state of an order that left the open list)
  and the trades since a few seconds before the stream started (a ``VenueFill`` each, possibly
  again later: the caller de-duplicates by ``trade_id``). A failed poll is logged and retried on
  the next tick; a malformed trade or order is logged and quarantined (not yielded). The stream
  ends when the venue closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import structlog

from algotrendy.core.venue import Venue, VenueDataError, VenueError, VenueEvent, VenueFill, VenueOrder
from algotrendy.db.waits import wait_event

from ._venue_common import Lru
from .ccxt_http import CcxtClient, short
from .ccxt_markets import CcxtMarkets

log = structlog.get_logger(__name__)

_PAGE = 1000
_MAX_PAGES = 50
_EVENTS_LOOKBACK_MS = 10_000
_BINANCE_TRADE_WINDOW_MS = 24 * 3_600_000


def fill_order(fill: VenueFill) -> tuple[int, str, int, str]:
    """Oldest first; within a millisecond by symbol, then by venue id (numeric ids by value)."""
    venue_id = fill.trade_id.partition(":")[2]
    return fill.ts_ns, fill.symbol, len(venue_id), venue_id


def _trade_order(raw: Any) -> tuple[int, str]:
    stamp = raw.get("timestamp") if isinstance(raw, dict) else None
    return (stamp if isinstance(stamp, int) else 0, str(raw.get("id")) if isinstance(raw, dict) else "")


async def trade_pages(client: CcxtClient, unified: str | None, since_ms: int | None) -> list[Any]:
    """Every raw ccxt trade of ``unified`` (every symbol: ``None``) from ``since_ms`` on (the
    latest page without it). Binance serves at most 24 hours from ``startTime``: the window steps
    forward until now."""
    window = _BINANCE_TRADE_WINDOW_MS if client.binance else None
    now_ms = int(time.time() * 1000)
    rows: list[Any] = []
    seen: set[tuple[Any, Any]] = set()
    for _ in range(_MAX_PAGES):
        params: dict[str, Any] = {}
        end = None
        if window is not None and since_ms is not None:
            end = since_ms + window - 1
            params["until"] = end
        page = await client.call(client.ex.fetch_my_trades, unified, since_ms, _PAGE, params, what="fills")
        if not isinstance(page, list):
            raise VenueDataError("trades answer is not a list")
        fresh = [t for t in page if not (isinstance(t, dict) and (t.get("symbol"), t.get("id")) in seen)]
        rows.extend(fresh)
        seen.update((t.get("symbol"), t.get("id")) for t in fresh if isinstance(t, dict))
        stamps = [t["timestamp"] for t in page if isinstance(t, dict) and isinstance(t.get("timestamp"), int)]
        latest = max(stamps, default=None)
        if len(page) >= _PAGE and fresh and latest is not None and (since_ms is None or latest > since_ms):
            since_ms = latest  # inclusive: that millisecond comes again, deduplicated
        elif end is not None and end < now_ms:
            since_ms = end + 1
        else:
            break
    else:
        log.warning("venue.fills_truncated", venue=client.name, symbol=unified, pages=_MAX_PAGES)
    return rows


class EventPoller:
    """One ``events()`` stream of a ccxt venue (see the module docstring)."""

    def __init__(
        self,
        venue: Venue,
        client: CcxtClient,
        markets: CcxtMarkets,
        *,
        seen_open: Mapping[str, VenueOrder],
        read_fill: Callable[[Any], Awaitable[VenueFill]],
        closed: asyncio.Event,
        interval: float,
    ) -> None:
        """``seen_open``: the venue's last view of each order it saw open, by client order id;
        ``read_fill``: a raw trade as a ``VenueFill`` (its client order id resolved)."""
        self._venue = venue
        self._client = client
        self._markets = markets
        self._seen_open = seen_open
        self._read_fill = read_fill
        self._closed = closed
        self._interval = interval

    async def run(self) -> AsyncIterator[VenueEvent]:
        await self._venue.connect()
        last: dict[str, tuple[str, Decimal]] = {
            cid: (o.status, o.filled_quantity) for cid, o in self._seen_open.items()
        }
        since: dict[str | None, int] = {}
        start_ms = int(time.time() * 1000) - _EVENTS_LOOKBACK_MS
        reported: Lru[None] = Lru()
        while not self._closed.is_set():
            try:
                orders = await self._poll_orders()
            except VenueError as exc:
                if self._closed.is_set():
                    return
                log.warning(
                    "venue.events_poll_failed", venue=self._client.name, what="orders", error=short(exc)
                )
                orders = []
            for order in orders:
                state = (order.status, order.filled_quantity)
                if last.get(order.client_order_id or order.venue_order_id) != state:
                    last[order.client_order_id or order.venue_order_id] = state
                    yield order
            for unified in self._markets.targets():
                async for fill in self._poll_trades(unified, since, start_ms, reported):
                    yield fill
            await wait_event(self._closed, self._interval)

    async def _poll_orders(self) -> list[VenueOrder]:
        """The open orders, then the final state of those that left the open list."""
        before = dict(self._seen_open)
        if self._client.binance:
            orders: list[VenueOrder] = []
            for symbol in list(self._markets.watch):
                orders.extend(await self._venue.open_orders(symbol=symbol))
        else:
            orders = await self._venue.open_orders()
        still = {o.client_order_id for o in orders}
        for cid, previous in before.items():
            if cid in still:
                continue
            try:
                final = await self._venue.fetch_order(client_order_id=cid, symbol=previous.symbol)
            except VenueError as exc:
                log.warning(
                    "venue.events_order_lookup_failed",
                    venue=self._client.name,
                    client_order_id=cid,
                    error=short(exc),
                )
                continue
            if final is not None:
                orders.append(final)
        return orders

    async def _poll_trades(
        self, unified: str | None, since: dict[str | None, int], start_ms: int, reported: Lru[None]
    ) -> AsyncIterator[VenueFill]:
        """New fills of ``unified`` (every symbol: ``None``); ``since`` moves past what was
        reported, but never past a trade that was quarantined or could not be resolved."""
        name = self._client.name
        try:
            rows = await trade_pages(self._client, unified, since.get(unified, start_ms))
        except VenueError as exc:
            if not self._closed.is_set():
                log.warning("venue.events_poll_failed", venue=name, what="trades", error=short(exc))
            return
        stamps = [t["timestamp"] for t in rows if isinstance(t, dict) and isinstance(t.get("timestamp"), int)]
        hold: int | None = None
        for raw in sorted(rows, key=_trade_order):
            try:
                fill = await self._read_fill(raw)
            except VenueError as exc:
                event = (
                    "venue.fill_quarantined"
                    if isinstance(exc, VenueDataError)
                    else "venue.events_poll_failed"
                )
                log.warning(event, venue=name, error=short(exc), raw=short(raw))
                stamp = raw.get("timestamp") if isinstance(raw, dict) else None
                held = stamp if isinstance(stamp, int) else since.get(unified, start_ms)
                hold = held if hold is None else min(hold, held)
                continue
            if fill.trade_id in reported:
                continue
            reported.put(fill.trade_id, None)
            yield fill
        if stamps:
            since[unified] = max(stamps) if hold is None else min(max(stamps), hold)
