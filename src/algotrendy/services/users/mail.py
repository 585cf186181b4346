"""The users service's mail: message templates and the worker that drains ``users_mail_queue``.

A message is queued in the same transaction as the change that causes it (registration, reset
request), so it is sent if and only if that change committed, even across a crash; the worker
retries failures with backoff and clears the body (which holds a one-time link) once sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.errors import AlgoTrendyError, TemporaryError
from algotrendy.core.ports import Mailer, MailMessage
from algotrendy.db.waits import wait_event
from algotrendy.gateway import metrics
from algotrendy.services.users.store import MailRow

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 8


def verification_message(*, to: str, username: str, link: str, hours: int) -> MailMessage:
    return MailMessage(
        to=to,
        subject="Confirm your AlgoTrendy email address",
        text=(
            f"Hello {username},\n\nplease confirm your email address by opening this link within "
            f"{hours} hours:\n\n{link}\n\nIf you did not create an AlgoTrendy account, ignore this message.\n"
        ),
    )


def reset_message(*, to: str, username: str, link: str, minutes: int) -> MailMessage:
    return MailMessage(
        to=to,
        subject="Reset your AlgoTrendy password",
        text=(
            f"Hello {username},\n\nsomeone (hopefully you) asked to reset your password. The link below "
            f"works once, for {minutes} minutes:\n\n{link}\n\nIf it was not you, ignore this message; "
            "your password stays as it is.\n"
        ),
    )


def password_changed_message(*, to: str, username: str) -> MailMessage:
    return MailMessage(
        to=to,
        subject="Your AlgoTrendy password was changed",
        text=(
            f"Hello {username},\n\nyour password was just changed and every session was signed out. "
            "If this was not you, reset your password now and contact your administrator.\n"
        ),
    )


def enqueue(session: AsyncSession, message: MailMessage, *, now: datetime) -> None:
    session.add(
        MailRow(
            to_addr=message.to,
            subject=message.subject,
            body=message.text,
            created_at=now,
            next_attempt_at=now,
            attempts=0,
        )
    )


class MailWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        clock: Clock,
        poll_interval: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._mailer = mailer
        self._clock = clock
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        now = self._clock.now()
        sent = 0
        async with self._sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(MailRow)
                        .where(
                            MailRow.sent_at.is_(None),
                            MailRow.next_attempt_at <= now,
                            MailRow.attempts < MAX_ATTEMPTS,
                        )
                        .order_by(MailRow.id)
                        .limit(20)
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                message = MailMessage(to=row.to_addr, subject=row.subject, text=row.body or "")
                row.attempts += 1
                try:
                    await self._mailer.send(message)
                except (TemporaryError, OSError) as exc:
                    delay = min(2**row.attempts, 3600)
                    row.next_attempt_at = self._clock.now() + timedelta(seconds=delay)
                    row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    level = log.error if row.attempts >= MAX_ATTEMPTS else log.warning
                    level("mail.send_failed", mail_id=row.id, attempts=row.attempts, error=type(exc).__name__)
                    metrics.EMAILS.labels("retry").inc()
                except AlgoTrendyError as exc:  # refused for good (e.g. bad recipient): stop trying
                    row.attempts = MAX_ATTEMPTS
                    row.last_error = f"{type(exc).__name__}: {exc.detail}"[:500]
                    log.error("mail.refused", mail_id=row.id, error=exc.code)
                    metrics.EMAILS.labels("refused").inc()
                else:
                    row.sent_at = self._clock.now()
                    row.body = None
                    sent += 1
                    metrics.EMAILS.labels("sent").inc()
                await session.commit()
        return sent

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("mail.worker_error", error=repr(exc)[:300])
            await wait_event(self._wake, self._poll)
            self._wake.clear()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="users-mail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
