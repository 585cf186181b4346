"""``BacktestApi`` on ``BacktestService`` (in-process) and on ``BacktestClient`` (HTTP, over
httpx.ASGITransport to the same app): runs as jobs, the same results for the same request,
optimization, Monte Carlo, comparison, listing, and the same errors with the same fields."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest
import pytest_asyncio

from algotrendy.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.template import StrategyTemplate
from algotrendy.services.backtest.client import BacktestClient
from algotrendy.services.backtest.interface import (
    BacktestApi,
    BacktestCreate,
    CompareRequest,
    MonteCarloCreate,
    OptimizeCreate,
    RunKind,
    RunResults,
    RunStatus,
    RunStatusRead,
    RunSummary,
    SpaceEntry,
)
from tests.apphelp import Api, make_settings, running

pytestmark = pytest.mark.asyncio(loop_scope="module")

ForToken = Callable[[str], BacktestApi]
FINISHED = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
SMA = BUILTIN_TEMPLATES["sma_crossover"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("btc"), marketdata={"load_samples": True}, jobs={"workers": 2}
    )
    async with running(settings) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def remote(app: Api) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the running app, as a remote process would hold one."""
    transport = httpx.ASGITransport(app=app.app, client=("127.0.0.2", 40001))
    async with httpx.AsyncClient(transport=transport, base_url="http://backtest.internal") as client:
        yield client


@pytest.fixture(params=["service", "client"])
def backtests_for(request: pytest.FixtureRequest, app: Api, remote: httpx.AsyncClient) -> ForToken:
    """``backtests_for(access_token)``: the API as the token's owner, on either side."""
    if request.param == "service":
        service: BacktestApi = app.app.state.services["backtest"]
        return lambda _token: service
    return lambda token: BacktestClient(remote, token=token)


async def _person(app: Api, backtests_for: ForToken) -> tuple[uuid.UUID, BacktestApi]:
    user, headers, _ = await app.user()
    return uuid.UUID(user["id"]), backtests_for(headers["Authorization"].removeprefix("Bearer "))


def _spy(template: StrategyTemplate = SMA, **fields: Any) -> BacktestCreate:
    return BacktestCreate(template=template, symbol="SPY", commission=0.001, **fields)


def _bad_template() -> StrategyTemplate:
    data = SMA.model_dump() | {"entry_conditions": ["frobnicate(close, 3) > 1"]}
    return StrategyTemplate.model_validate(data)


def _ids(items: list[RunSummary]) -> list[uuid.UUID]:
    return [x.backtest_id for x in items]


async def finished(
    bt: BacktestApi, owner: uuid.UUID, run_id: uuid.UUID, timeout: float = 120
) -> RunStatusRead:
    """Polls ``status`` until the run has finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await bt.status(owner=owner, backtest_id=run_id)
        assert status.backtest_id == run_id and 0 <= status.progress <= 1
        if status.status in FINISHED:
            return status
        if loop.time() > deadline:
            raise AssertionError(f"run {run_id} did not finish ({status.status}, {status.progress:.0%})")
        await asyncio.sleep(0.1)


async def completed(bt: BacktestApi, owner: uuid.UUID, run_id: uuid.UUID) -> RunResults:
    status = await finished(bt, owner, run_id)
    results = await bt.results(owner=owner, backtest_id=run_id)
    assert status.status is RunStatus.COMPLETED, results.error
    return results


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reference(app: Api) -> RunResults:
    """The SMA crossover backtest on SPY, run in-process once: what both sides must reproduce."""
    user, _headers, _ = await app.user()
    owner = uuid.UUID(user["id"])
    service: BacktestApi = app.app.state.services["backtest"]
    accepted = await service.backtest(owner=owner, request=_spy(name="reference"))
    return await completed(service, owner, accepted.backtest_id)


async def test_a_backtest_runs_as_a_job_and_gives_the_same_results_for_the_same_request(
    app: Api, backtests_for: ForToken, reference: RunResults
) -> None:
    owner, bt = await _person(app, backtests_for)
    accepted = await bt.backtest(owner=owner, request=_spy(name="reference"))
    run_id = accepted.backtest_id
    assert (accepted.kind, accepted.status) == (RunKind.BACKTEST, RunStatus.QUEUED)
    assert accepted.status_url == f"/api/v1/backtest/{run_id}/status"
    assert accepted.results_url == f"/api/v1/backtest/{run_id}/results"

    status = await finished(bt, owner, run_id)
    assert (status.kind, status.status, status.progress) == (RunKind.BACKTEST, RunStatus.COMPLETED, 1.0)
    assert status.error is None and status.finished_at is not None
    assert status.finished_at >= status.created_at

    out = await bt.results(owner=owner, backtest_id=run_id)
    assert (out.backtest_id, out.kind, out.status, out.name) == (
        run_id,
        RunKind.BACKTEST,
        RunStatus.COMPLETED,
        "reference",
    )
    assert (out.strategy_id, out.strategy_version, out.strategy_name) == (None, None, SMA.name)
    assert (out.symbols, out.interval, out.partial, out.error) == (["SPY"], "1d", False, None)
    assert out.result is not None and out.result["metrics"]["number_of_trades"] > 0
    assert out.metrics["sharpe_ratio"] == out.result["metrics"]["sharpe_ratio"]
    # the same request, however it travelled, is stored and computed the same (deterministic)
    assert reference.result is not None
    assert out.request == reference.request
    assert out.result["metrics"] == reference.result["metrics"]
    assert out.metrics == reference.metrics
    assert out.result["trades"] == reference.result["trades"]
    # reading again changes nothing
    assert await bt.results(owner=owner, backtest_id=run_id) == out
    assert await bt.status(owner=owner, backtest_id=run_id) == status


async def test_optimize_a_small_grid_with_a_constraint(app: Api, backtests_for: ForToken) -> None:
    owner, bt = await _person(app, backtests_for)
    request = OptimizeCreate(
        template=SMA,
        symbol="SPY",
        commission=0.001,
        parameters=["fast", "slow"],
        space={
            "fast": SpaceEntry(min_value=5, max_value=20, step=5),
            "slow": SpaceEntry(min_value=20, max_value=60, step=20),
        },
        constraints=["fast < slow"],
        optimization_method="grid",
        objective="max_sharpe",
        top_n=3,
    )
    accepted = await bt.optimize(owner=owner, request=request)
    assert (accepted.kind, accepted.status) == (RunKind.OPTIMIZE, RunStatus.QUEUED)
    out = await completed(bt, owner, accepted.backtest_id)
    assert out.kind is RunKind.OPTIMIZE and out.result is not None
    res = out.result
    assert res["objective"] == "sharpe_ratio"
    assert res["combinations"] == sum(1 for f in (5, 10, 15, 20) for s in (20, 40, 60) if f < s)
    top = res["top"]
    assert len(top) == 3
    assert all(t["params"]["fast"] < t["params"]["slow"] for t in top)
    sharpes = [t["sharpe_ratio"] for t in top]
    assert sharpes == sorted(sharpes, reverse=True)
    assert res["best_params"] == top[0]["params"]
    assert "deflated_sharpe" in out.metrics
    assert out.request["optimization_method"] == "grid_search" and out.request["objective"] == "sharpe_ratio"


async def test_compare_monte_carlo_and_list_by_kind(app: Api, backtests_for: ForToken) -> None:
    owner, bt = await _person(app, backtests_for)
    ids = [
        (await bt.backtest(owner=owner, request=_spy(BUILTIN_TEMPLATES[slug]))).backtest_id
        for slug in ("sma_crossover", "macd_signal")
    ]
    runs = {run_id: await completed(bt, owner, run_id) for run_id in ids}

    cmp = await bt.compare(
        owner=owner, request=CompareRequest(backtest_ids=ids, metrics=["sharpe_ratio", "max_drawdown"])
    )
    assert cmp.metrics == ["sharpe_ratio", "max_drawdown"]
    assert [r.backtest_id for r in cmp.runs] == ids
    assert set(cmp.table) == {"sharpe_ratio", "max_drawdown"}
    for metric, column in cmp.table.items():
        assert column == {str(i): runs[i].metrics[metric] for i in ids}
        assert cmp.best[metric] in ids
    with pytest.raises(Invalid) as unknown:
        await bt.compare(owner=owner, request=CompareRequest(backtest_ids=ids, metrics=["luck"]))
    assert unknown.value.field == "metrics"

    mc = await bt.monte_carlo(
        owner=owner, request=MonteCarloCreate(backtest_id=ids[0], num_simulations=200, seed=7)
    )
    assert (mc.kind, mc.status) == (RunKind.MONTE_CARLO, RunStatus.QUEUED)
    out = await completed(bt, owner, mc.backtest_id)
    assert out.kind is RunKind.MONTE_CARLO and out.result is not None
    for method in ("trade_bootstrap", "block_bootstrap"):
        assert 0 <= out.result[method]["probability_of_ruin"] <= 1
    assert "probability_of_ruin" in out.metrics
    assert out.result["backtest"]["metrics"]["number_of_trades"] == runs[ids[0]].metrics["number_of_trades"]

    with pytest.raises(Conflict) as not_comparable:
        await bt.compare(owner=owner, request=CompareRequest(backtest_ids=[ids[0], mc.backtest_id]))
    assert (not_comparable.value.code, not_comparable.value.field) == ("not_comparable", "backtest_ids")
    with pytest.raises(Invalid) as not_a_backtest:
        await bt.monte_carlo(owner=owner, request=MonteCarloCreate(backtest_id=mc.backtest_id))
    assert not_a_backtest.value.field == "backtest_id"

    assert _ids(await bt.list(owner=owner)) == [mc.backtest_id, *reversed(ids)]  # newest first
    assert _ids(await bt.list(owner=owner, kind=RunKind.BACKTEST)) == list(reversed(ids))
    assert _ids(await bt.list(owner=owner, kind=RunKind.MONTE_CARLO)) == [mc.backtest_id]
    assert await bt.list(owner=owner, kind=RunKind.OPTIMIZE) == []
    assert _ids(await bt.list(owner=owner, limit=1, offset=1)) == [ids[1]]
    (summary,) = await bt.list(owner=owner, kind=RunKind.MONTE_CARLO)
    assert summary.status is RunStatus.COMPLETED and summary.metrics == out.metrics
    for bad in ({"limit": 0}, {"limit": 500}, {"offset": -1}):
        with pytest.raises(Invalid) as refused:
            await bt.list(owner=owner, **bad)
        assert refused.value.field == next(iter(bad))


async def test_bad_requests_are_refused_with_the_same_errors_and_start_nothing(
    app: Api, backtests_for: ForToken
) -> None:
    owner, bt = await _person(app, backtests_for)
    with pytest.raises(Invalid) as bad_template:
        await bt.backtest(owner=owner, request=_spy(_bad_template()))
    assert (bad_template.value.field, bad_template.value.code) == (
        "template.entry_conditions[0]",
        "invalid_template",
    )
    with pytest.raises(Invalid) as no_data:
        await bt.backtest(owner=owner, request=_spy(start_date=date(1990, 1, 1), end_date=date(1991, 1, 1)))
    assert (no_data.value.field, no_data.value.code) == ("start_date", "no_data")
    with pytest.raises(NotFound):
        await bt.backtest(owner=owner, request=BacktestCreate(template=SMA, symbol="NOPE"))
    assert await bt.list(owner=owner) == []  # no run was started

    unknown = uuid.uuid4()
    for call in (
        bt.status(owner=owner, backtest_id=unknown),
        bt.results(owner=owner, backtest_id=unknown),
        bt.cancel(owner=owner, backtest_id=unknown),
        bt.delete(owner=owner, backtest_id=unknown),
        bt.monte_carlo(owner=owner, request=MonteCarloCreate(backtest_id=unknown)),
        bt.compare(owner=owner, request=CompareRequest(backtest_ids=[unknown, uuid.uuid4()])),
    ):
        with pytest.raises(NotFound) as missing:
            await call
        assert missing.value.code == "backtest_not_found"


async def test_another_owners_run_is_not_found(app: Api, backtests_for: ForToken) -> None:
    owner, bt = await _person(app, backtests_for)
    intruder, other = await _person(app, backtests_for)
    run_id = (await bt.backtest(owner=owner, request=_spy())).backtest_id
    mine = await completed(bt, owner, run_id)
    for call in (
        other.status(owner=intruder, backtest_id=run_id),
        other.results(owner=intruder, backtest_id=run_id),
        other.cancel(owner=intruder, backtest_id=run_id),
        other.delete(owner=intruder, backtest_id=run_id),
        other.monte_carlo(owner=intruder, request=MonteCarloCreate(backtest_id=run_id)),
        other.compare(owner=intruder, request=CompareRequest(backtest_ids=[run_id, run_id])),
    ):
        with pytest.raises(NotFound) as hidden:
            await call
        assert hidden.value.code == "backtest_not_found"
    assert await other.list(owner=intruder) == []
    assert await bt.results(owner=owner, backtest_id=run_id) == mine


async def test_a_finished_run_cannot_be_cancelled_and_deleting_it_removes_it(
    app: Api, backtests_for: ForToken
) -> None:
    owner, bt = await _person(app, backtests_for)
    run_id = (await bt.backtest(owner=owner, request=_spy())).backtest_id
    await completed(bt, owner, run_id)
    with pytest.raises(Conflict) as done:
        await bt.cancel(owner=owner, backtest_id=run_id)
    assert done.value.code == "already_finished"
    assert (await bt.status(owner=owner, backtest_id=run_id)).status is RunStatus.COMPLETED

    await bt.delete(owner=owner, backtest_id=run_id)
    with pytest.raises(NotFound) as gone:
        await bt.status(owner=owner, backtest_id=run_id)
    assert gone.value.code == "backtest_not_found"
    with pytest.raises(NotFound):
        await bt.results(owner=owner, backtest_id=run_id)
    with pytest.raises(NotFound):
        await bt.delete(owner=owner, backtest_id=run_id)
    assert await bt.list(owner=owner) == []


async def test_client_report_refuses_other_owners_and_maps_errors(
    app: Api, remote: httpx.AsyncClient
) -> None:
    user, headers, _ = await app.user()
    owner = uuid.UUID(user["id"])
    client = BacktestClient(remote, token=headers["Authorization"].removeprefix("Bearer "))
    run_id = (await client.backtest(owner=owner, request=_spy())).backtest_id
    await completed(client, owner, run_id)
    page = await client.report_html(owner=owner, backtest_id=run_id)
    assert page.lstrip().lower().startswith("<!doctype html") and "sharpe" in page.lower()
    with pytest.raises(NotFound):
        await client.report_html(owner=owner, backtest_id=uuid.uuid4())

    with pytest.raises(Forbidden) as other:
        await client.list(owner=uuid.uuid4())
    assert other.value.code == "not_token_owner"
    with pytest.raises(Invalid) as bad_limit:
        await client.list(owner=owner, limit=500)
    assert (bad_limit.value.code, bad_limit.value.field) == ("validation_error", "limit")
    with pytest.raises(Unauthorized) as anonymous:
        await BacktestClient(remote).list(owner=owner)
    assert anonymous.value.code == "missing_token"
    assert client.with_token(headers["Authorization"].removeprefix("Bearer ")) is not client
