"""Report pieces without the app: the period a request resolves to (and the 422s), the report data
as job params (JSON, NaN as null, round trip), and the ``portfolio.report`` job: files written,
a re-run overwriting them, a failing renderer or an unwritable directory recorded as the reason;
the console mailer recording attachments by name and size only."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from algotrendy.adapters.mail.console import ConsoleMailer, read_outbox
from algotrendy.core.errors import Invalid
from algotrendy.core.ports import Attachment, MailMessage
from algotrendy.services.jobs.registry import execute_job
from algotrendy.services.portfolio import jobs, render
from algotrendy.services.portfolio.interface import ReportCreate
from algotrendy.services.portfolio.render_common import HoldingRow, ReportData, TradeRow
from algotrendy.services.portfolio.report_data import resolve_period

TODAY = date(2026, 11, 21)
INCEPTION = date(2026, 3, 10)


class Channel:
    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None]] = []

    def report(self, fraction: float, message: str | None) -> None:
        self.reports.append((fraction, message))

    def cancel_requested(self) -> bool:
        return False


def _period(**body: Any) -> tuple[date, date, str]:
    return resolve_period(ReportCreate(**body), TODAY, INCEPTION)


def test_the_period_of_a_request() -> None:
    assert _period() == (date(2026, 10, 1), date(2026, 10, 31), "2026-10")  # the last complete month
    assert _period(month="2026-04") == (date(2026, 4, 1), date(2026, 4, 30), "2026-04")
    assert _period(month="2026-11") == (date(2026, 11, 1), TODAY, "2026-11")  # the month so far
    assert _period(month="2026-03") == (INCEPTION, date(2026, 3, 31), "2026-03")  # from inception
    assert _period(start="2026-05-02", end="2026-06-30") == (
        date(2026, 5, 2),
        date(2026, 6, 30),
        "2026-05-02_2026-06-30",
    )
    assert _period(start="2026-11-01")[1] == TODAY


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"month": "2026-12"}, "month"),
        ({"month": "2026-02"}, "month"),
        ({"start": "2026-11-22"}, "start"),
        ({"start": "2026-11-01", "end": "2026-11-22"}, "end"),
        ({"start": "2025-01-01", "end": "2026-03-09"}, "end"),
        ({"end": "2026-05-01"}, "start"),
    ],
)
def test_impossible_periods_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        _period(**body)
    assert caught.value.field == field


def test_a_new_portfolio_has_no_complete_month_yet() -> None:
    with pytest.raises(Invalid) as caught:
        resolve_period(ReportCreate(), TODAY, date(2026, 11, 2))
    assert caught.value.field == "month" and "before the portfolio was created" in caught.value.detail


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"month": "2026-13"}, "month"),
        ({"month": "2026-10", "end": "2026-10-31"}, "end"),
        ({"start": "2026-10-02", "end": "2026-10-01"}, "end"),
        ({"formats": ["csv"]}, "formats"),
        ({"recipients": ["nope"]}, "recipients"),
    ],
)
def test_bad_requests_are_refused_by_the_model(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReportCreate(**body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_formats_and_recipients_are_deduplicated() -> None:
    r = ReportCreate(formats=["xlsx", "xlsx"], recipients=["Ann@example.com", "ann@example.com"])
    assert r.formats == ["xlsx"] and [str(x) for x in r.recipients] == ["Ann@example.com"]


def _data() -> ReportData:
    days = [date(2026, 10, d) for d in (1, 2, 5, 6)]
    return ReportData(
        portfolio_name="Main $ book",
        currency="USD",
        period_start=days[0],
        period_end=date(2026, 10, 31),
        generated_at=datetime(2026, 11, 1, 8, tzinfo=UTC),
        dates=days,
        equity=[100_000.0, 101_000.0, 100_500.0, 102_000.0],
        returns=[0.0, 0.01, -0.00495, 0.014925],
        benchmark_symbol="SPY",
        benchmark=[math.nan, 100_000.0, 100_200.0, 100_900.0],
        holdings=[
            HoldingRow("AAPL", 100.0, 180.5, 18_050.0, 0.18, 250.0),
            HoldingRow("CASH", 83_950.0, 1.0, 83_950.0, 0.82, None),
        ],
        trades=[
            TradeRow(datetime(2026, 10, 2, 14, 30, tzinfo=UTC), "AAPL", "BUY", 100.0, 178.0, 1.78, "o-1")
        ],
        metrics={"twr": 0.02, "sharpe": math.nan, "beta": None},
    )


def test_report_data_travels_as_strict_json() -> None:
    data = _data()
    raw = jobs.data_to_json(data)
    text = json.dumps(raw, allow_nan=False)  # what the jobs service accepts as params
    back = jobs.data_from_json(json.loads(text))
    assert back.benchmark is not None and math.isnan(back.benchmark[0])
    assert back.metrics["sharpe"] is None and back.metrics["twr"] == 0.02
    assert back.holdings == data.holdings and back.trades == data.trades
    assert (back.dates, back.equity, back.generated_at) == (data.dates, data.equity, data.generated_at)


def _params(tmp_path: Path, formats: list[str]) -> dict[str, Any]:
    return {
        "report_id": "r1",
        "out_dir": str(tmp_path / "reports" / "r1"),
        "formats": formats,
        "names": {f: jobs.file_name("Main $ book", "2026-10", f) for f in formats},
        "data": jobs.data_to_json(_data()),
    }


def test_the_job_writes_the_files_and_a_rerun_overwrites_them(tmp_path: Path) -> None:
    params = _params(tmp_path, ["pdf", "xlsx"])
    first = execute_job(jobs.run_report, params, Channel())
    assert first["status"] == "succeeded", first
    files = first["result"]["files"]
    assert [(f["format"], f["name"]) for f in files] == [
        ("pdf", "main-book-2026-10.pdf"),
        ("xlsx", "main-book-2026-10.xlsx"),
    ]
    out = Path(params["out_dir"])
    assert (out / "main-book-2026-10.pdf").read_bytes().startswith(b"%PDF")
    assert [f["size"] for f in files] == [(out / f["name"]).stat().st_size for f in files]
    again = execute_job(jobs.run_report, params, Channel())
    assert again == first  # deterministic output, same files
    assert sorted(p.name for p in out.iterdir()) == ["main-book-2026-10.pdf", "main-book-2026-10.xlsx"]


def test_a_failing_renderer_is_the_jobs_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_data: ReportData) -> bytes:
        raise RuntimeError("font cache is corrupt")

    monkeypatch.setattr(render, "render_xlsx", broken)
    outcome = execute_job(jobs.run_report, _params(tmp_path, ["xlsx"]), Channel())
    assert outcome == {
        "status": "failed",
        "error": "rendering the XLSX failed: RuntimeError: font cache is corrupt",
    }


def test_an_unwritable_directory_is_the_reason_without_the_path(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("a file, not a directory")
    outcome = execute_job(jobs.run_report, _params(tmp_path, ["pdf"]), Channel())
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith("could not create the report's directory")
    assert str(tmp_path) not in outcome["error"]


def test_a_file_name_with_a_path_is_refused(tmp_path: Path) -> None:
    params = _params(tmp_path, ["pdf"])
    params["names"]["pdf"] = "../escape.pdf"
    outcome = execute_job(jobs.run_report, params, Channel())
    assert outcome["status"] == "failed" and "not allowed" in outcome["error"]
    assert not (tmp_path / "reports" / "escape.pdf").exists()


async def test_the_console_mailer_records_attachments_by_name_and_size(tmp_path: Path) -> None:
    path = tmp_path / "mail" / "outbox.jsonl"
    await ConsoleMailer(path).send(
        MailMessage(
            to="ann@example.com",
            subject="Report",
            text="Attached.",
            attachments=(Attachment("r.pdf", "application/pdf", b"%PDF-secret-bytes"),),
        )
    )
    [record] = read_outbox(path)
    assert record["attachments"] == [{"filename": "r.pdf", "content_type": "application/pdf", "size": 17}]
    assert "secret" not in path.read_text()
