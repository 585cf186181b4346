"""POST /api/v1/risk/stress-test on a paper portfolio (AAPL and MSFT), checked against returns
computed here from the shipped CSV files: market moves by beta, explicit shocks, a volatility
multiplier, historical windows replayed (own history for 2008, beta proxies for 2020 where the
stock files end earlier), ownership and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
from scipy import stats as sps

from tests.apphelp import Api, make_settings, running
from tests.golden.indicator_samples import SAMPLES
from tests.integration.risk.test_risk_api import _returns, holding

pytestmark = pytest.mark.asyncio(loop_scope="module")
URL = "/api/v1/risk/stress-test"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running(
        make_settings(tmp_path_factory.mktemp("stress"), marketdata={"load_samples": True})
    ) as a:
        yield a


def _close(name: str) -> pd.Series:
    df = pd.read_csv(SAMPLES / f"{name}_1d.csv", parse_dates=["timestamp"])
    return df.set_index(df["timestamp"].dt.normalize())["close"]


def _window(name: str, start: str, end: str) -> float:
    c = _close(name)
    return float(c[: pd.Timestamp(end, tz="UTC")].iloc[-1] / c[: pd.Timestamp(start, tz="UTC")].iloc[-1] - 1)


async def test_scenarios_move_each_position_as_documented(api: Api) -> None:
    h, pid = await holding(api, AAPL=300, MSFT=100)
    risk = (await api.client.get(f"/api/v1/risk/portfolio/{pid}", headers=h)).json()
    beta = {p["symbol"]: p["beta"] for p in risk["positions"]}
    value = {p["symbol"]: Decimal(p["market_value"]) for p in risk["positions"]}
    equity = Decimal(risk["equity"])
    body: dict[str, Any] = {
        "portfolio_id": pid,
        "scenarios": [
            {"name": "market_crash", "returns": -0.2},
            {"name": "flat_crash", "returns": -0.2, "use_beta": False},
            {"name": "apple_only", "shocks": {"AAPL": -0.5}},
            {"name": "volatility_spike", "volatility_multiplier": 2.0},
            {"name": "lehman", "historical": "financial_crisis_2008"},
            {"name": "covid", "historical": "covid_crash_2020"},
        ],
    }
    r = await api.client.post(URL, json=body, headers=h)
    assert r.status_code == 200, r.text
    got = {s["name"]: s for s in r.json()["scenarios"]}

    def moves(name: str) -> dict[str, tuple[float, str, Decimal]]:
        return {p["symbol"]: (p["shock"], p["how"], Decimal(p["pnl"])) for p in got[name]["positions"]}

    crash = moves("market_crash")
    for s in ("AAPL", "MSFT"):
        assert crash[s][:2] == (pytest.approx(beta[s] * -0.2, rel=1e-12), "beta")
        assert crash[s][2] == (value[s] * Decimal(repr(beta[s] * -0.2))).quantize(Decimal("0.01"))
    assert Decimal(got["market_crash"]["pnl"]) == crash["AAPL"][2] + crash["MSFT"][2]
    flat = got["flat_crash"]
    assert Decimal(flat["pnl"]) == pytest.approx(
        -Decimal("0.2") * (value["AAPL"] + value["MSFT"]), abs=Decimal("0.02")
    )
    assert flat["return"] == pytest.approx(float(Decimal(flat["pnl"]) / equity), rel=1e-12)
    apple = moves("apple_only")
    assert apple["AAPL"][:2] == (-0.5, "shock") and apple["MSFT"][:2] == (0.0, "market")

    spike = got["volatility_spike"]
    rets = _returns(["AAPL", "MSFT", "SPY"], 500)
    w = [float(value[x] / equity) for x in ("AAPL", "MSFT")]
    rp = rets[["AAPL", "MSFT"]].to_numpy() @ w
    z = sps.norm.ppf(0.01)  # the request's default confidence is 0.99
    mu, sigma = rp.mean(), rp.std(ddof=1)
    assert spike["base_var"] == pytest.approx(-(mu + z * sigma), rel=1e-9)
    assert spike["stressed_var"] == pytest.approx(-(mu + z * 2 * sigma), rel=1e-9)
    es = -(mu - 2 * sigma * sps.norm.pdf(z) / 0.01)
    assert spike["stressed_expected_shortfall"] == pytest.approx(es, rel=1e-9)
    assert Decimal(spike["pnl"]) == 0

    lehman = moves("lehman")
    for s in ("AAPL", "MSFT"):
        assert lehman[s][:2] == (pytest.approx(_window(s, "2008-09-12", "2009-03-09"), rel=1e-9), "history")
    covid = moves("covid")
    spy = _window("SPY", "2020-02-19", "2020-03-23")
    for s in ("AAPL", "MSFT"):  # the stock files end in 2017/2018: proxied by beta to SPY
        assert covid[s][:2] == (pytest.approx(beta[s] * spy, rel=1e-9), "proxy")
    assert got["covid"]["uncovered"] == []
    assert r.json()["worst"] == min(got.values(), key=lambda s: Decimal(s["pnl"]))["name"]


async def test_stress_ownership_and_bad_input(api: Api) -> None:
    h, pid = await holding(api, AAPL=10)
    _u, other, _ = await api.user()
    ok = {"portfolio_id": pid, "scenarios": [{"name": "x", "returns": -0.1}]}
    assert (await api.client.post(URL, json=ok, headers=other)).status_code == 404

    async def field_of(scenario: dict[str, Any]) -> str:
        r = await api.client.post(URL, json={"portfolio_id": pid, "scenarios": [scenario]}, headers=h)
        assert r.status_code == 422, r.text
        return str(r.json()["errors"][0]["field"])

    assert (await field_of({"name": "nothing"})) == "scenarios.0"
    assert (await field_of({"name": "w", "start": "2020-03-01", "end": "2020-02-01"})) == "scenarios.0.end"
    assert (await field_of({"name": "w", "start": "2020-03-01"})) == "scenarios.0.start"
    assert "returns" in await field_of({"name": "r", "returns": -1.5})
    assert "historical" in await field_of({"name": "h", "historical": "dotcom"})
