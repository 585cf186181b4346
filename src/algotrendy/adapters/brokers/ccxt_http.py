"""One ccxt exchange object and its REST calls, with failures mapped to core/venue.py's vocabulary.

ccxt's exception classes alone cannot tell "never sent" from "sent, answer lost", so an
``on_rest_response`` hook records the HTTP status, headers and body ccxt saw, per task:

* ``InvalidOrder``, ``InsufficientFunds``, ``BadSymbol``, ``BadRequest``, ``OrderNotFound``,
  ``AuthenticationError``, ``PermissionDenied`` and other 4xx answers are ``VenueRejected``;
* 429/418 (``RateLimitExceeded``/``DDoSProtection``), maintenance (``OnMaintenance``), a refused
  timestamp (``InvalidNonce``) and a connection that could not be opened are
  ``VenueUnavailable`` (``retry_after`` from ``Retry-After``);
* a timeout, a reset connection, a 5xx or an unknown server error after an order was *sent* is
  ``VenueAmbiguous``; on a read (nothing can have changed) the same failures are
  ``VenueUnavailable``;
* an answer that is not JSON or that ccxt cannot parse is ``VenueDataError``.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async

from algotrendy.adapters.sources._http import retry_after_seconds
from algotrendy.core.venue import (
    VenueAmbiguous,
    VenueDataError,
    VenueError,
    VenueRejected,
    VenueUnavailable,
)

BINANCE = frozenset({"binance", "binanceus"})
"""Exchanges with Binance's spot API (client-id lookups, ``orderTypes`` in the market info)."""
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    name: {
        # spot only, and no signed margin-pair requests while loading the markets
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        # open orders of every symbol in one request is what open_orders(symbol=None) means
        "fetchOpenOrders": {"warnWithoutSymbol": False},
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    }
    for name in BINANCE
}


def short(value: Any, limit: int = 200) -> str:
    """``str(value)``, cut to ``limit`` characters (for messages and logs)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Duplicate(VenueRejected):
    """The venue refused a client order id that an order of this account already uses."""


class Unknown(VenueRejected):
    """The venue does not know the order (lookup or cancel)."""


# ---- what ccxt saw on the wire ---------------------------------------------------------------


@dataclass
class _Http:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    unparsable: bool = False


_LAST_HTTP: contextvars.ContextVar[_Http | None] = contextvars.ContextVar("ccxt_venue_http", default=None)


def _recording(original: Callable[..., Any], parse_json: Callable[[str], Any]) -> Callable[..., Any]:
    def on_rest_response(
        code: int, reason: str, url: str, method: str, headers: Any, body: Any, *rest: Any
    ) -> Any:
        record = _LAST_HTTP.get()
        if record is not None:
            record.status = int(code) if code is not None else None
            record.headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
            record.body = body[:1000] if isinstance(body, str) else ""
            if record.status is not None and 200 <= record.status < 300 and isinstance(body, str):
                record.unparsable = bool(body.strip()) and parse_json(body) is None
        return original(code, reason, url, method, headers, body, *rest)

    return on_rest_response


def _venue_code(record: _Http) -> str | None:
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    if isinstance(body, dict):
        code = body.get("code")
        if code is None and isinstance(body.get("error"), list) and body["error"]:
            code = body["error"][0]
        return None if code is None else str(code)
    return None


# ---- the client ------------------------------------------------------------------------------


class CcxtClient:
    """An async ccxt exchange (``ex``) whose calls go through ``call``."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        password: str | None,
        urls: Mapping[str, str] | None,
        timeout: float,
        sandbox: bool,
        options: Mapping[str, Any] | None,
        rate_limit: bool,
    ) -> None:
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": rate_limit,
            "timeout": max(1, int(timeout * 1000)),
            "options": {**_DEFAULT_OPTIONS.get(exchange_id, {}), **dict(options or {})},
        }
        if password is not None:
            config["password"] = password
        self.id = exchange_id
        self.name = exchange_id
        self.binance = exchange_id in BINANCE
        self.sandbox = sandbox
        self.ex: Any = getattr(ccxt_async, exchange_id)(config)
        if sandbox:
            self.ex.set_sandbox_mode(True)
        if urls:
            api = self.ex.urls.get("api")
            self.ex.urls["api"] = {**(api if isinstance(api, dict) else {}), **dict(urls)}
        self.ex.has["fetchCurrencies"] = False  # currencies are not needed to trade
        self.ex.on_rest_response = _recording(self.ex.on_rest_response, self.ex.parse_json)

    async def close(self) -> None:
        await self.ex.close()

    async def call(
        self, fn: Callable[..., Awaitable[Any]], *args: Any, what: str, mutation: bool = False
    ) -> Any:
        """One ccxt call with its failure mapped to the venue vocabulary."""
        record = _Http()
        token = _LAST_HTTP.set(record)
        try:
            result = await fn(*args)
        except ccxt.BaseError as exc:
            raise self._map(exc, record, what, mutation) from exc
        except (TypeError, KeyError, IndexError, ValueError, AttributeError, ArithmeticError) as exc:
            raise VenueDataError(
                f"{self.name} {what}: ccxt could not read the answer "
                f"({type(exc).__name__}: {short(exc, 120)})"
            ) from exc
        finally:
            _LAST_HTTP.reset(token)
        if record.unparsable:
            raise VenueDataError(f"{self.name} {what}: the answer is not JSON: {short(record.body, 80)}")
        return result

    def _map(self, exc: ccxt.BaseError, record: _Http, what: str, mutation: bool) -> VenueError:
        status, code = record.status, _venue_code(record)
        text = f"{self.name} {what}: {type(exc).__name__}: {short(exc)}"
        cause = exc.__cause__
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection) or status in (418, 429):
            wait = retry_after_seconds(record.headers, time.time())
            return VenueUnavailable(text, code=code, retry_after=wait)
        if isinstance(exc, ccxt.OnMaintenance | ccxt.InvalidNonce):  # answered before acting
            return VenueUnavailable(text, code=code)
        if isinstance(exc, ccxt.ExchangeClosedByUser):  # close() ran first: nothing was sent
            return VenueUnavailable(text, code=code)
        if isinstance(exc, ccxt.BadResponse):
            return VenueDataError(text, code=code)
        if isinstance(cause, aiohttp.ClientConnectorError):  # the connection never opened
            return VenueUnavailable(text, code=code)
        unsure = VenueAmbiguous if mutation else VenueUnavailable
        if status is not None and status >= 500:
            return unsure(text, code=code)
        if isinstance(exc, ccxt.OperationFailed) or isinstance(cause, aiohttp.ClientError | OSError):
            if status is None or status < 400 or code is not None:
                return unsure(text, code=code)  # timeouts, resets, "unknown error" of the venue
            if status in (403, 408):  # a firewall or the server's read timeout: not acted on
                return VenueUnavailable(text, code=code)
            return VenueRejected(text, code=code)  # any other bare 4xx
        if isinstance(exc, ccxt.DuplicateOrderId) or (
            isinstance(exc, ccxt.InvalidOrder) and "duplicate order" in str(exc).lower()
        ):
            return Duplicate(text, code=code)
        if isinstance(exc, ccxt.OrderNotFound):
            return Unknown(text, code=code)
        return VenueRejected(text, code=code)
