"""A portfolio's exposure kept in memory for the risk monitor, repriced as each price arrives.

What is kept per portfolio: the quantity of each held symbol, its last price, what is not in
positions (cash and reservations: ``equity - sum(q * p)`` when built), the equity at the start of
the UTC day and its high-water mark, and the daily mean vector and covariance matrix of the held
symbols' returns (``lookback`` days, computed when the holdings change, not on every tick).

A new price is one array write; the figures are a dot product and one quadratic form
(``engine.var.normal_from_moments``), about ten microseconds for 50 positions:

* ``var``: the 1-day 95% normal VaR of the holdings as a share of equity (symbols without
  enough history are left out of it and listed in ``unmodelled``),
* ``drawdown``: ``1 - equity / peak`` (the peak is the highest daily mark or any equity seen),
* ``concentration``: the largest single position's absolute value over equity,
* ``daily_loss``: ``day_start - equity`` in the account currency (positive: a loss).

``breaches`` compares them with the portfolio's limits (``max_var``, ``max_drawdown``,
``max_concentration``, ``daily_loss_limit``); a limit left ``None`` is not watched.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import numpy as np

from algotrendy.core.market import F64
from algotrendy.engine import var as V
from algotrendy.services.risk.interface import AlertKind, RiskLimitsRead

VAR_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Figures:
    equity: float
    var: float | None
    drawdown: float
    concentration: float
    daily_loss: float


@dataclass(slots=True)
class Exposure:
    portfolio_id: uuid.UUID
    owner_id: uuid.UUID
    symbols: list[str]
    quantities: F64
    prices: F64
    other: float
    day_start: float
    peak: float
    modelled: F64 = field(default_factory=lambda: np.empty(0, np.int64))  # indexes into symbols
    mean: F64 = field(default_factory=lambda: np.empty(0))
    cov: F64 = field(default_factory=lambda: np.empty((0, 0)))
    unmodelled: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def reprice(self, symbol: str, price: float) -> bool:
        """Take a new price; ``False`` when the symbol is not held here."""
        i = self.index.get(symbol)
        if i is None:
            return False
        self.prices[i] = price
        return True

    def figures(self) -> Figures:
        values = self.quantities * self.prices
        equity = self.other + float(values.sum())
        self.peak = max(self.peak, equity)
        drawdown = 1.0 - equity / self.peak if self.peak > 0 else 0.0
        if equity <= 0:
            return Figures(equity, None, drawdown, math.inf if len(values) else 0.0, self.day_start - equity)
        concentration = float(np.abs(values).max()) / equity if len(values) else 0.0
        var: float | None = None
        if len(self.modelled):
            w = values[self.modelled] / equity
            s = math.sqrt(max(float(w @ self.cov @ w), 0.0))
            var, _ = V.normal_from_moments(float(w @ self.mean), s, confidence=VAR_CONFIDENCE)
        return Figures(equity, var, drawdown, concentration, self.day_start - equity)


_WATCHED: tuple[tuple[AlertKind, str, str], ...] = (
    ("var", "max_var", "1-day 95% VaR is {v:.2%} of equity, above {c:.2%}"),
    ("drawdown", "max_drawdown", "equity is {v:.2%} below its high-water mark, beyond {c:.2%}"),
    ("concentration", "max_concentration", "the largest position is {v:.2%} of equity, above {c:.2%}"),
    ("daily_loss", "daily_loss_limit", "today's loss is {v:,.2f}, beyond the daily limit of {c:,.2f}"),
)


def breaches(figures: Figures, limits: RiskLimitsRead) -> dict[AlertKind, tuple[float, float, str]]:
    """Each watched figure beyond its limit: ``kind -> (value, limit, message)``."""
    out: dict[AlertKind, tuple[float, float, str]] = {}
    for kind, limit_name, message in _WATCHED:
        limit = getattr(limits, limit_name)
        value: float | None = getattr(figures, kind)
        if limit is not None and value is not None and value > float(limit):
            out[kind] = (value, float(limit), message.format(v=value, c=float(limit)))
    return out


def watched(limits: RiskLimitsRead) -> bool:
    """Whether any limit the monitor watches is set."""
    return any(getattr(limits, name) is not None for _, name, _ in _WATCHED)
