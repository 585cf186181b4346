"""Any ccxt exchange (binance, coinbaseexchange, kraken, ...) as a source, on async ccxt.

* ``fetch_bars`` -> ``fetch_ohlcv``; ``fetch_trades`` -> ``list[Trade]``; ``fetch_order_book``
  -> ``OrderBook`` (bids best first, asks best first).
* ``urls`` overrides entries of ``exchange.urls['api']`` (``{"public": "http://127.0.0.1:8000/api/v3"}``);
  ``rehost_api_urls(exchange_id, base)`` builds that mapping for every REST entry, which is how
  tests point ccxt at a fake venue. ``markets`` (a list of ccxt market dicts) are installed with
  ``set_markets`` so nothing is loaded from the network; without them ``load_markets`` runs once,
  through the (possibly overridden) URLs. Currency metadata is not loaded (a data source does not
  need it, and several venues serve it only to signed requests).
* Retries follow ``_http.RetryPolicy``. ccxt's exception classes alone cannot tell a bad symbol
  from an outage (it maps HTTP 400 and 404 to ``ExchangeNotAvailable``), so the adapter hooks
  ``on_rest_response`` to see the real status and headers of each call (kept per task in a
  context variable): 408/418/425/429/5xx, timeouts and connection errors are retried, honouring
  ``Retry-After``; other 4xx and ``BadSymbol`` are final (``NotFound``/``Invalid``/
  ``ConfigurationError``).
* Untrusted rows follow ``base``: ccxt parses the vendor's strings, then every row is checked
  again; rows ccxt yields as None/NaN/negative are rejected and reported. An answer ccxt itself
  cannot parse raises ``TemporaryError(code="bad_upstream_data")``.
* Window-based venues (Coinbase: at most 300 candles between ``start`` and ``end``) are asked in
  windows of ``limit`` bars; empty windows are stepped over, up to ``max_gap_windows``.
  Kraken's OHLC endpoint only ever serves its latest 720 bars: deep history is not available
  from it (``fetch_bars`` still answers, with what Kraken has after ``start_ns``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import ccxt
import ccxt.async_support as ccxt_async
import structlog

from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.errors import AlgoTrendyError, ConfigurationError, Invalid, NotFound
from algotrendy.core.market import AssetType, Timeframe, Trade

from ._http import RETRY_STATUSES, Retrier, RetryPolicy, Sleep, client_error, error_text, retry_after_seconds
from .base import (
    BadRow,
    OrderBook,
    Parsed,
    RejectedRow,
    SourceBars,
    bad_upstream,
    build_page,
    check_timeframe,
    integer,
    make_bars,
    number,
    short,
)

log = structlog.get_logger(__name__)

_NS_PER_MS = 1_000_000
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # spot only (no futures exchangeInfo calls), and the plain /api/v3/trades endpoint
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchTradesMethod": "publicGetTrades"},
    "binanceus": {"fetchMarkets": {"types": ["spot"]}, "fetchTradesMethod": "publicGetTrades"},
}
_PAGE_LIMITS = {
    "binance": 1000,
    "binanceus": 1000,
    "kraken": 720,
    "coinbaseexchange": 300,
    "coinbase": 300,
    "bybit": 1000,
    "okx": 300,
    "kucoin": 1500,
    "bitfinex": 10_000,
}
_UNTIL = frozenset({"binance", "binanceus", "bybit", "okx", "kucoin", "bitfinex"})
"""Exchanges whose fetch_ohlcv honours ccxt's ``until`` param (others would forward it raw)."""
_UNKNOWN_SYMBOL = re.compile(
    r"unknown asset pair|invalid symbol|unknown symbol|symbol not found|"
    r"unknown product|product not found",
    re.IGNORECASE,
)
"""Venue messages that mean "no such market" where ccxt raises a plain ExchangeError (Kraken)."""
_WINDOWED = frozenset({"coinbaseexchange", "coinbase"})
"""Exchanges that answer a start..end window rather than "the first N bars from start"."""


@dataclass(slots=True)
class _Http:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    unparsable: bool = False
    """A 2xx whose body ccxt's JSON parser refused (ccxt would carry on as if it were empty)."""


_LAST_HTTP: contextvars.ContextVar[_Http | None] = contextvars.ContextVar("ccxt_last_http", default=None)


def rehost_api_urls(exchange_id: str, base_url: str) -> dict[str, str]:
    """``exchange.urls['api']`` with every http(s) entry moved to ``base_url`` (path kept)."""
    exchange = _exchange_class(exchange_id)({})
    api = exchange.urls.get("api")
    if not isinstance(api, dict):
        api = {"public": api}
    new = urlsplit(base_url)
    out: dict[str, str] = {}
    for key, url in api.items():
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            old = urlsplit(url)
            out[key] = urlunsplit((new.scheme, new.netloc, new.path.rstrip("/") + old.path, "", ""))
    return out


def _exchange_class(exchange_id: str) -> Any:
    if exchange_id not in ccxt_async.exchanges:
        raise ConfigurationError(f"ccxt has no exchange {exchange_id!r}")
    return getattr(ccxt_async, exchange_id)


class CcxtSource:
    def __init__(
        self,
        exchange_id: str,
        *,
        urls: Mapping[str, str] | None = None,
        markets: Sequence[Mapping[str, Any]] | None = None,
        options: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        secret: str | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        page_limit: int | None = None,
        strict: bool = False,
        max_gap_windows: int = 200,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": int(timeout * 1000),
            "options": {**_DEFAULT_OPTIONS.get(exchange_id, {}), **(options or {})},
        }
        if rate_limit is not None:
            if not rate_limit > 0:
                raise ValueError("rate_limit must be positive")
            config["rateLimit"] = 1000.0 / rate_limit
        if api_key is not None:
            config["apiKey"], config["secret"] = api_key, secret
        self._id = exchange_id
        self._ex = _exchange_class(exchange_id)(config)
        self._name = name or exchange_id
        if urls:
            api = self._ex.urls.get("api")
            self._ex.urls["api"] = {**(api if isinstance(api, dict) else {}), **dict(urls)}
        self._ex.has["fetchCurrencies"] = False
        original = self._ex.on_rest_response
        self._ex.on_rest_response = _recording(original, self._ex.parse_json)
        if markets is not None:
            self._ex.set_markets([dict(m) for m in markets])
        self._page_limit = int(page_limit or _PAGE_LIMITS.get(exchange_id, 500))
        self._strict = strict
        self._max_gap_windows = max_gap_windows
        self._clock: Clock = clock or SystemClock()
        self._retry = Retrier(
            source=self._name,
            policy=retry or RetryPolicy(),
            clock=self._clock,
            sleep=sleep or asyncio.sleep,
            rng=rng or random.Random(),  # noqa: S311 (retry jitter, not a secret)
        )
        self._markets_lock = asyncio.Lock()
        self._timeframes = frozenset(_parse_timeframes(self._ex.timeframes or {}))

    # ---- metadata ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def asset_types(self) -> frozenset[AssetType]:
        return frozenset({AssetType.CRYPTO})

    @property
    def timeframes(self) -> frozenset[Timeframe]:
        return self._timeframes

    @property
    def page_limit(self) -> int:
        return self._page_limit

    @property
    def rate_limit(self) -> float:
        return 1000.0 / float(self._ex.rateLimit)

    @property
    def exchange(self) -> Any:
        """The underlying ccxt exchange (for calls this adapter does not wrap)."""
        return self._ex

    async def close(self) -> None:
        await self._ex.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- bars --------------------------------------------------------------------------------

    async def fetch_bars(
        self,
        symbol: str,
        timeframe: Timeframe,
        *,
        start_ns: int,
        end_ns: int | None = None,
        limit: int | None = None,
    ) -> SourceBars:
        check_timeframe(self._name, timeframe, self._timeframes)
        market = await self._market(symbol)
        limit = min(limit or self._page_limit, self._page_limit)
        if self._id not in _WINDOWED:
            params: dict[str, Any] = {}
            if end_ns is not None and self._id in _UNTIL:
                params["until"] = (end_ns - 1) // _NS_PER_MS
            return await self._ohlcv(symbol, market, timeframe, start_ns, end_ns, limit, params)
        end = end_ns if end_ns is not None else self._now_ns()
        start = start_ns
        for _ in range(self._max_gap_windows):
            if start >= end:
                break
            window_end = min(end, start + limit * timeframe.nanos)
            params = {"until": (window_end - 1) // _NS_PER_MS}
            page = await self._ohlcv(symbol, market, timeframe, start, window_end, limit, params)
            if len(page) or page.rejected:
                return page
            start = window_end
            await self._retry.sleep(1.0 / self.rate_limit)
        else:
            log.warning(
                "sources.gap_too_long",
                source=self._name,
                symbol=symbol,
                windows=self._max_gap_windows,
                stopped_at=start,
            )
        return make_bars([])

    async def _ohlcv(
        self,
        symbol: str,
        market: str,
        timeframe: Timeframe,
        start_ns: int,
        end_ns: int | None,
        limit: int,
        params: dict[str, Any],
    ) -> SourceBars:
        since_ms = -(-start_ns // _NS_PER_MS)
        rows = await self._call(
            self._ex.fetch_ohlcv, market, timeframe.label, since_ms, limit, params, symbol=symbol
        )
        if not isinstance(rows, list):
            raise bad_upstream(self._name, symbol, "OHLCV is not a list")

        def parse(row: Any) -> Parsed:
            if not isinstance(row, list | tuple) or not row:
                raise BadRow(f"not an OHLCV row: {short(row, 60)}")
            values = [row[k] if k < len(row) else None for k in range(1, 6)]
            return integer(row[0], "timestamp") * _NS_PER_MS, values

        return build_page(
            rows,
            parse,
            source=self._name,
            symbol=symbol,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=limit,
            strict=self._strict,
        )

    # ---- trades and order book ---------------------------------------------------------------

    async def fetch_trades(
        self, symbol: str, *, since_ns: int | None = None, limit: int | None = None
    ) -> list[Trade]:
        """Recent trades (oldest first); rows that fail validation are logged and left out."""
        market = await self._market(symbol)
        since_ms = None if since_ns is None else -(-since_ns // _NS_PER_MS)
        raw = await self._call(self._ex.fetch_trades, market, since_ms, limit, {}, symbol=symbol)
        if not isinstance(raw, list):
            raise bad_upstream(self._name, symbol, "trades are not a list")
        trades: dict[tuple[str | None, int, float, float], Trade] = {}
        bad: list[RejectedRow] = []
        for item in raw:
            try:
                trade = self._trade(symbol, item)
            except (BadRow, KeyError, TypeError, ValueError) as exc:
                if self._strict:
                    raise bad_upstream(self._name, symbol, f"{exc} in trade {short(item)}") from exc
                bad.append(RejectedRow(ts=None, reason=str(exc), raw=short(item)))
                continue
            trades.setdefault((trade.trade_id, trade.ts, trade.price, trade.size), trade)
        if bad:
            log.warning(
                "sources.rows_rejected",
                source=self._name,
                symbol=symbol,
                kind="trade",
                count=len(bad),
                first_reason=bad[0].reason,
            )
        return sorted(trades.values(), key=lambda t: t.ts)

    def _trade(self, symbol: str, item: Any) -> Trade:
        if not isinstance(item, dict):
            raise BadRow("trade is not an object")
        ts = integer(item.get("timestamp"), "timestamp") * _NS_PER_MS
        price = number(item.get("price"), "price")
        size = number(item.get("amount"), "amount")
        if not price > 0 or not size > 0:
            raise BadRow(f"price/amount not positive ({price!r}, {size!r})")
        trade_id = item.get("id")
        return Trade(
            symbol=symbol,
            venue=self._name,
            ts=ts,
            price=price,
            size=size,
            trade_id=str(trade_id) if trade_id is not None else None,
        )

    async def fetch_order_book(self, symbol: str, *, limit: int | None = None) -> OrderBook:
        """A snapshot; a bad level is left out and reported, a crossed book is refused."""
        market = await self._market(symbol)
        raw = await self._call(self._ex.fetch_order_book, market, limit, {}, symbol=symbol)
        if not isinstance(raw, dict):
            raise bad_upstream(self._name, symbol, "order book is not an object")
        bad: list[RejectedRow] = []
        bids = self._levels(raw.get("bids"), "bid", symbol, bad)
        asks = self._levels(raw.get("asks"), "ask", symbol, bad)
        bids.sort(key=lambda lv: -lv[0])
        asks.sort(key=lambda lv: lv[0])
        if bids and asks and bids[0][0] >= asks[0][0]:
            raise bad_upstream(self._name, symbol, f"crossed book (bid {bids[0][0]} >= ask {asks[0][0]})")
        ts = raw.get("timestamp")
        return OrderBook(
            symbol=symbol,
            venue=self._name,
            ts=ts * _NS_PER_MS if isinstance(ts, int) and not isinstance(ts, bool) else None,
            bids=tuple(bids),
            asks=tuple(asks),
            rejected=tuple(bad),
        )

    def _levels(self, raw: Any, side: str, symbol: str, bad: list[RejectedRow]) -> list[tuple[float, float]]:
        if not isinstance(raw, list):
            raise bad_upstream(self._name, symbol, f"{side}s are not a list")
        out: list[tuple[float, float]] = []
        for level in raw:
            try:
                if not isinstance(level, list | tuple) or len(level) < 2:
                    raise BadRow(f"{side} level is not [price, size]")
                price, size = number(level[0], "price"), number(level[1], "size")
                if not price > 0 or not size > 0:
                    raise BadRow(f"{side} level not positive ({price!r}, {size!r})")
            except BadRow as exc:
                if self._strict:
                    raise bad_upstream(self._name, symbol, str(exc)) from exc
                bad.append(RejectedRow(ts=None, reason=str(exc), raw=short(level)))
                continue
            out.append((price, size))
        if bad:
            log.warning(
                "sources.rows_rejected",
                source=self._name,
                symbol=symbol,
                kind="book",
                count=len(bad),
                first_reason=bad[0].reason,
            )
        return out

    # ---- plumbing ----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock.now().timestamp() * 1_000_000) * 1000

    async def _market(self, symbol: str) -> str:
        """The unified ccxt symbol for ``symbol`` (a unified symbol or the venue's own id)."""
        if not self._ex.markets:
            async with self._markets_lock:
                if not self._ex.markets:
                    await self._call(self._ex.load_markets, symbol=symbol)
        if symbol in self._ex.markets:
            return symbol
        by_id = (self._ex.markets_by_id or {}).get(symbol)
        if by_id:
            return str(by_id[0]["symbol"])
        raise NotFound(f"{self._name} has no market {short(symbol, 60)}")

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, symbol: str) -> Any:
        attempt = 0
        while True:
            attempt += 1
            record = _Http()
            token = _LAST_HTTP.set(record)
            try:
                result = await fn(*args)
                if not record.unparsable:
                    return result
                reason, retry_after = f"a body that is not JSON: {short(record.body[:80])}", None
            except ccxt.BadSymbol as exc:
                what = f"{short(symbol, 60)}: {short(str(exc), 120)}"
                raise NotFound(f"{self._name} has no market {what}") from exc
            except ccxt.BadResponse as exc:  # ccxt could not read the answer at all
                what = f"{type(exc).__name__}: {short(str(exc), 120)}"
                raise bad_upstream(self._name, symbol, what) from exc
            except (ccxt.OperationFailed, ccxt.ExchangeError) as exc:
                final = self._final(exc, record, symbol)
                if final is not None:
                    raise final from exc
                reason = f"HTTP {record.status}" if record.status else type(exc).__name__
                retry_after = retry_after_seconds(record.headers, self._clock.now().timestamp())
            except ccxt.BaseError as exc:
                what = f"{type(exc).__name__}: {short(str(exc), 120)}"
                raise bad_upstream(self._name, symbol, what) from exc
            except AlgoTrendyError:
                raise
            except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
                what = f"ccxt could not parse it ({type(exc).__name__})"
                raise bad_upstream(self._name, symbol, what) from exc
            finally:
                _LAST_HTTP.reset(token)
            await self._retry.wait(attempt=attempt, symbol=symbol, reason=reason, retry_after=retry_after)

    def _final(self, exc: Exception, record: _Http, symbol: str) -> AlgoTrendyError | None:
        """The error to raise now, or ``None`` when ``exc`` is worth a retry."""
        status = record.status
        if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
            try:
                body: Any = json.loads(record.body)
            except ValueError:
                body = record.body
            return client_error(self._name, status, error_text(body), symbol)
        if isinstance(exc, ccxt.OperationFailed) or (status is not None and status >= 500):
            return None
        if _UNKNOWN_SYMBOL.search(str(exc)):
            return NotFound(f"{self._name} has no market {short(symbol, 60)}: {short(str(exc), 120)}")
        if isinstance(exc, ccxt.AuthenticationError):
            return ConfigurationError(f"{self._name} refused the credentials: {short(str(exc), 120)}")
        if isinstance(exc, ccxt.BadRequest | ccxt.ArgumentsRequired | ccxt.NotSupported):
            what = f"{short(symbol, 60)}: {short(str(exc), 120)}"
            return Invalid(f"{self._name} rejected the request for {what}", field="symbol")
        return bad_upstream(self._name, symbol, f"{type(exc).__name__}: {short(str(exc), 120)}")


def _recording(original: Callable[..., Any], parse_json: Callable[[str], Any]) -> Callable[..., Any]:
    def on_rest_response(
        code: int, reason: str, url: str, method: str, headers: Any, body: Any, *rest: Any
    ) -> Any:
        record = _LAST_HTTP.get()
        if record is not None:
            record.status = int(code) if code is not None else None
            record.headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
            record.body = body[:500] if isinstance(body, str) else ""
            if code is not None and 200 <= int(code) < 300 and isinstance(body, str):
                record.unparsable = record.unparsable or (bool(body) and parse_json(body) is None)
        return original(code, reason, url, method, headers, body, *rest)

    return on_rest_response


def _parse_timeframes(labels: Mapping[str, Any]) -> list[Timeframe]:
    out = []
    for label in labels:
        try:
            out.append(Timeframe.parse(label))
        except ValueError:
            continue  # months ("1M") and seconds have no Timeframe
    return out


__all__ = ["CcxtSource", "rehost_api_urls"]
