"""SMTP mailer on aiosmtplib (STARTTLS or implicit TLS, optional login)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import structlog

from algotrendy.core.errors import Invalid, TemporaryError
from algotrendy.core.ports import MailMessage

log = structlog.get_logger(__name__)


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        tls: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._starttls, self._tls, self._timeout = starttls, tls, timeout

    async def send(self, message: MailMessage) -> None:
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = message.to
        msg["Subject"] = message.subject
        for key, value in message.headers.items():
            msg[key] = value
        msg.set_content(message.text)
        if message.html:
            msg.add_alternative(message.html, subtype="html")
        for item in message.attachments:
            maintype, _, subtype = item.content_type.partition("/")
            msg.add_attachment(
                item.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=item.filename,
            )
        try:
            await aiosmtplib.send(
                msg,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls and not self._tls,
                use_tls=self._tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise Invalid("the mail server refused the recipient", code="recipient_refused") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning("mail.smtp_failed", host=self._host, port=self._port, error=type(exc).__name__)
            raise TemporaryError(f"SMTP delivery failed: {type(exc).__name__}") from exc
        log.info("mail.sent", host=self._host, subject=message.subject, attachments=len(message.attachments))
