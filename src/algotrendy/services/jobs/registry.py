"""Job kinds (name -> top-level function), the worker-side runner, and the ETA estimate.

``execute_job`` is what an executor actually runs in its worker (as
``functools.partial(execute_job, fn, params)(channel)``): it turns whatever the job function
does into a plain, picklable ``JobOutcome``, so no job exception has to cross a process
boundary and the executor never needs to know about ``JobCancelled``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from typing import Any, Literal, TypedDict

from algotrendy.core.errors import ConfigurationError
from algotrendy.services.jobs.interface import (
    JobCancelled,
    JobContext,
    JobFailed,
    JobFunction,
    ProgressChannel,
)

KIND_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
MAX_KIND_LENGTH = 100
MAX_ERROR_LENGTH = 2000


class JobRegistry:
    """Which job kinds this process can run. Kinds are registered once, at startup."""

    def __init__(self) -> None:
        self._fns: dict[str, JobFunction] = {}

    def register(self, kind: str, fn: JobFunction) -> None:
        """Declare ``kind`` (``service.action`` style) as run by ``fn``.

        ``fn`` must be a module-level function: spawn workers and Ray import it by name.
        """
        if len(kind) > MAX_KIND_LENGTH or not KIND_PATTERN.match(kind):
            raise ConfigurationError(f"job kind {kind!r} must match {KIND_PATTERN.pattern} (<= 100 chars)")
        if kind in self._fns and self._fns[kind] is not fn:
            raise ConfigurationError(f"job kind {kind!r} is already registered")
        _check_importable(kind, fn)
        self._fns[kind] = fn

    def get(self, kind: str) -> JobFunction:
        """The function for ``kind``; ``KeyError`` if unknown."""
        return self._fns[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._fns

    def kinds(self) -> frozenset[str]:
        return frozenset(self._fns)


def _check_importable(kind: str, fn: JobFunction) -> None:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not callable(fn) or not module or not qualname or "<" in qualname or module == "__main__":
        raise ConfigurationError(
            f"job kind {kind!r}: the function must be defined at module level of an importable "
            f"module (got {qualname or fn!r} in {module!r})"
        )
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not fn:
        raise ConfigurationError(f"job kind {kind!r}: {module}.{qualname} does not import back to {fn!r}")


class JobOutcome(TypedDict, total=False):
    """How a run ended, as data (picklable, no exception objects)."""

    status: Literal["succeeded", "failed", "cancelled"]
    result: Any
    error: str


def describe_error(exc: BaseException) -> str:
    """``'ValueError: bad window'``: the type and message, never a traceback."""
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:MAX_ERROR_LENGTH]


def execute_job(fn: JobFunction, params: dict[str, Any], channel: ProgressChannel) -> JobOutcome:
    """Run one job in the worker and report how it ended."""
    ctx = JobContext(channel)
    try:
        result = fn(params, ctx)
    except JobCancelled as exc:
        return _with_partial({"status": "cancelled"}, exc.partial)
    except JobFailed as exc:
        return _with_partial({"status": "failed", "error": str(exc)[:MAX_ERROR_LENGTH]}, exc.partial)
    except (Exception, SystemExit) as exc:
        return {"status": "failed", "error": describe_error(exc)}
    try:
        result = _strict_json(result)
    except (TypeError, ValueError) as exc:
        return {"status": "failed", "error": f"ResultNotJSON: {exc}"[:MAX_ERROR_LENGTH]}
    return {"status": "succeeded", "result": result}


def _strict_json(value: Any) -> Any:
    """Strict JSON (no NaN/Infinity: PostgreSQL refuses them), round-tripped to plain types."""
    return json.loads(json.dumps(value, allow_nan=False))


def _with_partial(outcome: JobOutcome, partial: Any) -> JobOutcome:
    if partial is not None:
        # partial results are a courtesy: never let them turn into a second failure
        with contextlib.suppress(TypeError, ValueError):
            outcome["result"] = _strict_json(partial)
    return outcome


def estimate_eta(elapsed: float, fraction: float) -> float | None:
    """Seconds left if the rest goes at the pace so far; ``None`` before any progress."""
    if elapsed < 0 or fraction <= 0:
        return None
    if fraction >= 1:
        return 0.0
    return round(elapsed * (1 - fraction) / fraction, 1)
