"""Job functions for the executor tests: module level, so spawn workers and Ray import them."""

from __future__ import annotations

import os
import time
from typing import Any

from algotrendy.services.jobs.interface import JobContext


def count(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``steps`` steps of ``delay`` seconds, reporting progress before each."""
    steps = int(params.get("steps", 5))
    delay = float(params.get("delay", 0.05))
    total = 0
    for i in range(steps):
        ctx.progress(i / steps, f"step {i + 1} of {steps}")
        time.sleep(delay)
        total += i
    ctx.progress(1.0, "done")
    return {"steps": steps, "total": total, "pid": os.getpid()}


def until_cancelled(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Ticks until cancelled (or ``max_seconds`` pass, so a broken cancel cannot hang a test)."""
    deadline = time.monotonic() + float(params.get("max_seconds", 60))
    ticks = 0
    while time.monotonic() < deadline:
        ticks += 1
        ctx.progress(min(0.99, ticks / 1000), f"tick {ticks}")
        time.sleep(0.01)
    return {"ticks": ticks, "cancelled": False}


def boom(params: dict[str, Any], ctx: JobContext) -> None:
    ctx.progress(0.1, "about to fail")
    raise ValueError(f"boom {params['n']}")


def crash(params: dict[str, Any], ctx: JobContext) -> None:
    """The worker process dies (as on a segfault or the OOM killer)."""
    ctx.progress(0.1, "about to die")
    os._exit(3)


KINDS = {"test.count": count, "test.until_cancelled": until_cancelled, "test.boom": boom, "test.crash": crash}
