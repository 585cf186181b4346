"""engine.montecarlo: determinism, shapes, ruin and analytic checks within Monte Carlo error."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from algotrendy.engine import montecarlo
from algotrendy.engine.montecarlo import block_bootstrap, trade_bootstrap, trade_returns_on_equity
from algotrendy.engine.result import RunResult, Trades

TRADES = np.array([0.05, -0.03, 0.02, -0.01, 0.08, -0.06])


def test_seed_determinism() -> None:
    a = trade_bootstrap(TRADES, n_simulations=2000, seed=42).to_dict()
    b = trade_bootstrap(TRADES, n_simulations=2000, seed=42).to_dict()
    c = trade_bootstrap(TRADES, n_simulations=2000, seed=43).to_dict()
    assert a == b
    assert a != c
    d = block_bootstrap(TRADES, block_size=2, n_simulations=500, seed=1).to_dict()
    assert d == block_bootstrap(TRADES, block_size=2, n_simulations=500, seed=1).to_dict()


def test_result_does_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = trade_bootstrap(TRADES, n_simulations=3000, n_trades=20, seed=5).to_dict()
    monkeypatch.setattr(montecarlo, "_CHUNK_CELLS", 1000)  # 50 simulations per chunk
    assert trade_bootstrap(TRADES, n_simulations=3000, n_trades=20, seed=5).to_dict() == whole


def test_shapes_and_json() -> None:
    res = trade_bootstrap(
        TRADES, n_simulations=1234, n_trades=40, seed=0, confidence=0.975, initial_capital=5000.0
    )
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert res.horizon == 40 and res.n_simulations == 1234 and res.method == "trade_bootstrap"
    for dist in (res.final_equity, res.max_drawdown):
        assert len(dist.histogram.counts) == 30
        assert len(dist.histogram.edges) == 31
        assert sum(dist.histogram.counts) == 1234
        assert list(dist.percentiles) == ["p2.5", "p5", "p25", "p50", "p75", "p95", "p97.5"]
        values = list(dist.percentiles.values())
        assert values == sorted(values)
        assert dist.min <= values[0] and values[-1] <= dist.max
    assert res.final_equity_at_confidence == res.final_equity.percentiles["p2.5"]
    assert res.drawdown_at_confidence == res.max_drawdown.percentiles["p2.5"]
    assert res.expected_max_drawdown == res.max_drawdown.mean
    assert res.max_drawdown.max <= 0.0
    assert type(d["final_equity"]["histogram"]["counts"][0]) is int
    assert type(d["probability_of_ruin"]) is float


def test_all_positive_trades_never_ruin_or_lose() -> None:
    res = trade_bootstrap(np.array([0.01, 0.02, 0.005]), n_simulations=5000, seed=3, ruin_threshold=0.99)
    assert res.probability_of_ruin == 0.0
    assert res.probability_of_loss == 0.0
    assert res.max_drawdown.min == 0.0
    assert res.final_equity.min > res.initial_capital


def test_ruin_threshold_boundary_is_inclusive() -> None:
    losses = np.array([-0.2])
    assert trade_bootstrap(losses, n_simulations=10, n_trades=3, seed=0).probability_of_ruin == 0.0  # 0.512
    assert trade_bootstrap(losses, n_simulations=10, n_trades=4, seed=0).probability_of_ruin == 1.0  # 0.4096
    assert trade_bootstrap(np.array([-0.5]), n_simulations=10, n_trades=1, seed=0).probability_of_ruin == 1.0
    res = trade_bootstrap(losses, n_simulations=10, n_trades=3, seed=0)
    assert res.max_drawdown.mean == pytest.approx(0.8**3 - 1, rel=1e-12)
    assert res.probability_of_loss == 1.0


def test_losses_beyond_equity_floor_at_zero() -> None:
    res = trade_bootstrap(np.array([-1.5]), n_simulations=10, n_trades=2, seed=0, ruin_threshold=0.0)
    assert res.final_equity.max == 0.0
    assert res.probability_of_ruin == 1.0
    assert res.max_drawdown.min == -1.0


def test_ruin_probability_matches_analytic() -> None:
    # ruin (half the equity) happens iff at least one -50% trade is drawn in 3: 1 - 0.5^3
    res = trade_bootstrap(np.array([-0.5, 0.0]), n_simulations=200_000, n_trades=3, seed=9)
    p = 0.875
    assert abs(res.probability_of_ruin - p) < 5 * math.sqrt(p * (1 - p) / 200_000)


def test_mean_final_equity_matches_analytic() -> None:
    # i.i.d. draws: E[prod(1 + r_i)] = (1 + mean(r))^n
    n_sim, n = 200_000, 50
    res = trade_bootstrap(TRADES, n_simulations=n_sim, n_trades=n, seed=2024, initial_capital=1000.0)
    want = 1000.0 * (1 + TRADES.mean()) ** n
    se = res.final_equity.std / math.sqrt(n_sim)
    assert abs(res.final_equity.mean - want) < 5 * se


def test_block_bootstrap_with_one_full_block_is_a_rotation() -> None:
    # block_size == len == horizon: every path is a circular rotation of the series, so every
    # final equity is the product of all the returns.
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.02, 60)
    res = block_bootstrap(r, block_size=60, n_simulations=300, seed=4, initial_capital=100.0)
    want = 100.0 * np.prod(1 + r)
    assert res.final_equity.min == pytest.approx(want, rel=1e-12)
    assert res.final_equity.max == pytest.approx(want, rel=1e-12)
    assert res.block_size == 60 and res.horizon == 60


def test_block_bootstrap_block_one_mean_matches_iid() -> None:
    n_sim, h = 100_000, 30
    res = block_bootstrap(TRADES, block_size=1, n_simulations=n_sim, horizon=h, seed=8, initial_capital=1.0)
    want = (1 + TRADES.mean()) ** h
    assert abs(res.final_equity.mean - want) < 5 * res.final_equity.std / math.sqrt(n_sim)


def test_block_bootstrap_keeps_blocks_contiguous() -> None:
    # returns encode their own index: with blocks of 5 in a series of 50, each path is made of
    # runs of consecutive (circular) indices; check via the deterministic final equity of
    # a series where only index 0 loses: a path contains the loss iff a block covers it.
    r = np.zeros(50)
    r[0] = -0.5
    res = block_bootstrap(r, block_size=5, n_simulations=50_000, horizon=5, seed=1, ruin_threshold=0.6)
    # one block of 5 starting uniformly at 0..49 covers index 0 for 5 starts (46..49, 0)
    assert abs(res.probability_of_ruin - 5 / 50) < 5 * math.sqrt(0.1 * 0.9 / 50_000)


def test_default_block_size_is_cube_root() -> None:
    assert block_bootstrap(np.full(1000, 0.001), n_simulations=10, seed=0).block_size == 10
    assert block_bootstrap(np.full(3, 0.001), n_simulations=10, seed=0).block_size == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_simulations": 0}, "n_simulations"),
        ({"n_simulations": 1_000_001}, "n_simulations"),
        ({"n_simulations": 2.5}, "n_simulations"),
        ({"n_trades": 0}, "n_trades"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"ruin_threshold": 1.0}, "ruin_threshold"),
        ({"ruin_threshold": -0.1}, "ruin_threshold"),
        ({"initial_capital": 0.0}, "initial_capital"),
        ({"seed": -1}, "seed"),
        ({"n_simulations": 1_000_000, "n_trades": 1000}, "n_trades"),
    ],
)
def test_trade_bootstrap_refuses_bad_input(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        trade_bootstrap(TRADES, **kwargs)


def test_refuses_bad_returns_and_block_size() -> None:
    with pytest.raises(ValueError, match="trade_returns"):
        trade_bootstrap(np.array([]))
    with pytest.raises(ValueError, match="trade_returns"):
        trade_bootstrap(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="bar_returns"):
        block_bootstrap(np.array([]))
    with pytest.raises(ValueError, match="block_size"):
        block_bootstrap(TRADES, block_size=0)
    with pytest.raises(ValueError, match="block_size"):
        block_bootstrap(TRADES, block_size=len(TRADES) + 1)
    with pytest.raises(ValueError, match="horizon"):
        block_bootstrap(TRADES, horizon=0)


def test_trade_returns_on_equity() -> None:
    i = np.array([0, 2], dtype=np.int64)
    trades = Trades(
        symbol=np.zeros(2, dtype=np.int64),
        side=np.ones(2, dtype=np.int64),
        quantity=np.ones(2),
        entry_index=i,
        exit_index=i + 1,
        entry_price=np.ones(2),
        exit_price=np.ones(2),
        fees=np.zeros(2),
        pnl=np.array([10.0, -24.0]),
        ret=np.array([0.5, -0.5]),
    )
    equity = np.array([100.0, 110.0, 120.0, 96.0])
    run = RunResult(
        ("X",), np.arange(4, dtype=np.int64), equity, equity, np.zeros(4), trades, 100.0, 0.0, 0.0
    )
    # first trade entered on bar 0: against the initial 100; second on bar 2: against bar 1's 110
    np.testing.assert_allclose(trade_returns_on_equity(run), [0.1, -24.0 / 110.0])
