"""Templates as strategies: ``TemplateStrategy`` (signals on one symbol, through
``SignalStrategy``, the vectorized kernel's twin) and ``RotationStrategy`` (momentum rotation
across symbols), both plain ``Strategy`` subclasses, so they run unchanged in the event-driven
backtester, on the paper broker and live. Entries are sized by ``sizing_fractions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from algotrendy.core.market import F64, Bars
from algotrendy.engine.orders import OrderSide
from algotrendy.engine.signal_strategy import Brackets, SignalStrategy
from algotrendy.engine.signals import compute_signals, resolved_risk, resolved_rotation, rotation_scores
from algotrendy.engine.strategy import Context, Strategy
from algotrendy.engine.template import ParamValue, StrategyTemplate

Enrich = Callable[[Bars], Bars]
"""Adds the per-bar series a template's ``models`` read (live: computed on each new window)."""


def sizing_fractions(
    bars: Bars, template: StrategyTemplate, params: Mapping[str, ParamValue], ppy: float
) -> F64:
    """The fraction of equity an entry on each bar commits (NaN: fixed quantity, or undefined).

    ``volatility_target``: ``target / (std of the last vol_lookback bar returns * sqrt(ppy))``,
    capped at ``max_leverage`` (NaN until the window is full)."""
    risk = resolved_risk(template, params)
    n = len(bars)
    if risk.sizing_method == "fixed_quantity":
        return np.full(n, np.nan)
    if risk.sizing_method == "percent_equity":
        return np.full(n, float(risk.sizing_value))
    out = np.full(n, np.nan)
    window = risk.vol_lookback
    close = bars.close
    if n > window:
        rets = close[1:] / close[:-1] - 1.0
        views = np.lib.stride_tricks.sliding_window_view(rets, window)
        vol = views.std(axis=1, ddof=1) * np.sqrt(ppy)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.minimum(risk.sizing_value / vol, risk.max_leverage)
        frac[~np.isfinite(frac)] = np.nan
        out[window:] = frac
    return out


class TemplateStrategy(SignalStrategy):
    """Trade ``template`` with resolved ``params`` on one symbol."""

    def __init__(
        self,
        template: StrategyTemplate,
        params: Mapping[str, ParamValue],
        *,
        symbol: str,
        periods_per_year: float,
        cache: Any = None,
        enrich: Enrich | None = None,
    ) -> None:
        risk = resolved_risk(template, params)
        super().__init__(
            symbol,
            brackets=Brackets(risk.stop_loss, risk.take_profit, risk.trailing_stop),
            fixed_quantity=float(risk.sizing_value) if risk.sizing_method == "fixed_quantity" else None,
        )
        self.template = template
        self.params = dict(params)
        self._ppy = periods_per_year
        self._cache = cache
        self._enrich = enrich

    def on_data(self, symbol: str, bars: Bars) -> None:
        if symbol != self._symbol:
            return
        if self._enrich is not None:
            bars = self._enrich(bars)
        sig = compute_signals(self.template, bars, self.params, self._cache)
        fractions = sizing_fractions(bars, self.template, self.params, self._ppy)
        self.set_signals(sig.long_entry, sig.long_exit, sig.short_entry, sig.short_exit, fractions)
        self.warmup = sig.warmup


class RotationStrategy(Strategy):
    """Every ``rebalance_every`` bars, hold the ``top_n`` symbols by score, equally weighted."""

    def __init__(
        self,
        template: StrategyTemplate,
        params: Mapping[str, ParamValue],
        *,
        symbols: tuple[str, ...],
        cache: Any = None,
        enrich: Enrich | None = None,
    ) -> None:
        if template.rotation is None:
            raise ValueError(f"template {template.name!r} is not a rotation template")
        self.template = template
        self.params = dict(params)
        self.symbols = symbols
        self._cache = cache
        self._scores: dict[str, list[float]] = {}
        self._top_n = 1
        self._every = 1
        self._min: float | None = template.rotation.min_score
        self._steps = 0
        self.warmup = 0
        self._enrich = enrich

    def on_data(self, symbol: str, bars: Bars) -> None:
        if self._enrich is not None:
            bars = self._enrich(bars)
        scores = rotation_scores(self.template, {symbol: bars}, self.params, self._cache)
        rot = resolved_rotation(self.template, self.params)
        self._scores[symbol] = scores[symbol].tolist()
        self._top_n = rot.top_n
        self._every = rot.rebalance_every
        self.warmup = max(self.warmup, rot.warmup)

    def on_bar(self, ctx: Context) -> None:
        ranked: list[tuple[float, str]] = []
        for s in self.symbols:
            i = ctx.index(s)
            if i < 0 or not ctx.has_bar(s):
                continue
            score = self._scores[s][i]
            if not math.isnan(score) and (self._min is None or score >= self._min):
                ranked.append((score, s))
        if not ranked:
            return
        self._steps += 1
        if (self._steps - 1) % self._every != 0:
            return
        ranked.sort(key=lambda x: (-x[0], x[1]))
        keep = {s for _, s in ranked[: self._top_n]}
        for s in self.symbols:
            if ctx.position(s) != 0 and s not in keep:
                ctx.close(s, tag="rebalance")
        for s in sorted(keep):
            if ctx.position(s) == 0:
                ctx.submit(s, OrderSide.BUY, fraction=1.0 / self._top_n, tag="entry")
