"""The HTTP routes and ``JobsClient`` against ``JobsService`` through ``httpx.ASGITransport``.

Authentication is replaced by a stand-in that trusts the bearer token's ``sub`` (the real
``CurrentUser`` is covered by the gateway tests).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request

from algotrendy.core.auth import Principal, Role, permissions_for
from algotrendy.core.clock import ManualClock
from algotrendy.core.errors import ConfigurationError, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from algotrendy.gateway import problems
from algotrendy.gateway.auth import current_principal
from algotrendy.services.jobs.client import JobsClient
from algotrendy.services.jobs.interface import JobStatus
from algotrendy.services.jobs.router import router
from algotrendy.services.jobs.service import JobsService
from tests.unit.services.jobs import fakes

ALICE = uuid.UUID(int=11)
BOB = uuid.UUID(int=12)


def token(user: uuid.UUID) -> str:
    return jwt.encode({"sub": str(user)}, "test-key-of-sufficient-length-32b", algorithm="HS256")


async def fake_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise Unauthorized("missing bearer token", code="missing_token")
    sub = jwt.decode(header.removeprefix("Bearer "), options={"verify_signature": False})["sub"]
    return Principal(
        user_id=uuid.UUID(sub),
        username="u",
        role=Role.TRADER,
        permissions=permissions_for(Role.TRADER),
        session_id=uuid.uuid4(),
    )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[JobsService]:
    clock = ManualClock()
    engine, sessions, _outbox = await fakes.make_db(tmp_path, clock)
    jobs = fakes.service(sessions, fakes.ThreadExecutor(), clock)
    yield jobs
    await jobs.stop()
    await engine.dispose()


@pytest.fixture
async def http(service: JobsService) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    problems.install(app)
    app.include_router(router)
    app.state.services = {"jobs": service}
    app.dependency_overrides[current_principal] = fake_principal
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jobs") as client:
        yield client


async def test_client_reads_what_the_service_holds(service: JobsService, http: httpx.AsyncClient) -> None:
    job = await service.submit(owner=ALICE, kind="test.add", params={"a": 1, "b": 2})
    client = JobsClient(http, token=token(ALICE))
    assert await client.get(owner=ALICE, job_id=job.id) == job
    assert await client.list(owner=ALICE) == [job]
    assert await client.list(owner=ALICE, status=JobStatus.RUNNING) == []
    assert await client.list(owner=ALICE, kind="test.add", limit=1) == [job]


async def test_cancel_over_http_and_conflict_once_finished(
    service: JobsService, http: httpx.AsyncClient
) -> None:
    job = await service.submit(owner=ALICE, kind="test.add", params={"a": 1, "b": 2})
    client = JobsClient(http, token=token(ALICE))
    cancelled = await client.cancel(owner=ALICE, job_id=job.id)
    assert cancelled.status is JobStatus.CANCELLED
    with pytest.raises(Conflict) as err:
        await client.cancel(owner=ALICE, job_id=job.id)
    assert err.value.code == "job_finished"


async def test_another_users_job_is_404_over_http(service: JobsService, http: httpx.AsyncClient) -> None:
    job = await service.submit(owner=ALICE, kind="test.add", params={"a": 1, "b": 2})
    headers = {"Authorization": f"Bearer {token(BOB)}"}
    for method, url in (("GET", f"/api/v1/jobs/{job.id}"), ("POST", f"/api/v1/jobs/{job.id}/cancel")):
        r = await http.request(method, url, headers=headers)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "job_not_found"
    listed = await http.get("/api/v1/jobs", headers=headers)
    assert listed.status_code == 200 and listed.json() == []
    with pytest.raises(NotFound):
        await JobsClient(http, token=token(BOB)).get(owner=BOB, job_id=job.id)
    assert (await service.get(owner=ALICE, job_id=job.id)).status is JobStatus.QUEUED


async def test_page_size_is_capped_and_errors_name_the_field(http: httpx.AsyncClient) -> None:
    client = JobsClient(http, token=token(ALICE))
    with pytest.raises(Invalid) as err:
        await client.list(owner=ALICE, limit=201)
    assert err.value.field == "limit"
    r = await http.get(
        "/api/v1/jobs", params={"status": "bogus"}, headers={"Authorization": f"Bearer {token(ALICE)}"}
    )
    assert r.status_code == 422


async def test_there_is_no_public_submit_route(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/jobs", json={"kind": "test.add", "params": {}})
    assert r.status_code == 405
    with pytest.raises(ConfigurationError):
        await JobsClient(http, token=token(ALICE)).submit(owner=ALICE, kind="test.add", params={})


async def test_client_refuses_to_act_for_someone_else(http: httpx.AsyncClient) -> None:
    with pytest.raises(Forbidden):
        await JobsClient(http, token=token(ALICE)).get(owner=BOB, job_id=uuid.uuid4())


async def test_routes_need_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/jobs")).status_code == 401


async def test_client_wait_polls_until_the_job_finishes(
    service: JobsService, http: httpx.AsyncClient
) -> None:
    await service.start()
    job = await service.submit(owner=ALICE, kind="test.add", params={"a": 20, "b": 22})
    client = JobsClient(http, token=token(ALICE), poll_interval=0.02)
    done = await client.wait(owner=ALICE, job_id=job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"sum": 42}
