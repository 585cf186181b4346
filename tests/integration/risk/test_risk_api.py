"""Risk figures of a paper portfolio over HTTP, checked against numbers computed here from the
shipped CSV files: historical and normal VaR/ES, the component split, beta to SPY, the position
view, ownership (404), bad input (422 naming the field) and an empty portfolio."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
from scipy import stats as sps

from algotrendy.app.trading import StoreCloses
from tests.apphelp import Api, make_settings, running
from tests.golden.indicator_samples import SAMPLES

pytestmark = pytest.mark.asyncio(loop_scope="module")
R = "/api/v1/risk"
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running(
        make_settings(tmp_path_factory.mktemp("risk"), marketdata={"load_samples": True})
    ) as a:
        yield a


async def holding(api: Api, **orders: int) -> tuple[dict[str, str], str]:
    _u, h, _ = await api.user()
    r = await api.client.post(
        "/api/v1/portfolio",
        json={"name": f"risk-{uuid.uuid4().hex[:6]}", "initial_capital": "1000000", "currency": "USD"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["portfolio_id"]
    for symbol, qty in orders.items():
        order = {"portfolio_id": pid, "symbol": symbol, "side": "BUY", "quantity": str(qty)}
        r = await api.client.post(f"{T}/orders", json=order, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    return h, pid


def _closes(name: str) -> pd.Series:
    df = pd.read_csv(SAMPLES / f"{name}_1d.csv", parse_dates=["timestamp"])
    return df.set_index(df["timestamp"].dt.normalize())["close"].rename(name)


def _returns(names: list[str], lookback: int) -> pd.DataFrame:
    joined = pd.concat([_closes(n) for n in names], axis=1, join="inner").iloc[-(lookback + 1) :]
    return joined.pct_change().dropna()


async def test_portfolio_risk_matches_the_formulas_on_the_stored_prices(api: Api) -> None:
    h, pid = await holding(api, AAPL=300, MSFT=100)
    params = {"confidence": "0.99", "lookback_days": "250", "method": "historical", "benchmark": "SPY"}
    r = await api.client.get(f"{R}/portfolio/{pid}", params=params, headers=h)
    assert r.status_code == 200, r.text
    risk = r.json()
    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    equity = float(account["equity"])
    by_symbol = {p["symbol"]: p for p in risk["positions"]}
    assert sorted(by_symbol) == ["AAPL", "MSFT"] and risk["unmodelled"] == []
    w = np.array([float(by_symbol[s]["market_value"]) / equity for s in ("AAPL", "MSFT")])
    assert [by_symbol[s]["weight"] for s in ("AAPL", "MSFT")] == pytest.approx(list(w), rel=1e-12)

    rets = _returns(["AAPL", "MSFT", "SPY"], 250)
    assert risk["observations"] == len(rets) == 250
    assert risk["data_until"].startswith("2017-12-29")  # MSFT's last day: the common window ends there
    rp = rets[["AAPL", "MSFT"]].to_numpy() @ w
    assert risk["var"] == pytest.approx(-np.quantile(rp, 0.01), rel=1e-9)
    assert risk["methods"]["historical"]["var"] == risk["var"]
    worst = np.sort(rp)[: int(249 * 0.01) + 1]
    assert risk["expected_shortfall"] == pytest.approx(-worst.mean(), rel=1e-9)
    assert risk["var_95"] == pytest.approx(-np.quantile(rp, 0.05), rel=1e-9)
    normal = -sps.norm.ppf(0.01, loc=rp.mean(), scale=rp.std(ddof=1))
    assert risk["methods"]["normal"]["var"] == pytest.approx(normal, rel=1e-9)
    assert risk["parametric_var"] == pytest.approx(normal, rel=1e-9)
    components = sum(p["component_var"] for p in risk["positions"])
    assert components == pytest.approx(risk["parametric_var"], rel=1e-9)
    assert sum(p["component_var_pct"] for p in risk["positions"]) == pytest.approx(1.0)
    cf, mc = risk["methods"]["cornish_fisher"], risk["methods"]["monte_carlo"]
    assert cf["expected_shortfall"] > cf["var"] > 0 and mc["expected_shortfall"] > mc["var"] > 0
    rb = rets["SPY"].to_numpy()
    beta = np.mean((rp - rp.mean()) * (rb - rb.mean())) / np.var(rb)
    assert risk["beta"] == pytest.approx(beta, rel=1e-9)
    assert risk["correlation"] == pytest.approx(np.corrcoef(rp, rb)[0, 1], rel=1e-9)
    assert Decimal(risk["var_amount"]) == pytest.approx(
        Decimal(repr(risk["var"])) * Decimal(account["equity"]), abs=Decimal("0.01")
    )
    assert risk["max_drawdown"] < 0 and risk["volatility"] > 0 and risk["sharpe_ratio"] is not None
    aapl = rets["AAPL"].to_numpy()
    assert by_symbol["AAPL"]["var"] == pytest.approx(-np.quantile(aapl, 0.01), rel=1e-9)

    # The same request twice gives the same figures (Monte Carlo is seeded).
    again = (await api.client.get(f"{R}/portfolio/{pid}", params=params, headers=h)).json()
    assert again["methods"] == risk["methods"]

    # The position view: the same entry, within the same portfolio figures.
    position_id = by_symbol["MSFT"]["position_id"]
    r = await api.client.get(f"{R}/position/{position_id}", params=params, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["position"] == by_symbol["MSFT"]
    assert r.json()["portfolio"]["var"] == risk["var"]


async def test_ownership_bad_input_and_an_empty_portfolio(api: Api) -> None:
    h, pid = await holding(api, AAPL=10)
    _u, other, _ = await api.user()
    assert (await api.client.get(f"{R}/portfolio/{pid}", headers=other)).status_code == 404
    risk = (await api.client.get(f"{R}/portfolio/{pid}", headers=h)).json()
    position_id = risk["positions"][0]["position_id"]
    assert (await api.client.get(f"{R}/position/{position_id}", headers=other)).status_code == 404
    assert (await api.client.get(f"{R}/position/{uuid.uuid4()}", headers=h)).status_code == 404

    async def problem(params: dict[str, Any]) -> dict[str, Any]:
        r = await api.client.get(f"{R}/portfolio/{pid}", params=params, headers=h)
        assert r.status_code == 422, r.text
        return dict(r.json())

    assert "confidence" in str((await problem({"confidence": "1.5"}))["errors"])
    assert "method" in str((await problem({"method": "garch"}))["errors"])
    assert "horizon_days" in str((await problem({"horizon_days": "0"}))["errors"])
    body = await problem({"benchmark": "NOSUCH"})
    assert body["errors"][0]["field"].endswith("benchmark") and "NOSUCH" in body["detail"]

    _h2, empty = await holding(api)
    r = await api.client.get(f"{R}/portfolio/{empty}", headers=_h2)
    assert r.status_code == 200, r.text
    flat = r.json()
    assert flat["var"] == 0 and flat["positions"] == [] and flat["observations"] == 0
    assert flat["sharpe_ratio"] is None


async def test_daily_closes_of_intraday_crypto_are_each_days_last_close(api: Api) -> None:
    store = api.container.services["marketdata"].store
    days, closes = await StoreCloses(store).daily_closes("BTCUSDT", days=30)  # type: ignore[misc]
    hourly = pd.read_csv(SAMPLES / "BTCUSDT_1h_binance.csv.gz", parse_dates=["timestamp"]).set_index(
        "timestamp"
    )
    expected = hourly["close"].groupby(hourly.index.normalize()).last().iloc[-30:]
    assert len(days) == 30
    assert list(pd.to_datetime(days, utc=True)) == list(expected.index)
    assert closes.tolist() == pytest.approx(expected.tolist(), rel=1e-12)
