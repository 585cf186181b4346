"""The HTTP edge as one pure-ASGI middleware (a single layer keeps the hot path short).

Per request: a request id (kept from ``X-Request-ID`` when sane, else generated) bound to every
log line and returned in the response; the client IP (``X-Forwarded-For`` only from trusted
proxies); the body size limit (413, by ``Content-Length`` or while streaming); the per-IP token
bucket (429 + ``Retry-After``); Prometheus metrics by route template; one access-log line
(path without query string, so no token in a URL reaches the log).
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from algotrendy.core.ports import RateLimiter
from algotrendy.gateway import metrics
from algotrendy.gateway.problems import problem
from algotrendy.gateway.settings import GatewaySettings

log = structlog.get_logger("algotrendy.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})


class TrustedProxies:
    """Addresses or CIDR ranges (``10.0.0.0/8``) whose ``X-Forwarded-For`` is believed."""

    def __init__(self, entries: list[str]) -> None:
        self._networks = [ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip()]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            return False
        return any(ip in net for net in self._networks)


def client_ip(scope: Scope, trusted: TrustedProxies) -> str:
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or peer not in trusted:
        return peer
    # Every X-Forwarded-For line counts, in order: a proxy may add its own line instead of
    # appending to the client's, and the client controls the first one.
    hops = [
        hop.strip()
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    # walk from the right past our own proxies
    for hop in reversed(hops):
        if hop not in trusted:
            return str(hop)
    if hops:
        return str(hops[0])
    return peer


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, *, settings: GatewaySettings, limiter: RateLimiter, access_log: bool = True
    ) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.trusted = TrustedProxies(settings.trusted_proxies)
        self.limiter = limiter
        self.ip_capacity = settings.ip_burst
        self.ip_rate = settings.ip_rate_per_minute / 60.0
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        content_length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
            elif name == b"content-length":
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
        request_id = request_id or uuid.uuid4().hex
        ip = client_ip(scope, self.trusted)
        scope.setdefault("state", {})
        scope["state"]["request_id"] = request_id
        scope["state"]["client_ip"] = ip
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = [500]
        rid_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        path: str = scope["path"]
        try:
            if content_length is not None and (content_length < 0 or content_length > self.max_body):
                await self._reply(
                    scope,
                    receive,
                    send_wrapper,
                    problem(
                        413,
                        detail=f"request body larger than {self.max_body} bytes",
                        code="payload_too_large",
                    ),
                )
            elif path not in _UNLIMITED_PATHS and not await self._ip_allowed(
                ip, scope, receive, send_wrapper
            ):
                pass
            else:
                await self.app(scope, self._limited_receive(receive), send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, template, str(status_holder[0])).inc()
            metrics.HTTP_LATENCY.labels(method, template).observe(elapsed)
            if self.access_log and path not in _UNLIMITED_PATHS:
                log.info(
                    "http.request",
                    method=method,
                    path=path,
                    route=template,
                    status=status_holder[0],
                    duration_ms=round(elapsed * 1000, 2),
                    client_ip=ip,
                )

    async def _ip_allowed(self, ip: str, scope: Scope, receive: Receive, send: Send) -> bool:
        decision = await self.limiter.hit(f"ip:{ip}", capacity=self.ip_capacity, rate=self.ip_rate)
        if decision.allowed:
            return True
        metrics.RATE_LIMITED.labels("ip").inc()
        retry = max(1, int(decision.retry_after + 0.999))
        await self._reply(
            scope,
            receive,
            send,
            problem(
                429,
                detail="too many requests from this address",
                code="rate_limited",
                headers={"Retry-After": str(retry)},
            ),
        )
        return False

    @staticmethod
    async def _reply(scope: Scope, receive: Receive, send: Send, response: Any) -> None:
        await response(scope, receive, send)

    def _limited_receive(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, detail=f"request body larger than {limit} bytes")
            return message

        return wrapped
