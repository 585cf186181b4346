"""Staging of a run's bars for its job: the service reads them (from the market data service,
in-process or over HTTP), with the model series a template reads (``Bars.series``), and writes
one ``.npz`` file; the job worker, another process, memory-maps nothing and opens no database:
it reads that file. Deleted when the run is finalized."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from algotrendy.core.market import Bars

_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
BENCHMARK = "__benchmark__"


def save(directory: Path, run_id: uuid.UUID, data: Mapping[str, Bars], benchmark: Bars | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    series = dict(data)
    if benchmark is not None:
        series[BENCHMARK] = benchmark
    extra: dict[str, list[str]] = {}
    for i, (_name, bars) in enumerate(series.items()):
        for c in _COLUMNS:
            arrays[f"{i}_{c}"] = getattr(bars, c)
        for k, values in enumerate(bars.series.values()):
            arrays[f"{i}_s{k}"] = values
        extra[str(i)] = list(bars.series)
    arrays["names"] = np.frombuffer(json.dumps(list(series)).encode(), dtype=np.uint8)
    arrays["series"] = np.frombuffer(json.dumps(extra).encode(), dtype=np.uint8)
    path = directory / f"{run_id}.npz"
    tmp = directory / f".{run_id}.npz.tmp"
    with tmp.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> tuple[dict[str, Bars], Bars | None]:
    with np.load(Path(path)) as z:
        names = json.loads(bytes(z["names"]).decode())
        extra = json.loads(bytes(z["series"]).decode()) if "series" in z else {}
        series = {
            name: Bars(
                *(np.ascontiguousarray(z[f"{i}_{c}"]) for c in _COLUMNS),
                series={a: np.ascontiguousarray(z[f"{i}_s{k}"]) for k, a in enumerate(extra.get(str(i), []))},
            )
            for i, name in enumerate(names)
        }
    bench = series.pop(BENCHMARK, None)
    return series, bench


def remove(path: str | Path | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)
