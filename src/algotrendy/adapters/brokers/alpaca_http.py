"""Alpaca Trading API v2 requests over ``httpx.AsyncClient``, with failures mapped to
``core.venue``'s vocabulary.

Authentication is Alpaca's header pair ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``.
``request`` hands 2xx and 4xx answers back (each method gives a 4xx its meaning) and raises the
rest:

* 429 -> ``VenueUnavailable`` with ``retry_after`` (``Retry-After`` or Alpaca's epoch
  ``X-RateLimit-Reset``); a connection that could not be opened (``httpx.ConnectError``,
  connect or pool timeout) -> ``VenueUnavailable``: nothing was sent;
* a timeout or a broken connection after sending, 5xx (and 408), an unexpected redirect, or a
  2xx body that is not JSON -> ``VenueAmbiguous``.

Reads (GET) are retried on those failures, at most ``retry.attempts`` times with the sources'
jittered backoff (``sources._http.RetryPolicy``), a vendor's Retry-After honoured up to
``retry.max_retry_after``; then the last failure is raised. Writes (POST, DELETE) are sent once:
their failures go to the caller, who resolves by client id.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from algotrendy.adapters.sources._http import RetryPolicy, error_text, retry_after_seconds
from algotrendy.adapters.sources.base import short
from algotrendy.core.clock import Clock
from algotrendy.core.venue import VenueAmbiguous, VenueError, VenueRejected, VenueUnavailable

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer the transport layer did not turn into an error: 2xx, or a 4xx for the caller."""

    status: int
    body: Any
    message: str = ""
    code: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class AlpacaClient:
    """One authenticated HTTP client of the Trading API (see the module docstring)."""

    def __init__(
        self,
        *,
        key_id: str,
        secret: str,
        base_url: str,
        timeout: float,
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._retry = retry
        self._clock = clock
        self._rng = rng
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        await self._client.aclose()

    async def get(self, path: str, *, what: str, params: Mapping[str, Any] | None = None) -> Any:
        """The body of a 2xx answer to ``GET path``; a 4xx is ``VenueRejected``."""
        reply = await self.request("GET", path, params=params, what=what)
        if not reply.ok:
            raise refused(reply, what)
        return reply.body

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Reply:
        """Send once (writes) or with retries (reads); 2xx and 4xx come back, the rest raises."""
        attempts = self._retry.attempts if method == "GET" else 1
        attempt = 0
        while True:
            attempt += 1
            if self.closed:
                raise VenueUnavailable(f"alpaca adapter is closed ({what} not sent)")
            failure: VenueError
            retry_after: float | None = None
            try:
                response = await self._client.request(method, path, params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure = VenueUnavailable(f"alpaca is unreachable for {what}: {type(exc).__name__}: {exc}")
            except httpx.TimeoutException as exc:
                failure = VenueAmbiguous(f"alpaca did not answer {what} in time ({type(exc).__name__})")
            except httpx.TransportError as exc:
                failure = VenueAmbiguous(f"alpaca connection broke during {what} ({type(exc).__name__})")
            else:
                reply, failure_or_none = self._classify(response, what)
                if failure_or_none is None:
                    return reply
                failure = failure_or_none
                if isinstance(failure, VenueUnavailable):
                    retry_after = failure.retry_after
            if attempt >= attempts or (retry_after is not None and retry_after > self._retry.max_retry_after):
                raise failure
            if self.closed:  # closed while a read was in flight: no retry
                raise VenueUnavailable(f"alpaca adapter is closed ({what} not answered)") from failure
            delay = self._retry.backoff(attempt, self._rng)
            if retry_after is not None:
                delay = max(delay, retry_after)
            log.warning(
                "alpaca.retry", what=what, attempt=attempt, reason=str(failure), delay=round(delay, 3)
            )
            await asyncio.sleep(delay)

    def _classify(self, response: httpx.Response, what: str) -> tuple[Reply, VenueError | None]:
        status = response.status_code
        body: Any = None
        decoded = True
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body, decoded = response.text[:200], False
        message = error_text(body) if status >= 300 else ""
        code = body.get("code") if isinstance(body, dict) else None
        reply = Reply(status, body, message, None if code is None else str(code))
        if status == 429:
            retry_after = retry_after_seconds(response.headers, self._clock.now().timestamp())
            return reply, VenueUnavailable(
                f"alpaca rate-limited {what}: {message}", code=reply.code or "429", retry_after=retry_after
            )
        if status >= 500 or status == 408:
            return reply, VenueAmbiguous(f"alpaca failed {what} (HTTP {status}): {message}", code=reply.code)
        if 300 <= status < 400:
            return reply, VenueAmbiguous(f"alpaca answered {what} with an unexpected redirect ({status})")
        if status < 300 and not decoded:
            return reply, VenueAmbiguous(
                f"alpaca answered {what} with a body that is not JSON: {message or short(body, 80)}"
            )
        return reply, None


def refused(reply: Reply, what: str) -> VenueRejected:
    """A 4xx answer as ``VenueRejected`` with Alpaca's ``code`` and message."""
    return VenueRejected(
        f"alpaca refused {what} (HTTP {reply.status}): {reply.message}",
        code=reply.code or str(reply.status),
    )
