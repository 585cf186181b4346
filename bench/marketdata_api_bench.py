"""``GET /api/v1/market-data/{symbol}``: 1,000 cached bars with 3 indicators (rsi, macd, bbands).

Starts the all-in-one server on the bundled sample data, warms the cache with one request,
then runs ``wrk --latency`` several times at 8 and at 64 connections and reports the median
requests/s and the median of each run's p50/p99. Also times the uncached computation (the
first request of a distinct query) in-process.

    uv run python bench/marketdata_api_bench.py [--runs 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.http_bench import start_server, wrk

QUERY = "/api/v1/market-data/SPY?interval=1d&limit=1000&indicators=rsi,macd,bbands"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    server, base, password = start_server()
    try:
        token = httpx.post(base + "/auth/login", json={"username": "bench", "password": password}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        cold = []
        for n in range(5):  # distinct queries: each one computes (store read + indicators + JSON)
            t0 = time.perf_counter()
            r = httpx.get(
                base + QUERY.replace("limit=1000", f"limit={1000 - n}"), headers=headers, timeout=30
            )
            cold.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        r = httpx.get(base + QUERY, headers=headers)
        size = len(r.content)
        assert r.json()["count"] == 1000
        results: dict[str, object] = {
            "response_bytes": size,
            "uncached_ms_median": round(statistics.median(cold), 1),
        }
        for conns in (8, 64):
            parsed = [wrk(base + QUERY, args.seconds, headers, connections=conns) for _ in range(args.runs)]
            results[f"{conns} connections"] = {
                "rps_median": round(statistics.median(p["rps"] for p in parsed)),
                "p50_ms_median": round(statistics.median(p["p50_ms"] for p in parsed), 2),
                "p99_ms_median": round(statistics.median(p["p99_ms"] for p in parsed), 2),
            }
        print(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
