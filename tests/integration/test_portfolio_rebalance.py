"""Rebalancing over HTTP on the paper broker: a dry-run preview sends nothing; the real run sends
the orders through the trading engine and lands on the targets within a lot; a retry with the
same Idempotency-Key sends nothing new; sells relieve the tax lots chosen; open lots always sum
to the positions; risk limits still apply; allocation helpers checked on the stored closes;
bad input (422 naming the field) and other users' portfolios (404)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

from tests.apphelp import Api, make_settings, running
from tests.golden.indicator_samples import SAMPLES

pytestmark = pytest.mark.asyncio(loop_scope="module")
P = "/api/v1/portfolio"
T = "/api/v1/trading"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    settings = make_settings(tmp_path_factory.mktemp("rebalance"), marketdata={"load_samples": True})
    async with running(settings) as a:
        yield a


async def _portfolio(api: Api, h: dict[str, str], **orders: int) -> str:
    body = {"name": f"rb-{uuid.uuid4().hex[:6]}", "initial_capital": "100000"}
    r = await api.client.post(P, json=body, headers=h)
    assert r.status_code == 201, r.text
    pid = str(r.json()["portfolio_id"])
    for symbol, qty in orders.items():
        order = {"portfolio_id": pid, "symbol": symbol, "side": "BUY", "quantity": str(qty)}
        r = await api.client.post(f"{T}/orders", json=order, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    return pid


async def _orders(api: Api, h: dict[str, str], pid: str) -> list[dict[str, object]]:
    r = await api.client.get(f"{T}/orders", params={"portfolio_id": pid}, headers=h)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _lots_match_positions(api: Api, h: dict[str, str], pid: str) -> None:
    lots = (await api.client.get(f"{P}/{pid}/lots", headers=h)).json()
    positions = (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()
    by_symbol: dict[str, Decimal] = {}
    for lot in lots:
        by_symbol[lot["symbol"]] = by_symbol.get(lot["symbol"], Decimal(0)) + Decimal(lot["quantity"])
    assert by_symbol == {p["symbol"]: Decimal(p["quantity"]) for p in positions}


async def test_preview_then_rebalance_to_the_targets(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h, AAPL=300, MSFT=50)
    body = {
        "targets": {"AAPL": 0.3, "MSFT": 0.3, "GOOG": 0.3, "CASH": 0.1},
        "default_lot_size": "1",
        "cash_buffer": 0.05,
        "dry_run": True,
    }
    before = len(await _orders(api, h, pid))
    r = await api.client.post(f"{P}/{pid}/rebalance", json=body, headers=h)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["status"] == "preview" and before == len(await _orders(api, h, pid))
    trades = {t["symbol"]: t for t in preview["trades"]}
    assert set(trades) == {"AAPL", "MSFT", "GOOG"} and trades["GOOG"]["side"] == "buy"
    assert all(Decimal(t["quantity"]) == Decimal(t["quantity"]).to_integral_value() for t in trades.values())
    sides = [t["side"] for t in preview["trades"]]
    assert sides == sorted(sides, reverse=True)  # sells first
    equity = Decimal(preview["equity"])
    assert Decimal(preview["cash_after"]) >= Decimal("0.05") * equity - Decimal("0.01")
    for symbol, weight in preview["weights_after"].items():
        price = Decimal(trades[symbol]["price"])
        assert abs(weight - 0.3) <= float(price / equity) + 1e-9  # within one share of the target
    assert preview["targets"] == {"AAPL": 0.3, "MSFT": 0.3, "GOOG": 0.3}

    # Now for real, with a key; a retry returns the same rebalance and sends nothing new.
    body["dry_run"] = False
    key = {"Idempotency-Key": f"rb-{uuid.uuid4()}"}
    r = await api.client.post(f"{P}/{pid}/rebalance", json=body, headers={**h, **key})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed", done
    assert all(t["order_id"] and t["order_status"] == "filled" for t in done["trades"])
    count = len(await _orders(api, h, pid))
    assert count == before + len(done["trades"])
    again = await api.client.post(f"{P}/{pid}/rebalance", json=body, headers={**h, **key})
    assert again.json()["rebalance_id"] == done["rebalance_id"] and len(await _orders(api, h, pid)) == count
    status = (await api.client.get(f"{P}/{pid}/rebalance/status", headers=h)).json()
    assert status["rebalance_id"] == done["rebalance_id"] and status["status"] == "completed"

    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    positions = {p["symbol"]: p for p in (await api.client.get(f"{T}/positions/{pid}", headers=h)).json()}
    eq = float(account["equity"])
    for symbol in ("AAPL", "MSFT", "GOOG"):
        weight = float(positions[symbol]["market_value"]) / eq
        price = float(positions[symbol]["market_price"])
        assert abs(weight - 0.3) <= price / eq + 0.002, (symbol, weight)  # a share, fees and slippage
    await _lots_match_positions(api, h, pid)


async def test_sells_relieve_the_chosen_lots(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h, AAPL=100)
    order = {"portfolio_id": pid, "symbol": "AAPL", "side": "BUY", "quantity": "50"}
    assert (await api.client.post(f"{T}/orders", json=order, headers=h)).status_code == 201
    lots = (await api.client.get(f"{P}/{pid}/lots", headers=h)).json()
    assert [Decimal(x["quantity"]) for x in lots] == [100, 50]
    first, second = lots
    # Sell down to about 60 shares with LIFO: the 50-share lot goes first, then 40 of the first.
    price = Decimal(first["market_price"])
    account = (await api.client.get(f"{T}/accounts/{pid}", headers=h)).json()
    target = float(60 * price / Decimal(account["equity"]))
    body = {
        "targets": {"AAPL": target, "CASH": 1 - target},
        "default_lot_size": "1",
        "tax_optimization": {"method": "lifo", "avoid_wash_sales": False},
    }
    r = await api.client.post(f"{P}/{pid}/rebalance", json=body, headers=h)
    assert r.status_code == 200, r.text
    [sell] = r.json()["trades"]
    assert sell["side"] == "sell" and sell["order_status"] == "filled"
    sold = Decimal(sell["quantity"])
    picks = [(p["lot_id"], Decimal(p["quantity"])) for p in sell["lots"]]
    assert picks == [(second["lot_id"], Decimal(50)), (first["lot_id"], sold - 50)]
    assert sum((Decimal(p["gain"]) for p in sell["lots"]), Decimal(0)) == Decimal(r.json()["realized_gain"])
    lots = (await api.client.get(f"{P}/{pid}/lots", headers=h)).json()
    assert [(x["lot_id"], Decimal(x["quantity"])) for x in lots] == [(first["lot_id"], 150 - sold)]
    await _lots_match_positions(api, h, pid)


async def test_risk_limits_apply_to_the_orders(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    r = await api.client.put(f"/api/v1/risk/limits/{pid}", json={"max_order_notional": "1000"}, headers=h)
    assert r.status_code == 200, r.text
    r = await api.client.post(f"{P}/{pid}/rebalance", json={"targets": {"AAPL": 0.5, "CASH": 0.5}}, headers=h)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["status"] == "failed"
    [trade] = result["trades"]
    assert trade["order_status"] == "rejected" and "notional" in (trade["reason"] or "")
    assert (await api.client.get(f"{T}/positions/{pid}", headers=h)).json() == []


def _returns(names: list[str], lookback: int) -> pd.DataFrame:
    frames = []
    for n in names:
        df = pd.read_csv(SAMPLES / f"{n}_1d.csv", parse_dates=["timestamp"])
        frames.append(df.set_index(df["timestamp"].dt.normalize())["close"].rename(n))
    joined = pd.concat(frames, axis=1, join="inner").iloc[-(lookback + 1) :]
    return joined.pct_change().dropna()


async def test_allocation_helpers(api: Api) -> None:
    _u, h, _ = await api.user()
    symbols = ["AAPL", "MSFT", "GOOG"]
    r = await api.client.post(
        f"{P}/allocation", json={"method": "risk_parity", "symbols": symbols, "lookback_days": 250}, headers=h
    )
    assert r.status_code == 200, r.text
    out = r.json()
    w = np.array([out["weights"][s] for s in symbols])
    rets = _returns(symbols, 250)
    assert out["observations"] == len(rets) == 250 and w.sum() == pytest.approx(1.0)
    cov = rets.cov().to_numpy()
    contributions = w * (cov @ w)
    assert contributions == pytest.approx(np.full(3, contributions.mean()), rel=1e-4)
    r = await api.client.post(
        f"{P}/allocation",
        json={"method": "inverse_volatility", "symbols": symbols, "lookback_days": 250},
        headers=h,
    )
    inv = 1 / rets.std(ddof=1).to_numpy()
    assert [r.json()["weights"][s] for s in symbols] == pytest.approx(list(inv / inv.sum()), rel=1e-9)

    pid = await _portfolio(api, h)
    body = {"allocation": {"method": "equal_weight", "symbols": symbols}, "dry_run": True}
    r = await api.client.post(f"{P}/{pid}/rebalance", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["targets"] == pytest.approx({s: 1 / 3 for s in symbols})


async def test_bad_input_and_other_users(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    cases = [
        ({"targets": {"AAPL": 0.7, "MSFT": 0.5}}, "targets"),
        ({"targets": {"NOPE": 0.5}}, "targets"),
        ({"targets": {"AAPL": 1.5}}, "targets"),
        ({"targets": {"AAPL": 0.5}}, "targets"),  # the rest must be named CASH
        ({"targets": {"NOPE": 0.5, "CASH": 0.5}}, "targets"),
        ({}, "targets"),
        ({"targets": {"AAPL": 0.5}, "allocation": {"method": "equal_weight", "symbols": ["A"]}}, "targets"),
        ({"targets": {"AAPL": 0.5}, "cash_buffer": 1}, "cash_buffer"),
        ({"allocation": {"method": "magic", "symbols": ["AAPL"]}}, "method"),
        ({"allocation": {"method": "risk_parity", "symbols": ["AAPL", "NOPE"]}}, "symbols"),
    ]
    for body, field in cases:
        r = await api.client.post(f"{P}/{pid}/rebalance", json={**body, "dry_run": True}, headers=h)
        assert r.status_code == 422 and field in r.text, (body, r.text)
    assert (await api.client.get(f"{P}/{pid}/rebalance/status", headers=h)).status_code == 404
    _v, other, _ = await api.user()
    ok = {"targets": {"AAPL": 0.1, "CASH": 0.9}, "dry_run": True}
    assert (await api.client.post(f"{P}/{pid}/rebalance", json=ok, headers=other)).status_code == 404
    assert (await api.client.get(f"{P}/{pid}/lots", headers=other)).status_code == 404
