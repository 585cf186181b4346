"""The PDF report's pages on A4 matplotlib ``Figure`` objects: the overview (key figures and
the equity and drawdown charts), allocation and monthly returns, and the holdings and trades
tables laid out in rows over as many pages as they need.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from algotrendy.services.portfolio.render_charts import (
    INK,
    MUTED,
    STRIPE,
    allocation_chart,
    drawdown_chart,
    equity_chart,
    monthly_heatmap,
)
from algotrendy.services.portfolio.render_common import (
    DASH,
    ReportData,
    as_utc,
    clip,
    fmt_amount,
    fmt_metric,
    fmt_money,
    fmt_pct,
    fmt_price,
    fmt_qty,
    is_finite,
    metric_label,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

A4 = (8.27, 11.69)
_ROW_H = 0.0195
_TABLE_TOP = 0.915
_TABLE_BOTTOM = 0.06
_TABLE_SLOTS = int((_TABLE_TOP - _TABLE_BOTTOM) / _ROW_H)

# (header, x in figure fraction, alignment): "left" columns start at x, "right" ones end at x.
_Column = tuple[str, float, Literal["left", "right"]]
_Line = tuple[str, Any]


def _header(fig: Figure, title: str, subtitle: str) -> None:
    fig.text(0.06, 0.962, title, fontsize=17, weight="bold", color=INK, parse_math=False)
    fig.text(0.06, 0.94, subtitle, fontsize=9.5, color=MUTED, parse_math=False)


def footer(fig: Figure, data: ReportData, page: int, total: int) -> None:
    left = f"{data.portfolio_name} · {data.period_start} – {data.period_end} · AlgoTrendy"
    fig.text(0.06, 0.025, left, fontsize=7, color=MUTED, parse_math=False)
    fig.text(0.94, 0.025, f"Page {page} of {total}", fontsize=7, color=MUTED, ha="right")


def page_overview(fig: Figure, data: ReportData) -> None:
    bench = f" · benchmark {data.benchmark_symbol}" if data.benchmark is not None else ""
    generated = as_utc(data.generated_at).strftime("%Y-%m-%d %H:%M UTC")
    _header(
        fig,
        data.portfolio_name,
        f"Performance report {data.period_start} – {data.period_end} · {data.currency}{bench}"
        f" · generated {generated}",
    )
    _key_figures(fig, data, top=0.9, bottom=0.665)
    equity_chart(fig.add_axes((0.13, 0.385, 0.82, 0.27)), data)
    drawdown_chart(fig.add_axes((0.13, 0.075, 0.82, 0.23)), data)


def _key_figures(fig: Figure, data: ReportData, top: float, bottom: float) -> None:
    from matplotlib.patches import Rectangle

    first = data.equity[0] if data.equity else None
    last = data.equity[-1] if data.equity else None
    change = last - first if first is not None and last is not None else None
    items = [
        ("Start value", fmt_money(first, data.currency)),
        ("End value", fmt_money(last, data.currency)),
        ("Change in value", fmt_money(change, data.currency)),
    ]
    items += [(metric_label(k), fmt_metric(k, v)) for k, v in data.metrics.items()]
    fig.text(0.06, top, "Key figures", fontsize=11, weight="bold", color=INK)
    rows = math.ceil(len(items) / 2)
    h = min(0.022, (top - 0.02 - bottom) / max(rows, 1))
    size = min(9.0, max(6.0, h * 420))
    for i, (label, value) in enumerate(items):
        col, row = divmod(i, rows)
        x0 = 0.06 + col * 0.45
        y = top - 0.025 - row * h
        if row % 2 == 0:
            fig.add_artist(
                Rectangle((x0 - 0.005, y - h / 2), 0.43, h, transform=fig.transFigure, facecolor=STRIPE, lw=0)
            )
        fig.text(x0, y, label, fontsize=size, va="center", color=INK, parse_math=False)
        fig.text(x0 + 0.415, y, value, fontsize=size, va="center", ha="right", color=INK, weight="bold")


def page_allocation(fig: Figure, data: ReportData) -> None:
    _header(fig, "Allocation and monthly returns", f"{data.portfolio_name} · at {data.period_end}")
    allocation_chart(fig.add_axes((0.22, 0.5, 0.72, 0.39)), data)
    monthly_heatmap(fig, data, top=0.41)


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


def table_sections(data: ReportData) -> list[_Section]:
    ccy = data.currency
    holdings = [
        (
            [
                clip(h.symbol, 16),
                fmt_qty(h.quantity),
                fmt_price(h.price),
                fmt_amount(h.value),
                fmt_pct(h.weight),
                fmt_amount(h.unrealized_pnl),
            ],
            False,
        )
        for h in sorted(data.holdings, key=lambda h: -abs(h.value) if math.isfinite(h.value) else 0.0)
    ]
    if data.holdings:
        pnls = [h.unrealized_pnl for h in data.holdings if is_finite(h.unrealized_pnl)]
        total = [
            "Total",
            "",
            "",
            fmt_amount(math.fsum(h.value for h in data.holdings)),
            fmt_pct(math.fsum(h.weight for h in data.holdings)),
            fmt_amount(math.fsum(p for p in pnls if p is not None)) if pnls else DASH,
        ]
        holdings.append((total, True))
    trades = [
        (
            [
                as_utc(t.at).strftime("%Y-%m-%d %H:%M"),
                clip(t.symbol, 14),
                clip(t.side, 10),
                fmt_qty(t.quantity),
                fmt_price(t.price),
                fmt_amount(t.fee),
                clip(t.order_id, 26),
            ],
            False,
        )
        for t in sorted(data.trades, key=lambda t: as_utc(t.at))
    ]
    n_holdings, n_trades = len(data.holdings), len(data.trades)
    return [
        (f"Holdings at {data.period_end} ({n_holdings})", _holding_columns(ccy), holdings, "No holdings"),
        (f"Trades in the period ({n_trades})", _trade_columns(ccy), trades, "No trades in the period"),
    ]


def paginate(sections: list[_Section], slots: int = _TABLE_SLOTS) -> list[list[_Line]]:
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


def draw_table_page(fig: Figure, lines: list[_Line]) -> None:
    from matplotlib.patches import Rectangle

    for i, (kind, payload) in enumerate(lines):
        y = _TABLE_TOP - i * _ROW_H
        if kind == "title":
            fig.text(0.06, y, payload, fontsize=12, weight="bold", va="center", color=INK, parse_math=False)
        elif kind == "note":
            fig.text(0.06, y, payload, fontsize=9, va="center", color=MUTED, parse_math=False)
        elif kind == "header":
            fig.add_artist(
                Rectangle(
                    (0.05, y - _ROW_H / 2), 0.9, _ROW_H, transform=fig.transFigure, facecolor="#d6eaf8", lw=0
                )
            )
            for header, x, align in payload:
                fig.text(x, y, header, fontsize=8, weight="bold", ha=align, va="center", color=INK)
        elif kind == "row":
            columns, cells, bold, stripe = payload
            if stripe or bold:
                band = Rectangle((0.05, y - _ROW_H / 2), 0.9, _ROW_H, transform=fig.transFigure, lw=0)
                band.set_facecolor(STRIPE)
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
                    color=INK,
                    weight=weight,
                    parse_math=False,
                )
