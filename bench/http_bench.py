"""HTTP throughput and latency of the all-in-one server (wrk on loopback).

Starts ``python -m algotrendy serve`` (uvicorn + uvloop + httptools, one process) on a
fresh data dir with rate limits raised out of the way, then for each target runs
``wrk -t2 -c64 -d<secs>s --latency`` several times and reports the median requests/s and the
median of each run's p50/p99. Login is measured separately (sequential requests: argon2id
is deliberately slow).

    uv run python bench/http_bench.py [--runs 5] [--seconds 10] [--access-log]

Needs ``wrk`` (Debian: apt-get install wrk). Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.procs import free_port

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, seconds: int, headers: dict[str, str], *, connections: int = 64) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


def start_server(*, access_log: bool = False) -> tuple[subprocess.Popen[bytes], str, str]:
    """``algotrendy serve`` on a fresh data dir, rate limits out of the way, one user registered
    (username ``bench``); returns the process, its base URL and the password."""
    tmp = Path(tempfile.mkdtemp(prefix="algo-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "ALGO_DATA_DIR": str(tmp / "data"),
        "ALGO_GATEWAY__IP_BURST": "1e9",
        "ALGO_GATEWAY__IP_RATE_PER_MINUTE": "1e12",
        "ALGO_GATEWAY__USER_BURST": "1e9",
        "ALGO_GATEWAY__USER_RATE_PER_MINUTE": "1e12",
        "ALGO_GATEWAY__AUTH_BURST": "1e9",
        "ALGO_GATEWAY__AUTH_RATE_PER_MINUTE": "1e12",
        "ALGO_LOG__ACCESS_LOG": "true" if access_log else "false",
        "ALGO_LOG__LEVEL": "INFO" if access_log else "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "algotrendy", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    password = uuid.uuid4().hex
    httpx.post(
        base + "/api/v1/users/register",
        json={"email": "bench@example.com", "username": "bench", "password": password},
    ).raise_for_status()
    return server, base, password


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--access-log", action="store_true", help="keep the per-request access log on")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    server, base, password = start_server(access_log=args.access_log)
    try:
        logins = []
        for _ in range(30):
            t0 = time.perf_counter()
            r = httpx.post(base + "/auth/login", json={"username": "bench", "password": password})
            logins.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        token = r.json()["access_token"]
        results: dict[str, object] = {}
        for name, path, headers in (
            ("GET /health", "/health", {}),
            ("GET /auth/me", "/auth/me", {"Authorization": f"Bearer {token}"}),
        ):
            wrk(base + path, 3, headers)  # warm-up
            runs = [wrk(base + path, args.seconds, headers) for _ in range(args.runs)]
            results[name] = {
                "rps_median": round(statistics.median(r["rps"] for r in runs)),
                "p50_ms_median": round(statistics.median(r["p50_ms"] for r in runs), 2),
                "p99_ms_median": round(statistics.median(r["p99_ms"] for r in runs), 2),
                "non_2xx": int(sum(r["non2xx"] for r in runs)),
                "runs": [round(r["rps"]) for r in runs],
            }
        logins.sort()
        results["POST /auth/login (sequential)"] = {
            "p50_ms": round(statistics.median(logins), 1),
            "p99_ms": round(logins[int(len(logins) * 0.99) - 1], 1),
            "n": len(logins),
        }
        cpu = platform.processor() or platform.machine()
        results["machine"] = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
        results["settings"] = (
            f"wrk -t2 -c64 -d{args.seconds}s x{args.runs}, access log {'on' if args.access_log else 'off'}"
        )
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
