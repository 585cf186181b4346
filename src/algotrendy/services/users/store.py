"""Tables of the users service (``users_*``) and the queries on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from algotrendy.db.base import Base
from algotrendy.db.types import UTCDateTime

_BigId = BigInteger().with_variant(Integer(), "sqlite")


class UserRow(Base):
    __tablename__ = "users_users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    email_norm: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(32))
    username_norm: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_secret: Mapped[str | None] = mapped_column(String(500))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettingsRow(Base):
    __tablename__ = "users_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users_users.id", ondelete="CASCADE"), primary_key=True
    )
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str] = mapped_column(String(16), default="en")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    notifications_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    telegram_notifications: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """A login session = one refresh-token family. Its id is the ``sid`` claim."""

    __tablename__ = "users_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(50))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class RefreshTokenRow(Base):
    __tablename__ = "users_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users_sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailTokenRow(Base):
    """Single-use, expiring tokens for email verification and password reset (stored hashed)."""

    __tablename__ = "users_email_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users_users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCodeRow(Base):
    __tablename__ = "users_recovery_codes"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginThrottleRow(Base):
    """Failed-login state per identifier (hashed), known account or not, so answers match."""

    __tablename__ = "users_login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginEventRow(Base):
    __tablename__ = "users_login_history"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users_users.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    success: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(50))

    __table_args__ = (Index("ix_users_login_history_user_at", "user_id", "at"),)


class AuditRow(Base):
    """Append-only audit log of security actions (no secrets in ``detail``)."""

    __tablename__ = "users_audit_log"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column()
    user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(50))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MailRow(Base):
    """Transactional mail queue: a message commits with the change that causes it and is sent
    by the mail worker afterwards (retried with backoff); the body is cleared once sent."""

    __tablename__ = "users_mail_queue"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    to_addr: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(String(20_000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


# ---- queries --------------------------------------------------------------------------------


async def user_by_login(session: AsyncSession, identifier: str) -> UserRow | None:
    norm = identifier.strip().lower()
    stmt = select(UserRow).where(or_(UserRow.email_norm == norm, UserRow.username_norm == norm))
    return (await session.execute(stmt)).scalars().first()


async def user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    stmt = select(UserRow).where(UserRow.email_norm == email.strip().lower())
    return (await session.execute(stmt)).scalars().first()


async def taken(
    session: AsyncSession,
    *,
    email_norm: str | None,
    username_norm: str | None,
    exclude: uuid.UUID | None = None,
) -> str | None:
    """Which unique field (``email``/``username``) is already used by another account."""
    for field, column, value in (
        ("email", UserRow.email_norm, email_norm),
        ("username", UserRow.username_norm, username_norm),
    ):
        if value is None:
            continue
        stmt = select(UserRow.id).where(column == value)
        if exclude is not None:
            stmt = stmt.where(UserRow.id != exclude)
        if (await session.execute(stmt)).first() is not None:
            return field
    return None


async def active_session_ids(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    stmt = select(SessionRow.id).where(SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None))
    return list((await session.execute(stmt)).scalars())


async def revoke_sessions(session: AsyncSession, ids: list[uuid.UUID], *, at: datetime, reason: str) -> None:
    if ids:
        await session.execute(
            update(SessionRow)
            .where(SessionRow.id.in_(ids), SessionRow.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )


async def recently_revoked(session: AsyncSession, since: datetime) -> list[uuid.UUID]:
    stmt = select(SessionRow.id).where(SessionRow.revoked_at.is_not(None), SessionRow.revoked_at >= since)
    return list((await session.execute(stmt)).scalars())


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(UserRow)) or 0)
