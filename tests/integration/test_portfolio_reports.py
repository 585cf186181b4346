"""Portfolio reports over HTTP: a month-to-date report of paper trades rendered as a job, downloaded
(a PDF, a workbook showing the trades and holdings) and mailed with both files through a real
SMTP server (aiosmtpd on 127.0.0.1); a past month from recorded days against SPY; a report whose
job fails records why; a refused recipient fails only the email; owner isolation (404); bad
requests are 422 naming the field; and the CLI saving a report's files."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from typer.testing import CliRunner

from tests.apphelp import Api, make_settings, record_history, remember, running
from tests.procs import free_port

ASYNC = pytest.mark.asyncio(loop_scope="module")
P = "/api/v1/portfolio"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOUNCE = "bounce@example.com"


class Sink:
    """Keeps every message; refuses mail to ``BOUNCE``."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, _server, _session, envelope, address, _options):  # type: ignore[no-untyped-def]
        if address == BOUNCE:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server, _session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [
            message_from_bytes(content, policy=policy.default)  # type: ignore[misc]
            for rcpts, content in self.messages
            if address in rcpts
        ]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[Sink, int]) -> AsyncIterator[Api]:
    settings = make_settings(
        tmp_path_factory.mktemp("reports"),
        marketdata={"load_samples": True},
        jobs={"workers": 2},
        mail={"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp[1], "smtp_starttls": False},
        notifications={"welcome_email": False},
    )
    async with running(settings) as a:
        yield a


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def _portfolio(api: Api, h: dict[str, str]) -> str:
    body = {"name": f"Report Book {uuid.uuid4().hex[:6]}", "initial_capital": "100000"}
    r = await api.client.post(P, json=body, headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["portfolio_id"])


async def _buy(api: Api, h: dict[str, str], pid: str, symbol: str, quantity: str) -> None:
    order = {"portfolio_id": pid, "symbol": symbol, "side": "BUY", "quantity": quantity}
    r = await api.client.post("/api/v1/trading/orders", json=order, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "filled", r.text


async def _finished(api: Api, h: dict[str, str], rid: str, *, mailed: bool = False) -> dict[str, Any]:
    for _ in range(1200):
        r = await api.client.get(f"{P}/reports/{rid}", headers=h)
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        done = report["status"] in ("succeeded", "failed")
        if done and (not mailed or report["email_status"] != "pending"):
            return report
        await asyncio.sleep(0.1)
    raise AssertionError(f"report {rid} did not finish: {report}")


def _problem(r: Any, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"].split(".")[-1] for e in r.json().get("errors", [])] or field in r.text, r.text


@ASYNC
async def test_a_month_to_date_report_is_rendered_downloaded_and_emailed(
    api: Api, smtp: tuple[Sink, int]
) -> None:
    sink, _ = smtp
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    await _buy(api, h, pid, "AAPL", "10")
    await _buy(api, h, pid, "MSFT", "5")
    to = [f"ann-{uuid.uuid4().hex[:6]}@example.com", f"bob-{uuid.uuid4().hex[:6]}@example.com"]
    r = await api.client.post(f"{P}/{pid}/report", json={"month": _this_month(), "recipients": to}, headers=h)
    assert r.status_code == 202, r.text
    created = r.json()
    rid = created["report_id"]
    today = datetime.now(UTC).date().isoformat()
    assert created["status"] in ("queued", "running") and created["job_id"]
    assert created["period_start"] == created["period_end"] == today  # created today: from inception
    assert created["formats"] == ["pdf", "xlsx"] and created["email_status"] == "pending"
    r = await api.client.get(f"{P}/reports/{rid}/pdf", headers=h)
    if r.status_code != 200:  # still rendering
        _problem(r, 409, "")
        assert r.json()["code"] == "report_not_ready"

    report = await _finished(api, h, rid, mailed=True)
    assert report["status"] == "succeeded" and report["error"] is None, report
    assert [f["format"] for f in report["files"]] == ["pdf", "xlsx"]
    assert report["email_status"] == "sent" and report["email_error"] is None and report["emailed_at"]

    r = await api.client.get(report["files"][0]["url"], headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and len(r.content) == report["files"][0]["size"]
    assert re.fullmatch(
        r'attachment; filename="report-book-[0-9a-f]{6}-\d{4}-\d\d\.pdf"', r.headers["content-disposition"]
    )
    pdf = r.content
    r = await api.client.get(f"{P}/reports/{rid}/xlsx", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    xlsx = r.content
    wb = load_workbook(io.BytesIO(xlsx))
    assert wb.sheetnames == ["Summary", "Holdings", "Trades", "Returns", "Monthly"]
    trades = list(wb["Trades"].iter_rows(min_row=2, values_only=True))
    assert sorted((t[1], t[2], t[3]) for t in trades) == [("AAPL", "BUY", 10), ("MSFT", "BUY", 5)]
    holdings = {row[0]: row for row in wb["Holdings"].iter_rows(min_row=2, values_only=True)}
    assert set(holdings) == {"AAPL", "MSFT", "CASH"}
    assert holdings["AAPL"][1] == 10 and holdings["MSFT"][1] == 5
    assert sum(row[4] for row in holdings.values()) == pytest.approx(1.0, abs=1e-6)  # weights
    returns = list(wb["Returns"].iter_rows(min_row=2, values_only=True))
    assert len(returns) == 1 and returns[0][0].date() == date.fromisoformat(today)

    for address in to:
        [mail] = sink.to(address)
        assert "performance report" in mail["Subject"]
        files = {a.get_filename(): a.get_content() for a in mail.iter_attachments()}
        assert sorted(files) == sorted(f["filename"] for f in report["files"])
        by_format = {n.rsplit(".", 1)[1]: c for n, c in files.items()}
        assert by_format == {"pdf": pdf, "xlsx": xlsx}  # intact

    r = await api.client.get(f"{P}/{pid}/reports", headers=h)
    assert r.status_code == 200 and [x["report_id"] for x in r.json()] == [rid]

    _v, other, _ = await api.user()
    for url in (f"{P}/reports/{rid}", f"{P}/reports/{rid}/pdf", f"{P}/{pid}/reports"):
        assert (await api.client.get(url, headers=other)).status_code == 404, url
    r = await api.client.post(f"{P}/{pid}/report", json={"month": _this_month()}, headers=other)
    assert r.status_code == 404


@ASYNC
async def test_a_past_month_from_recorded_days_against_spy(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = uuid.UUID(await _portfolio(api, h))
    # January 2017: the value grows 0.1% a trading day; AAPL held at the month's end.
    days = [
        date(2017, 1, d) for d in (3, 4, 5, 6, 9, 10, 11, 12, 13, 17, 18, 19, 20, 23, 24, 25, 26, 27, 30, 31)
    ]
    value = 100000.0
    rows = []
    for day in [date(2016, 12, 30), *days, date(2017, 2, 1)]:
        value *= 1.001
        aapl = {"AAPL": {"quantity": "500", "price": "121.35", "value": "60675"}}
        rows.append((day, Decimal(repr(round(value, 6))), Decimal("40000"), aapl))
    await record_history(api, pid, datetime(2016, 12, 29, 15, tzinfo=UTC), rows)

    body = {"month": "2017-01", "benchmark": "SPY", "formats": ["xlsx", "xlsx"]}
    r = await api.client.post(f"{P}/{pid}/report", json=body, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["formats"] == ["xlsx"] and r.json()["email_status"] == "not_requested"
    report = await _finished(api, h, r.json()["report_id"])
    assert report["status"] == "succeeded", report
    assert (report["period_start"], report["period_end"]) == ("2017-01-01", "2017-01-31")
    assert report["files"][0]["filename"].endswith("-2017-01.xlsx")
    r = await api.client.get(f"{P}/reports/{report['report_id']}/pdf", headers=h)
    assert r.status_code == 404  # not asked for
    wb = load_workbook(io.BytesIO((await api.client.get(report["files"][0]["url"], headers=h)).content))
    returns = list(wb["Returns"].iter_rows(min_row=1, values_only=True))
    assert [d[0].date() for d in returns[1:]] == days
    assert returns[0][5] == "SPY rebased (USD)" and returns[1][5] == pytest.approx(returns[1][1])
    assert all(r[2] == pytest.approx(0.001) for r in returns[1:])  # the first from Dec 30
    summary = {row[0]: row[1] for row in wb["Summary"].iter_rows(values_only=True) if row[0]}
    assert summary["Time-weighted return"] == pytest.approx(1.001**20 - 1, rel=1e-9)
    assert summary["Benchmark"] == "SPY" and summary["Trades"] == 0
    holdings = {row[0]: row for row in wb["Holdings"].iter_rows(min_row=2, values_only=True)}
    assert holdings["AAPL"][1] == 500 and holdings["CASH"][3] == 40000  # as recorded on Jan 31


@ASYNC
async def test_a_failing_report_records_why_and_a_refused_recipient_fails_only_the_email(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    await _buy(api, h, pid, "AAPL", "1")
    reports_dir = api.container.settings.data_dir / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    aside = reports_dir.with_name("reports.aside")
    reports_dir.rename(aside)
    reports_dir.write_text("not a directory")  # the job cannot write its files
    try:
        r = await api.client.post(
            f"{P}/{pid}/report", json={"month": _this_month(), "recipients": ["cy@example.com"]}, headers=h
        )
        assert r.status_code == 202, r.text
        report = await _finished(api, h, r.json()["report_id"])
    finally:
        reports_dir.unlink()
        aside.rename(reports_dir)
    assert report["status"] == "failed" and report["files"] == []
    assert "could not create the report's directory" in report["error"], report
    assert str(api.container.settings.data_dir) not in report["error"]  # no server paths
    assert report["email_status"] == "skipped"
    r = await api.client.get(f"{P}/reports/{report['report_id']}/pdf", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "report_failed"

    body = {"month": _this_month(), "formats": ["pdf"], "recipients": [BOUNCE]}
    r = await api.client.post(f"{P}/{pid}/report", json=body, headers=h)
    report = await _finished(api, h, r.json()["report_id"], mailed=True)
    assert report["status"] == "succeeded" and report["email_status"] == "failed"
    assert "1 of 1 not sent" in report["email_error"] and report["emailed_at"] is None


@ASYNC
async def test_bad_requests_are_422_naming_the_field(api: Api) -> None:
    _u, h, _ = await api.user()
    pid = await _portfolio(api, h)
    url = f"{P}/{pid}/report"
    next_year = datetime.now(UTC).year + 1
    cases: list[tuple[dict[str, Any], str]] = [
        ({"month": "2017-13"}, "month"),
        ({"month": "17-01"}, "month"),
        ({"start": "2017-02-01", "end": "2017-01-01"}, "end"),
        ({"month": "2017-01", "start": "2017-01-01"}, "start"),
        ({"end": "2017-01-01"}, "start"),
        ({"formats": ["doc"]}, "formats"),
        ({"formats": []}, "formats"),
        ({"recipients": ["not-an-email"]}, "recipients"),
        ({"recipients": [f"u{i}@example.com" for i in range(11)]}, "recipients"),
        ({"month": f"{next_year}-01"}, "month"),  # the future
        ({"start": datetime.now(UTC).date().isoformat(), "end": f"{next_year}-01-01"}, "end"),
        ({"month": "2000-01"}, "month"),  # before the portfolio existed
        ({}, "month"),  # the last complete month: before it too
        ({"month": _this_month(), "benchmark": "NOPE"}, "benchmark"),
        ({"month": _this_month(), "surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        _problem(await api.client.post(url, json=body, headers=h), 422, field)
    r = await api.client.get(f"{P}/reports/{uuid.uuid4()}/doc", headers=h)
    _problem(r, 422, "format")
    assert (await api.client.get(f"{P}/reports/{uuid.uuid4()}", headers=h)).status_code == 404
    assert (await api.client.get(f"{P}/{pid}/reports", headers=h)).json() == []


def test_the_cli_saves_a_reports_files(tmp_path: Path) -> None:
    from algotrendy.app import cli as cli_module

    env = {"ALGO_DATA_DIR": str(tmp_path / "data"), "ALGO_SERVICES": "all", "ALGO_LOG__LEVEL": "WARNING"}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli_module.app, list(args), env=env)

    password = "pw-clireport-123456"
    remember(password)
    result = run("users", "create", "--email", "r@example.com", "--username", "clir", "--password", password)
    assert result.exit_code == 0, result.stderr
    result = run("portfolio", "create", "-u", "clir", "--name", "Main", "--capital", "100000")
    assert result.exit_code == 0, result.stderr
    pid = re.search(r"\(([0-9a-f-]{36})\)", result.stdout).group(1)  # type: ignore[union-attr]
    result = run(
        "trading", "order", "-u", "clir", "-P", pid, "--symbol", "AAPL", "--side", "buy", "--quantity", "2"
    )
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "out"
    result = run(
        "portfolio",
        "report",
        "-u",
        "clir",
        "-P",
        pid,
        "--month",
        _this_month(),
        "--format",
        "pdf",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    [saved] = list(out.iterdir())
    assert saved.name == f"main-{_this_month()}.pdf" and saved.read_bytes().startswith(b"%PDF")
    assert f"wrote {saved}" in result.stdout
    result = run("portfolio", "report", "-u", "clir", "-P", pid, "--month", "2017-13")
    assert result.exit_code == 2 and "month" in result.stderr
    result = run("portfolio", "report", "-u", "clir", "-P", pid, "--month", "2000-01")
    assert result.exit_code == 1 and "before the portfolio was created" in result.stderr
    shutil.rmtree(out)
