"""Helpers shared by the benchmark scripts: the CPU's name and a per-call timer."""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timings_us(fn: Callable[[], object], runs: int, warmup: int = 200) -> list[float]:
    """Microseconds per call of ``fn`` over ``runs`` calls, after ``warmup`` calls and a GC."""
    for _ in range(warmup):
        fn()
    gc.collect()
    out = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t = clock()
        fn()
        out.append((clock() - t) / 1e3)
    return out
