"""API6 (sensitive flows): the hourly soft lock on failed logins, which RELIABILITY.md states per
account ("at most 100 failed logins per account per hour")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from algotrendy.core.clock import ManualClock
from tests.apphelp import Api, make_settings, remember, running

MAX_PER_HOUR = 3


@pytest.fixture
async def soft_lock(tmp_path: Path) -> AsyncIterator[tuple[Api, ManualClock]]:
    # backoff out of the way (threshold 50), so only the hourly soft lock acts
    clock = ManualClock(datetime.now(UTC))
    settings = make_settings(tmp_path, users={"lockout_threshold": 50, "max_failures_per_hour": MAX_PER_HOUR})
    async with running(settings, clock=clock) as api:
        yield api, clock


async def _attempt(api: Api, login: str, password: str = "wrong-password") -> tuple[int, str]:
    r = await api.client.post("/auth/login", json={"username": login, "password": password})
    return r.status_code, r.json().get("code", "")


async def test_soft_lock_after_max_failures_per_hour_lifts_after_the_hour(
    soft_lock: tuple[Api, ManualClock],
) -> None:
    api, clock = soft_lock
    user, password = await api.register()
    for _ in range(MAX_PER_HOUR):
        assert await _attempt(api, user["username"]) == (401, "invalid_credentials")
    assert await _attempt(api, user["username"]) == (429, "login_locked")
    assert await _attempt(api, user["username"].upper()) == (429, "login_locked")  # same identifier
    r = await api.client.post("/auth/login", json={"username": user["username"], "password": password})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 3000
    # unknown names lock the same way: the answers do not tell accounts apart
    for _ in range(MAX_PER_HOUR):
        assert await _attempt(api, "no-such-user") == (401, "invalid_credentials")
    assert await _attempt(api, "no-such-user") == (429, "login_locked")
    clock.advance(3601)
    r = await api.client.post("/auth/login", json={"username": user["username"], "password": password})
    assert r.status_code == 200, r.text
    remember(r.json()["access_token"], r.json()["refresh_token"])


async def test_soft_lock_is_per_account_not_per_identifier(soft_lock: tuple[Api, ManualClock]) -> None:
    api, _clock = soft_lock
    user, _password = await api.register()
    for _ in range(MAX_PER_HOUR):
        assert await _attempt(api, user["username"]) == (401, "invalid_credentials")
    assert await _attempt(api, user["username"]) == (429, "login_locked")
    # the same account by its email: no fresh budget of guesses
    assert await _attempt(api, user["email"]) == (429, "login_locked")
