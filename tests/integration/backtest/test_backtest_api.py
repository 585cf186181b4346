"""The backtesting REST API as a client sees it: runs as jobs with progress and results, the
spec's paths, bad requests refused before any job starts (naming the field), owner isolation,
optimization with the deflated Sharpe, walk-forward, Monte Carlo, comparison and the HTML report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "/api/v1/backtest"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("bt"), marketdata={"load_samples": True}, jobs={"workers": 2}
    )
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(api: Api) -> dict[str, str]:
    _u, headers, _ = await api.user()
    return headers


async def builtin(api: Api, headers: dict[str, str], slug: str) -> dict[str, Any]:
    r = await api.client.get("/api/v1/strategies/templates", headers=headers)
    assert r.status_code == 200
    return next(t["template"] for t in r.json() if t["slug"] == slug)


async def finished(api: Api, headers: dict[str, str], run_id: str, timeout: float = 120) -> dict[str, Any]:
    for _ in range(int(timeout * 10)):
        r = await api.client.get(f"{PREFIX}/{run_id}/status", headers=headers)
        assert r.status_code == 200, r.text
        status = r.json()
        assert 0 <= status["progress"] <= 1
        if status["status"] in ("completed", "failed", "cancelled"):
            r = await api.client.get(f"{PREFIX}/{run_id}/results", headers=headers)
            assert r.status_code == 200, r.text
            return r.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    if field is not None:
        assert field in str(body), body
    return body


async def test_backtest_runs_as_a_job_and_reports_results(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "sma_crossover")
    body = {
        "template": tpl,
        "symbol": "AAPL",
        "start_date": "2010-01-01",
        "end_date": "2018-01-01",
        "initial_capital": 100000,
        "commission": 0.001,
        "slippage": 0.0005,
    }
    r = await api.client.post(PREFIX, json=body, headers=trader)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] == "queued" and accepted["kind"] == "backtest"
    out = await finished(api, trader, accepted["backtest_id"])
    assert out["status"] == "completed" and out["error"] is None and not out["partial"]
    res = out["result"]
    m = res["metrics"]
    for key in (
        "total_return",
        "annualized_return",
        "volatility",
        "sharpe_ratio",
        "sortino_ratio",
        "calmar_ratio",
        "max_drawdown",
        "max_drawdown_duration_days",
        "win_rate",
        "profit_factor",
        "expectancy",
        "average_trade_return",
        "exposure",
        "turnover",
        "number_of_trades",
        "alpha",
        "beta",
    ):
        assert key in m, key
    assert m["number_of_trades"] == res["trades_total"] == len(res["trades"]) > 5
    assert m["beta"] is not None and res["benchmark"] == "SPY"  # the default benchmark of stocks
    assert res["config"] == {
        "initial_capital": 100000.0,
        "commission": 0.001,
        "slippage": 0.0005,
        "fixed_fee": 0.0,
        "lot_size": 0.0,
        "leverage": 1.0,
    }
    eq = res["equity"]
    assert len(eq["timestamp"]) == len(eq["equity"]) == len(eq["drawdown"]) == len(eq["benchmark"])
    assert eq["timestamp"][0].startswith("2010-01-04") and eq["timestamp"][-1] < "2018-01-01"
    assert out["metrics"]["sharpe_ratio"] == m["sharpe_ratio"]  # headline numbers on the run
    trade = res["trades"][0]
    assert trade["side"] == "long" and trade["fees"] > 0 and trade["exit_time"] > trade["entry_time"]
    # the spec's path for the same results
    r = await api.client.get(f"/api/v1/strategies/backtest/{accepted['backtest_id']}/results", headers=trader)
    assert r.status_code == 200 and r.json()["result"]["metrics"] == m
    # the HTML report
    r = await api.client.get(f"{PREFIX}/{accepted['backtest_id']}/report", headers=trader)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "sharpe" in r.text.lower() and '<script src="http' not in r.text
    assert "SPY (buy and hold)" in r.text


async def test_strategy_scoped_backtest_uses_the_stored_strategy(api: Api, trader: dict[str, str]) -> None:
    r = await api.client.post(
        "/api/v1/strategies",
        json={"name": "rsi swing", "builtin": "rsi_mean_reversion", "symbols": [{"symbol": "SPY"}]},
        headers=trader,
    )
    assert r.status_code == 201, r.text
    sid = r.json()["strategy_id"]
    r = await api.client.post(
        f"/api/v1/strategies/{sid}/backtest",
        json={
            "start_date": "2012-01-01",
            "end_date": "2017-01-01",
            "initial_capital": 50000,
            "commission": 0.0005,
        },
        headers=trader,
    )
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed" and out["strategy_id"] == sid and out["strategy_version"] == 1
    assert out["symbols"] == ["SPY"] and out["strategy_name"] == "rsi swing"
    r = await api.client.get(PREFIX, params={"strategy_id": sid}, headers=trader)
    assert [x["backtest_id"] for x in r.json()] == [out["backtest_id"]]


async def test_bad_requests_name_the_problem_and_start_no_job(api: Api) -> None:
    _u, headers, _ = await api.user()
    tpl = await builtin(api, headers, "sma_crossover")
    bad_indicator = {**tpl, "entry_conditions": ["smaa(close, fast) > close"]}
    problem(
        await api.client.post(PREFIX, json={"template": bad_indicator, "symbol": "AAPL"}, headers=headers),
        422,
        "template.entry_conditions[0]",
    )
    bad_range = {
        **tpl,
        "parameters": {**tpl["parameters"], "fast": {**tpl["parameters"]["fast"], "min_value": 90}},
    }
    problem(
        await api.client.post(PREFIX, json={"template": bad_range, "symbol": "AAPL"}, headers=headers),
        422,
        "fast",
    )
    unparsable = {**tpl, "exit_conditions": ["close >"]}
    problem(
        await api.client.post(PREFIX, json={"template": unparsable, "symbol": "AAPL"}, headers=headers),
        422,
        "template.exit_conditions[0]",
    )
    no_data = {"template": tpl, "symbol": "AAPL", "start_date": "1990-01-01", "end_date": "1991-01-01"}
    assert (
        problem(await api.client.post(PREFIX, json=no_data, headers=headers), 422, "start_date")["code"]
        == "no_data"
    )
    short = {"template": tpl, "symbol": "AAPL", "start_date": "2015-01-01", "end_date": "2015-02-01"}
    body = problem(await api.client.post(PREFIX, json=short, headers=headers), 422, "start_date")
    assert body["code"] == "series_too_short"
    problem(await api.client.post(PREFIX, json={"template": tpl, "symbol": "NOPE"}, headers=headers), 404)
    problem(
        await api.client.post(
            PREFIX, json={"template": tpl, "symbol": "AAPL", "params": {"fast": 1000}}, headers=headers
        ),
        422,
        "parameters.fast",
    )
    huge = {
        "template": tpl,
        "symbol": "AAPL",
        "space": {
            "fast": {"min_value": 2, "max_value": 500, "step": 1},
            "slow": {"min_value": 2, "max_value": 1000, "step": 1},
        },
    }
    body = problem(await api.client.post(f"{PREFIX}/optimize", json=huge, headers=headers), 422, "parameters")
    assert body["code"] == "too_many_combinations"
    r = await api.client.get("/api/v1/jobs", headers=headers)
    assert r.status_code == 200 and r.json() == []  # nothing was started
    r = await api.client.get(PREFIX, headers=headers)
    assert r.json() == []


async def test_another_user_cannot_see_or_touch_a_run(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "ema_crossover")
    r = await api.client.post(PREFIX, json={"template": tpl, "symbol": "MSFT"}, headers=trader)
    run_id = r.json()["backtest_id"]
    _u, other, _ = await api.user()
    for path in (f"{PREFIX}/{run_id}/status", f"{PREFIX}/{run_id}/results", f"{PREFIX}/{run_id}/report"):
        problem(await api.client.get(path, headers=other), 404)
    problem(await api.client.post(f"{PREFIX}/{run_id}/cancel", headers=other), 404)
    problem(await api.client.delete(f"{PREFIX}/{run_id}", headers=other), 404)
    problem(await api.client.post(f"{PREFIX}/monte-carlo", json={"backtest_id": run_id}, headers=other), 404)
    await finished(api, trader, run_id)


async def test_optimize_reports_top_n_and_the_deflated_sharpe(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "sma_crossover")
    body = {
        "template": tpl,
        "symbol": "SPY",
        "parameters": ["fast", "slow"],
        "constraints": ["fast < slow"],
        "space": {
            "fast": {"min_value": 5, "max_value": 30, "step": 5},
            "slow": {"min_value": 20, "max_value": 100, "step": 20},
        },
        "optimization_method": "grid_search",
        "objective": "max_sharpe",
        "top_n": 5,
        "commission": 0.001,
    }
    r = await api.client.post(f"{PREFIX}/optimize", json=body, headers=trader)
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed", out["error"]
    res = out["result"]
    assert res["objective"] == "sharpe_ratio" and len(res["top"]) == 5
    assert res["combinations"] == sum(1 for f in range(5, 31, 5) for s in range(20, 101, 20) if f < s)
    sharpes = [t["sharpe_ratio"] for t in res["top"]]
    assert sharpes == sorted(sharpes, reverse=True)
    assert all(t["params"]["fast"] < t["params"]["slow"] for t in res["top"])
    assert res["best_params"] == res["top"][0]["params"]
    assert 0 <= res["deflated_sharpe"] <= 1
    assert res["best"]["metrics"]["sharpe_ratio"] == pytest.approx(res["top"][0]["sharpe_ratio"], rel=1e-9)
    # Bayesian through Optuna, through the strategy-scoped path
    r = await api.client.post(
        "/api/v1/strategies",
        json={"name": "opt me", "builtin": "sma_crossover", "symbols": [{"symbol": "SPY"}]},
        headers=trader,
    )
    sid = r.json()["strategy_id"]
    r = await api.client.post(
        f"/api/v1/strategies/{sid}/optimize",
        json={"optimization_method": "bayesian", "n_trials": 15, "seed": 3, "constraints": ["fast < slow"]},
        headers=trader,
    )
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed", out["error"]
    assert 1 <= out["result"]["combinations"] <= 15


async def test_walk_forward_stitches_out_of_sample_windows(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "sma_crossover")
    body = {
        "template": tpl,
        "symbol": "SPY",
        "training_window": 504,
        "testing_window": 126,
        "step_size": 126,
        "parameters": ["fast", "slow"],
        "constraints": ["fast < slow"],
        "space": {
            "fast": {"min_value": 5, "max_value": 20, "step": 5},
            "slow": {"min_value": 30, "max_value": 90, "step": 30},
        },
    }
    r = await api.client.post(f"{PREFIX}/walk-forward", json=body, headers=trader)
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed", out["error"]
    res = out["result"]
    assert len(res["windows"]) >= 5
    for a, b in zip(res["windows"], res["windows"][1:], strict=False):
        assert a["test_end"] < b["test_start"] and a["test_start"] > a["train_end"]
    assert "total_return" in res["metrics"] and "efficiency" in res
    too_long = {**body, "training_window": 100_000}
    problem(
        await api.client.post(f"{PREFIX}/walk-forward", json=too_long, headers=trader), 422, "training_window"
    )


async def test_monte_carlo_and_compare(api: Api, trader: dict[str, str]) -> None:
    ids = []
    for slug in ("sma_crossover", "macd_signal"):
        tpl = await builtin(api, trader, slug)
        r = await api.client.post(
            PREFIX, json={"template": tpl, "symbol": "SPY", "commission": 0.0005}, headers=trader
        )
        ids.append(r.json()["backtest_id"])
    for run_id in ids:
        assert (await finished(api, trader, run_id))["status"] == "completed"
    r = await api.client.post(
        f"{PREFIX}/monte-carlo",
        json={"backtest_id": ids[0], "num_simulations": 500, "confidence_level": 0.95, "seed": 7},
        headers=trader,
    )
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed", out["error"]
    res = out["result"]
    for method in ("trade_bootstrap", "block_bootstrap"):
        dist = res[method]
        assert 0 <= dist["probability_of_ruin"] <= 1
        fe = dist["final_equity"]
        assert fe["percentiles"]["p5"] <= fe["percentiles"]["p50"] <= fe["percentiles"]["p95"]
        assert sum(fe["histogram"]["counts"]) == 500 and dist["probability_of_loss"] is not None
    assert res["backtest"]["metrics"]["number_of_trades"] == res["trades"] > 0
    r = await api.client.post(
        f"{PREFIX}/compare",
        json={"backtest_ids": ids, "metrics": ["sharpe_ratio", "max_drawdown"]},
        headers=trader,
    )
    assert r.status_code == 200, r.text
    cmp = r.json()
    assert set(cmp["table"]) == {"sharpe_ratio", "max_drawdown"} and set(cmp["table"]["sharpe_ratio"]) == set(
        ids
    )
    assert cmp["best"]["sharpe_ratio"] in ids
    problem(
        await api.client.post(
            f"{PREFIX}/compare", json={"backtest_ids": ids, "metrics": ["luck"]}, headers=trader
        ),
        422,
        "metrics",
    )


async def test_cancel_and_delete(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "sma_crossover")
    body = {
        "template": tpl,
        "symbol": "BTCUSDT",
        "interval": "1m",
        "optimization_method": "grid_search",
        "parameters": ["fast", "slow"],
        "constraints": ["fast < slow"],
    }
    r = await api.client.post(f"{PREFIX}/optimize", json=body, headers=trader)
    assert r.status_code == 202, r.text
    run_id = r.json()["backtest_id"]
    r = await api.client.post(f"{PREFIX}/{run_id}/cancel", headers=trader)
    assert r.status_code == 200, r.text
    out = await finished(api, trader, run_id)
    assert out["status"] == "cancelled"
    problem(await api.client.post(f"{PREFIX}/{run_id}/cancel", headers=trader), 409)
    r = await api.client.delete(f"{PREFIX}/{run_id}", headers=trader)
    assert r.status_code == 204
    problem(await api.client.get(f"{PREFIX}/{run_id}/status", headers=trader), 404)


async def test_strategy_scoped_runs_on_another_users_strategy_are_404(
    api: Api, trader: dict[str, str]
) -> None:
    r = await api.client.post(
        "/api/v1/strategies",
        json={"name": "mine only", "builtin": "sma_crossover", "symbols": [{"symbol": "SPY"}]},
        headers=trader,
    )
    sid = r.json()["strategy_id"]
    _u, other, _ = await api.user()
    for path, body in (("backtest", {}), ("optimize", {"constraints": ["fast < slow"]})):
        body404 = problem(
            await api.client.post(f"/api/v1/strategies/{sid}/{path}", json=body, headers=other), 404
        )
        assert "mine only" not in str(body404)
    problem(await api.client.post(PREFIX, json={"strategy_id": sid, "symbol": "SPY"}, headers=other), 404)
    r = await api.client.get(PREFIX, headers=other)
    assert r.json() == []


async def test_momentum_rotation_across_symbols(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "momentum_rotation")
    body = {
        "template": tpl,
        "symbols": ["AAPL", "MSFT", "GOOG"],
        "commission": 0.0005,
        "start_date": "2010-01-01",
    }
    r = await api.client.post(PREFIX, json=body, headers=trader)
    assert r.status_code == 202, r.text
    out = await finished(api, trader, r.json()["backtest_id"])
    assert out["status"] == "completed", out["error"]
    res = out["result"]
    assert res["engine"] == "event" and set(res["symbols"]) == {"AAPL", "MSFT", "GOOG"}
    assert len({t["symbol"] for t in res["trades"]}) >= 2
    one = {"template": tpl, "symbol": "AAPL"}
    problem(await api.client.post(PREFIX, json=one, headers=trader), 422, "symbols")


async def test_the_list_shows_a_running_run_as_running(api: Api, trader: dict[str, str]) -> None:
    tpl = await builtin(api, trader, "sma_crossover")
    body = {
        "template": tpl,
        "symbol": "BTCUSDT",
        "interval": "1m",
        "optimization_method": "grid_search",
        "parameters": ["fast", "slow"],
        "constraints": ["fast < slow"],
    }
    r = await api.client.post(f"{PREFIX}/optimize", json=body, headers=trader)
    run_id = r.json()["backtest_id"]
    for _ in range(600):
        status = (await api.client.get(f"{PREFIX}/{run_id}/status", headers=trader)).json()["status"]
        if status == "running":
            break
        await asyncio.sleep(0.05)
    listed = {x["backtest_id"]: x["status"] for x in (await api.client.get(PREFIX, headers=trader)).json()}
    assert listed[run_id] == "running"
    await api.client.post(f"{PREFIX}/{run_id}/cancel", headers=trader)
    assert (await finished(api, trader, run_id))["status"] == "cancelled"
