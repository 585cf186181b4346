"""The PDF report's charts, drawn on matplotlib ``Axes`` (object API only, never ``pyplot``):
equity against the benchmark, drawdown, allocation and the monthly-returns heatmap.

matplotlib and numpy are imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from algotrendy.services.portfolio.render_common import (
    MONTHS,
    ReportData,
    clip,
    drawdown_curve,
    fmt_pct,
    monthly_returns,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INK = "#1b2631"
MUTED = "#707b7c"
_BLUE = "#1f618d"
_RED = "#c0392b"
STRIPE = "#f2f4f4"


def _esc(s: str) -> str:
    """For text matplotlib would parse as mathtext (tick labels): "$" stays a dollar sign."""
    return s.replace("$", r"\$")


def _no_data(ax: Axes, title: str, message: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=INK)
    ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, transform=ax.transAxes)


def _date_axis(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _days(dates: Sequence[date]) -> Any:
    import numpy as np

    return np.array([d.isoformat()[:10] for d in dates], dtype="datetime64[D]")


def _single_day(ax: Axes, days: Any) -> None:
    """Three days either side of a lone point (matplotlib would otherwise span years)."""
    import numpy as np

    if len(days) == 1:
        ax.set_xlim(days[0] - np.timedelta64(3, "D"), days[0] + np.timedelta64(3, "D"))


def _style(ax: Axes) -> None:
    ax.grid(True, color="#d5d8dc", lw=0.6)
    ax.tick_params(labelsize=8, colors=INK)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def equity_chart(ax: Axes, data: ReportData) -> None:
    from matplotlib.ticker import FuncFormatter

    title = "Equity vs benchmark" if data.benchmark is not None else "Equity"
    title = f"{title} ({data.currency})"
    if not data.dates:
        _no_data(ax, title, "No data for the period")
        return
    days = _days(data.dates)
    marker = "o" if len(data.dates) == 1 else None
    ax.plot(days, data.equity, color=_BLUE, lw=1.6, marker=marker, label="Portfolio")
    if data.benchmark is not None:
        label = f"{data.benchmark_symbol or 'Benchmark'} (rebased)"
        ax.plot(days, data.benchmark, color=MUTED, lw=1.2, ls="--", marker=marker, label=_esc(label))
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=INK)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _date_axis(ax)
    _single_day(ax, days)
    _style(ax)
    ax.legend(loc="upper left", frameon=False, fontsize=8)


def drawdown_chart(ax: Axes, data: ReportData) -> None:
    from matplotlib.ticker import PercentFormatter

    title = "Drawdown (time-weighted, underwater)"
    if not data.dates:
        _no_data(ax, title, "No data for the period")
        return
    days = _days(data.dates)
    dd = drawdown_curve(data.returns)
    ax.fill_between(days, dd, 0.0, color=_RED, alpha=0.3, lw=0)
    ax.plot(days, dd, color=_RED, lw=1.0, marker="o" if len(dd) == 1 else None)
    worst = min(dd)
    ax.set_ylim(min(worst * 1.15, -0.01), 0.002)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(f"{title} · max {fmt_pct(worst)}", loc="left", fontsize=11, weight="bold", color=INK)
    _date_axis(ax)
    _single_day(ax, days)
    _style(ax)


def allocation_chart(ax: Axes, data: ReportData, max_bars: int = 25) -> None:
    from matplotlib.ticker import PercentFormatter

    title = "Allocation (weight of portfolio value)"
    rows = [(h.symbol, h.weight) for h in data.holdings if math.isfinite(h.weight)]
    if not rows:
        _no_data(ax, title, "No holdings")
        return
    rows.sort(key=lambda r: (-abs(r[1]), r[0]))
    if len(rows) > max_bars:
        rest = rows[max_bars - 1 :]
        rows = [*rows[: max_bars - 1], (f"Other ({len(rest)})", sum(w for _, w in rest))]
    rows.reverse()  # the largest at the top
    cash = {"CASH", data.currency.upper()}
    colors = [MUTED if s.upper() in cash else (_BLUE if w >= 0 else _RED) for s, w in rows]
    ys = list(range(len(rows)))
    weights = [w for _, w in rows]
    ax.barh(ys, weights, color=colors, height=0.7)
    size = max(5.0, min(9.0, 200 / len(rows)))
    ax.set_yticks(ys, labels=[_esc(clip(s, 16)) for s, _ in rows], fontsize=size)
    lo, hi = min(0.0, *weights), max(0.0, *weights)
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - (0.2 * span if lo < 0 else 0), hi + 0.2 * span)
    for y, w in zip(ys, weights, strict=True):
        ax.text(w, y, f" {fmt_pct(w, 1)} ", va="center", ha="left" if w >= 0 else "right", fontsize=size)
    ax.axvline(0, color=INK, lw=0.8)
    n = len(rows)
    ax.set_ylim(n - 0.4 - max(n, 12), n - 0.4)  # few bars keep their thickness, at the top
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=INK)
    _style(ax)
    ax.grid(False, axis="y")


def monthly_heatmap(fig: Figure, data: ReportData, top: float) -> None:
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    title = "Monthly returns (time-weighted)"
    by_month = monthly_returns(data.dates, data.returns)
    if not by_month:
        _no_data(fig.add_axes((0.1, top - 0.2, 0.84, 0.17)), title, "No returns for the period")
        return
    years = sorted({y for y, _ in by_month})
    grid = np.full((len(years), 13), np.nan)
    for (y, m), r in by_month.items():
        grid[years.index(y), m - 1] = r
    for i, y in enumerate(years):
        months = [by_month[(y, m)] for m in range(1, 13) if (y, m) in by_month]
        grid[i, 12] = math.prod(1.0 + r for r in months) - 1.0
    height = min(top - 0.08, 0.045 * len(years) + 0.02)
    ax = fig.add_axes((0.1, top - 0.03 - height, 0.84, height))
    scale = float(np.nanmax(np.abs(grid[:, :12]))) or 0.01
    norm = Normalize(-scale, scale)  # symmetric, so 0 is the colormap's centre
    cmap = colormaps["RdYlGn"].with_extremes(bad="#f7f9f9")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    size = max(5.0, min(8.0, 130 / (len(years) + 8)))
    for i in range(len(years)):
        for j in range(13):
            v = float(grid[i, j])
            if math.isfinite(v):
                dark = abs(float(norm(v)) - 0.5) > 0.38
                weight = "bold" if j == 12 else "normal"
                color = "white" if dark else INK
                ax.text(
                    j, i, fmt_pct(v, 1), ha="center", va="center", fontsize=size, color=color, weight=weight
                )
    ax.set_xticks(range(13), labels=[*MONTHS, "Year"], fontsize=8)
    ax.set_yticks(range(len(years)), labels=[str(y) for y in years], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.axvline(11.5, color="white", lw=3)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=INK, pad=18)
