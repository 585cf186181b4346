"""Portfolio reports: a monthly (or any period's) performance report as PDF and Excel.

Creating one resolves the period (a calendar month, ``start``..``end``, or by default the last
complete month; never in the future, never wholly before the portfolio existed) and gathers
everything the report shows here, in the service (``report_data.py``). It then submits a
``portfolio.report`` job with that data as its params; the job renders the files into
``<reports dir>/<report id>/`` (``jobs.py``).

The job's outcome is copied onto the report row once (on ``jobs.job.finished``, or on the first
read after it): ``succeeded`` with the files, or ``failed`` with the reason. Whoever finalizes
the row also mails the files to the recipients through the ``Mailer``; how that went is kept in
``emailed_at``/``email_error`` and never fails the report.
"""

from __future__ import annotations

import asyncio
import builtins
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import Conflict, Invalid, NotFound, TemporaryError
from algotrendy.core.events import Bus, Envelope, Subscription
from algotrendy.core.ports import Attachment, Mailer, MailMessage
from algotrendy.services.jobs.interface import JobFinished, JobRead, JobsApi, JobStatus
from algotrendy.services.portfolio import performance
from algotrendy.services.portfolio.interface import (
    PortfolioApi,
    ReportCreate,
    ReportFile,
    ReportFileRead,
    ReportRead,
    ReportStatus,
)
from algotrendy.services.portfolio.jobs import CONTENT_TYPES, KIND, data_to_json, file_name
from algotrendy.services.portfolio.report_data import gather, resolve_period
from algotrendy.services.portfolio.store import portfolios, reports
from algotrendy.services.risk.interface import PriceHistory
from algotrendy.services.trading.interface import TradingApi

log = structlog.get_logger(__name__)

PREFIX = "/api/v1/portfolio/reports"
MAIL_TIMEOUT = 120.0
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


class Reports:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        portfolios: PortfolioApi,
        trading: Callable[[], TradingApi | None],
        prices: PriceHistory | None,
        jobs: JobsApi | None,
        mailer: Mailer | None,
        directory: Path | None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._portfolios = portfolios
        self._trading = trading
        self._prices = prices
        self._jobs = jobs
        self._mailer = mailer
        self._dir = directory
        self._subs: builtins.list[Subscription] = []

    # ------------------------------------------------------------------ events

    async def subscribe(self, bus: Bus) -> None:
        if self._jobs is not None:
            self._subs.append(
                await bus.subscribe(JobFinished.topic, group="portfolio.reports", handler=self._on_job)
            )

    async def unsubscribe(self) -> None:
        for sub in self._subs:
            await sub.stop()
        self._subs.clear()

    async def _on_job(self, envelope: Envelope) -> None:
        event = JobFinished.model_validate(envelope.data)
        if event.kind != KIND:
            return
        async with self._sessions() as session:
            row = (
                (await session.execute(select(reports).where(reports.c.job_id == event.job_id)))
                .mappings()
                .first()
            )
        if row is not None and row["finished_at"] is None:
            await self._finalize(row)

    # ------------------------------------------------------------------ creating

    async def create(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, request: ReportCreate
    ) -> ReportRead:
        portfolio = await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        if self._jobs is None or self._dir is None:
            raise TemporaryError("reports need the jobs service in the portfolio service's process")
        if request.benchmark is not None and self._prices is None:
            raise Invalid("no price history is available in this process", field="benchmark")
        now = self._clock.now()
        today = performance.today_of(now)
        start, end, label = resolve_period(request, today, portfolio.created_at.astimezone(UTC).date())
        data = await gather(
            sessions=self._sessions,
            portfolios=self._portfolios,
            trading=self._trading(),
            prices=self._prices,
            owner_id=owner_id,
            portfolio=portfolio,
            start=start,
            end=end,
            benchmark=request.benchmark,
            now=now,
        )
        report_id = uuid.uuid4()
        formats = list(request.formats)
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(reports).values(
                    id=report_id,
                    portfolio_id=portfolio_id,
                    owner_id=owner_id,
                    period_start=start,
                    period_end=end,
                    formats=formats,
                    benchmark=request.benchmark,
                    recipients=[str(r) for r in request.recipients],
                    status=ReportStatus.QUEUED.value,
                    error=None,
                    job_id=None,
                    files=None,
                    emailed_at=None,
                    email_error=None,
                    created_at=now,
                    finished_at=None,
                )
            )
        params = {
            "report_id": str(report_id),
            "out_dir": str(self._dir / str(report_id)),
            "formats": formats,
            "names": {f: file_name(portfolio.name, label, f) for f in formats},
            "data": data_to_json(data),
        }
        try:
            job = await self._jobs.submit(owner=owner_id, kind=KIND, params=params)
        except Exception:
            async with self._sessions() as session, session.begin():
                await session.execute(delete(reports).where(reports.c.id == report_id))
            raise
        async with self._sessions() as session, session.begin():
            await session.execute(update(reports).where(reports.c.id == report_id).values(job_id=job.id))
        log.info(
            "portfolio.report_started", report_id=str(report_id), job_id=str(job.id), days=len(data.dates)
        )
        return await self.get(owner_id=owner_id, report_id=report_id)

    # ------------------------------------------------------------------ reading

    async def _owned(self, owner_id: uuid.UUID, report_id: uuid.UUID) -> Any:
        async with self._sessions() as session:
            row = (await session.execute(select(reports).where(reports.c.id == report_id))).mappings().first()
        if row is None or row["owner_id"] != owner_id:
            raise NotFound(f"report {report_id} not found")
        return row

    async def _current(self, row: Any) -> tuple[Any, ReportStatus]:
        """The row, finalized if its job has finished, and its status now."""
        if row["finished_at"] is not None or row["job_id"] is None or self._jobs is None:
            return row, ReportStatus(row["status"])
        try:
            job = await self._jobs.get(owner=row["owner_id"], job_id=row["job_id"])
        except NotFound:
            job = None
        if job is not None and not job.status.finished:
            running = job.status is JobStatus.RUNNING
            return row, ReportStatus.RUNNING if running else ReportStatus.QUEUED
        await self._finalize(row, job)
        async with self._sessions() as session:
            fresh = (
                (await session.execute(select(reports).where(reports.c.id == row["id"]))).mappings().first()
            )
        if fresh is None:  # the portfolio was deleted meanwhile
            raise NotFound(f"report {row['id']} not found")
        return fresh, ReportStatus(fresh["status"])

    def _read(self, row: Any, status: ReportStatus) -> ReportRead:
        files = [
            ReportFileRead(
                format=f["format"],
                filename=f["name"],
                content_type=CONTENT_TYPES[f["format"]],
                size=f["size"],
                url=f"{PREFIX}/{row['id']}/{f['format']}",
            )
            for f in row["files"] or []
        ]
        if not row["recipients"]:
            email = "not_requested"
        elif row["email_error"] is not None:
            email = "failed"
        elif row["emailed_at"] is not None:
            email = "sent"
        elif status is ReportStatus.FAILED:
            email = "skipped"
        else:
            email = "pending"
        return ReportRead(
            report_id=row["id"],
            portfolio_id=row["portfolio_id"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            formats=row["formats"],
            benchmark=row["benchmark"],
            recipients=row["recipients"],
            status=status,
            error=row["error"],
            job_id=row["job_id"],
            files=files,
            email_status=email,
            emailed_at=row["emailed_at"],
            email_error=row["email_error"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
        )

    async def get(self, *, owner_id: uuid.UUID, report_id: uuid.UUID) -> ReportRead:
        row, status = await self._current(await self._owned(owner_id, report_id))
        return self._read(row, status)

    async def list(
        self, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID, limit: int = 50
    ) -> builtins.list[ReportRead]:
        await self._portfolios.get(owner_id=owner_id, portfolio_id=portfolio_id)
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(reports)
                    .where(reports.c.portfolio_id == portfolio_id, reports.c.owner_id == owner_id)
                    .order_by(reports.c.created_at.desc())
                    .limit(limit)
                )
            ).mappings()
            found = builtins.list(rows)
        return [self._read(*await self._current(r)) for r in found]

    async def file(self, *, owner_id: uuid.UUID, report_id: uuid.UUID, format: str) -> ReportFile:
        row, status = await self._current(await self._owned(owner_id, report_id))
        if format not in row["formats"]:
            raise NotFound(f"report {report_id} has no {format} file (it has {', '.join(row['formats'])})")
        if status is ReportStatus.FAILED:
            raise Conflict(f"report {report_id} failed: {row['error']}", code="report_failed")
        if status is not ReportStatus.SUCCEEDED:
            raise Conflict(
                f"report {report_id} is {status.value}; try again shortly", code="report_not_ready"
            )
        entry = next((f for f in row["files"] or [] if f["format"] == format), None)
        content = await asyncio.to_thread(self._load, row["id"], entry["name"]) if entry else None
        if entry is None or content is None:
            raise NotFound(f"the {format} file of report {report_id} is no longer stored")
        return ReportFile(filename=entry["name"], content_type=CONTENT_TYPES[format], content=content)

    def _load(self, report_id: uuid.UUID, name: str) -> bytes | None:
        if self._dir is None or Path(name).name != name:
            return None
        try:
            return (self._dir / str(report_id) / name).read_bytes()
        except OSError:
            return None

    # ------------------------------------------------------------------ finishing

    async def _finalize(self, row: Any, job: JobRead | None = None) -> None:
        if job is None and self._jobs is not None and row["job_id"] is not None:
            try:
                job = await self._jobs.get(owner=row["owner_id"], job_id=row["job_id"])
            except NotFound:
                job = None
        if job is not None and not job.status.finished:
            return
        files: builtins.list[dict[str, Any]] | None = None
        error: str | None = None
        if job is None:
            error = "the report's job is gone"
        elif job.status is JobStatus.SUCCEEDED:
            result: Any = job.result if isinstance(job.result, dict) else {}
            files = [
                {"format": f["format"], "name": str(f["name"]), "size": int(f["size"])}
                for f in result.get("files") or []
                if isinstance(f, dict) and f.get("format") in CONTENT_TYPES
            ]
            if not files:
                files, error = None, "the report's job wrote no files"
        elif job.status is JobStatus.CANCELLED:
            error = "the report's job was cancelled"
        else:
            error = job.error or "the report's job failed"
        status = ReportStatus.FAILED if error else ReportStatus.SUCCEEDED
        finished = (job.finished_at if job is not None else None) or self._clock.now()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(reports)
                .where(reports.c.id == row["id"], reports.c.finished_at.is_(None))
                .values(status=status.value, error=error, files=files, finished_at=finished)
            )
            won = bool(result.rowcount)
        if not won:
            return
        log.info("portfolio.report_finished", report_id=str(row["id"]), status=status.value)
        if status is ReportStatus.SUCCEEDED and row["recipients"] and files:
            await self._email(row, files)

    async def _email(self, row: Any, files: builtins.list[dict[str, Any]]) -> None:
        sent, errors = 0, []
        try:
            if self._mailer is None:
                raise TemporaryError("no mailer is configured in this process")
            async with self._sessions() as session:
                name = (
                    await session.execute(
                        select(portfolios.c.name).where(portfolios.c.id == row["portfolio_id"])
                    )
                ).scalar() or "Portfolio"
            attachments = await asyncio.to_thread(self._attachments, row["id"], files)
            subject = f"{name}: performance report {row['period_start']} to {row['period_end']}"
            text = (
                f"The performance report of {name} for {row['period_start']} to {row['period_end']} "
                f"is attached ({', '.join(a.filename for a in attachments)}).\n\nAlgoTrendy\n"
            )
            for to in row["recipients"]:
                try:
                    await asyncio.wait_for(
                        self._mailer.send(
                            MailMessage(to=to, subject=subject, text=text, attachments=attachments)
                        ),
                        MAIL_TIMEOUT,
                    )
                    sent += 1
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {getattr(exc, 'detail', None) or exc}")
        total = len(row["recipients"])
        values: dict[str, Any] = {"emailed_at": self._clock.now() if sent else None}
        if errors:
            values["email_error"] = f"{total - sent} of {total} not sent: {errors[0]}"[:2000]
        async with self._sessions() as session, session.begin():
            await session.execute(update(reports).where(reports.c.id == row["id"]).values(**values))
        log.info("portfolio.report_emailed", report_id=str(row["id"]), sent=sent, failed=total - sent)

    def _attachments(
        self, report_id: uuid.UUID, files: builtins.list[dict[str, Any]]
    ) -> tuple[Attachment, ...]:
        out = []
        for f in files:
            content = self._load(report_id, f["name"])
            if content is None:
                raise NotFound(f"the {f['format']} file is not stored here")
            out.append(Attachment(filename=f["name"], content_type=CONTENT_TYPES[f["format"]], data=content))
        if sum(len(a.data) for a in out) > MAX_ATTACHMENT_BYTES:
            raise Invalid(f"the files are over {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB, too large to mail")
        return tuple(out)

    # ------------------------------------------------------------------ deleting

    async def forget(self, session: AsyncSession, portfolio_id: uuid.UUID) -> builtins.list[uuid.UUID]:
        """Delete a portfolio's report rows (in the caller's transaction); their ids, for
        :meth:`remove_files` once it has committed."""
        ids = [
            r
            for (r,) in await session.execute(
                select(reports.c.id).where(reports.c.portfolio_id == portfolio_id)
            )
        ]
        await session.execute(delete(reports).where(reports.c.portfolio_id == portfolio_id))
        return ids

    async def remove_files(self, ids: builtins.list[uuid.UUID]) -> None:
        if self._dir is None:
            return
        directory = self._dir
        for rid in ids:
            await asyncio.to_thread(shutil.rmtree, directory / str(rid), True)
