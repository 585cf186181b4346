"""The backtest job kinds (run in job workers: a process pool, or Ray).

Each loads the staged bars, runs ``compute``/``robustness`` and returns the result JSON. A
walk-forward that fails part-way keeps the windows it finished (``JobFailed(partial=...)``).
"""

from __future__ import annotations

from typing import Any

from algotrendy.engine.template import TemplateError
from algotrendy.services.backtest import compute, inputs, robustness
from algotrendy.services.jobs.interface import JobCancelled, JobContext, JobFailed, JobRegistrar

KINDS = {
    "backtest": "backtest.run",
    "optimize": "backtest.optimize",
    "walk_forward": "backtest.walk_forward",
    "monte_carlo": "backtest.monte_carlo",
}


def _setup(params: dict[str, Any], ctx: JobContext) -> tuple[compute.Plan, Any, Any, compute.Progress]:
    ctx.progress(0.0, "loading bars")
    data, bench = inputs.load(params["inputs"])
    plan = compute.Plan.from_json(params["plan"])

    def progress(fraction: float, message: str) -> None:
        ctx.progress(fraction, message)

    return plan, data, bench, progress


def run_backtest(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    plan, data, bench, progress = _setup(params, ctx)
    return compute.backtest(plan, data, bench, progress)


def _keep_partial(exc: compute.PartialRun) -> BaseException:
    """A stopped search as the job outcome that keeps what it found."""
    if isinstance(exc.cause, JobCancelled):
        return JobCancelled(partial=exc.done)
    cause = exc.cause
    return JobFailed(f"{type(cause).__name__}: {cause}", partial=exc.done)


def run_optimize(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    plan, data, bench, progress = _setup(params, ctx)
    try:
        return compute.optimize(
            plan, data, bench, params["settings"], progress, max_combinations=int(params["max_combinations"])
        )
    except compute.PartialRun as exc:
        raise _keep_partial(exc) from None


def run_walk_forward(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    plan, data, _bench, progress = _setup(params, ctx)
    try:
        return robustness.walk_forward(
            plan, data, params["settings"], progress, max_combinations=int(params["max_combinations"])
        )
    except compute.PartialRun as exc:
        raise _keep_partial(exc) from None
    except TemplateError as exc:
        raise JobFailed(str(exc)) from None


def run_monte_carlo(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    plan, data, bench, progress = _setup(params, ctx)
    progress(0.1, "running the backtest")
    result = compute.simulate(plan, data)
    progress(0.5, "resampling")
    out = robustness.monte_carlo(plan, result, params["settings"])
    out["backtest"] = {"metrics": compute.describe(plan, result, bench)["metrics"], "params": plan.params}
    return out


def register(registrar: JobRegistrar) -> None:
    registrar.register(KINDS["backtest"], run_backtest)
    registrar.register(KINDS["optimize"], run_optimize)
    registrar.register(KINDS["walk_forward"], run_walk_forward)
    registrar.register(KINDS["monte_carlo"], run_monte_carlo)
