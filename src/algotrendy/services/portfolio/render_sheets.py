"""The Excel report's sheets (Summary, Holdings, Trades, Returns, Monthly), written with
openpyxl: numbers stored as numbers and dates as dates, with number formats; headers bold and
frozen. openpyxl is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from algotrendy.services.portfolio.render_common import (
    DASH,
    MONTHS,
    ReportData,
    cumulative_returns,
    drawdown_curve,
    is_finite,
    metric_is_percent,
    metric_label,
    monthly_returns,
    naive_utc,
)

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

_PCT = "0.00%"
_MONEY = "#,##0.00"
_QTY = "#,##0.00######"
_PRICE = "#,##0.00####"
_RATIO = "0.00"
_DATE = "yyyy-mm-dd"
_DATETIME = "yyyy-mm-dd hh:mm:ss"


def _put(ws: Worksheet, row: int, col: int, value: Any, fmt: str | None = None, bold: bool = False) -> None:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if cell.data_type == "f":  # text from users is never a formula
            cell.data_type = "s"
    elif isinstance(value, datetime):
        cell.value = naive_utc(value)  # Excel has no time zones
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


def summary_sheet(ws: Worksheet, data: ReportData) -> None:
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
        _put(ws, row, 1, metric_label(name))
        if is_finite(value):
            _put(ws, row, 2, value, _PCT if metric_is_percent(name) else _RATIO)
        else:
            _put(ws, row, 2, DASH)
    ws.column_dimensions[get_column_letter(1)].width = 28
    ws.column_dimensions[get_column_letter(2)].width = max(22, len(data.portfolio_name) + 2)


def holdings_sheet(ws: Worksheet, data: ReportData) -> None:
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


def trades_sheet(ws: Worksheet, data: ReportData) -> None:
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


def returns_sheet(ws: Worksheet, data: ReportData) -> None:
    ccy = data.currency
    columns: list[tuple[str, str | None, float]] = [
        ("Date", _DATE, 12),
        (f"Equity ({ccy})", _MONEY, 16),
        ("Daily return", _PCT, 12),
        ("Cumulative return", _PCT, 12),
        ("Drawdown", _PCT, 11),
    ]
    cumulative = cumulative_returns(data.returns)
    drawdowns = drawdown_curve(data.returns)
    rows: list[list[Any]] = [
        [d, e, r, c, dd]
        for d, e, r, c, dd in zip(data.dates, data.equity, data.returns, cumulative, drawdowns, strict=True)
    ]
    if data.benchmark is not None:
        symbol = data.benchmark_symbol or "Benchmark"
        columns += [(f"{symbol} rebased ({ccy})", _MONEY, 16), (f"{symbol} cumulative return", _PCT, 12)]
        base = next((b for b in data.benchmark if is_finite(b) and b != 0), None)
        for row, b in zip(rows, data.benchmark, strict=True):
            row += [b, b / base - 1.0 if base is not None and is_finite(b) else None]
    _table(ws, columns, rows)


def monthly_sheet(ws: Worksheet, data: ReportData) -> None:
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
