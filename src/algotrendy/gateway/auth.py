"""Authentication and authorization dependencies: every process verifies tokens itself.

``CurrentUser`` verifies the bearer access token (signature, claims, session not revoked) and
charges the caller's per-user token bucket. ``require(Permission.X)`` builds a dependency that
refuses (403) a principal without that permission. ``AuthRateLimit`` is the stricter per-IP
bucket for login, registration and password-reset routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from algotrendy.core.auth import Permission, Principal
from algotrendy.core.errors import Forbidden, TooManyRequests, Unauthorized
from algotrendy.core.ports import Cache, RateLimiter
from algotrendy.gateway import metrics
from algotrendy.gateway.settings import GatewaySettings
from algotrendy.gateway.tokens import TokenCodec

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/login")


class Revocations:
    """Revoked session ids, kept for as long as an access token of theirs could live."""

    def __init__(self, cache: Cache, *, ttl_seconds: int) -> None:
        self._cache = cache
        self._ttl = ttl_seconds + 60

    async def revoke(self, session_ids: Iterable[uuid.UUID]) -> None:
        for sid in session_ids:
            await self._cache.set(f"revoked:sid:{sid}", b"1", ttl=self._ttl)

    async def is_revoked(self, session_id: uuid.UUID) -> bool:
        return await self._cache.get(f"revoked:sid:{session_id}") is not None


class Authenticator:
    def __init__(
        self, *, codec: TokenCodec, revocations: Revocations, limiter: RateLimiter, settings: GatewaySettings
    ) -> None:
        self.codec = codec
        self.revocations = revocations
        self.limiter = limiter
        self._user_capacity = settings.user_burst
        self._user_rate = settings.user_rate_per_minute / 60.0
        self._auth_capacity = settings.auth_burst
        self._auth_rate = settings.auth_rate_per_minute / 60.0

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token", code="missing_token")
        principal = await self.codec.verify_access(token)
        if await self.revocations.is_revoked(principal.session_id):
            raise Unauthorized("session has been revoked", code="token_revoked")
        decision = await self.limiter.hit(
            f"user:{principal.user_id}", capacity=self._user_capacity, rate=self._user_rate
        )
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("user").inc()
            raise TooManyRequests("too many requests for this account", retry_after=decision.retry_after)
        structlog.contextvars.bind_contextvars(user_id=str(principal.user_id))
        return principal

    async def charge_auth_bucket(self, ip: str) -> None:
        decision = await self.limiter.hit(f"auth:{ip}", capacity=self._auth_capacity, rate=self._auth_rate)
        if not decision.allowed:
            metrics.RATE_LIMITED.labels("auth").inc()
            raise TooManyRequests("too many authentication attempts", retry_after=decision.retry_after)


def authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    principal = await authenticator(request).authenticate(token)
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentUser) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"this needs the '{permission.value}' permission", code="permission_denied")
        return principal

    dependency.__name__ = f"require_{permission.value}"
    return dependency


Admin = Annotated[Principal, Depends(require(Permission.MANAGE_USERS))]


async def auth_rate_limit(request: Request) -> None:
    await authenticator(request).charge_auth_bucket(request.state.client_ip)


AuthRateLimit = Depends(auth_rate_limit)


def client_ip(request: Request) -> str:
    return str(getattr(request.state, "client_ip", request.client.host if request.client else "unknown"))


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]
