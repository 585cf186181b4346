"""Portfolio performance over HTTP: the daily ``performance_metrics`` row recorded from the
account, and the returns and benchmark figures of a year of recorded values (a 60/40 AAPL/MSFT
book over 2017 from the shipped closes) checked against empyrical and pandas; ownership, and a
benchmark without data or without overlap (422 naming it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import empyrical
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, record_history, running
from tests.golden.indicator_samples import SAMPLES

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = "/api/v1/portfolio"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path_factory.mktemp("perf"), marketdata={"load_samples": True})
    async with running(settings) as a:
        yield a


def _closes(name: str) -> pd.Series:
    df = pd.read_csv(SAMPLES / f"{name}_1d.csv", parse_dates=["timestamp"])
    return df.set_index(df["timestamp"].dt.tz_localize(None).dt.normalize())["close"].rename(name)


async def _portfolio(api: Api, h: dict[str, str]) -> str:
    body = {"name": f"perf-{uuid.uuid4().hex[:6]}", "initial_capital": "100000"}
    r = await api.client.post(P, json=body, headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["portfolio_id"])


async def test_the_day_is_recorded_from_the_account(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    order = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "100"}
    r = await api.client.post("/api/v1/trading/orders", json=order, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    r = await api.client.get(f"{P}/{pid}/performance", params={"period": "all"}, headers=h)
    assert r.status_code == 200, r.text
    perf = r.json()
    equity = Decimal((await api.client.get(f"/api/v1/trading/accounts/{pid}", headers=h)).json()["equity"])
    assert Decimal(perf["end_value"]) == equity and Decimal(perf["start_value"]) == 100000
    assert perf["time_weighted_return"] == pytest.approx(float(equity / 100000 - 1), rel=1e-12)
    assert perf["observations"] == 1 and len(perf["series"]) == 2 and perf["benchmark"] is None
    [row] = (await api.client.get(f"{P}/{pid}/metrics", headers=h)).json()
    assert Decimal(row["total_value"]) == equity
    assert row["daily_return"] == pytest.approx(float(equity / 100000 - 1), rel=1e-12)
    assert row["max_drawdown"] <= 0 and row["volatility"] is None  # one return: undefined
    assert Decimal(row["cash"]) < 100000  # the AAPL bought
    _v, other, _ = await api.user()
    assert (await api.client.get(f"{P}/{pid}/performance", headers=other)).status_code == 404
    assert (await api.client.get(f"{P}/{pid}/metrics", headers=other)).status_code == 404


async def test_a_recorded_year_against_spy(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = uuid.UUID(await _portfolio(api, h))
    # Trading today: today's recorded value is the account's equity (fees make it < 100000).
    order = {"portfolio_id": str(pid), "symbol": "AAPL", "side": "BUY", "quantity": "100"}
    assert (await api.client.post("/api/v1/trading/orders", json=order, headers=h)).status_code == 201
    account = (await api.client.get(f"/api/v1/trading/accounts/{pid}", headers=h)).json()
    equity = float(account["equity"])
    closes = pd.concat([_closes(n) for n in ("AAPL", "MSFT", "SPY")], axis=1, join="inner")
    year = closes.loc["2016-12-30":"2017-12-29"]
    growth = 0.6 * year["AAPL"] / year["AAPL"].iloc[0] + 0.4 * year["MSFT"] / year["MSFT"].iloc[0]
    values = 100000 * growth
    rows = [
        (day.date(), Decimal(repr(round(float(v), 8))), Decimal(0), {}) for day, v in list(values.items())[1:]
    ]
    await record_history(api, pid, datetime(2016, 12, 30, 15, tzinfo=UTC), rows)

    r = await api.client.get(
        f"{P}/{pid}/performance", params={"period": "all", "benchmark": "SPY"}, headers=h
    )
    assert r.status_code == 200, r.text
    perf = r.json()
    # The recorded 2017 days, then today's row (the gap in between is one period).
    v = np.array([100000.0, *(float(x[1]) for x in rows), equity])
    r_all = pd.Series(v[1:] / v[:-1] - 1)
    rp = r_all.iloc[:-1]  # the days SPY has prices for
    rb = pd.Series(year["SPY"].to_numpy()[1:] / year["SPY"].to_numpy()[:-1] - 1)
    assert perf["observations"] == len(r_all) == 252 and perf["periods_per_year"] == 252
    assert perf["start"] == "2016-12-30" and perf["end"] == date.today().isoformat()
    assert perf["time_weighted_return"] == pytest.approx(v[-1] / v[0] - 1, rel=1e-9)
    assert perf["annualized_return"] == pytest.approx((v[-1] / v[0]) ** (252 / 252) - 1, rel=1e-9)
    assert perf["volatility"] == pytest.approx(empyrical.annual_volatility(r_all), rel=1e-9)
    assert perf["sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(r_all), rel=1e-9)
    assert perf["sortino_ratio"] == pytest.approx(empyrical.sortino_ratio(r_all), rel=1e-9)
    assert perf["max_drawdown"] == pytest.approx(empyrical.max_drawdown(r_all), rel=1e-9)
    years = (date.today() - date(2016, 12, 30)).days / 365.0
    assert perf["money_weighted_return"] < 0  # fees: a little below the capital paid in
    assert perf["money_weighted_return"] == pytest.approx((v[-1] / v[0]) ** (1 / years) - 1, rel=1e-6)

    b = perf["benchmark"]
    alpha, beta = empyrical.alpha_beta(rp, rb)
    assert b["symbol"] == "SPY" and b["observations"] == 251
    assert b["total_return"] == pytest.approx(year["SPY"].iloc[-1] / year["SPY"].iloc[0] - 1, rel=1e-9)
    assert b["beta"] == pytest.approx(beta, rel=1e-9) and b["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert b["up_capture"] == pytest.approx(empyrical.up_capture(rp, rb), rel=1e-9)
    assert b["down_capture"] == pytest.approx(empyrical.down_capture(rp, rb), rel=1e-9)
    te = (rp - rb).std(ddof=1) * np.sqrt(252)
    assert b["tracking_error"] == pytest.approx(te, rel=1e-9)
    assert b["information_ratio"] == pytest.approx((rp - rb).mean() * 252 / te, rel=1e-9)
    assert b["correlation"] == pytest.approx(np.corrcoef(rp, rb)[0, 1], rel=1e-9)
    series = perf["series"]
    assert len(series) == 253 and series[0]["value"] == "100000"
    assert series[-2]["benchmark_cumulative_return"] == pytest.approx(b["total_return"], rel=1e-9)
    assert series[-1]["benchmark_cumulative_return"] is None  # no SPY price near today
    assert min(p["drawdown"] for p in series) == pytest.approx(perf["max_drawdown"], rel=1e-12)

    # The last month of the recorded period, and bad benchmarks.
    r = await api.client.get(f"{P}/{pid}/performance", params={"period": "1m"}, headers=h)
    assert r.status_code == 200 and r.json()["observations"] == 1  # only today in the last month
    assert r.json()["start"] == "2017-12-29"  # from the last value before the month
    r = await api.client.get(f"{P}/{pid}/performance", params={"period": "1m", "benchmark": "SPY"}, headers=h)
    assert r.status_code == 422 and "benchmark" in r.text and "overlapping" in r.text
    r = await api.client.get(f"{P}/{pid}/performance", params={"benchmark": "NOPE"}, headers=h)
    assert r.status_code == 422 and "benchmark" in r.text
    r = await api.client.get(f"{P}/{pid}/performance", params={"period": "2w"}, headers=h)
    assert r.status_code == 422 and "period" in r.text


async def test_attribution_of_a_recorded_year(api: Api) -> None:
    """Bought on 2017-01-03 (the first recorded day, so that day is 'trading'), then held."""
    _u, h, _ = await api.user()
    pid = uuid.UUID(await _portfolio(api, h))
    closes = pd.concat([_closes(n) for n in ("AAPL", "MSFT", "SPY")], axis=1, join="inner")
    year = closes.loc["2016-12-30":"2017-12-29"]
    qa, qm = 60000 / float(year["AAPL"].iloc[1]), 40000 / float(year["MSFT"].iloc[1])
    rows = []
    for day, prices in list(year.iterrows())[1:]:
        row = {k: float(v) for k, v in prices.items()}
        holdings = {
            "AAPL": {"quantity": repr(qa), "price": repr(row["AAPL"]), "value": repr(qa * row["AAPL"])},
            "MSFT": {"quantity": repr(qm), "price": repr(row["MSFT"]), "value": repr(qm * row["MSFT"])},
        }
        value = qa * row["AAPL"] + qm * row["MSFT"]
        rows.append((day.date(), Decimal(repr(value)), Decimal(0), holdings))
    await record_history(api, pid, datetime(2016, 12, 30, 15, tzinfo=UTC), rows)

    params = {"period": "all", "benchmark": "SPY"}
    r = await api.client.get(f"{P}/{pid}/attribution", params=params, headers=h)
    assert r.status_code == 200, r.text
    a = r.json()
    values = np.array([float(x[1]) for x in rows])
    # The account (never traded) records today at its 100000 in cash: from the 2017 book to
    # that is 'trading' too, and the period's return is 0.
    assert a["end"] == date.today().isoformat()
    assert a["time_weighted_return"] == pytest.approx(0.0, abs=1e-12)
    by = {x["symbol"]: x for x in a["by_asset"]}
    assert sum(x["contribution"] for x in a["by_asset"]) == pytest.approx(0.0, abs=1e-12)
    assert by["trading"]["contribution"] < 0
    assert by["AAPL"]["asset_return"] == pytest.approx(
        year["AAPL"].iloc[-1] / year["AAPL"].iloc[1] - 1, rel=1e-9
    )
    assert by["AAPL"]["contribution"] > by["MSFT"]["contribution"] > 0  # AAPL rose more and weighed more
    assert [x["strategy"] for x in a["by_strategy"]] == []  # no fills: nothing traded by anyone
    seg = {x["segment"]: x for x in a["brinson"]}
    assert set(seg) == {"equity", "cash"}  # SPY (an ETF) and the stocks are one class
    assert seg["equity"]["benchmark_weight"] == 1.0 and seg["cash"]["benchmark_weight"] == 0.0
    assert a["brinson_days"] == 251
    assert a["holdings_return"] == pytest.approx(values[-1] / values[0] - 1, rel=1e-9)
    spy = year["SPY"].to_numpy()
    assert a["benchmark_return"] == pytest.approx(spy[-1] / spy[0] - 1, rel=1e-9)
    effects = a["allocation_effect"] + a["selection_effect"] + a["interaction_effect"]
    assert effects == pytest.approx(a["holdings_return"] - a["benchmark_return"], rel=1e-9)

    for bad in ({"benchmark": "SPY:0.5"}, {"benchmark": "NOPE"}, {"period": "2w"}):
        r = await api.client.get(f"{P}/{pid}/attribution", params=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    _v, other, _ = await api.user()
    assert (await api.client.get(f"{P}/{pid}/attribution", headers=other)).status_code == 404
