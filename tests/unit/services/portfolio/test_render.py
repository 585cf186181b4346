"""The portfolio report renderers (PDF and Excel), on a portfolio built from real daily closes."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise

import pandas as pd
import pytest
from openpyxl import load_workbook

from algotrendy.services.portfolio.render import render_pdf, render_xlsx
from algotrendy.services.portfolio.render_common import HoldingRow, ReportData, TradeRow, monthly_returns
from tests.golden.indicator_samples import SAMPLES

GENERATED = datetime(2017, 12, 1, 9, 30, tzinfo=UTC)
SHARES = {"AAPL": 50.0, "MSFT": 100.0}
CASH = 5_000.0


@cache
def _closes(symbol: str) -> pd.Series:
    df = pd.read_csv(SAMPLES / f"{symbol}_1d.csv", parse_dates=["timestamp"])
    return df.set_index(df["timestamp"].dt.date)["close"]


def _data(start: date = date(2017, 10, 25), end: date = date(2017, 11, 30), trades: int = 6) -> ReportData:
    """50 AAPL + 100 MSFT + cash, valued at the real closes; SPY as the benchmark."""
    aapl, msft, spy = _closes("AAPL"), _closes("MSFT"), _closes("SPY")
    days = [d for d in aapl.index if start <= d <= end and d in msft.index and d in spy.index]
    equity = [SHARES["AAPL"] * aapl[d] + SHARES["MSFT"] * msft[d] + CASH for d in days]
    returns = [0.0] + [b / a - 1.0 for a, b in pairwise(equity)]
    benchmark = [spy[d] / spy[days[0]] * equity[0] for d in days]
    last = days[-1]
    total = equity[-1]
    holdings = [
        HoldingRow(s, q, float(c[last]), q * float(c[last]), q * float(c[last]) / total, q * 1.5)
        for (s, q), c in zip(SHARES.items(), (aapl, msft), strict=True)
    ]
    holdings.append(HoldingRow("CASH", CASH, None, CASH, CASH / total, None))
    trade_rows = [
        TradeRow(
            at=datetime(2017, 11, 1, 14, 30, tzinfo=UTC) + timedelta(hours=7 * i),
            symbol="AAPL" if i % 2 else "MSFT",
            side="buy" if i % 3 else "sell",
            quantity=float(1 + i % 7),
            price=100.0 + i * 0.25,
            fee=0.5 + i * 0.01,
            order_id=f"ord-{i:05d}",
        )
        for i in range(trades)
    ]
    metrics: dict[str, float | None] = {
        "total_return": equity[-1] / equity[0] - 1.0,
        "twr": 0.0312,
        "mwr": 0.0298,
        "volatility": 0.141,
        "sharpe": 1.87,
        "max_drawdown": -0.021,
        "alpha": None,
        "beta": 1.04,
        "tracking_error": float("nan"),
        "information_ratio": 0.4,
    }
    return ReportData(
        portfolio_name="Tech Core",
        currency="USD",
        period_start=days[0],
        period_end=last,
        generated_at=GENERATED,
        dates=days,
        equity=equity,
        returns=returns,
        benchmark_symbol="SPY",
        benchmark=benchmark,
        holdings=holdings,
        trades=trade_rows,
        metrics=metrics,
    )


def _same(got: object, want: object) -> bool:
    """Equal, floats to 15 significant digits (openpyxl writes numbers with "%.16g", and Excel
    keeps 15 digits)."""
    if isinstance(want, float) and isinstance(got, int | float):
        return got == pytest.approx(want, rel=1e-15, abs=0.0)
    return got == want


def _rows_equal(got: Sequence[tuple[object, ...]], want: Sequence[tuple[object, ...]]) -> bool:
    return len(got) == len(want) and all(
        len(g) == len(w) and all(_same(a, b) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf))


# --------------------------------------------------------------------------- monthly returns


def test_monthly_returns_compound_per_calendar_month() -> None:
    dates = [date(2023, 12, 29), date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 2)]
    returns = [0.05, 0.01, -0.02, 0.03, 0.02]
    got = monthly_returns(dates, returns)
    assert list(got) == [(2023, 12), (2024, 1), (2024, 2)]
    assert got[(2023, 12)] == pytest.approx(0.05)
    assert got[(2024, 1)] == pytest.approx(1.01 * 0.98 - 1)  # -0.0102, not the sum -0.01
    assert got[(2024, 2)] == pytest.approx(1.03 * 1.02 - 1)  # 0.0506


def test_monthly_returns_skip_missing_and_check_lengths() -> None:
    got = monthly_returns([date(2024, 3, 1), date(2024, 3, 4)], [float("nan"), 0.1])
    assert got == {(2024, 3): pytest.approx(0.1)}
    assert monthly_returns([], []) == {}
    with pytest.raises(ValueError):
        monthly_returns([date(2024, 3, 1)], [0.1, 0.2])


def test_monthly_returns_of_real_closes_match_the_month_end_values() -> None:
    data = _data()
    by_month = monthly_returns(data.dates, data.returns)
    assert list(by_month) == [(2017, 10), (2017, 11)]
    last_oct = max(i for i, d in enumerate(data.dates) if d.month == 10)
    assert by_month[(2017, 10)] == pytest.approx(data.equity[last_oct] / data.equity[0] - 1, rel=1e-12)
    assert by_month[(2017, 11)] == pytest.approx(data.equity[-1] / data.equity[last_oct] - 1, rel=1e-12)


def test_report_data_rejects_series_of_different_lengths() -> None:
    data = _data()
    with pytest.raises(ValueError):
        replace(data, equity=data.equity[:-1])
    with pytest.raises(ValueError):
        replace(data, benchmark=data.benchmark[:-1] if data.benchmark else None)


def test_importing_the_module_does_not_import_matplotlib_or_openpyxl() -> None:
    code = (
        "import sys, algotrendy.services.portfolio.render\n"
        "print(sorted(m for m in ('matplotlib', 'openpyxl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- PDF


def test_pdf_has_three_pages_and_the_metadata() -> None:
    pdf = render_pdf(_data())
    assert pdf.startswith(b"%PDF")
    assert _pages(pdf) == 3
    assert b"/Title (Tech Core report 2017-10-25..2017-11-30)" in pdf
    assert b"/Author (AlgoTrendy)" in pdf
    assert b"/CreationDate (D:20171201093000Z)" in pdf


def test_pdf_gains_pages_with_many_trades() -> None:
    few, many, more = (_pages(render_pdf(_data(trades=n))) for n in (6, 200, 500))
    assert few == 3
    assert 6 <= many <= 9  # about 40 rows a page
    assert more > many


def test_pdf_is_reproducible_and_renders_in_threads() -> None:
    data = _data()
    first = render_pdf(data)
    assert render_pdf(data) == first
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(render_pdf, [data] * 4))
    assert all(r == first for r in results)


# --------------------------------------------------------------------------- Excel


def _workbook(data: ReportData):  # type: ignore[no-untyped-def]
    return load_workbook(io.BytesIO(render_xlsx(data)))


def test_xlsx_sheets_holdings_and_trades_equal_the_input() -> None:
    data = _data()
    wb = _workbook(data)
    assert wb.sheetnames == ["Summary", "Holdings", "Trades", "Returns", "Monthly"]

    ws = wb["Holdings"]
    assert [c.value for c in ws[1]] == [
        "Symbol",
        "Quantity",
        "Price",
        "Value (USD)",
        "Weight",
        "Unrealized P&L (USD)",
    ]
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.b
    rows = [tuple(r) for r in ws.iter_rows(min_row=2, values_only=True)]
    want = [(h.symbol, h.quantity, h.price, h.value, h.weight, h.unrealized_pnl) for h in data.holdings]
    assert _rows_equal(rows, want), (rows, want)
    assert ws["E2"].number_format == "0.00%"
    assert ws["D2"].number_format == "#,##0.00"

    ws = wb["Trades"]
    rows = [tuple(r) for r in ws.iter_rows(min_row=2, values_only=True)]
    expected = [
        (t.at.replace(tzinfo=None), t.symbol, t.side, t.quantity, t.price, t.fee, t.order_id)
        for t in data.trades
    ]
    assert _rows_equal(rows, expected), (rows, expected)
    assert ws["A2"].is_date


def test_xlsx_returns_monthly_and_summary_are_numbers_with_formats() -> None:
    data = _data()
    wb = _workbook(data)

    ws = wb["Returns"]
    assert ws["A2"].is_date and ws["A2"].value.date() == data.dates[0]
    assert _same(ws["B3"].value, float(data.equity[1]))
    assert _same(ws["C3"].value, float(data.returns[1]))
    assert ws["C3"].number_format == "0.00%"
    assert ws.cell(row=len(data.dates) + 1, column=4).value == pytest.approx(
        data.equity[-1] / data.equity[0] - 1
    )
    assert ws["F2"].value == pytest.approx(data.equity[0])  # the benchmark, rebased

    ws = wb["Monthly"]
    by_month = monthly_returns(data.dates, data.returns)
    assert ws["A2"].value == 2017
    assert ws["K2"].value == pytest.approx(by_month[(2017, 10)])
    assert ws["L2"].value == pytest.approx(by_month[(2017, 11)])
    assert ws["B2"].value is None
    assert ws["L2"].number_format == "0.00%"

    ws = wb["Summary"]
    values = {ws.cell(row=r, column=1).value: ws.cell(row=r, column=2) for r in range(1, ws.max_row + 1)}
    assert values["Time-weighted return"].value == 0.0312
    assert values["Time-weighted return"].number_format == "0.00%"
    assert values["Sharpe ratio"].number_format == "0.00"
    assert values["Alpha (ann.)"].value == "–"
    assert values["Tracking error"].value == "–"
    assert values["Period start"].is_date
    assert wb.properties.created == GENERATED.replace(tzinfo=None)


def test_xlsx_is_reproducible() -> None:
    data = _data()
    assert render_xlsx(data) == render_xlsx(data)


def test_xlsx_text_is_never_a_formula() -> None:
    data = replace(_data(), holdings=[HoldingRow('=HYPERLINK("http://x","y")', 1.0, 1.0, 1.0, 1.0, None)])
    ws = _workbook(data)["Holdings"]
    assert ws["A2"].data_type == "s"
    assert ws["A2"].value == '=HYPERLINK("http://x","y")'


# --------------------------------------------------------------------------- edge cases


def _edge_cases() -> dict[str, ReportData]:
    full = _data()
    one = date(2017, 11, 30)
    return {
        "no benchmark": replace(full, benchmark_symbol=None, benchmark=None),
        "no trades": replace(full, trades=[]),
        "no holdings": replace(full, holdings=[]),
        "nothing but the curve": replace(full, holdings=[], trades=[], metrics={}),
        "single day": replace(
            full, period_start=one, dates=[one], equity=[full.equity[-1]], returns=[0.0], benchmark=None
        ),
        "no days": replace(full, dates=[], equity=[], returns=[], benchmark=None),
        "all metrics missing": replace(full, metrics=dict.fromkeys(full.metrics, None)),
        "nan everywhere": replace(
            full,
            holdings=[HoldingRow("X$Y", math.nan, None, math.nan, math.nan, math.nan)],
            metrics={"sharpe": math.nan},
        ),
        "short position and naive time": replace(
            full,
            generated_at=datetime(2017, 12, 1, 9, 30),
            holdings=[*full.holdings, HoldingRow("TSLA", -10.0, 300.0, -3000.0, -0.1, 12.0)],
        ),
        "many holdings": replace(
            full, holdings=[HoldingRow(f"S{i:02d}", 1.0, 10.0, 10.0, 0.02, 0.0) for i in range(50)]
        ),
    }


@pytest.mark.parametrize("case", list(_edge_cases()))
def test_edge_cases_render(case: str) -> None:
    data = _edge_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdf = render_pdf(data)
        xlsx = render_xlsx(data)
    assert pdf.startswith(b"%PDF")
    assert _pages(pdf) >= 3
    wb = load_workbook(io.BytesIO(xlsx))
    assert wb["Holdings"].max_row == len(data.holdings) + 1 or not data.holdings
    assert wb["Trades"].max_row == len(data.trades) + 1 or not data.trades
