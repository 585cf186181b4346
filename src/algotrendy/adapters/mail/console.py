"""The embedded default mailer: nothing leaves the machine.

Each message is appended to ``<data_dir>/mail/outbox.jsonl`` (mode 0600; read it with
``algotrendy users outbox``) and announced in the log with the recipient masked and without
the body, because bodies carry one-time links that must never reach a log. Attachments are
recorded and logged by name, type and size only, never their content.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from algotrendy.core.ports import MailMessage

log = structlog.get_logger(__name__)


class ConsoleMailer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send(self, message: MailMessage) -> None:
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(),
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
        }
        files = [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
            for a in message.attachments
        ]
        if files:
            record["attachments"] = files
        async with self._lock:
            await asyncio.to_thread(self._append, json.dumps(record) + "\n")
        log.info(
            "mail.console",
            to=message.to,
            subject=message.subject,
            attachments=[f"{f['filename']} ({f['size']} bytes)" for f in files],
            hint="algotrendy users outbox shows the message",
        )

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line)


def read_outbox(path: Path, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` messages written by the console mailer, oldest first."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[-limit:] if line.strip()]
