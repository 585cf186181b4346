"""Accounts: registration (self-service and by an admin), email verification, the profile and
settings, and the password flows (change, reset by emailed link). Each change commits together
with its outbox event, audit entry and queued mail."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.auth import Role
from algotrendy.core.errors import Conflict, NotFound, Unauthorized
from algotrendy.core.ports import MailMessage
from algotrendy.services.users import mail, throttle
from algotrendy.services.users.context import Context
from algotrendy.services.users.interface import (
    Accepted,
    ChangePasswordRequest,
    PasswordResetConfirm,
    ProfileUpdate,
    SettingsRead,
    SettingsUpdate,
    UserCreate,
    UserEmailVerified,
    UserRead,
    UserRegistered,
)
from algotrendy.services.users.store import EmailTokenRow, SettingsRow, UserRow, taken, user_by_email
from algotrendy.services.users.views import settings_read, user_read

log = structlog.get_logger(__name__)


class Accounts:
    def __init__(self, ctx: Context) -> None:
        self._c = ctx

    def _link(
        self, session: AsyncSession, user_id: uuid.UUID, purpose: str, ttl: timedelta, path: str
    ) -> str:
        """A link to ``path`` carrying a new one-use token for ``purpose``."""
        token = self._c.email_token(session, user_id, purpose, ttl)
        return f"{self._c.public_url}{path}?token={token}"

    def _mail(self, session: AsyncSession, message: MailMessage) -> None:
        mail.enqueue(session, message, now=self._c.clock.now())

    # ---- registration and verification --------------------------------------------------------

    async def _create(self, data: UserCreate, *, role: Role, verified: bool, ip: str | None) -> UserRead:
        c = self._c
        password_hash = await c.pw.hash(data.password)
        now = c.clock.now()
        email_norm, username_norm = str(data.email).lower(), data.username.lower()
        async with c.db() as session:
            field = await taken(session, email_norm=email_norm, username_norm=username_norm)
            if field:
                raise Conflict(f"this {field} is already registered", code=f"{field}_taken", field=field)
            user = UserRow(
                id=uuid.uuid4(),
                email=str(data.email),
                email_norm=email_norm,
                username=data.username,
                username_norm=username_norm,
                password_hash=password_hash,
                first_name=data.first_name,
                last_name=data.last_name,
                role=role.value,
                is_active=True,
                is_verified=verified,
                totp_enabled=False,
                totp_last_step=0,
                created_at=now,
                updated_at=now,
                password_changed_at=now,
            )
            session.add(user)
            await session.flush()  # parent row first: the ORM orders inserts by relationships only
            session.add(SettingsRow(user_id=user.id, created_at=now, updated_at=now))
            if not verified:
                self._queue_verification(session, user)
            c.audit(session, "user.registered", user_id=user.id, ip=ip)
            await c.outbox.add(
                session, UserRegistered(user_id=user.id, username=user.username, email=user.email, role=role)
            )
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict("this email or username is already registered", code="account_taken") from None
        await c.after_commit()
        log.info("users.registered", user_id=str(user.id))
        return user_read(user)

    async def register(self, *, data: UserCreate, ip: str) -> UserRead:
        return await self._create(data, role=Role(self._c.s.default_role), verified=False, ip=ip)

    async def create_user(self, *, data: UserCreate, role: Role, verified: bool) -> UserRead:
        return await self._create(data, role=role, verified=verified, ip=None)

    def _queue_verification(self, session: AsyncSession, user: UserRow) -> None:
        hours = self._c.s.verify_token_ttl_hours
        link = self._link(session, user.id, "verify", timedelta(hours=hours), "/api/v1/users/verify-email")
        self._mail(
            session, mail.verification_message(to=user.email, username=user.username, link=link, hours=hours)
        )

    async def verify_email(self, *, token: str) -> UserRead:
        c = self._c
        async with c.db() as session:
            user_id = await c.use_email_token(session, token, "verify")
            user = await c.user(session, user_id)
            if not user.is_verified:
                user.is_verified = True
                user.updated_at = c.clock.now()
                await c.outbox.add(session, UserEmailVerified(user_id=user.id))
                c.audit(session, "user.email_verified", user_id=user.id)
            await session.commit()
        await c.after_commit(user_id=user.id)
        return user_read(user)

    async def resend_verification(self, *, user_id: uuid.UUID) -> Accepted:
        c = self._c
        await c.limit(f"verify-mail:{user_id}", capacity=3, per_seconds=3600)
        async with c.db() as session:
            user = await c.user(session, user_id)
            if user.is_verified:
                raise Conflict("the email address is already verified", code="already_verified")
            self._queue_verification(session, user)
            await session.commit()
        await c.after_commit()
        return Accepted(detail="a new verification email is on its way")

    # ---- profile and settings -----------------------------------------------------------------

    async def get_user(self, *, user_id: uuid.UUID) -> UserRead:
        c = self._c
        key = f"user:{user_id}"
        cached = await c.cache.get(key)
        if cached is not None:
            return UserRead.model_validate_json(cached)
        async with c.db() as session:
            user = user_read(await c.user(session, user_id))
        if c.s.user_cache_seconds > 0:
            await c.cache.set(key, user.model_dump_json().encode(), ttl=c.s.user_cache_seconds)
        return user

    async def update_profile(self, *, user_id: uuid.UUID, data: ProfileUpdate) -> UserRead:
        c = self._c
        changes = data.model_dump(exclude_unset=True)
        async with c.db() as session:
            user = await c.user(session, user_id)
            if changes.get("username") is not None:
                field = await taken(
                    session, email_norm=None, username_norm=changes["username"].lower(), exclude=user_id
                )
                if field:
                    raise Conflict("this username is already taken", code="username_taken", field="username")
                user.username = changes["username"]
                user.username_norm = changes["username"].lower()
            for name in ("first_name", "last_name"):
                if name in changes:
                    setattr(user, name, changes[name])
            user.updated_at = c.clock.now()
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    "this username is already taken", code="username_taken", field="username"
                ) from None
        await c.after_commit(user_id=user_id)
        return user_read(user)

    async def get_settings(self, *, user_id: uuid.UUID) -> SettingsRead:
        async with self._c.db() as session:
            return settings_read(await _settings_row(session, user_id))

    async def update_settings(self, *, user_id: uuid.UUID, data: SettingsUpdate) -> SettingsRead:
        async with self._c.db() as session:
            row = await _settings_row(session, user_id)
            for name, value in data.model_dump(exclude_unset=True).items():
                setattr(row, name, value)
            row.updated_at = self._c.clock.now()
            await session.commit()
            return settings_read(row)

    # ---- passwords ----------------------------------------------------------------------------

    async def change_password(self, *, user_id: uuid.UUID, data: ChangePasswordRequest, ip: str) -> None:
        c = self._c
        async with c.db() as session:
            user = await c.user(session, user_id)
            current_hash = user.password_hash
        if not await c.pw.verify(current_hash, data.current_password):
            raise Unauthorized("current password is wrong", code="invalid_credentials")
        new_hash = await c.pw.hash(data.new_password)
        async with c.db() as session:
            user = await c.user(session, user_id)
            user.password_hash = new_hash
            user.password_changed_at = user.updated_at = c.clock.now()
            revoked = await c.revoke_all(session, user_id, "password_changed")
            c.audit(session, "user.password_changed", user_id=user_id, ip=ip)
            self._mail(session, mail.password_changed_message(to=user.email, username=user.username))
            await session.commit()
        await c.after_commit(revoked=revoked, user_id=user_id)

    async def request_password_reset(self, *, email: str, ip: str) -> Accepted:
        c = self._c
        answer = Accepted(detail="if an account has this email, a reset link is on its way")
        async with c.db() as session:
            user = await user_by_email(session, email)
            if user is None or not user.is_active:
                return answer
            recent = await session.scalar(
                select(func.count())
                .select_from(EmailTokenRow)
                .where(
                    EmailTokenRow.user_id == user.id,
                    EmailTokenRow.purpose == "reset",
                    EmailTokenRow.created_at > c.clock.now() - timedelta(hours=1),
                )
            )
            if (recent or 0) >= 5:
                return answer  # same answer; no more mail to this inbox this hour
            minutes = c.s.reset_token_ttl_minutes
            link = self._link(session, user.id, "reset", timedelta(minutes=minutes), "/reset-password")
            self._mail(
                session, mail.reset_message(to=user.email, username=user.username, link=link, minutes=minutes)
            )
            c.audit(session, "user.password_reset_requested", user_id=user.id, ip=ip)
            await session.commit()
        await c.after_commit()
        return answer

    async def reset_password(self, *, data: PasswordResetConfirm, ip: str) -> None:
        c = self._c
        new_hash = await c.pw.hash(data.new_password)
        async with c.db() as session:
            user_id = await c.use_email_token(session, data.token, "reset")
            user = await c.user(session, user_id)
            user.password_hash = new_hash
            user.password_changed_at = user.updated_at = c.clock.now()
            revoked = await c.revoke_all(session, user_id, "password_reset")
            for key in (
                throttle.throttle_key(user.email),
                throttle.throttle_key(user.username),
                throttle.account_key(user.id),
            ):
                await throttle.record_success(session, key)
            c.audit(session, "user.password_reset", user_id=user_id, ip=ip)
            await session.commit()
        await c.after_commit(revoked=revoked, user_id=user_id)


async def _settings_row(session: AsyncSession, user_id: uuid.UUID) -> SettingsRow:
    row = await session.get(SettingsRow, user_id)
    if row is None:
        raise NotFound("user not found", code="user_not_found")
    return row
