"""Shared test plumbing.

Service-backed tests (PostgreSQL, Redis, NATS, nginx, Ray) call ``require_service``: when the
service is unreachable they skip with a message on a laptop, and *fail* when
``ALGO_REQUIRE_SERVICES=1`` (CI), so a missing service can never pass silently.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

DEFAULT_URLS = {
    "postgres": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "redis": "redis://127.0.0.1:6379/15",
    "nats": "nats://127.0.0.1:4222",
}


def services_required() -> bool:
    return os.environ.get("ALGO_REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def service_url(name: str) -> str:
    """The URL for ``name`` from ``ALGO_TEST_<NAME>_URL``, else the local default."""
    return os.environ.get(f"ALGO_TEST_{name.upper()}_URL", DEFAULT_URLS[name])


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port
    if port is None:
        return False
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str) -> str:
    """Return the service URL, or skip (fail under ALGO_REQUIRE_SERVICES=1) if it is down."""
    url = service_url(name)
    if _reachable(url):
        return url
    message = f"{name} is not reachable at {url} (set ALGO_TEST_{name.upper()}_URL)"
    if services_required():
        pytest.fail(message + " and ALGO_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def require(condition: bool, message: str) -> None:
    """Skip on a laptop / fail in CI when a non-URL prerequisite (nginx, ray) is missing."""
    if condition:
        return
    if services_required():
        pytest.fail(message + " and ALGO_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)
