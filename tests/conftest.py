"""Root conftest: app fixtures and the suite-wide "no secrets in logs" guard.

Service helpers (PostgreSQL/Redis/NATS reachability) are in tests/support.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from algotrendy.app.logging import make_formatter
from tests.apphelp import SECRETS, Api, make_settings, running, service_settings


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(make_formatter(json_format=True))
        self.set_name("test-capture")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a formatting bug must not hide the test's own result
            self.lines.append(record.getMessage())


_CAPTURE = _Collect()


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[_Collect]:
    root = logging.getLogger()
    root.addHandler(_CAPTURE)
    yield _CAPTURE
    root.removeHandler(_CAPTURE)
    leaks = [(s[:6] + "...", line[:200]) for line in _CAPTURE.lines for s in SECRETS if s in line]
    assert not leaks, f"secrets found in log lines: {leaks[:5]}"


@pytest.fixture(autouse=True)
def _keep_capture_handler() -> None:
    # create_app() reconfigures logging; make sure our collector stays attached.
    root = logging.getLogger()
    if _CAPTURE not in root.handlers:
        root.addHandler(_CAPTURE)


@pytest.fixture
def log_lines() -> list[str]:
    return _CAPTURE.lines


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The all-in-one app on its embedded parts (SQLite, in-process bus, memory cache)."""
    async with running(make_settings(tmp_path)) as a:
        yield a


@pytest.fixture(params=["embedded", "services"])
async def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """The app twice: on embedded parts, and on PostgreSQL + Redis + NATS JetStream."""
    if request.param == "embedded":
        async with running(make_settings(tmp_path)) as a:
            yield a
        return
    async with service_settings(tmp_path) as settings, running(settings) as a:
        yield a
