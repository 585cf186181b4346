"""A portfolio's performance report rendered as PDF (matplotlib) and as Excel (openpyxl).

Pure: a :class:`ReportData` in, the file's bytes out. No I/O and no global state: the PDF is
drawn with matplotlib's object API (``Figure`` + ``PdfPages``), never ``pyplot``, so reports can
render in worker threads at the same time. matplotlib, numpy and openpyxl are imported on first
use, so importing this module costs nothing at server start.

Both outputs are deterministic for the same data: the PDF's CreationDate, the workbook's
created/modified properties and the xlsx zip entries' timestamps all come from
``generated_at``.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "HoldingRow",
    "ReportData",
    "TradeRow",
    "monthly_returns",
    "render_pdf",
    "render_xlsx",
]

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
        if _finite(r):
            g *= 1.0 + r
        growth[key] = g
    return {k: g - 1.0 for k, g in growth.items()}


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _cumulative(returns: Sequence[float]) -> list[float]:
    """Cumulative time-weighted return per day."""
    out, g = [], 1.0
    for r in returns:
        if _finite(r):
            g *= 1.0 + r
        out.append(g - 1.0)
    return out


def _drawdowns(returns: Sequence[float]) -> list[float]:
    """Underwater curve of the time-weighted index (so deposits and withdrawals are no drawdown);
    the peak starts at the index before the first day."""
    out, g, peak = [], 1.0, 1.0
    for r in returns:
        if _finite(r):
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


def _metric_label(name: str) -> str:
    return _METRIC_LABELS.get(name, name.replace("_", " ").capitalize())


def _metric_is_percent(name: str) -> bool:
    key = name.lower()
    if key in _RATIO_METRICS or "ratio" in key:
        return False
    return any(h in key for h in _PERCENT_HINTS)


def _pct(v: float | None, decimals: int = 2) -> str:
    return f"{v * 100:.{decimals}f}%" if v is not None and math.isfinite(v) else DASH


def _amount(v: float | None, decimals: int = 2) -> str:
    return f"{v:,.{decimals}f}" if v is not None and math.isfinite(v) else DASH


def _money(v: float | None, currency: str) -> str:
    s = _amount(v)
    return s if s == DASH else f"{s} {currency}"


def _qty(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return DASH
    s = f"{v:,.{4 if abs(v) >= 1 else 8}f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _price(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return DASH
    return _amount(v) if abs(v) >= 1 else _qty(v)


def _metric_text(name: str, v: float | None) -> str:
    return _pct(v) if _metric_is_percent(name) else _amount(v)


def _utc(dt: datetime) -> datetime:
    """Aware UTC (a naive datetime is taken to be UTC already)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _naive_utc(dt: datetime) -> datetime:
    return _utc(dt).replace(tzinfo=None)


def _doc_title(data: ReportData) -> str:
    return f"{data.portfolio_name} report {data.period_start}..{data.period_end}"


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _esc(s: str) -> str:
    """For text matplotlib would parse as mathtext (tick labels): "$" stays a dollar sign."""
    return s.replace("$", r"\$")


# --------------------------------------------------------------------------- PDF

_A4 = (8.27, 11.69)
_INK = "#1b2631"
_MUTED = "#707b7c"
_BLUE = "#1f618d"
_RED = "#c0392b"
_STRIPE = "#f2f4f4"
_ROW_H = 0.0195
_TABLE_TOP = 0.915
_TABLE_BOTTOM = 0.06
_TABLE_SLOTS = int((_TABLE_TOP - _TABLE_BOTTOM) / _ROW_H)

# (header, x in figure fraction, alignment): "left" columns start at x, "right" ones end at x.
_Column = tuple[str, float, Literal["left", "right"]]
_Line = tuple[str, Any]


def render_pdf(data: ReportData) -> bytes:
    """The report as a PDF: an overview page (key figures, equity against the benchmark,
    drawdown), an allocation and monthly-returns page, then the holdings and trades tables on as
    many pages as they need."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    table_pages = _paginate(_table_sections(data))
    total = 2 + len(table_pages)
    buf = io.BytesIO()
    metadata: dict[str, Any] = {
        "Title": _doc_title(data),
        "Author": "AlgoTrendy",
        "Subject": f"Performance report of {data.portfolio_name}",
        "Creator": "AlgoTrendy",
        "CreationDate": _utc(data.generated_at),
    }
    with PdfPages(buf, metadata=metadata) as pdf:
        fig = Figure(figsize=_A4)
        _page_overview(fig, data)
        _footer(fig, data, 1, total)
        pdf.savefig(fig)

        fig = Figure(figsize=_A4)
        _page_allocation(fig, data)
        _footer(fig, data, 2, total)
        pdf.savefig(fig)

        for i, lines in enumerate(table_pages, start=3):
            fig = Figure(figsize=_A4)
            _draw_table_page(fig, lines)
            _footer(fig, data, i, total)
            pdf.savefig(fig)
    return buf.getvalue()


def _header(fig: Figure, title: str, subtitle: str) -> None:
    fig.text(0.06, 0.962, title, fontsize=17, weight="bold", color=_INK, parse_math=False)
    fig.text(0.06, 0.94, subtitle, fontsize=9.5, color=_MUTED, parse_math=False)


def _footer(fig: Figure, data: ReportData, page: int, total: int) -> None:
    left = f"{data.portfolio_name} · {data.period_start} – {data.period_end} · AlgoTrendy"
    fig.text(0.06, 0.025, left, fontsize=7, color=_MUTED, parse_math=False)
    fig.text(0.94, 0.025, f"Page {page} of {total}", fontsize=7, color=_MUTED, ha="right")


def _page_overview(fig: Figure, data: ReportData) -> None:
    bench = f" · benchmark {data.benchmark_symbol}" if data.benchmark is not None else ""
    generated = _utc(data.generated_at).strftime("%Y-%m-%d %H:%M UTC")
    _header(
        fig,
        data.portfolio_name,
        f"Performance report {data.period_start} – {data.period_end} · {data.currency}{bench}"
        f" · generated {generated}",
    )
    _key_figures(fig, data, top=0.9, bottom=0.665)
    _equity_chart(fig.add_axes((0.13, 0.385, 0.82, 0.27)), data)
    _drawdown_chart(fig.add_axes((0.13, 0.075, 0.82, 0.23)), data)


def _key_figures(fig: Figure, data: ReportData, top: float, bottom: float) -> None:
    from matplotlib.patches import Rectangle

    first = data.equity[0] if data.equity else None
    last = data.equity[-1] if data.equity else None
    change = last - first if first is not None and last is not None else None
    items = [
        ("Start value", _money(first, data.currency)),
        ("End value", _money(last, data.currency)),
        ("Change in value", _money(change, data.currency)),
    ]
    items += [(_metric_label(k), _metric_text(k, v)) for k, v in data.metrics.items()]
    fig.text(0.06, top, "Key figures", fontsize=11, weight="bold", color=_INK)
    rows = math.ceil(len(items) / 2)
    h = min(0.022, (top - 0.02 - bottom) / max(rows, 1))
    size = min(9.0, max(6.0, h * 420))
    for i, (label, value) in enumerate(items):
        col, row = divmod(i, rows)
        x0 = 0.06 + col * 0.45
        y = top - 0.025 - row * h
        if row % 2 == 0:
            fig.add_artist(
                Rectangle(
                    (x0 - 0.005, y - h / 2), 0.43, h, transform=fig.transFigure, facecolor=_STRIPE, lw=0
                )
            )
        fig.text(x0, y, label, fontsize=size, va="center", color=_INK, parse_math=False)
        fig.text(x0 + 0.415, y, value, fontsize=size, va="center", ha="right", color=_INK, weight="bold")


def _no_data(ax: Axes, title: str, message: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=_INK)
    ax.text(0.5, 0.5, message, ha="center", va="center", color=_MUTED, transform=ax.transAxes)


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
    ax.tick_params(labelsize=8, colors=_INK)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _equity_chart(ax: Axes, data: ReportData) -> None:
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
        ax.plot(days, data.benchmark, color=_MUTED, lw=1.2, ls="--", marker=marker, label=_esc(label))
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=_INK)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _date_axis(ax)
    _single_day(ax, days)
    _style(ax)
    ax.legend(loc="upper left", frameon=False, fontsize=8)


def _drawdown_chart(ax: Axes, data: ReportData) -> None:
    from matplotlib.ticker import PercentFormatter

    title = "Drawdown (time-weighted, underwater)"
    if not data.dates:
        _no_data(ax, title, "No data for the period")
        return
    days = _days(data.dates)
    dd = _drawdowns(data.returns)
    ax.fill_between(days, dd, 0.0, color=_RED, alpha=0.3, lw=0)
    ax.plot(days, dd, color=_RED, lw=1.0, marker="o" if len(dd) == 1 else None)
    worst = min(dd)
    ax.set_ylim(min(worst * 1.15, -0.01), 0.002)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_title(f"{title} · max {_pct(worst)}", loc="left", fontsize=11, weight="bold", color=_INK)
    _date_axis(ax)
    _single_day(ax, days)
    _style(ax)


def _page_allocation(fig: Figure, data: ReportData) -> None:
    _header(fig, "Allocation and monthly returns", f"{data.portfolio_name} · at {data.period_end}")
    _allocation_chart(fig.add_axes((0.22, 0.5, 0.72, 0.39)), data)
    _monthly_heatmap(fig, data, top=0.41)


def _allocation_chart(ax: Axes, data: ReportData, max_bars: int = 25) -> None:
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
    colors = [_MUTED if s.upper() in cash else (_BLUE if w >= 0 else _RED) for s, w in rows]
    ys = list(range(len(rows)))
    weights = [w for _, w in rows]
    ax.barh(ys, weights, color=colors, height=0.7)
    size = max(5.0, min(9.0, 200 / len(rows)))
    ax.set_yticks(ys, labels=[_esc(_clip(s, 16)) for s, _ in rows], fontsize=size)
    lo, hi = min(0.0, *weights), max(0.0, *weights)
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - (0.2 * span if lo < 0 else 0), hi + 0.2 * span)
    for y, w in zip(ys, weights, strict=True):
        ax.text(w, y, f" {_pct(w, 1)} ", va="center", ha="left" if w >= 0 else "right", fontsize=size)
    ax.axvline(0, color=_INK, lw=0.8)
    n = len(rows)
    ax.set_ylim(n - 0.4 - max(n, 12), n - 0.4)  # few bars keep their thickness, at the top
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=_INK)
    _style(ax)
    ax.grid(False, axis="y")


def _monthly_heatmap(fig: Figure, data: ReportData, top: float) -> None:
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
                color = "white" if dark else _INK
                ax.text(j, i, _pct(v, 1), ha="center", va="center", fontsize=size, color=color, weight=weight)
    ax.set_xticks(range(13), labels=[*MONTHS, "Year"], fontsize=8)
    ax.set_yticks(range(len(years)), labels=[str(y) for y in years], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.axvline(11.5, color="white", lw=3)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, loc="left", fontsize=11, weight="bold", color=_INK, pad=18)


def _holding_columns(currency: str) -> list[_Column]:
    return [
        ("Symbol", 0.06, "left"),
        ("Quantity", 0.34, "right"),
        ("Price", 0.48, "right"),
        (f"Value ({currency})", 0.63, "right"),
        ("Weight", 0.73, "right"),
        (f"Unrealized P&L ({currency})", 0.94, "right"),
    ]


def _trade_columns(currency: str) -> list[_Column]:
    return [
        ("Time (UTC)", 0.06, "left"),
        ("Symbol", 0.23, "left"),
        ("Side", 0.36, "left"),
        ("Quantity", 0.53, "right"),
        ("Price", 0.65, "right"),
        (f"Fee ({currency})", 0.76, "right"),
        ("Order ID", 0.78, "left"),
    ]


_Section = tuple[str, list[_Column], list[tuple[list[str], bool]], str]


def _table_sections(data: ReportData) -> list[_Section]:
    ccy = data.currency
    holdings = [
        (
            [
                _clip(h.symbol, 16),
                _qty(h.quantity),
                _price(h.price),
                _amount(h.value),
                _pct(h.weight),
                _amount(h.unrealized_pnl),
            ],
            False,
        )
        for h in sorted(data.holdings, key=lambda h: -abs(h.value) if math.isfinite(h.value) else 0.0)
    ]
    if data.holdings:
        pnls = [h.unrealized_pnl for h in data.holdings if _finite(h.unrealized_pnl)]
        total = [
            "Total",
            "",
            "",
            _amount(math.fsum(h.value for h in data.holdings)),
            _pct(math.fsum(h.weight for h in data.holdings)),
            _amount(math.fsum(p for p in pnls if p is not None)) if pnls else DASH,
        ]
        holdings.append((total, True))
    trades = [
        (
            [
                _utc(t.at).strftime("%Y-%m-%d %H:%M"),
                _clip(t.symbol, 14),
                _clip(t.side, 10),
                _qty(t.quantity),
                _price(t.price),
                _amount(t.fee),
                _clip(t.order_id, 26),
            ],
            False,
        )
        for t in sorted(data.trades, key=lambda t: _utc(t.at))
    ]
    n_holdings, n_trades = len(data.holdings), len(data.trades)
    return [
        (f"Holdings at {data.period_end} ({n_holdings})", _holding_columns(ccy), holdings, "No holdings"),
        (f"Trades in the period ({n_trades})", _trade_columns(ccy), trades, "No trades in the period"),
    ]


def _paginate(sections: list[_Section], slots: int = _TABLE_SLOTS) -> list[list[_Line]]:
    """Lays the sections out in rows of fixed height: a section starts on a fresh page when its
    title, header and first row do not fit; a table that runs over repeats its title and header."""
    pages: list[list[_Line]] = [[]]
    for title, columns, rows, empty in sections:
        page = pages[-1]
        if page and slots - len(page) < 5:
            pages.append([])
        elif page:
            page.append(("gap", None))
        pages[-1].append(("title", title))
        if not rows:
            pages[-1].append(("note", empty))
            continue
        pages[-1].append(("header", columns))
        for i, (cells, bold) in enumerate(rows):
            if len(pages[-1]) >= slots:
                pages.append([("title", f"{title}, continued"), ("header", columns)])
            pages[-1].append(("row", (columns, cells, bold, i % 2 == 1)))
    return pages


def _draw_table_page(fig: Figure, lines: list[_Line]) -> None:
    from matplotlib.patches import Rectangle

    for i, (kind, payload) in enumerate(lines):
        y = _TABLE_TOP - i * _ROW_H
        if kind == "title":
            fig.text(0.06, y, payload, fontsize=12, weight="bold", va="center", color=_INK, parse_math=False)
        elif kind == "note":
            fig.text(0.06, y, payload, fontsize=9, va="center", color=_MUTED, parse_math=False)
        elif kind == "header":
            fig.add_artist(
                Rectangle(
                    (0.05, y - _ROW_H / 2), 0.9, _ROW_H, transform=fig.transFigure, facecolor="#d6eaf8", lw=0
                )
            )
            for header, x, align in payload:
                fig.text(x, y, header, fontsize=8, weight="bold", ha=align, va="center", color=_INK)
        elif kind == "row":
            columns, cells, bold, stripe = payload
            if stripe or bold:
                band = Rectangle((0.05, y - _ROW_H / 2), 0.9, _ROW_H, transform=fig.transFigure, lw=0)
                band.set_facecolor(_STRIPE)
                fig.add_artist(band)
            weight = "bold" if bold else "normal"
            for (_, x, align), text in zip(columns, cells, strict=True):
                fig.text(
                    x,
                    y,
                    text,
                    fontsize=7.5,
                    ha=align,
                    va="center",
                    color=_INK,
                    weight=weight,
                    parse_math=False,
                )


# --------------------------------------------------------------------------- Excel

_PCT = "0.00%"
_MONEY = "#,##0.00"
_QTY = "#,##0.00######"
_PRICE = "#,##0.00####"
_RATIO = "0.00"
_DATE = "yyyy-mm-dd"
_DATETIME = "yyyy-mm-dd hh:mm:ss"


class _StampedZip(zipfile.ZipFile):
    """A ZipFile whose entries all carry one fixed timestamp, for reproducible files (openpyxl
    stamps each entry with the current time, or a temporary file's)."""

    def __init__(self, file: io.BytesIO, stamp: datetime) -> None:
        super().__init__(file, "w", zipfile.ZIP_DEFLATED)
        s = max(stamp, datetime(1980, 1, 1))
        self._stamp = (s.year, s.month, s.day, s.hour, s.minute, s.second)

    def writestr(
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: Any,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if isinstance(zinfo_or_arcname, str):
            info = zipfile.ZipInfo(zinfo_or_arcname, date_time=self._stamp)
            info.compress_type = self.compression
            info.external_attr = 0o600 << 16
            zinfo_or_arcname = info
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(
        self,
        filename: str | os.PathLike[str],
        arcname: str | os.PathLike[str] | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        # openpyxl writes each worksheet to a temporary file, then adds it with write().
        with open(filename, "rb") as f:
            content = f.read()
        name = os.fspath(arcname if arcname is not None else filename)
        self.writestr(name, content, compress_type, compresslevel)


def render_xlsx(data: ReportData) -> bytes:
    """The report as an Excel workbook: sheets Summary, Holdings, Trades, Returns and Monthly.
    Numbers are stored as numbers and dates as dates, with number formats; headers are bold and
    frozen."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    stamp = _naive_utc(data.generated_at)
    wb = Workbook()
    props = wb.properties
    props.title = _doc_title(data)
    props.subject = f"Performance report of {data.portfolio_name}"
    props.creator = "AlgoTrendy"
    props.lastModifiedBy = "AlgoTrendy"
    props.created = stamp
    props.modified = stamp

    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    _summary_sheet(summary, data)
    _holdings_sheet(wb.create_sheet("Holdings"), data)
    _trades_sheet(wb.create_sheet("Trades"), data)
    _returns_sheet(wb.create_sheet("Returns"), data)
    _monthly_sheet(wb.create_sheet("Monthly"), data)

    buf = io.BytesIO()
    # ExcelWriter directly rather than Workbook.save: save_workbook sets `modified` to now.
    with _StampedZip(buf, stamp) as archive:
        ExcelWriter(wb, archive).save()
    return buf.getvalue()


def _put(ws: Worksheet, row: int, col: int, value: Any, fmt: str | None = None, bold: bool = False) -> None:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if cell.data_type == "f":  # text from users is never a formula
            cell.data_type = "s"
    elif isinstance(value, datetime):
        cell.value = _naive_utc(value)  # Excel has no time zones
    elif isinstance(value, float) and not math.isfinite(value):
        cell.value = None  # Excel has no NaN/inf
    else:
        cell.value = value
    if fmt is not None:
        cell.number_format = fmt
    if bold:
        cell.font = Font(bold=True)


def _table(
    ws: Worksheet,
    columns: list[tuple[str, str | None, float]],
    rows: Sequence[Sequence[Any]],
    start: int = 1,
) -> None:
    """A header row (bold, shaded, frozen, with a filter) and the rows; columns are
    (header, number format, width), a text column's width grows to its longest value (to 50)."""
    from openpyxl.styles import PatternFill
    from openpyxl.utils import get_column_letter

    fill = PatternFill("solid", fgColor="D6EAF8")
    for j, (header, _, _) in enumerate(columns, start=1):
        _put(ws, start, j, header, bold=True)
        ws.cell(row=start, column=j).fill = fill
    for i, values in enumerate(rows, start=start + 1):
        for j, ((_, fmt, _), v) in enumerate(zip(columns, values, strict=True), start=1):
            _put(ws, i, j, v, fmt)
    for j, (header, _, width) in enumerate(columns, start=1):
        texts = [len(r[j - 1]) for r in rows if isinstance(r[j - 1], str)]
        w = max(width, len(header) + 3, min(50, max(texts, default=0) + 2))
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.freeze_panes = ws.cell(row=start + 1, column=1).coordinate
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A{start}:{last}{start + max(len(rows), 1)}"


def _summary_sheet(ws: Worksheet, data: ReportData) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ccy = data.currency
    _put(ws, 1, 1, f"{data.portfolio_name} · performance report")
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    first = data.equity[0] if data.equity else None
    last = data.equity[-1] if data.equity else None
    change = last - first if first is not None and last is not None else None
    info: list[tuple[str, Any, str | None]] = [
        ("Portfolio", data.portfolio_name, None),
        ("Currency", ccy, None),
        ("Period start", data.period_start, _DATE),
        ("Period end", data.period_end, _DATE),
        ("Generated at (UTC)", data.generated_at, _DATETIME),
        ("Benchmark", data.benchmark_symbol if data.benchmark is not None else DASH, None),
        (f"Start value ({ccy})", first, _MONEY),
        (f"End value ({ccy})", last, _MONEY),
        (f"Change in value ({ccy})", change, _MONEY),
        ("Holdings", len(data.holdings), "0"),
        ("Trades", len(data.trades), "0"),
    ]
    row = 3
    for label, value, fmt in info:
        _put(ws, row, 1, label, bold=True)
        _put(ws, row, 2, value, fmt)
        row += 1
    row += 1
    _put(ws, row, 1, "Metric", bold=True)
    _put(ws, row, 2, "Value", bold=True)
    for name, value in data.metrics.items():
        row += 1
        _put(ws, row, 1, _metric_label(name))
        if _finite(value):
            _put(ws, row, 2, value, _PCT if _metric_is_percent(name) else _RATIO)
        else:
            _put(ws, row, 2, DASH)
    ws.column_dimensions[get_column_letter(1)].width = 28
    ws.column_dimensions[get_column_letter(2)].width = max(22, len(data.portfolio_name) + 2)


def _holdings_sheet(ws: Worksheet, data: ReportData) -> None:
    ccy = data.currency
    columns: list[tuple[str, str | None, float]] = [
        ("Symbol", None, 10),
        ("Quantity", _QTY, 14),
        ("Price", _PRICE, 13),
        (f"Value ({ccy})", _MONEY, 16),
        ("Weight", _PCT, 10),
        (f"Unrealized P&L ({ccy})", _MONEY, 16),
    ]
    rows = [(h.symbol, h.quantity, h.price, h.value, h.weight, h.unrealized_pnl) for h in data.holdings]
    _table(ws, columns, rows)


def _trades_sheet(ws: Worksheet, data: ReportData) -> None:
    ccy = data.currency
    columns: list[tuple[str, str | None, float]] = [
        ("Time (UTC)", _DATETIME, 20),
        ("Symbol", None, 10),
        ("Side", None, 6),
        ("Quantity", _QTY, 14),
        ("Price", _PRICE, 13),
        (f"Fee ({ccy})", _MONEY, 11),
        ("Order ID", None, 12),
    ]
    rows = [(t.at, t.symbol, t.side, t.quantity, t.price, t.fee, t.order_id) for t in data.trades]
    _table(ws, columns, rows)


def _returns_sheet(ws: Worksheet, data: ReportData) -> None:
    ccy = data.currency
    columns: list[tuple[str, str | None, float]] = [
        ("Date", _DATE, 12),
        (f"Equity ({ccy})", _MONEY, 16),
        ("Daily return", _PCT, 12),
        ("Cumulative return", _PCT, 12),
        ("Drawdown", _PCT, 11),
    ]
    cumulative = _cumulative(data.returns)
    drawdowns = _drawdowns(data.returns)
    rows: list[list[Any]] = [
        [d, e, r, c, dd]
        for d, e, r, c, dd in zip(data.dates, data.equity, data.returns, cumulative, drawdowns, strict=True)
    ]
    if data.benchmark is not None:
        symbol = data.benchmark_symbol or "Benchmark"
        columns += [(f"{symbol} rebased ({ccy})", _MONEY, 16), (f"{symbol} cumulative return", _PCT, 12)]
        base = next((b for b in data.benchmark if _finite(b) and b != 0), None)
        for row, b in zip(rows, data.benchmark, strict=True):
            row += [b, b / base - 1.0 if base is not None and _finite(b) else None]
    _table(ws, columns, rows)


def _monthly_sheet(ws: Worksheet, data: ReportData) -> None:
    from openpyxl.formatting.rule import ColorScaleRule
    from openpyxl.utils import get_column_letter

    by_month = monthly_returns(data.dates, data.returns)
    years = sorted({y for y, _ in by_month})
    columns: list[tuple[str, str | None, float]] = [("Year", "0", 7)]
    columns += [(m, _PCT, 8) for m in MONTHS]
    columns.append(("Year total", _PCT, 10))
    rows: list[list[Any]] = []
    for y in years:
        months = [by_month.get((y, m)) for m in range(1, 13)]
        total = math.prod(1.0 + r for r in months if r is not None) - 1.0
        rows.append([y, *months, total])
    _table(ws, columns, rows)
    scale = max((abs(v) for v in by_month.values() if math.isfinite(v)), default=0.0)
    if rows and scale > 0:
        area = f"B2:{get_column_letter(13)}{len(rows) + 1}"
        ws.conditional_formatting.add(
            area,
            ColorScaleRule(
                start_type="num",
                start_value=-scale,
                start_color="F8696B",
                mid_type="num",
                mid_value=0,
                mid_color="FFFFFF",
                end_type="num",
                end_value=scale,
                end_color="63BE7B",
            ),
        )
