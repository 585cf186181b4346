"""The monitor's figures by hand: equity, drawdown from the peak, concentration, daily loss and
the normal VaR from the kept moments; limits left unset are not watched; equal is not beyond."""

from __future__ import annotations

import math
import uuid
from statistics import NormalDist

import numpy as np
import pytest

from algotrendy.services.risk.exposure import Exposure, breaches, watched
from algotrendy.services.risk.interface import RiskLimitsRead


def _limits(**set_: str) -> RiskLimitsRead:
    base: dict[str, object] = {
        "portfolio_id": uuid.uuid4(),
        "trading_state": "ACTIVE",
        "max_order_notional": None,
        "max_position_quantity": None,
        "max_position_notional": None,
        "max_concentration": None,
        "max_leverage": None,
        "daily_loss_limit": None,
        "max_orders_per_minute": None,
        "symbol_quantity": {},
        "updated_at": None,
    }
    return RiskLimitsRead.model_validate({**base, **set_})


def _exposure() -> Exposure:
    return Exposure(
        portfolio_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        symbols=["A", "B"],
        quantities=np.array([10.0, -5.0]),
        prices=np.array([100.0, 40.0]),
        other=1000.0,  # equity = 1000 + 1000 - 200 = 1800
        day_start=2000.0,
        peak=2500.0,
        modelled=np.array([0, 1]),
        mean=np.array([0.001, 0.0]),
        cov=np.array([[0.0004, 0.0001], [0.0001, 0.0009]]),
    )


def test_figures_by_hand() -> None:
    e = _exposure()
    f = e.figures()
    assert f.equity == 1800.0
    assert f.drawdown == pytest.approx(1 - 1800 / 2500)
    assert f.concentration == pytest.approx(1000 / 1800)
    assert f.daily_loss == pytest.approx(200.0)
    w = np.array([1000 / 1800, -200 / 1800])
    s = math.sqrt(w @ e.cov @ w)
    z = NormalDist().inv_cdf(0.05)
    assert f.var == pytest.approx(-(w @ e.mean + z * s), rel=1e-12)
    # A new high moves the peak; a symbol not held is ignored.
    assert e.reprice("A", 200.0) and not e.reprice("Z", 1.0)
    assert e.figures().equity == 2800.0 and e.figures().drawdown == 0.0 and e.peak == 2800.0


def test_breaches_only_beyond_set_limits() -> None:
    f = _exposure().figures()
    assert not watched(_limits()) and breaches(f, _limits()) == {}
    exactly = _limits(daily_loss_limit="200", max_drawdown=str(1 - 1800 / 2500))
    assert "daily_loss" not in breaches(f, exactly)
    found = breaches(f, _limits(daily_loss_limit="199.99", max_concentration="0.5", max_var="0.0001"))
    assert sorted(found) == ["concentration", "daily_loss", "var"]
    assert found["daily_loss"][:2] == (pytest.approx(200.0), 199.99)
