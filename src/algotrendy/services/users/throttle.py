"""Login throttling per identifier: exponential backoff after a few failures and a soft lock
after ``max_failures_per_hour`` (RELIABILITY API6). Keyed by a hash of the normalised
identifier, whether or not an account has it, so the answers never tell the two apart."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.errors import TooManyRequests
from algotrendy.services.users.settings import UsersSettings
from algotrendy.services.users.store import LoginThrottleRow

HOUR = timedelta(hours=1)


def throttle_key(identifier: str) -> str:
    return hashlib.sha256(identifier.strip().lower().encode()).hexdigest()


def account_key(user_id: uuid.UUID) -> str:
    return hashlib.sha256(f"account:{user_id}".encode()).hexdigest()


async def check(session: AsyncSession, key: str, *, now: datetime) -> None:
    row = await session.get(LoginThrottleRow, key)
    if row is not None and row.locked_until is not None and row.locked_until > now:
        raise TooManyRequests(
            "too many failed logins; try again later",
            retry_after=(row.locked_until - now).total_seconds(),
            code="login_locked",
        )


async def record_failure(session: AsyncSession, key: str, *, now: datetime, settings: UsersSettings) -> None:
    row = await session.get(LoginThrottleRow, key)
    if row is None:
        row = LoginThrottleRow(key=key, failures=0, window_start=now, window_failures=0, locked_until=None)
        session.add(row)
    if now - row.window_start >= HOUR:
        row.window_start = now
        row.window_failures = 0
    row.failures += 1
    row.window_failures += 1
    locked_until: datetime | None = None
    if row.failures >= settings.lockout_threshold:
        exponent = min(row.failures - settings.lockout_threshold, 30)
        delay = min(settings.lockout_base_seconds * (2**exponent), settings.lockout_max_seconds)
        locked_until = now + timedelta(seconds=delay)
    if row.window_failures >= settings.max_failures_per_hour:
        soft = row.window_start + HOUR
        locked_until = max(locked_until or soft, soft)
    row.locked_until = locked_until


async def record_success(session: AsyncSession, key: str) -> None:
    row = await session.get(LoginThrottleRow, key)
    if row is not None:
        row.failures = 0
        row.locked_until = None
