"""The SMTP mailer against a real local SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from algotrendy.adapters.mail.smtp import SmtpMailer
from algotrendy.core.errors import TemporaryError
from algotrendy.core.ports import Attachment, MailMessage
from tests.apphelp import make_settings, running
from tests.procs import free_port


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, _server, _session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _authenticator(_server, _session, _envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"algo"
        and auth_data.password == b"s3cret-pass"
    )
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server():  # type: ignore[no-untyped-def]
    sink = Sink()
    port = free_port()
    controller = Controller(
        sink, hostname="127.0.0.1", port=port, authenticator=_authenticator, auth_require_tls=False
    )
    controller.start()
    yield sink, port
    controller.stop()


async def test_sends_a_plain_message_with_login(smtp_server) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp_server
    mailer = SmtpMailer(
        host="127.0.0.1",
        port=port,
        sender="AlgoTrendy <no-reply@algotrendy.local>",
        username="algo",
        password="s3cret-pass",
        starttls=False,
    )
    await mailer.send(MailMessage(to="ann@example.com", subject="Hello", text="Body line"))
    mail_from, rcpts, content = sink.messages[0]
    msg = message_from_bytes(content)
    assert mail_from == "no-reply@algotrendy.local" and rcpts == ["ann@example.com"]
    assert msg["Subject"] == "Hello" and "Body line" in msg.get_payload()


async def test_attachments_arrive_intact(smtp_server) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp_server
    mailer = SmtpMailer(host="127.0.0.1", port=port, sender="no-reply@algotrendy.local", starttls=False)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    xlsx = b"PK\x03\x04" + bytes(range(255, -1, -1)) * 30
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    await mailer.send(
        MailMessage(
            to="ann@example.com",
            subject="Report",
            text="Attached.",
            attachments=(
                Attachment("report-2026-10.pdf", "application/pdf", pdf),
                Attachment("report-2026-10.xlsx", xlsx_type, xlsx),
            ),
        )
    )
    msg = message_from_bytes(sink.messages[0][2], policy=policy.default)
    assert msg.get_body(("plain",)).get_content().strip() == "Attached."
    parts = [(a.get_filename(), a.get_content_type(), a.get_content()) for a in msg.iter_attachments()]
    assert parts == [
        ("report-2026-10.pdf", "application/pdf", pdf),
        ("report-2026-10.xlsx", xlsx_type, xlsx),
    ]


async def test_unreachable_server_is_a_temporary_error() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), sender="x@example.com", starttls=False, timeout=2)
    with pytest.raises(TemporaryError):
        await mailer.send(MailMessage(to="ann@example.com", subject="s", text="t"))


async def test_registration_mail_goes_through_smtp_and_is_retried(tmp_path: Path, smtp_server) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp_server
    settings = make_settings(
        tmp_path,
        mail={
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "smtp_username": "algo",
            "smtp_password": "s3cret-pass",
        },
    )
    async with running(settings) as api:
        await api.register(username="smtpuser", email="smtpuser@example.com")
        worker = api.container.services["users.mail"]
        for _ in range(50):
            await worker.run_once()
            subjects = [
                message_from_bytes(c)["Subject"]
                for _f, r, c in sink.messages
                if r == ["smtpuser@example.com"]
            ]
            if "Confirm your AlgoTrendy email address" in subjects and "Welcome to AlgoTrendy" in subjects:
                break
            await asyncio.sleep(0.1)
        assert "Confirm your AlgoTrendy email address" in subjects
        assert "Welcome to AlgoTrendy" in subjects


async def test_mail_worker_retries_after_the_server_comes_back(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path,
        mail={
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "smtp_timeout": 2,
        },
        notifications={"welcome_email": False},
    )
    async with running(settings) as api:
        await api.register(username="retry", email="retry@example.com")
        worker = api.container.services["users.mail"]
        assert await worker.run_once() == 0  # server down: kept for later
        sink = Sink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            from sqlalchemy import update

            from algotrendy.services.users.store import MailRow

            async with api.container.sessions() as s:  # skip the backoff wait
                await s.execute(update(MailRow).values(next_attempt_at=api.container.clock.now()))
                await s.commit()
            assert await worker.run_once() == 1
            assert sink.messages[0][1] == ["retry@example.com"]
        finally:
            controller.stop()
