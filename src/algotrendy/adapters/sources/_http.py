"""What the httpx-based sources share: timeouts, retries, Retry-After, and vendor errors mapped to
``core.errors``.

Retry policy (``RetryPolicy``; the ccxt adapter applies the same one):

* retried: timeouts, connection failures, HTTP 408, 418 (Binance's IP ban), 425, 429, every 5xx,
  and a 2xx body that is not JSON (a proxy's HTML error page);
* the wait before retry *n* (1-based) is "equal jitter" on an exponential:
  ``d = min(max_delay, base_delay * 2 ** (n - 1))``, sleep ``uniform(d / 2, d)``; a
  ``Retry-After`` header (seconds or an HTTP date), or an epoch ``X-RateLimit-Reset``, raises the
  wait to at least what the vendor asked; a vendor asking more than ``max_retry_after`` is not
  waited out: ``TemporaryError`` at once, with the figure in the message;
* after ``attempts`` tries: ``TemporaryError(code="source_unavailable")`` naming the source,
  the symbol and the last failure;
* never retried: 404 -> ``NotFound`` naming the symbol; 401/403 -> ``ConfigurationError`` (the
  credentials are wrong, retrying cannot help); other 4xx -> ``Invalid`` naming the symbol.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import httpx
import structlog

from algotrendy.core.clock import Clock, SystemClock
from algotrendy.core.errors import (
    AlgoTrendyError,
    ConfigurationError,
    Invalid,
    NotFound,
    TemporaryError,
)
from algotrendy.core.market import AssetType, Timeframe

from .base import short

log = structlog.get_logger(__name__)

V = TypeVar("V")
RETRY_STATUSES = frozenset({408, 418, 425, 429})
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    """Total tries of one request (1 = no retry)."""
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0
    """A vendor asking to wait longer than this is not waited out."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), before Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a vendor asked for: ``Retry-After`` (seconds or HTTP date) or an epoch reset."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - now)
    reset = headers.get("x-ratelimit-reset") or headers.get("X-RateLimit-Reset")
    if reset:
        try:
            at = float(reset)
        except ValueError:
            return None
        if at > 1e9:  # an epoch; small numbers are "seconds left" on some vendors
            return max(0.0, at - now)
        return max(0.0, at)
    return None


class Retrier:
    """Runs the retry loop; the caller classifies each failure as retryable or final."""

    def __init__(
        self, *, source: str, policy: RetryPolicy, clock: Clock, sleep: Sleep, rng: random.Random
    ) -> None:
        self.source, self.policy, self.clock, self.sleep, self.rng = source, policy, clock, sleep, rng

    async def wait(self, *, attempt: int, symbol: str, reason: str, retry_after: float | None) -> None:
        """Sleep before the next try, or raise ``TemporaryError`` when there is none."""
        if attempt >= self.policy.attempts:
            raise TemporaryError(
                f"{self.source} is unavailable for {symbol!r} after {attempt} attempt(s): {reason}",
                code="source_unavailable",
            )
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            raise TemporaryError(
                f"{self.source} asks to wait {retry_after:.0f}s before serving {symbol!r} "
                f"({reason}); more than the {self.policy.max_retry_after:.0f}s this client waits",
                code="source_unavailable",
            )
        delay = self.policy.backoff(attempt, self.rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.warning(
            "sources.retry",
            source=self.source,
            symbol=symbol,
            attempt=attempt,
            reason=reason,
            delay=round(delay, 3),
        )
        await self.sleep(delay)


def error_text(body: Any) -> str:
    """The human message inside a vendor's error body (every vendor names it differently)."""
    if isinstance(body, dict):
        chart = body.get("chart")
        if isinstance(chart, dict) and isinstance(chart.get("error"), dict):
            return short(chart["error"].get("description") or chart["error"].get("code"), 200)
        for key in ("msg", "message", "error_message", "error", "detail", "status"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return short(value, 200).strip("'\"")
            if isinstance(value, list) and value:
                return short(", ".join(str(v) for v in value), 200).strip("'\"")
    if isinstance(body, str) and body:
        return short(body, 200).strip("'\"")
    return "no message"


def client_error(source: str, status: int, message: str, symbol: str) -> AlgoTrendyError:
    """A 4xx that retrying cannot fix, as the ``core.errors`` class a caller reacts to."""
    if status == 404:
        return NotFound(f"{source} has no data for symbol {symbol!r}: {message}")
    if status in (401, 403):
        return ConfigurationError(f"{source} refused the credentials (HTTP {status}): {message}")
    return Invalid(f"{source} rejected the request for {symbol!r} (HTTP {status}): {message}", field="symbol")


class Continuations(Generic[V]):
    """The vendor's cursor (page token, next URL) for the page that follows the last one fetched.

    Keyed by the request a caller will make next (symbol, timeframe, next start, end, limit), so
    paging with ``start_ns = last ts + timeframe`` follows the vendor's own pagination, and any
    other request falls back to a plain range query. Bounded (least recently used dropped).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def put(self, key: Hashable, cursor: V) -> None:
        self._items[key] = cursor
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: Hashable) -> V | None:
        return self._items.pop(key, None)


class HttpSource:
    """Base of the httpx sources: one ``AsyncClient`` with an injectable base URL and transport."""

    NAME = "http"
    DEFAULT_BASE_URL = ""
    DEFAULT_RATE_LIMIT = 1.0
    DEFAULT_PAGE_LIMIT = 1000
    ASSET_TYPES: frozenset[AssetType] = frozenset()
    TIMEFRAMES: frozenset[Timeframe] = frozenset()

    def __init__(
        self,
        *,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        page_limit: int | None = None,
        strict: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self._name = name or self.NAME
        self._rate_limit = float(rate_limit if rate_limit is not None else self.DEFAULT_RATE_LIMIT)
        self._page_limit = int(page_limit if page_limit is not None else self.DEFAULT_PAGE_LIMIT)
        if not self._rate_limit > 0 or self._page_limit < 1:
            raise ValueError("rate_limit must be positive and page_limit at least 1")
        self._strict = strict
        self._clock: Clock = clock or SystemClock()
        self._retry = Retrier(
            source=self._name,
            policy=retry or RetryPolicy(),
            clock=self._clock,
            sleep=sleep or asyncio.sleep,
            rng=rng or random.Random(),  # noqa: S311 (retry jitter, not a secret)
        )
        self._base_url = (base_url or self.DEFAULT_BASE_URL).rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    # ---- metadata ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def asset_types(self) -> frozenset[AssetType]:
        return self.ASSET_TYPES

    @property
    def timeframes(self) -> frozenset[Timeframe]:
        return self.TIMEFRAMES

    @property
    def page_limit(self) -> int:
        return self._page_limit

    @property
    def rate_limit(self) -> float:
        return self._rate_limit

    # ---- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- requests ----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock.now().timestamp() * 1_000_000) * 1000

    async def _pause(self) -> None:
        """Space extra requests inside one page (window stepping) by the source's rate limit."""
        await self._retry.sleep(1.0 / self._rate_limit)

    async def _get_json(self, url: str, *, symbol: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``url`` (relative to the base URL) and decode JSON, with the retry policy."""
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._client.get(url, params=params)
            except httpx.TimeoutException as exc:
                reason = f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            else:
                status = response.status_code
                if status in RETRY_STATUSES or status >= 500:
                    reason = f"HTTP {status}: {self._message(response)}"
                    retry_after = retry_after_seconds(response.headers, self._clock.now().timestamp())
                elif status >= 300:
                    raise self._refuse(response, symbol)
                else:
                    try:
                        return response.json()
                    except ValueError:
                        reason = f"a body that is not JSON: {short(response.text[:80])}"
            await self._retry.wait(attempt=attempt, symbol=symbol, reason=reason, retry_after=retry_after)

    def _message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        return error_text(body)

    def _refuse(self, response: httpx.Response, symbol: str) -> AlgoTrendyError:
        """A non-retryable answer (3xx, 4xx) as a ``core.errors`` exception; adapters refine it."""
        status = response.status_code
        if status < 400:
            return TemporaryError(
                f"{self._name} answered with an unexpected redirect ({status})", code="bad_upstream_data"
            )
        return client_error(self._name, status, self._message(response), symbol)
