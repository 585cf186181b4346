"""The real server process, as a user drives it: register, verify from the emailed link, log
in, use the API, log out. Grows with each service (data, backtest, paper order, position)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.apphelp import remember
from tests.procs import start_server, wait_ready


def test_register_verify_login_me_logout(tmp_path: Path) -> None:
    server = start_server("e2e", tmp_path, {"ALGO_DATA_DIR": str(tmp_path / "data")}, services="all")
    try:
        wait_ready(server)
        password = f"pw-{uuid.uuid4().hex}"
        remember(password)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/health").json()["status"] == "healthy"
            assert client.get("/docs").status_code == 200
            r = client.post(
                "/api/v1/users/register",
                json={"email": "e2e@example.com", "username": "e2e", "password": password},
            )
            assert r.status_code == 201, r.text

            link = None
            for _ in range(50):
                out = subprocess.run(
                    [sys.executable, "-m", "algotrendy", "users", "outbox"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "ALGO_DATA_DIR": str(tmp_path / "data")},
                    timeout=60,
                    check=True,
                ).stdout
                m = re.search(r"(http://\S+/verify-email\?token=[A-Za-z0-9_-]+)", out)
                if m:
                    link = m.group(1)
                    break
            assert link, out
            remember(link.split("token=")[1])
            assert client.get(link).json()["is_verified"] is True

            tokens = client.post("/auth/login", json={"username": "e2e", "password": password}).json()
            remember(tokens["access_token"], tokens["refresh_token"])
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert client.get("/auth/me", headers=headers).json()["username"] == "e2e"
            assert (
                client.put(
                    "/api/v1/users/settings", headers=headers, json={"timezone": "Europe/Berlin"}
                ).json()["timezone"]
                == "Europe/Berlin"
            )
            assert client.post("/auth/logout", headers=headers).status_code == 204
            assert client.get("/auth/me", headers=headers).status_code == 401
        log = server.output()
        assert password not in log and tokens["access_token"] not in log and "e2e@example.com" not in log
    finally:
        server.stop()
