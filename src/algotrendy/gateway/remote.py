"""Calling a service over HTTP: the one transport every ``<Name>Client`` builds on.

The reverse of ``gateway.problems``: an RFC 9457 problem+json answer becomes the
``core.errors`` class the server raised, with ``code``, ``detail`` and the first bad ``field``
kept (401 Unauthorized, 403 Forbidden, 404 NotFound, 409 Conflict, 422 and other 4xx Invalid,
429 TooManyRequests with ``Retry-After``); a transport failure, a 5xx or an unreadable body is
``TemporaryError``. The bearer token is read without verification only to learn whose client
this is (``sub``, ``sid``); the server verifies every request.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, TypeVar

import httpx
import jwt
from pydantic import BaseModel, TypeAdapter, ValidationError

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

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_BY_STATUS: dict[int, type[AlgoTrendyError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
}


def error_from_response(response: httpx.Response) -> AlgoTrendyError:
    """The ``core.errors`` exception a problem+json error response stands for."""
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
    cls = _BY_STATUS.get(status, Invalid)  # other 4xx (400, 405, 413, 415): the request was wrong
    return cls(detail, code=code, field=_first_field(body))


def _first_field(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    field = errors[0].get("field")
    if not isinstance(field, str) or not field:
        return None
    # "body.email", "query.limit", "path.job_id": the argument's own name is what a caller knows
    for prefix in ("body.", "query.", "path.", "header."):
        if field.startswith(prefix):
            return field.removeprefix(prefix) or None
    return field


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, signature not checked: only to address requests, never to trust."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def uuid_claim(claims: dict[str, Any], name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(claims[name]))
    except (KeyError, ValueError):
        return None


class RemoteApi:
    """Base of the HTTP clients: sends, maps errors, parses DTOs, knows its token's user."""

    service: ClassVar[str] = "remote"

    def __init__(self, http: httpx.AsyncClient, *, token: str | None = None) -> None:
        self._http = http
        self._token = token
        claims = unverified_claims(token) if token else {}
        self._sub = uuid_claim(claims, "sub")
        self._sid = uuid_claim(claims, "sid")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        user_agent: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers: dict[str, str] = dict(extra_headers or {})
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if user_agent is not None:
            headers["User-Agent"] = user_agent
        try:
            response = await self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise TemporaryError(
                f"{self.service} service unreachable ({type(exc).__name__})", code="upstream_unavailable"
            ) from None
        if response.is_success:
            return response
        raise error_from_response(response)

    def _own(self, user_id: uuid.UUID) -> None:
        """Refuse to act for anyone but the token's user (the server acts for the token only)."""
        if self._sub is not None and user_id != self._sub:
            raise Forbidden("this client acts only for its token's user", code="not_token_owner")

    def _parse(self, response: httpx.Response, adapter: TypeAdapter[T]) -> T:
        try:
            return adapter.validate_json(response.content)
        except ValidationError:
            raise TemporaryError(
                f"unexpected response from the {self.service} service", code="bad_upstream_response"
            ) from None

    def _model(self, response: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise TemporaryError(
                f"unexpected response from the {self.service} service", code="bad_upstream_response"
            ) from None

    @staticmethod
    def _body(model: BaseModel) -> dict[str, Any]:
        # Fields left out stay left out: "unset" and "set to null" mean different things.
        return model.model_dump(mode="json", exclude_unset=True)
