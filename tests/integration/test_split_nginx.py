"""Split mode for real: three service processes behind nginx on PostgreSQL, Redis and NATS.

A user registers through nginx (routed to the users process); the notifications process, a
separate OS process, consumes ``user.registered`` from JetStream and sends the welcome email;
the user then reads that delivery through nginx from the notifications process, which verifies
the JWT itself with keys fetched from the users service's JWKS.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.pg import fresh_database
from tests.procs import Proc, free_port, nginx_binary, start_nginx, start_server, wait_ready
from tests.support import require, require_service


@pytest.fixture
async def split(tmp_path: Path) -> Iterator[dict[str, Proc]]:  # type: ignore[misc]
    require(nginx_binary() is not None, "nginx is not installed (apt-get install nginx-light)")
    redis_url = require_service("redis")
    nats_url = require_service("nats")
    tag = uuid.uuid4().hex[:10]
    async with fresh_database() as db_url:
        users_port = free_port()
        common = {
            "ALGO_ENV": "development",
            "ALGO_DATABASE_URL": db_url,
            "ALGO_REDIS_URL": redis_url,
            "ALGO_NATS_URL": nats_url,
            "ALGO_BUS__STREAM": f"S_{tag}",
            "ALGO_BUS__SUBJECT_PREFIX": f"s{tag}.events",
            "ALGO_BUS__DLQ_PREFIX": f"s{tag}.dlq",
            "ALGO_GATEWAY__TRUSTED_PROXIES": "127.0.0.1",
            "ALGO_AUTH__JWKS_URL": f"http://127.0.0.1:{users_port}/auth/jwks.json",
        }
        procs: dict[str, Proc] = {}
        try:
            procs["users"] = start_server("users", tmp_path, common, services="users", port=users_port)
            wait_ready(procs["users"])
            procs["notifications"] = start_server("notifications", tmp_path, common, services="notifications")
            wait_ready(procs["notifications"])
            procs["jobs"] = start_server("jobs", tmp_path, common, services="jobs")
            wait_ready(procs["jobs"])
            procs["nginx"] = start_nginx(
                tmp_path,
                {
                    "users": f"127.0.0.1:{procs['users'].port}",
                    "notifications": f"127.0.0.1:{procs['notifications'].port}",
                    "jobs": f"127.0.0.1:{procs['jobs'].port}",
                },
            )
            yield procs
        finally:
            for proc in reversed(list(procs.values())):
                proc.stop()
            from tests.apphelp import _delete_streams

            await _delete_streams(nats_url, [f"S_{tag}", f"S_{tag}_DLQ"])


async def test_register_through_nginx_is_consumed_by_the_other_process(split: dict[str, Proc]) -> None:
    edge = split["nginx"].url
    from tests.apphelp import remember

    password = f"pw-{uuid.uuid4().hex}"
    remember(password)
    async with httpx.AsyncClient(base_url=edge, timeout=10) as client:
        r = await client.post(
            "/api/v1/users/register",
            json={"email": "split@example.com", "username": "splitter", "password": password},
        )
        assert r.status_code == 201, r.text
        assert r.headers.get("x-request-id")
        r = await client.post("/auth/login", json={"username": "splitter", "password": password})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        remember(token, r.json()["refresh_token"])
        headers = {"Authorization": f"Bearer {token}"}

        deadline = time.monotonic() + 30
        deliveries: list[dict] = []
        while time.monotonic() < deadline:
            r = await client.get("/api/v1/notifications/history", headers=headers)
            assert r.status_code == 200, r.text
            deliveries = r.json()
            if deliveries:
                break
            time.sleep(0.3)
        assert [d["template"] for d in deliveries] == ["welcome"], split["notifications"].output()

        # the jobs process (a third one) verifies the same token with the JWKS keys
        r = await client.get("/api/v1/jobs", headers=headers)
        assert r.status_code == 200 and r.json() == []

        # each process verifies tokens itself; a forged one fails at the notifications process too
        bad = await client.get("/api/v1/notifications/history", headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401
        assert bad.headers["content-type"].startswith("application/problem+json")
        # logout at the users process; the shared (Redis) revocation list stops the token everywhere
        assert (await client.post("/auth/logout", headers=headers)).status_code == 204
        r = await client.get("/api/v1/notifications/history", headers=headers)
        assert r.status_code == 401

        # unknown paths get a problem+json 404 from nginx itself
        r = await client.get("/api/v1/nothing-here")
        assert r.status_code == 404

    # the notifications process logged the consumption, in its own process
    assert "notifications.user_registered" in split["notifications"].output()
