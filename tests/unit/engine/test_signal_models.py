"""A template's ``models``: aliases read per-bar series carried by ``Bars.series`` (a model's
P(up)); validated like any name; missing series refused naming the alias; sliced with the bars;
the live strategy's ``enrich`` adds them to each window."""

from __future__ import annotations

import numpy as np
import pytest

from algotrendy.core.market import Bars
from algotrendy.engine.signals import compute_signals, signal_warmup, validate_template
from algotrendy.engine.template import StrategyTemplate, TemplateError
from algotrendy.engine.templated import TemplateStrategy


def _bars(n: int = 50) -> Bars:
    ts = np.arange(n, dtype=np.int64) * 86_400_000_000_000
    close = 100 + np.cumsum(np.sin(np.arange(n)))
    return Bars(ts, close, close + 1, close - 1, close, np.full(n, 1000.0))


def _template(**extra: object) -> StrategyTemplate:
    data: dict[str, object] = {
        "name": "ml",
        "models": {"p_up": "aapl-daily"},
        "indicators": ["smooth = sma(p_up, 2)"],
        "entry_conditions": ["p_up > 0.6", "close > 0"],
        "exit_conditions": ["smooth < 0.45"],
    }
    return StrategyTemplate.model_validate(data | extra)


def test_conditions_read_the_model_series() -> None:
    t = _template()
    validate_template(t)
    assert signal_warmup(t, {}) == 1  # sma(p_up, 2); the model series itself has none
    bars = _bars()
    p = np.full(len(bars), np.nan)
    p[10:] = np.linspace(0.3, 0.9, len(bars) - 10)
    sig = compute_signals(t, bars.with_series({"p_up": p}), {})
    assert not sig.long_entry[:10].any()  # NaN: unknown reads as false
    assert np.array_equal(sig.long_entry[10:], p[10:] > 0.6)
    smooth = (p[1:] + p[:-1]) / 2
    assert np.array_equal(sig.long_exit[1:], np.nan_to_num(smooth, nan=1.0) < 0.45)


def test_a_missing_series_and_bad_aliases_are_refused_naming_the_field() -> None:
    with pytest.raises(TemplateError) as exc:
        compute_signals(_template(), _bars(), {})
    assert exc.value.field == "models.p_up"
    for alias in ("close", "Bad-Name", "and"):
        with pytest.raises(TemplateError) as exc:
            validate_template(_template(models={alias: "m"}, indicators=[], exit_conditions=[]))
        assert exc.value.field == f"models.{alias}"
    with pytest.raises(TemplateError) as exc:
        validate_template(_template(models={"p_up": "no spaces allowed"}))
    assert exc.value.field == "models.p_up"
    with pytest.raises(TemplateError) as exc:  # an unknown name is still unknown
        validate_template(_template(entry_conditions=["p_dn > 0.6"]))
    assert exc.value.field == "entry_conditions[0]"


def test_series_follow_slices_and_must_match_the_bars() -> None:
    bars = _bars(20)
    p = np.arange(20, dtype=np.float64)
    part = bars.with_series({"p_up": p}).slice(5, 9)
    assert np.array_equal(part.series["p_up"], [5, 6, 7, 8]) and len(part) == 4
    with pytest.raises(ValueError, match="series p_up"):
        Bars(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, series={"p_up": p[:3]})


def test_the_live_strategy_enriches_each_window() -> None:
    seen: list[int] = []

    def enrich(bars: Bars) -> Bars:
        seen.append(len(bars))
        return bars.with_series({"p_up": np.full(len(bars), 0.7)})

    strategy = TemplateStrategy(_template(), {}, symbol="X", periods_per_year=252.0, enrich=enrich)
    strategy.on_data("X", _bars(30))
    assert seen == [30]
    with pytest.raises(TemplateError):
        TemplateStrategy(_template(), {}, symbol="X", periods_per_year=252.0).on_data("X", _bars(30))
