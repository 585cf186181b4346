"""``JobsClient``: the read/cancel part of ``JobsApi`` over HTTP, for processes that do not host it.

Same method names, keyword-only arguments and DTOs as ``JobsService``. The owner is the bearer
token's user: asking about anyone else's jobs is refused locally with ``Forbidden``. ``submit``
is not offered over HTTP (jobs are submitted by the service that runs them) and raises
``ConfigurationError``. Problem+json errors come back as the matching ``core.errors`` class with
``code`` and ``detail``; a transport failure or a 5xx is ``TemporaryError``. (The mapping mirrors
the other clients: sibling services may share only ``interface.py``.)
"""

from __future__ import annotations

import asyncio
import builtins
import math
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import jwt
from pydantic import TypeAdapter, ValidationError

from algotrendy.core.errors import (
    AlgoTrendyError,
    ConfigurationError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TemporaryError,
    TooManyRequests,
    Unauthorized,
)
from algotrendy.services.jobs.interface import JobRead, JobsApi, JobStatus

PREFIX = "/api/v1/jobs"
_T = TypeVar("_T")
_JOB = TypeAdapter(JobRead)
_JOBS = TypeAdapter(list[JobRead])
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
    field = field.removeprefix("query.") or None if field else None
    return _BY_STATUS.get(status, Invalid)(detail, code=code, field=field)


class JobsClient:
    """``JobsApi`` (minus ``submit``) over an ``httpx.AsyncClient`` (real or ``ASGITransport``)."""

    def __init__(
        self, http: httpx.AsyncClient, *, token: str | None = None, poll_interval: float = 0.5
    ) -> None:
        self._http = http
        self._token = token
        self._poll = poll_interval
        self._sub: uuid.UUID | None = None
        if token:
            try:  # not verified: only to know whose client this is; the server verifies
                self._sub = uuid.UUID(str(jwt.decode(token, options={"verify_signature": False})["sub"]))
            except (jwt.PyJWTError, KeyError, ValueError):
                self._sub = None

    def with_token(self, token: str) -> JobsClient:
        return JobsClient(self._http, token=token, poll_interval=self._poll)

    async def submit(self, *, owner: uuid.UUID, kind: str, params: dict[str, Any]) -> JobRead:
        raise ConfigurationError(
            "jobs are submitted in the process that runs them; JobsClient can read and cancel only"
        )

    async def get(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        self._check_owner(owner)
        return await self._call("GET", f"{PREFIX}/{job_id}", _JOB)

    async def list(
        self,
        *,
        owner: uuid.UUID,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> builtins.list[JobRead]:
        self._check_owner(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = JobStatus(status).value
        if kind is not None:
            params["kind"] = kind
        return await self._call("GET", PREFIX, _JOBS, params=params)

    async def cancel(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        self._check_owner(owner)
        return await self._call("POST", f"{PREFIX}/{job_id}/cancel", _JOB)

    async def wait(
        self,
        *,
        owner: uuid.UUID,
        job_id: uuid.UUID,
        timeout: float,  # noqa: ASYNC109 - JobsApi contract
    ) -> JobRead:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout >= 0):
            raise Invalid("timeout must be a number of seconds >= 0", field="timeout")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = await self.get(owner=owner, job_id=job_id)
            left = deadline - loop.time()
            if job.status.finished or left <= 0:
                return job
            await asyncio.sleep(min(left, self._poll))

    def _check_owner(self, owner: uuid.UUID) -> None:
        if self._sub is not None and owner != self._sub:
            raise Forbidden("this client acts only for its token's user", code="not_token_owner")

    async def _call(
        self, method: str, url: str, adapter: TypeAdapter[_T], *, params: dict[str, Any] | None = None
    ) -> _T:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = await self._http.request(method, url, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise TemporaryError(
                f"jobs service unreachable ({type(exc).__name__})", code="upstream_unavailable"
            ) from None
        if not response.is_success:
            raise _error(response)
        try:
            return adapter.validate_json(response.content)
        except ValidationError:
            raise TemporaryError(
                "unexpected response from the jobs service", code="bad_upstream_response"
            ) from None


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: JobsClient) -> JobsApi:
        return client
