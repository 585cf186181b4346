"""Route selection per request: FastAPI's own matching against the router guard (gateway.routing).

Builds the all-in-one app, then times how long the root router takes to find the route of a few
requests, once with each included router's guard and once calling FastAPI's ``matches`` directly
(what every request paid before the guard). In-process, one thread, median of ``--runs`` runs of
``--n`` selections each.

    uv run python bench/routing_bench.py [--runs 7] [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Match

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = [
    ("GET", "/auth/me"),
    ("GET", "/api/v1/trading/connections"),
    ("POST", "/api/v1/trading/orders"),
    ("POST", f"/api/v1/ml/models/{uuid.UUID(int=7)}/predict"),
]


def select(routes: list[BaseRoute], scope: dict[str, Any], guarded: bool) -> int:
    for i, route in enumerate(routes):
        match, _ = route.matches(scope) if guarded else type(route).matches(route, scope)
        if match == Match.FULL:
            return i
    raise LookupError(scope["path"])


def main() -> None:
    from tests.apphelp import make_settings

    from algotrendy.app.asgi import create_app

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    routes = create_app(make_settings(Path(tempfile.mkdtemp()))).router.routes
    for method, path in CASES:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        figures = {}
        for guarded in (False, True):
            runs = []
            for _ in range(args.runs):
                t = time.perf_counter()
                for _ in range(args.n):
                    select(routes, scope, guarded)
                runs.append((time.perf_counter() - t) / args.n * 1e6)
            figures["guard" if guarded else "fastapi"] = round(statistics.median(runs), 1)
        print(f"{method} {path}: {figures} us per request")


if __name__ == "__main__":
    main()
