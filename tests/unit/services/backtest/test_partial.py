"""A search that stops part-way keeps what it found: a cancelled or failed optimization keeps the
ranking of the combinations it finished; a walk-forward keeps its finished windows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.signals import resolve_params
from algotrendy.services.backtest import compute, inputs, jobs
from algotrendy.services.jobs.interface import JobCancelled, JobContext, JobFailed
from tests.unit.indicators.synthetic import walk


class Channel:
    """Cancels after ``after`` progress reports (a user pressing cancel mid-run)."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.reports = 0

    def report(self, fraction: float, message: str | None) -> None:
        self.reports += 1

    def cancel_requested(self) -> bool:
        return self.reports >= self.after


def _params(tmp_path: Any, settings: dict[str, Any]) -> dict[str, Any]:
    t = BUILTIN_TEMPLATES["sma_crossover"]
    bars = walk(3000, seed=5)
    path = inputs.save(tmp_path, __import__("uuid").uuid4(), {"X": bars}, None)
    plan = {
        "template": t.model_dump(mode="json"),
        "params": resolve_params(t, {}),
        "symbols": ["X"],
        "config": {
            "initial_capital": 100_000.0,
            "fee_rate": 0.001,
            "slippage": 0.0,
            "fee_fixed": 0.0,
            "lot_size": 0.0,
            "leverage": 1.0,
        },
        "workers": 1,
    }
    return {"plan": plan, "inputs": str(path), "settings": settings, "max_combinations": 10_000}


GRID = {
    "parameters": ["fast", "slow"],
    "constraints": ["fast < slow"],
    "space": {
        "fast": {"min_value": 5, "max_value": 30, "step": 5},
        "slow": {"min_value": 40, "max_value": 100, "step": 20},
    },
    "optimization_method": "grid_search",
    "objective": "sharpe_ratio",
    "top_n": 3,
}


def test_a_cancelled_optimization_keeps_the_ranking_of_what_finished(tmp_path: Any) -> None:
    params = _params(tmp_path, GRID)
    with pytest.raises(JobCancelled) as stopped:
        jobs.run_optimize(params, JobContext(Channel(after=6)))
    partial = stopped.value.partial
    assert partial["combinations"] == 24 and 0 < partial["completed"] < 24
    assert len(partial["top"]) == min(3, partial["completed"])
    sharpes = [row["sharpe_ratio"] for row in partial["top"]]
    assert sharpes == sorted(sharpes, reverse=True)


def test_a_failing_optimization_keeps_partial_results(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = compute.compute_signals
    calls = {"n": 0}

    def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise ValueError("disk on fire")
        return real(*args, **kw)

    monkeypatch.setattr(compute, "compute_signals", flaky)
    with pytest.raises(JobFailed) as failed:
        jobs.run_optimize(_params(tmp_path, GRID), JobContext(Channel(after=10**9)))
    assert "ValueError: disk on fire" in str(failed.value)
    assert failed.value.partial["completed"] == 4


def test_a_cancelled_walk_forward_keeps_its_finished_windows(tmp_path: Any) -> None:
    settings = {**GRID, "training_window": 800, "testing_window": 400, "step_size": 400}
    params = _params(tmp_path, settings)
    # 25 combinations per window (plus one report): cancel inside the third window
    with pytest.raises(JobCancelled) as stopped:
        jobs.run_walk_forward(params, JobContext(Channel(after=2 + 2 * 25 + 5)))
    partial = stopped.value.partial
    assert len(partial["windows"]) == 2 and partial["metrics"]["total_return"] is not None
    assert np.isfinite(partial["equity"]["equity"]).all()


def test_a_run_without_finished_work_is_cancelled_plainly(tmp_path: Any) -> None:
    with pytest.raises(JobCancelled) as stopped:
        jobs.run_optimize(_params(tmp_path, GRID), JobContext(Channel(after=0)))
    assert stopped.value.partial is None
