"""A fake Binance spot market-data venue on 127.0.0.1: websocket streams plus the one REST call
ccxt needs (``GET /api/v3/exchangeInfo``), both served on one free port.

The websocket side speaks Binance's real protocol for raw streams (``/ws``):

- the client sends ``{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}`` and gets
  the ack ``{"result": null, "id": 1}`` (``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS`` too; anything
  else gets Binance's ``{"error": {"code": 2, ...}, "id": ...}``);
- events are pushed unwrapped, in Binance's kline and trade stream formats (see ``kline_event``
  and ``trade_event``), only to connections subscribed to their stream.

The test drives it: ``send_kline`` / ``send_trade`` push an event to the subscribers,
``send_raw`` pushes anything (malformed messages), ``drop`` kills every connection (abruptly by
default, as a network loss does), ``wait_subscribed`` waits until a client has subscribed.

Point ccxt.pro at it with ``ccxt_urls()``; its ws URL keeps ``/stream`` in the path because
ccxt.pro's binance decides "spot" vs "contract" by looking for ``/stream`` in the URL (the real
host is ``stream.binance.com``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.binance import symbol_info

_INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}


def kline_event(
    symbol: str,
    interval: str,
    open_ms: int,
    open_: float | str,
    high: float | str,
    low: float | str,
    close: float | str,
    volume: float | str,
    *,
    closed: bool = False,
    event_ms: int | None = None,
    trades: int = 10,
) -> dict[str, Any]:
    """A Binance ``<symbol>@kline_<interval>`` event, values as strings as Binance sends them."""
    close_ms = open_ms + _INTERVAL_MS[interval] - 1
    return {
        "e": "kline",
        "E": event_ms if event_ms is not None else int(time.time() * 1000),
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": close_ms,
            "s": symbol,
            "i": interval,
            "f": 100,
            "L": 100 + trades,
            "o": str(open_),
            "c": str(close),
            "h": str(high),
            "l": str(low),
            "v": str(volume),
            "n": trades,
            "x": closed,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def trade_event(
    symbol: str,
    trade_id: int,
    price: float | str,
    qty: float | str,
    trade_ms: int,
    *,
    buyer_is_maker: bool = False,
    event_ms: int | None = None,
) -> dict[str, Any]:
    """A Binance ``<symbol>@trade`` event."""
    return {
        "e": "trade",
        "E": event_ms if event_ms is not None else int(time.time() * 1000),
        "s": symbol,
        "t": trade_id,
        "p": str(price),
        "q": str(qty),
        "T": trade_ms,
        "m": buyer_is_maker,
        "M": True,
    }


@dataclass
class _Conn:
    ws: ServerConnection
    path: str
    streams: set[str] = field(default_factory=set)


class FakeBinanceWs:
    """Fake Binance spot streams + exchangeInfo. ``async with FakeBinanceWs() as fake: ...``."""

    def __init__(
        self,
        symbols: Iterable[tuple[str, str, str]] = (("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")),
    ) -> None:
        self._symbols = list(symbols)
        self._server: Server | None = None
        self._conns: list[_Conn] = []
        self._changed = asyncio.Condition()
        self.port = 0
        self.connections_total = 0
        self.rest_requests: list[str] = []
        self.received: list[Any] = []
        """Every JSON message clients sent (subscriptions), in order."""

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeBinanceWs:
        """Listen on a free port, or on the previous one after ``stop()`` (a venue coming back)."""
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            ping_interval=None,
            compression=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeBinanceWs:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    def ccxt_urls(self) -> dict[str, Any]:
        """What to deep-merge into a ccxt.pro binance ``urls``: spot websocket and public REST here."""
        return {"api": {"ws": {"spot": self.ws_url, "margin": self.ws_url}, "public": self.rest_url}}

    # ---- REST --------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.rest_requests.append(request.path)
        if request.path.split("?")[0] == "/api/v3/exchangeInfo":
            body = {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [symbol_info(*s) for s in self._symbols],
            }
            return _json_response(200, body)
        return _json_response(404, {"code": -1121, "msg": "Invalid symbol."})

    # ---- websocket ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Conn(ws, ws.request.path if ws.request else "")
        self._conns.append(conn)
        self.connections_total += 1
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
                    continue
                self.received.append(msg)
                await self._command(conn, msg)
        except ConnectionClosed:
            pass
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            async with self._changed:
                self._changed.notify_all()

    async def _command(self, conn: _Conn, msg: Any) -> None:
        method = msg.get("method") if isinstance(msg, dict) else None
        req_id = msg.get("id") if isinstance(msg, dict) else None
        params = msg.get("params", []) if isinstance(msg, dict) else []
        if method == "SUBSCRIBE":
            conn.streams.update(str(p) for p in params)
            await conn.ws.send(json.dumps({"result": None, "id": req_id}))
            async with self._changed:
                self._changed.notify_all()
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(str(p) for p in params)
            await conn.ws.send(json.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send(json.dumps({"result": sorted(conn.streams), "id": req_id}))
        else:
            await conn.ws.send(
                json.dumps({"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": req_id})
            )

    def subscribers(self, stream: str) -> int:
        return sum(1 for c in self._conns if stream in c.streams)

    async def wait_subscribed(self, stream: str, *, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` live connections subscribe to ``stream`` (``btcusdt@kline_1m``)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.subscribers(stream) >= count)

    async def wait_disconnected(self, *, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: not self._conns)

    # ---- pushing -----------------------------------------------------------------------------

    async def publish(self, stream: str, message: Any) -> int:
        """Send ``message`` (a dict is JSON-encoded) to every connection subscribed to ``stream``."""
        text = message if isinstance(message, str) else json.dumps(message)
        sent = 0
        for conn in list(self._conns):
            if stream in conn.streams:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(text)
                    sent += 1
        return sent

    async def send_kline(
        self,
        symbol: str,
        interval: str,
        open_ms: int,
        open_: float | str,
        high: float | str,
        low: float | str,
        close: float | str,
        volume: float | str,
        *,
        closed: bool = False,
    ) -> int:
        """Push one kline event; returns how many connections it went to."""
        event = kline_event(symbol, interval, open_ms, open_, high, low, close, volume, closed=closed)
        return await self.publish(f"{symbol.lower()}@kline_{interval}", event)

    async def send_trade(
        self,
        symbol: str,
        trade_id: int,
        price: float | str,
        qty: float | str,
        trade_ms: int,
        *,
        buyer_is_maker: bool = False,
    ) -> int:
        stream = f"{symbol.lower()}@trade"
        return await self.publish(
            stream, trade_event(symbol, trade_id, price, qty, trade_ms, buyer_is_maker=buyer_is_maker)
        )

    async def send_raw(self, message: Any, *, stream: str | None = None) -> int:
        """Send anything (malformed JSON, wrong types) to subscribers of ``stream`` (or everyone)."""
        if stream is not None:
            return await self.publish(stream, message)
        text = message if isinstance(message, str) else json.dumps(message)
        for conn in list(self._conns):
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(text)
        return len(self._conns)

    async def drop(self, *, abrupt: bool = True) -> int:
        """Cut every connection: abruptly (TCP reset, no close frame) or with a 1001 close frame."""
        conns = list(self._conns)
        self._conns.clear()  # gone for publish/wait_subscribed now, not when the handler notices
        for conn in conns:
            if abrupt:
                conn.ws.transport.abort()
            else:
                await conn.ws.close(1001, "going away")
        return len(conns)


def _json_response(status: int, body: Any) -> Response:
    data = json.dumps(body).encode()
    headers = Headers(
        [("Content-Type", "application/json;charset=UTF-8"), ("Content-Length", str(len(data)))]
    )
    return Response(status, "OK" if status == 200 else "Not Found", headers, data)
