"""What the portfolio report renderers (``render``: PDF and Excel) share: the report's data
(``ReportData`` and its rows), the series derived from its daily returns, and the formatting of
numbers, dates and labels.

Pure and cheap to import: no matplotlib, numpy or openpyxl here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

__all__ = ["HoldingRow", "ReportData", "TradeRow", "monthly_returns"]

DASH = "–"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class HoldingRow:
    symbol: str
    quantity: float
    price: float | None
    value: float
    weight: float
    unrealized_pnl: float | None


@dataclass(frozen=True)
class TradeRow:
    at: datetime
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    order_id: str


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows. ``dates``, ``equity``, ``returns`` (and ``benchmark`` when
    given) are parallel daily series, dates ascending; ``benchmark`` is rebased to the first
    equity value. ``metrics`` values may be None or NaN (shown as "–")."""

    portfolio_name: str
    currency: str
    period_start: date
    period_end: date
    generated_at: datetime
    dates: list[date]
    equity: list[float]
    returns: list[float]
    benchmark_symbol: str | None
    benchmark: list[float] | None
    holdings: list[HoldingRow] = field(default_factory=list)
    trades: list[TradeRow] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.dates)
        if len(self.equity) != n or len(self.returns) != n:
            raise ValueError(
                f"dates, equity and returns must have the same length "
                f"({n}, {len(self.equity)}, {len(self.returns)})"
            )
        if self.benchmark is not None and len(self.benchmark) != n:
            raise ValueError(f"benchmark has {len(self.benchmark)} values for {n} dates")


# --------------------------------------------------------------------------- numbers


def monthly_returns(dates: Sequence[date], returns: Sequence[float]) -> dict[tuple[int, int], float]:
    """Daily returns compounded per calendar month: ``{(year, month): prod(1 + r) - 1}``, in the
    order the months first appear. A missing (None/NaN) daily return counts as 0."""
    if len(dates) != len(returns):
        raise ValueError(f"{len(dates)} dates for {len(returns)} returns")
    growth: dict[tuple[int, int], float] = {}
    for d, r in zip(dates, returns, strict=True):
        key = (d.year, d.month)
        g = growth.get(key, 1.0)
        if is_finite(r):
            g *= 1.0 + r
        growth[key] = g
    return {k: g - 1.0 for k, g in growth.items()}


def is_finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def cumulative_returns(returns: Sequence[float]) -> list[float]:
    """Cumulative time-weighted return per day."""
    out, g = [], 1.0
    for r in returns:
        if is_finite(r):
            g *= 1.0 + r
        out.append(g - 1.0)
    return out


def drawdown_curve(returns: Sequence[float]) -> list[float]:
    """Underwater curve of the time-weighted index (so deposits and withdrawals are no drawdown);
    the peak starts at the index before the first day."""
    out, g, peak = [], 1.0, 1.0
    for r in returns:
        if is_finite(r):
            g *= 1.0 + r
        peak = max(peak, g)
        out.append(g / peak - 1.0 if peak > 0 else 0.0)
    return out


_METRIC_LABELS = {
    "total_return": "Total return",
    "twr": "Time-weighted return",
    "mwr": "Money-weighted return",
    "cagr": "CAGR",
    "volatility": "Volatility (ann.)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown": "Max drawdown",
    "alpha": "Alpha (ann.)",
    "beta": "Beta",
    "tracking_error": "Tracking error",
    "information_ratio": "Information ratio",
}
_RATIO_METRICS = frozenset({"sharpe", "sortino", "calmar", "beta"})
_PERCENT_HINTS = ("return", "twr", "mwr", "cagr", "volatility", "drawdown", "alpha", "error", "rate", "var")


def metric_label(name: str) -> str:
    return _METRIC_LABELS.get(name, name.replace("_", " ").capitalize())


def metric_is_percent(name: str) -> bool:
    key = name.lower()
    if key in _RATIO_METRICS or "ratio" in key:
        return False
    return any(h in key for h in _PERCENT_HINTS)


def fmt_pct(v: float | None, decimals: int = 2) -> str:
    return f"{v * 100:.{decimals}f}%" if v is not None and math.isfinite(v) else DASH


def fmt_amount(v: float | None, decimals: int = 2) -> str:
    return f"{v:,.{decimals}f}" if v is not None and math.isfinite(v) else DASH


def fmt_money(v: float | None, currency: str) -> str:
    s = fmt_amount(v)
    return s if s == DASH else f"{s} {currency}"


def fmt_qty(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return DASH
    s = f"{v:,.{4 if abs(v) >= 1 else 8}f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def fmt_price(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return DASH
    return fmt_amount(v) if abs(v) >= 1 else fmt_qty(v)


def fmt_metric(name: str, v: float | None) -> str:
    return fmt_pct(v) if metric_is_percent(name) else fmt_amount(v)


def as_utc(dt: datetime) -> datetime:
    """Aware UTC (a naive datetime is taken to be UTC already)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def naive_utc(dt: datetime) -> datetime:
    return as_utc(dt).replace(tzinfo=None)


def doc_title(data: ReportData) -> str:
    return f"{data.portfolio_name} report {data.period_start}..{data.period_end}"


def clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
