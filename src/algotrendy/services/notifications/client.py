"""``NotificationsClient``: the ``NotificationsApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``NotificationsService``. The owner is the
bearer token's user: asking for anyone else's history is refused locally with ``Forbidden``.
Problem+json errors come back as the matching ``core.errors`` class with ``code`` and ``detail``;
a transport failure or a 5xx is ``TemporaryError``. (The mapping mirrors the users client: sibling
services may share only ``interface.py``.)
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from pydantic import TypeAdapter, ValidationError

from algotrendy.core.errors import (
    AlgoTrendyError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TemporaryError,
    TooManyRequests,
    Unauthorized,
)
from algotrendy.services.notifications.interface import Channel, DeliveryRead, NotificationsApi

_HISTORY = TypeAdapter(list[DeliveryRead])
_BY_STATUS: dict[int, type[AlgoTrendyError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


def _error(response: httpx.Response) -> AlgoTrendyError:
    status = response.status_code
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    detail = str(body.get("detail") or response.reason_phrase or f"HTTP {status}")
    code = body.get("code") if isinstance(body.get("code"), str) else None
    if status == 429:
        try:
            retry_after = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = 1.0
        return TooManyRequests(detail, retry_after=retry_after, code=code)
    if status >= 500:
        return TemporaryError(detail, code=code or TemporaryError.code)
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    field = first.get("field") if isinstance(first.get("field"), str) else None
    field = field.removeprefix("body.") or None if field else None
    return _BY_STATUS.get(status, Invalid)(detail, code=code, field=field)


class NotificationsClient:
    """``NotificationsApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    def __init__(self, http: httpx.AsyncClient, *, token: str | None = None) -> None:
        self._http = http
        self._token = token
        self._sub: uuid.UUID | None = None
        if token:
            try:  # not verified: only to know whose client this is; the server verifies
                self._sub = uuid.UUID(str(jwt.decode(token, options={"verify_signature": False})["sub"]))
            except (jwt.PyJWTError, KeyError, ValueError):
                self._sub = None

    def with_token(self, token: str) -> NotificationsClient:
        return NotificationsClient(self._http, token=token)

    async def history(
        self, *, owner: uuid.UUID, channel: Channel | None, limit: int, offset: int
    ) -> list[DeliveryRead]:
        if self._sub is not None and owner != self._sub:
            raise Forbidden("this client acts only for its token's user", code="not_token_owner")
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if channel is not None:
            params["channel"] = channel
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = await self._http.get("/api/v1/notifications/history", params=params, headers=headers)
        except httpx.TransportError as exc:
            raise TemporaryError(
                f"notifications service unreachable ({type(exc).__name__})", code="upstream_unavailable"
            ) from None
        if not response.is_success:
            raise _error(response)
        try:
            return _HISTORY.validate_json(response.content)
        except ValidationError:
            raise TemporaryError(
                "unexpected response from the notifications service", code="bad_upstream_response"
            ) from None


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: NotificationsClient) -> NotificationsApi:
        return client
