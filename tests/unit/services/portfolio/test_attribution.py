"""Attribution worked by hand: contributions by asset (with the trading line) over two days,
profit by strategy, Brinson-Fachler by asset class with cash and an 'other' segment, and the
benchmark blend's parsing."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from algotrendy.core.errors import Invalid
from algotrendy.engine.orders import OrderSide
from algotrendy.services.portfolio import attribution as A
from algotrendy.services.trading.interface import FillRead

D0, D1, D2 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def _days() -> list[A.Day]:
    # D0: A 5 @ 100 (500), B 10 @ 20 (200), cash 300 -> 1000.
    # D1: A +10%, B -10%, no trade -> 550 + 180 + 300 = 1030.
    # D2: prices unchanged; 2 A bought at 110 with a fee of 1 -> 770 + 180 + 79 = 1029.
    return [
        A.Day(D0, 1000.0, {"A": (5, 100.0), "B": (10, 20.0)}),
        A.Day(D1, 1030.0, {"A": (5, 110.0), "B": (10, 18.0)}),
        A.Day(D2, 1029.0, {"A": (7, 110.0), "B": (10, 18.0)}),
    ]


def test_contributions_by_asset_add_up_to_the_return() -> None:
    lines, total = A.by_asset(_days())
    by = {x.symbol: x for x in lines}
    r1, r2 = 0.03, -1 / 1030
    assert total == pytest.approx(1029 / 1000 - 1, rel=1e-12)
    # Carino: k_t = ln(1 + R_t) / R_t, K = ln(1 + R) / R; C_i = sum_t k_t / K * w_ti r_ti.
    big = 1029 / 1000 - 1
    k1, k2, kk = math.log1p(r1) / r1, math.log1p(r2) / r2, math.log1p(big) / big
    assert by["A"].contribution == pytest.approx(k1 / kk * 0.5 * 0.1, rel=1e-12)
    assert by["B"].contribution == pytest.approx(k1 / kk * 0.2 * -0.1, rel=1e-12)
    assert by["trading"].contribution == pytest.approx(k2 / kk * r2, rel=1e-12)  # the fee
    assert sum(x.contribution for x in lines) == pytest.approx(big, rel=1e-12)
    assert by["A"].asset_return == pytest.approx(0.1) and by["B"].asset_return == pytest.approx(-0.1)
    assert by["A"].average_weight == pytest.approx((0.5 + 550 / 1030) / 2)


def _fill(order: uuid.UUID, day: date, side: str, qty: str, price: str, fee: str = "0") -> FillRead:
    return FillRead(
        fill_id=uuid.uuid4(),
        order_id=order,
        portfolio_id=uuid.uuid4(),
        trade_id="t",
        symbol="A",
        side=OrderSide(side),
        quantity=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_currency="USD",
        executed_at=datetime(day.year, day.month, day.day, 15, tzinfo=UTC),
    )


def test_profit_by_strategy() -> None:
    manual, bot = uuid.uuid4(), uuid.uuid4()
    fills = [
        _fill(manual, D0, "BUY", "5", "100"),  # before the period: held at its start
        _fill(bot, D2, "BUY", "2", "110", "1"),  # during it
    ]
    lines = {x.strategy: x for x in A.by_strategy(_days(), fills, {bot: "strategy-1"})}
    # manual: 5 A from 100 to 110 = +50; the bot: 2 A bought at 110 plus a fee, worth 220 = -1.
    assert lines["manual"].pnl == Decimal("50.0") and lines["strategy-1"].pnl == Decimal("-1.0")
    assert lines["manual"].contribution == pytest.approx(0.05)


class Prices:
    def __init__(self) -> None:
        ns = [int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 10**9 for d in (D0, D1, D2)]
        self.data = {"SPY": (np.array(ns), np.array([100.0, 102.0, 101.0]))}
        self.kinds = {"SPY": "etf", "A": "etf", "B": "crypto"}

    async def daily_closes(self, symbol: str, *, days: int, until_ns: int | None = None):  # type: ignore[no-untyped-def]
        return self.data.get(symbol)

    async def asset_type(self, symbol: str) -> str | None:
        return self.kinds.get(symbol)


async def test_brinson_by_asset_class() -> None:
    effects, result, n = await A.brinson(_days(), {"SPY": 1.0}, Prices())  # type: ignore[arg-type]
    assert n == 2
    by = {e.segment: e for e in effects}
    assert set(by) == {"equity", "other", "cash"}
    # Day 1: equity wp .5 rp .1, wb 1 rb .02; other (B) wp .2 rp -.1 rb .02 (the benchmark's total);
    # cash wp .3 rp 0 wb 0 rb 0. Rp = .05 - .02 = .03, Rb = .02.
    # Day 2: equity wp 550/1030 rp 0, rb = 101/102 - 1; other 180/1030 rp 0; cash 300/1030.
    rb2 = 101 / 102 - 1
    wp2 = np.array([550, 180, 300]) / 1030
    a1 = np.array([(0.5 - 1) * (0.02 - 0.02), 0.2 * (0.02 - 0.02), 0.3 * (0 - 0.02)])
    s1 = np.array([1 * (0.1 - 0.02), 0.0, 0.0])
    i1 = np.array([(0.5 - 1) * (0.1 - 0.02), 0.2 * (-0.1 - 0.02), 0.0])
    a2 = np.array([(wp2[0] - 1) * 0.0, wp2[1] * 0.0, wp2[2] * (0 - rb2)])
    s2 = np.array([1 * (0 - rb2), 0.0, 0.0])
    i2 = np.array([(wp2[0] - 1) * (0 - rb2), wp2[1] * (0 - rb2), 0.0])
    rp, rb = np.array([0.03, 0.0]), np.array([0.02, rb2])
    tp, tb = np.prod(1 + rp) - 1, np.prod(1 + rb) - 1

    def k(p: float, b: float) -> float:
        return (math.log1p(p) - math.log1p(b)) / (p - b) if p != b else 1 / (1 + b)

    scale = np.array([k(rp[0], rb[0]), k(rp[1], rb[1])]) / k(tp, tb)
    for j, name in enumerate(["equity", "other", "cash"]):
        assert by[name].allocation == pytest.approx(scale[0] * a1[j] + scale[1] * a2[j], abs=1e-15)
        assert by[name].selection == pytest.approx(scale[0] * s1[j] + scale[1] * s2[j], abs=1e-15)
        assert by[name].interaction == pytest.approx(scale[0] * i1[j] + scale[1] * i2[j], abs=1e-15)
    total = sum(e.total for e in effects)
    assert total == pytest.approx(tp - tb, rel=1e-12) and result.portfolio_return == pytest.approx(tp)


def test_benchmark_blends() -> None:
    assert A.parse_benchmark("SPY") == {"SPY": 1.0}
    assert A.parse_benchmark("SPY:0.6, BTCUSDT:0.4") == {"SPY": 0.6, "BTCUSDT": 0.4}
    for bad in ("SPY:0.6,BTCUSDT:0.3", "SPY:x", ":0.5", "SPY:1.5"):
        with pytest.raises(Invalid) as e:
            A.parse_benchmark(bad)
        assert e.value.field == "benchmark"
