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
from pydantic import TypeAdapter

from algotrendy.core.errors import (
    ConfigurationError,
    Invalid,
)
from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.jobs.interface import JobRead, JobsApi, JobStatus

PREFIX = "/api/v1/jobs"
_T = TypeVar("_T")
_JOB = TypeAdapter(JobRead)
_JOBS = TypeAdapter(list[JobRead])


class JobsClient(RemoteApi):
    """``JobsApi`` (minus ``submit``) over an ``httpx.AsyncClient`` (real or ``ASGITransport``)."""

    service = "jobs"

    def __init__(
        self, http: httpx.AsyncClient, *, token: str | None = None, poll_interval: float = 0.5
    ) -> None:
        super().__init__(http, token=token)
        self._poll = poll_interval

    def with_token(self, token: str) -> JobsClient:
        return JobsClient(self._http, token=token, poll_interval=self._poll)

    async def submit(self, *, owner: uuid.UUID, kind: str, params: dict[str, Any]) -> JobRead:
        raise ConfigurationError(
            "jobs are submitted in the process that runs them; JobsClient can read and cancel only"
        )

    async def get(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        self._own(owner)
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
        self._own(owner)
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = JobStatus(status).value
        if kind is not None:
            params["kind"] = kind
        return await self._call("GET", PREFIX, _JOBS, params=params)

    async def cancel(self, *, owner: uuid.UUID, job_id: uuid.UUID) -> JobRead:
        self._own(owner)
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

    async def _call(
        self, method: str, url: str, adapter: TypeAdapter[_T], *, params: dict[str, Any] | None = None
    ) -> _T:
        return self._parse(await self._send(method, url, params=params), adapter)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: JobsClient) -> JobsApi:
        return client
