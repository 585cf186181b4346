"""Templates as strategies: ``sizing_fractions`` by hand, and ``TemplateStrategy`` in the
event-driven backtester equal to the vectorized kernel on the same signals (1e-9)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.backtest import BacktestConfig, EventBacktest
from algotrendy.engine.builtin import BUILTIN_TEMPLATES
from algotrendy.engine.result import RunResult
from algotrendy.engine.signals import compute_signals, resolve_params, resolved_risk, validate_template
from algotrendy.engine.template import PositionSizing, RiskManagement, StrategyTemplate
from algotrendy.engine.templated import RotationStrategy, TemplateStrategy, sizing_fractions
from algotrendy.engine.vector import VectorConfig, run
from tests.unit.indicators.synthetic import walk

BARS = walk(1500, seed=21)
PPY = 252.0 * 7


def with_risk(slug: str, **risk: object) -> StrategyTemplate:
    return BUILTIN_TEMPLATES[slug].model_copy(update={"risk_management": RiskManagement(**risk)})


def sized(method: str, value: float, **kw: float) -> StrategyTemplate:
    return with_risk("sma_crossover", position_sizing=PositionSizing(method=method, value=value, **kw))


# ---- sizing_fractions -------------------------------------------------------------------------


def test_percent_equity_commits_the_same_fraction_on_every_bar() -> None:
    t = sized("percent_equity", 0.4)
    frac = sizing_fractions(BARS, t, resolve_params(t), PPY)
    assert frac.shape == (len(BARS),)
    assert (frac == 0.4).all()


def test_fixed_quantity_has_no_fraction() -> None:
    t = sized("fixed_quantity", 25.0)
    assert np.isnan(sizing_fractions(BARS, t, resolve_params(t), PPY)).all()


def test_the_default_sizing_is_all_in() -> None:
    t = BUILTIN_TEMPLATES["sma_crossover"]
    assert (sizing_fractions(BARS, t, resolve_params(t), PPY) == 1.0).all()


def hand_vol_target(close: np.ndarray, i: int, window: int, target: float, cap: float, ppy: float) -> float:
    """``target / (stdev of the last ``window`` bar returns, annualized)``, capped."""
    rets = [close[k] / close[k - 1] - 1.0 for k in range(i - window + 1, i + 1)]
    vol = statistics.stdev(rets) * math.sqrt(ppy)
    return min(target / vol, cap)


@pytest.mark.parametrize(("window", "target", "cap"), [(20, 0.15, 3.0), (5, 0.3, 1.0), (60, 0.05, 10.0)])
def test_volatility_target_matches_a_hand_computation(window: int, target: float, cap: float) -> None:
    t = sized("volatility_target", target, vol_lookback=window, max_leverage=cap)
    frac = sizing_fractions(BARS, t, resolve_params(t), PPY)
    assert np.isnan(frac[:window]).all()  # the first window of returns ends at bar ``window``
    assert np.isfinite(frac[window:]).all()
    close = BARS.close
    for i in (window, window + 1, 200, 777, len(BARS) - 1):
        assert frac[i] == pytest.approx(hand_vol_target(close, i, window, target, cap, PPY), rel=1e-9)
    assert (frac[window:] <= cap).all()


def test_volatility_target_is_capped_at_max_leverage() -> None:
    t = sized("volatility_target", 0.5, vol_lookback=10, max_leverage=1.0)
    frac = sizing_fractions(BARS, t, resolve_params(t), PPY)
    uncapped = np.array(
        [hand_vol_target(BARS.close, i, 10, 0.5, math.inf, PPY) for i in range(10, len(BARS))]
    )
    assert (uncapped > 1.0).any()
    assert (uncapped < 1.0).any()  # the test sees both sides of the cap
    np.testing.assert_allclose(frac[10:], np.minimum(uncapped, 1.0), rtol=1e-9)


def test_volatility_target_scales_with_the_periods_per_year() -> None:
    t = sized("volatility_target", 0.1, vol_lookback=20, max_leverage=100.0)
    a = sizing_fractions(BARS, t, resolve_params(t), 252.0)
    b = sizing_fractions(BARS, t, resolve_params(t), 4 * 252.0)
    np.testing.assert_allclose(a[20:], 2.0 * b[20:], rtol=1e-12)


def test_volatility_target_on_a_short_series_is_all_nan() -> None:
    t = sized("volatility_target", 0.15, vol_lookback=20)
    short = BARS.slice(0, 20)
    assert np.isnan(sizing_fractions(short, t, resolve_params(t), PPY)).all()
    assert np.isnan(sizing_fractions(BARS.slice(0, 21), t, resolve_params(t), PPY)[:20]).all()


# ---- TemplateStrategy == the vectorized kernel --------------------------------------------------

SHORTS = BUILTIN_TEMPLATES["sma_crossover"].model_copy(
    update={
        "short_entry_conditions": ["fast_ma crosses_below slow_ma"],
        "short_exit_conditions": ["fast_ma crosses_above slow_ma"],
    }
)

CASES: dict[str, tuple[StrategyTemplate, dict[str, float]]] = {
    "sma_crossover": (BUILTIN_TEMPLATES["sma_crossover"], {"fee_rate": 0.001, "slippage": 0.0005}),
    "macd_signal": (BUILTIN_TEMPLATES["macd_signal"], {"fee_fixed": 1.0, "lot_size": 1.0}),
    "rsi_mean_reversion": (BUILTIN_TEMPLATES["rsi_mean_reversion"], {"fee_rate": 0.001}),
    "bollinger_reversion": (BUILTIN_TEMPLATES["bollinger_reversion"], {"slippage": 0.001}),
    "brackets_vol_target_shorts": (
        SHORTS.model_copy(
            update={
                "risk_management": RiskManagement(
                    stop_loss=0.02,
                    take_profit=0.04,
                    trailing_stop=0.03,
                    position_sizing=PositionSizing(method="volatility_target", value=0.2, max_leverage=2.0),
                )
            }
        ),
        {"fee_rate": 0.001, "slippage": 0.0002, "leverage": 2.0},
    ),
    "fixed_quantity_capped": (
        with_risk(
            "ema_crossover",
            stop_loss=0.03,
            position_sizing=PositionSizing(method="fixed_quantity", value=2_000.0),
        ),
        {"fee_rate": 0.001},
    ),
}


def both(template: StrategyTemplate, bars: Bars, **config: float) -> tuple[RunResult, RunResult]:
    params = resolve_params(template)
    cfg = BacktestConfig(**config)
    strat = TemplateStrategy(template, params, symbol="X", periods_per_year=PPY)
    event = EventBacktest({"X": bars}, strat, cfg).run()
    sig = compute_signals(template, bars, params)
    risk = resolved_risk(template, params)
    nan = math.nan
    vcfg = VectorConfig(
        initial_capital=cfg.initial_capital,
        fee_rate=cfg.fee_rate,
        slippage=cfg.slippage,
        fee_fixed=cfg.fee_fixed,
        lot_size=cfg.lot_size,
        leverage=cfg.leverage,
        fixed_quantity=risk.sizing_value if risk.sizing_method == "fixed_quantity" else nan,
        stop_loss=nan if risk.stop_loss is None else risk.stop_loss,
        take_profit=nan if risk.take_profit is None else risk.take_profit,
        trailing_stop=nan if risk.trailing_stop is None else risk.trailing_stop,
    )
    frac = sizing_fractions(bars, template, params, PPY)
    vector = run(
        bars, sig.long_entry, sig.long_exit, sig.short_entry, sig.short_exit, frac, vcfg,
        symbol="X", warmup=sig.warmup,
    )  # fmt: skip
    return event, vector


def assert_same(a: RunResult, b: RunResult) -> None:
    ta, tb = a.trades, b.trades
    assert len(ta) == len(tb)
    for col in ("side", "entry_index", "exit_index"):
        np.testing.assert_array_equal(getattr(ta, col), getattr(tb, col), err_msg=col)
    assert ta.exit_reason == tb.exit_reason
    for col in ("quantity", "entry_price", "exit_price", "fees", "pnl", "ret"):
        np.testing.assert_allclose(getattr(ta, col), getattr(tb, col), rtol=1e-9, atol=1e-9, err_msg=col)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.cash, b.cash, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.exposure, b.exposure, rtol=1e-9, atol=1e-12)
    assert a.fees_paid == pytest.approx(b.fees_paid, rel=1e-9, abs=1e-9)
    assert a.turnover == pytest.approx(b.turnover, rel=1e-9, abs=1e-12)
    assert (a.orders, a.warmup) == (b.orders, b.warmup)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [5, 6])
def test_template_strategy_in_the_event_engine_equals_the_kernel(case: str, seed: int) -> None:
    template, config = CASES[case]
    validate_template(template)
    bars = walk(2500, seed=seed)
    event, vector = both(template, bars, **config)
    assert len(event.trades) >= 5
    assert event.warmup > 0
    risk = template.risk_management
    if risk.stop_loss is not None:
        assert "stop_loss" in event.trades.exit_reason
    if case == "brackets_vol_target_shorts":
        assert -1 in event.trades.side
        assert {"take_profit", "trailing_stop"} <= set(event.trades.exit_reason)
    if case == "fixed_quantity_capped":  # 2,000 units of a ~100 asset on 100,000: capped
        assert (event.trades.quantity < 2_000.0).any()
    assert_same(event, vector)


def test_template_strategy_takes_its_brackets_and_sizing_from_the_template() -> None:
    t = with_risk(
        "rsi_mean_reversion",
        stop_loss="stop_loss",
        take_profit=0.1,
        position_sizing=PositionSizing(method="fixed_quantity", value=7.0),
    )
    params = resolve_params(t, {"stop_loss": 0.04})
    strat = TemplateStrategy(t, params, symbol="X", periods_per_year=PPY)
    assert strat.symbols == ("X",)
    assert (strat._brackets.stop_loss, strat._brackets.take_profit, strat._brackets.trailing_stop) == (
        0.04,
        0.1,
        None,
    )
    assert strat._fixed == 7.0
    r = EventBacktest({"X": BARS}, strat, BacktestConfig()).run()
    assert len(r.trades) > 0
    assert set(r.trades.quantity.tolist()) == {7.0}


def test_a_rotation_strategy_needs_a_rotation_template() -> None:
    t = BUILTIN_TEMPLATES["sma_crossover"]
    with pytest.raises(ValueError, match="not a rotation template"):
        RotationStrategy(t, resolve_params(t), symbols=("A", "B"))
