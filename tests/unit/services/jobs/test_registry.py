"""Job kinds, the job context, the worker-side runner and the ETA estimate."""

from __future__ import annotations

import functools
import math
import pickle
from typing import Any

import pytest

from algotrendy.core.errors import ConfigurationError
from algotrendy.services.jobs.interface import JobCancelled, JobContext, JobStatus
from algotrendy.services.jobs.registry import JobRegistry, describe_error, estimate_eta, execute_job
from tests.unit.services.jobs import fakes


class Channel:
    def __init__(self, *, cancelled: bool = False) -> None:
        self.reports: list[tuple[float, str | None]] = []
        self.cancelled = cancelled

    def report(self, fraction: float, message: str | None) -> None:
        self.reports.append((fraction, message))

    def cancel_requested(self) -> bool:
        return self.cancelled


def test_registered_kind_is_found_by_name() -> None:
    registry = JobRegistry()
    registry.register("test.add", fakes.add)
    assert "test.add" in registry
    assert registry.get("test.add") is fakes.add
    assert registry.kinds() == {"test.add"}
    registry.register("test.add", fakes.add)  # the same function again is harmless


def test_unknown_kind_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        JobRegistry().get("nope")


def test_a_kind_cannot_be_taken_by_a_second_function() -> None:
    registry = JobRegistry()
    registry.register("test.add", fakes.add)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("test.add", fakes.fail)


@pytest.mark.parametrize("kind", ["", "Backtest.Run", "backtest run", "backtest..run", ".x", "x" * 101])
def test_badly_named_kinds_are_refused(kind: str) -> None:
    with pytest.raises(ConfigurationError):
        JobRegistry().register(kind, fakes.add)


def test_functions_that_workers_cannot_import_are_refused() -> None:
    def nested(params: dict[str, Any], ctx: JobContext) -> None:
        return None

    registry = JobRegistry()
    with pytest.raises(ConfigurationError, match="module level"):
        registry.register("test.nested", nested)
    with pytest.raises(ConfigurationError, match="module level"):
        registry.register("test.lambda", lambda params, ctx: None)
    with pytest.raises(ConfigurationError):
        registry.register("test.partial", functools.partial(fakes.add))


def test_progress_is_clamped_and_reported() -> None:
    channel = Channel()
    ctx = JobContext(channel)
    ctx.progress(0.5, "half")
    ctx.progress(1.7)
    ctx.progress(-3, "x" * 900)
    assert channel.reports[0] == (0.5, "half")
    assert channel.reports[1] == (1.0, None)
    assert channel.reports[2][0] == 0.0 and len(channel.reports[2][1] or "") == 500


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_progress_refuses_non_finite_fractions(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        JobContext(Channel()).progress(bad)


def test_progress_raises_job_cancelled_once_cancel_is_requested() -> None:
    channel = Channel(cancelled=True)
    ctx = JobContext(channel)
    assert ctx.cancelled
    with pytest.raises(JobCancelled):
        ctx.progress(0.3)
    assert channel.reports == []


def test_job_cancelled_is_not_swallowed_by_except_exception() -> None:
    assert not issubclass(JobCancelled, Exception)


def test_execute_job_returns_the_result_as_plain_json() -> None:
    outcome = execute_job(fakes.add, {"a": 2, "b": 3}, Channel())
    assert outcome == {"status": "succeeded", "result": {"sum": 5}}


def test_execute_job_turns_an_exception_into_type_and_message() -> None:
    outcome = execute_job(fakes.fail, {"window": 7}, Channel())
    assert outcome == {"status": "failed", "error": "ValueError: bad window 7"}


def test_execute_job_reports_cancellation_as_an_outcome() -> None:
    assert execute_job(fakes.add, {"a": 1, "b": 1}, Channel(cancelled=True)) == {"status": "cancelled"}


def test_a_failed_job_keeps_its_partial_results() -> None:
    outcome = execute_job(fakes.fail_with_partial, {}, Channel())
    assert outcome == {"status": "failed", "error": "window 3 has no data", "result": {"done": [1, 2]}}


def test_a_cancelled_job_may_keep_its_partial_results() -> None:
    outcome = execute_job(fakes.cancel_with_partial, {}, Channel(cancelled=True))
    assert outcome == {"status": "cancelled", "result": {"done": []}}


def test_execute_job_refuses_a_result_that_is_not_json() -> None:
    outcome = execute_job(fakes.not_json, {}, Channel())
    assert outcome["status"] == "failed" and outcome["error"].startswith("ResultNotJSON:")


def test_the_task_handed_to_executors_pickles() -> None:
    task = functools.partial(execute_job, fakes.add, {"a": 1, "b": 2})
    assert pickle.loads(pickle.dumps(task))(Channel()) == {"status": "succeeded", "result": {"sum": 3}}


def test_describe_error_has_no_traceback_and_is_bounded() -> None:
    assert describe_error(KeyError("x")) == "KeyError: 'x'"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert len(describe_error(ValueError("y" * 10_000))) == 2000


@pytest.mark.parametrize(
    ("elapsed", "fraction", "eta"),
    [
        (10.0, 0.0, None),  # nothing done yet: no estimate
        (10.0, 0.25, 30.0),
        (10.0, 0.5, 10.0),
        (30.0, 0.75, 10.0),
        (10.0, 1.0, 0.0),
        (0.0, 0.5, 0.0),
        (1.0, 0.3, 2.3),  # rounded to a tenth of a second
        (-1.0, 0.5, None),
    ],
)
def test_eta_assumes_the_rest_goes_at_the_pace_so_far(
    elapsed: float, fraction: float, eta: float | None
) -> None:
    assert estimate_eta(elapsed, fraction) == eta


def test_finished_statuses() -> None:
    assert {s for s in JobStatus if s.finished} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    }
