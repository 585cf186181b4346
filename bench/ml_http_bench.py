"""Prediction latency over HTTP: ``POST /api/v1/ml/models/{id}/predict`` on the real server.

Starts ``algotrendy serve`` (``bench.http_bench.start_server``: one process, rate limits out of the
way), trains a standard LightGBM model on the shipped AAPL daily bars through the API, and then
sends sequential requests on one keep-alive connection (what a strategy process calling the
service does): the features given in the body, and the serving-name path. Reports p50/p99 of
each of several runs and their medians. Target (issue 7): p99 <= 5 ms (the spec asks < 10 ms).

    uv run python bench/ml_http_bench.py [--runs 5] [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.http_bench import start_server

ML = "/api/v1/ml"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _train(http: httpx.Client) -> dict[str, object]:
    body = {
        "symbol": "AAPL",
        "name": "bench",
        "features": "standard",
        "start": "2008-01-01",
        "end": "2017-12-31",
    }
    r = http.post(f"{ML}/models/train", json=body)
    r.raise_for_status()
    model_id = r.json()["model_id"]
    for _ in range(6000):
        status = http.get(f"{ML}/models/{model_id}/status").json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.1)
    if status["status"] != "completed":
        sys.exit(f"training {status['status']}: {status}")
    http.post(f"{ML}/models/{model_id}/promote").raise_for_status()
    return dict(http.get(f"{ML}/models/{model_id}").json())


def _run(http: httpx.Client, url: str, body: dict[str, object], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = http.post(url, json=body)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return _percentile(times, 0.5), _percentile(times, 0.99)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    server, base, password = start_server()
    try:
        token = httpx.post(base + "/auth/login", json={"username": "bench", "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            model = _train(http)
            frame = http.post(
                f"{ML}/features/engineer",
                json={"symbol": "AAPL", "features": model["feature_names"], "limit": 1},
            ).json()
            features = dict(zip(frame["columns"], frame["rows"][0], strict=True))
            cases = {
                "POST /ml/models/{id}/predict (features in the body)": (
                    f"{ML}/models/{model['id']}/predict",
                    {"features": features},
                ),
                "POST /ml/registry/{name}/predict (serving version)": (
                    f"{ML}/registry/bench/predict",
                    {"features": features},
                ),
            }
            results: dict[str, object] = {}
            for name, (url, body) in cases.items():
                _run(http, url, body, 200)  # warm-up
                runs = [_run(http, url, body, args.requests) for _ in range(args.runs)]
                results[name] = {
                    "p50_ms_median": round(statistics.median(r[0] for r in runs), 3),
                    "p99_ms_median": round(statistics.median(r[1] for r in runs), 3),
                    "p99_ms_runs": [round(r[1], 3) for r in runs],
                }
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                "python": platform.python_version(),
                "load_before": load_before,
                "load_after": Path("/proc/loadavg").read_text().split()[:3],
                "features": len(model["feature_names"]),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
