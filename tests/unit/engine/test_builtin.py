from __future__ import annotations

import numpy as np
import pytest
import talib

from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.expr import IndicatorCache
from algotrendy.engine.signals import (
    Signals,
    compute_signals,
    grid_size,
    param_grid,
    resolve_params,
    resolved_risk,
    resolved_rotation,
    rotation_scores,
    signal_warmup,
    validate_template,
)
from algotrendy.engine.template import StrategyTemplate
from tests.unit.indicators.synthetic import walk

BARS = walk(2000, seed=42)
SLUGS = [
    "sma_crossover",
    "ema_crossover",
    "rsi_mean_reversion",
    "macd_signal",
    "bollinger_breakout",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum_rotation",
]
SIGNAL_SLUGS = [s for s in SLUGS if s != "momentum_rotation"]


def round_trips(s: Signals) -> int:
    """Long round trips of a simple stop-free state machine: enter on an entry, leave on an exit."""
    trips, holding = 0, False
    for entry, exit_ in zip(s.long_entry, s.long_exit, strict=True):
        if holding and exit_:
            holding, trips = False, trips + 1
        elif not holding and entry:
            holding = True
    return trips


def test_the_builtins_are_there() -> None:
    assert sorted(BUILTIN_TEMPLATES) == sorted(SLUGS)


@pytest.mark.parametrize("slug", SLUGS)
def test_every_builtin_validates_and_is_described(slug: str) -> None:
    t = BUILTIN_TEMPLATES[slug]
    validate_template(t)
    assert t.description and t.name
    assert t.parameters
    for spec in t.parameters.values():
        assert spec.description
        assert spec.type == "choice" or spec.step is not None
    assert grid_size(t, list(t.parameters)) > 1
    resolved_risk(t, resolve_params(t))
    assert StrategyTemplate.model_validate_json(t.model_dump_json()) == t


@pytest.mark.parametrize("slug", SIGNAL_SLUGS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_builtin_trades_on_a_random_walk(slug: str, seed: int) -> None:
    t = BUILTIN_TEMPLATES[slug]
    params = resolve_params(t)
    s = compute_signals(t, walk(2000, seed=seed), params)
    assert s.warmup == signal_warmup(t, params) < 300
    assert not s.long_entry[: s.warmup].any()
    assert round_trips(s) >= 3


@pytest.mark.parametrize("slug", SIGNAL_SLUGS)
def test_a_small_sweep_over_every_builtin(slug: str) -> None:
    t = BUILTIN_TEMPLATES[slug]
    names = [n for n, spec in t.parameters.items() if spec.type != "choice"][:2]
    cache = IndicatorCache()
    combos = list(param_grid(t, names, max_combinations=100_000))[:4]
    for combo in combos:
        compute_signals(t, BARS, resolve_params(t, combo), cache)
    assert cache.hits > 0 or len(combos) == 1


def test_sma_crossover_defaults_and_rule() -> None:
    t = BUILTIN_TEMPLATES["sma_crossover"]
    assert resolve_params(t) == {"fast": 10, "slow": 30}
    s = compute_signals(t, BARS, resolve_params(t))
    fast, slow = talib.SMA(BARS.close, 10), talib.SMA(BARS.close, 30)
    above = fast > slow
    np.testing.assert_array_equal(s.long_entry[31:], (above & ~np.r_[False, above[:-1]])[31:])
    np.testing.assert_array_equal(s.long_exit[31:], ((fast < slow) & np.r_[False, above[:-1]])[31:])


def test_donchian_uses_the_prior_window() -> None:
    t = BUILTIN_TEMPLATES["donchian_breakout"]
    s = compute_signals(t, BARS, resolve_params(t))
    prior_high = np.r_[np.nan, talib.MAX(BARS.high, 20)[:-1]]
    np.testing.assert_array_equal(s.long_entry[20:], (BARS.close > prior_high)[20:])
    prior_low = np.r_[np.nan, talib.MIN(BARS.low, 10)[:-1]]
    np.testing.assert_array_equal(s.long_exit[20:], (BARS.close < prior_low)[20:])


def test_rsi_trend_filter_is_optional() -> None:
    t = BUILTIN_TEMPLATES["rsi_mean_reversion"]
    off = compute_signals(t, BARS, resolve_params(t))
    on = compute_signals(t, BARS, resolve_params(t, {"trend_filter": 1}))
    assert off.warmup == 14 and on.warmup == 199
    assert on.long_entry.sum() < off.long_entry.sum()
    assert not (on.long_entry & ~off.long_entry).any()
    assert resolved_risk(t, resolve_params(t)).stop_loss == 0.08


def test_momentum_rotation_ranks_symbols() -> None:
    t = BUILTIN_TEMPLATES["momentum_rotation"]
    params = resolve_params(t)
    rot = resolved_rotation(t, params)
    assert (rot.top_n, rot.rebalance_every, rot.warmup) == (1, 21, 63)
    syms = {f"S{i}": walk(1000, seed=i) for i in range(3)}
    scores = rotation_scores(t, syms, params, IndicatorCache())
    matrix = np.vstack([scores[s] for s in syms])
    assert np.isnan(matrix[:, :63]).all() and not np.isnan(matrix[:, 63:]).any()
    leaders = matrix[:, 63::21].argmax(axis=0)
    assert len(set(leaders.tolist())) > 1  # the rotation does rotate
