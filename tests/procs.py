"""Starting real server processes (``python -m algotrendy serve``) and nginx on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def start_server(
    name: str, tmp: Path, env: dict[str, str], *, services: str, port: int | None = None
) -> Proc:
    port = port or free_port()
    log = tmp / f"{name}.log"
    full_env = {**os.environ, **env, "ALGO_SERVICES": services}
    full_env.setdefault("ALGO_DATA_DIR", str(tmp / f"{name}-data"))
    popen = subprocess.Popen(
        [sys.executable, "-m", "algotrendy", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=tmp,
    )
    return Proc(name, popen, log, port, env)


def wait_ready(proc: Proc, path: str = "/ready", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited early:\n{proc.output()}")
        try:
            if httpx.get(proc.url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} not ready in {timeout}s:\n{proc.output()}")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def start_nginx(tmp: Path, upstreams: dict[str, str]) -> Proc:
    binary = nginx_binary()
    assert binary, "nginx not installed"
    prefix = tmp / "nginx"
    port = free_port()
    args = [
        sys.executable,
        str(ROOT / "deploy" / "nginx" / "render.py"),
        "--prefix",
        str(prefix),
        "--listen",
        f"127.0.0.1:{port}",
    ]
    for service, address in upstreams.items():
        args += ["--upstream", f"{service}={address}"]
    subprocess.run(args, check=True, capture_output=True, timeout=30)
    log = tmp / "nginx.log"
    popen = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    proc = Proc("nginx", popen, log, port)
    wait_ready(proc, "/nginx-health", timeout=20)
    return proc


LATER = ("marketdata", "strategies", "backtest", "trading", "risk", "portfolio", "ml", "ai")


@asynccontextmanager
async def split_stack(tmp_path: Path, services: str) -> AsyncIterator[dict[str, Proc]]:
    """Split mode on loopback: a users process (tokens), one process hosting ``services``, and
    nginx routing every later service's prefix to it; on PostgreSQL, Redis and NATS."""
    from tests.apphelp import _delete_streams
    from tests.pg import fresh_database
    from tests.support import require, require_service

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
            procs["work"] = start_server("work", tmp_path, common, services=services)
            wait_ready(procs["work"], timeout=120)
            work = f"127.0.0.1:{procs['work'].port}"
            procs["nginx"] = start_nginx(
                tmp_path,
                {
                    "users": f"127.0.0.1:{procs['users'].port}",
                    "notifications": f"127.0.0.1:{procs['users'].port}",
                    "jobs": work,
                    **dict.fromkeys(LATER, work),
                },
            )
            yield procs
        finally:
            for proc in reversed(list(procs.values())):
                proc.stop()
            await _delete_streams(nats_url, [f"S_{tag}", f"S_{tag}_DLQ"])


def edge_user(http: httpx.Client) -> dict[str, str]:
    """Register and log in a fresh trader through the edge; the bearer headers."""
    from tests.apphelp import remember

    name = f"u{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    remember(password)
    r = http.post(
        "/api/v1/users/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert r.status_code == 201, r.text
    r = http.post("/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    remember(r.json()["access_token"], r.json()["refresh_token"])
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
