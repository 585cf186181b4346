"""A portfolio's performance report rendered as PDF (matplotlib) and as Excel (openpyxl).

The parts live next to it: ``render_common`` (the data, its series and number formatting),
``render_pages`` and ``render_charts`` (the PDF's pages and charts) and ``render_sheets`` (the
workbook's sheets).

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
import os
import zipfile
from datetime import datetime
from typing import Any

from algotrendy.services.portfolio.render_common import ReportData, as_utc, doc_title, naive_utc
from algotrendy.services.portfolio.render_pages import (
    A4,
    draw_table_page,
    footer,
    page_allocation,
    page_overview,
    paginate,
    table_sections,
)
from algotrendy.services.portfolio.render_sheets import (
    holdings_sheet,
    monthly_sheet,
    returns_sheet,
    summary_sheet,
    trades_sheet,
)

__all__ = ["render_pdf", "render_xlsx"]


def render_pdf(data: ReportData) -> bytes:
    """The report as a PDF: an overview page (key figures, equity against the benchmark,
    drawdown), an allocation and monthly-returns page, then the holdings and trades tables on as
    many pages as they need."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    table_pages = paginate(table_sections(data))
    total = 2 + len(table_pages)
    buf = io.BytesIO()
    metadata: dict[str, Any] = {
        "Title": doc_title(data),
        "Author": "AlgoTrendy",
        "Subject": f"Performance report of {data.portfolio_name}",
        "Creator": "AlgoTrendy",
        "CreationDate": as_utc(data.generated_at),
    }
    with PdfPages(buf, metadata=metadata) as pdf:
        fig = Figure(figsize=A4)
        page_overview(fig, data)
        footer(fig, data, 1, total)
        pdf.savefig(fig)

        fig = Figure(figsize=A4)
        page_allocation(fig, data)
        footer(fig, data, 2, total)
        pdf.savefig(fig)

        for i, lines in enumerate(table_pages, start=3):
            fig = Figure(figsize=A4)
            draw_table_page(fig, lines)
            footer(fig, data, i, total)
            pdf.savefig(fig)
    return buf.getvalue()


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

    stamp = naive_utc(data.generated_at)
    wb = Workbook()
    props = wb.properties
    props.title = doc_title(data)
    props.subject = f"Performance report of {data.portfolio_name}"
    props.creator = "AlgoTrendy"
    props.lastModifiedBy = "AlgoTrendy"
    props.created = stamp
    props.modified = stamp

    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    summary_sheet(summary, data)
    holdings_sheet(wb.create_sheet("Holdings"), data)
    trades_sheet(wb.create_sheet("Trades"), data)
    returns_sheet(wb.create_sheet("Returns"), data)
    monthly_sheet(wb.create_sheet("Monthly"), data)

    buf = io.BytesIO()
    # ExcelWriter directly rather than Workbook.save: save_workbook sets `modified` to now.
    with _StampedZip(buf, stamp) as archive:
        ExcelWriter(wb, archive).save()
    return buf.getvalue()
