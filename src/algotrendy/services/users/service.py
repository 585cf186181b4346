"""UsersService: registration, verification, login (2FA, lockout), token rotation, profile,
settings, password flows, sessions and administration.

Every state change commits together with its outbox event and queued mail; session
revocations are pushed to the shared revocation list right after commit so every process
refuses the session's access tokens at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.auth import Role, permissions_for
from algotrendy.core.clock import Clock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from algotrendy.core.ports import Cache, RateLimiter
from algotrendy.db.outbox import Outbox
from algotrendy.services.users import mail, throttle, totp
from algotrendy.services.users.interface import (
    Accepted,
    ChangePasswordRequest,
    LoginEventRead,
    LoginRequest,
    PasswordResetConfirm,
    ProfileUpdate,
    RecoveryCodes,
    SessionRead,
    SessionRevoker,
    SettingsRead,
    SettingsUpdate,
    TokenIssuer,
    TokenPair,
    TotpDisableRequest,
    TotpEnrollment,
    UserCreate,
    UserDeactivated,
    UserEmailVerified,
    UserList,
    UserRead,
    UserRegistered,
    UserRoleChanged,
    UserSessionsRevoked,
)
from algotrendy.services.users.passwords import Passwords
from algotrendy.services.users.settings import UsersSettings
from algotrendy.services.users.store import (
    AuditRow,
    EmailTokenRow,
    LoginEventRow,
    RecoveryCodeRow,
    RefreshTokenRow,
    SessionRow,
    SettingsRow,
    UserRow,
    active_session_ids,
    recently_revoked,
    revoke_sessions,
    taken,
    user_by_email,
    user_by_login,
)

log = structlog.get_logger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_read(row: UserRow) -> UserRead:
    role = Role(row.role)
    return UserRead(
        id=row.id,
        email=row.email,
        username=row.username,
        first_name=row.first_name,
        last_name=row.last_name,
        role=role,
        permissions=sorted(permissions_for(role)),
        is_active=row.is_active,
        is_verified=row.is_verified,
        totp_enabled=row.totp_enabled,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _settings_read(row: SettingsRow) -> SettingsRead:
    return SettingsRead(
        timezone=row.timezone,
        language=row.language,
        currency=row.currency,
        notifications_enabled=row.notifications_enabled,
        email_notifications=row.email_notifications,
        telegram_notifications=row.telegram_notifications,
        updated_at=row.updated_at,
    )


class UsersService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: UsersSettings,
        passwords: Passwords,
        tokens: TokenIssuer,
        refresh_ttl: int,
        revoker: SessionRevoker,
        outbox: Outbox,
        secret_box: SecretBox,
        cache: Cache,
        limiter: RateLimiter,
        clock: Clock,
        public_url: str,
        mail_worker: mail.MailWorker | None = None,
    ) -> None:
        self._db = sessions
        self._s = settings
        self._pw = passwords
        self._tokens = tokens
        self._refresh_ttl = refresh_ttl
        self._revoker = revoker
        self._outbox = outbox
        self._box = secret_box
        self._cache = cache
        self._limiter = limiter
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._mail = mail_worker

    # ---- helpers ------------------------------------------------------------------------------

    async def _user(self, session: AsyncSession, user_id: uuid.UUID) -> UserRow:
        row = await session.get(UserRow, user_id)
        if row is None:
            raise NotFound("user not found", code="user_not_found")
        return row

    def _audit(
        self,
        session: AsyncSession,
        action: str,
        *,
        user_id: uuid.UUID | None,
        actor_id: uuid.UUID | None = None,
        ip: str | None = None,
        **detail: Any,
    ) -> None:
        session.add(
            AuditRow(
                at=self._clock.now(), actor_id=actor_id, user_id=user_id, action=action, ip=ip, detail=detail
            )
        )

    def _email_token(self, session: AsyncSession, user_id: uuid.UUID, purpose: str, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)  # 256 bits
        now = self._clock.now()
        session.add(
            EmailTokenRow(
                token_hash=_digest(token),
                user_id=user_id,
                purpose=purpose,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return token

    async def _use_email_token(self, session: AsyncSession, token: str, purpose: str) -> uuid.UUID:
        now = self._clock.now()
        result = await session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.token_hash == _digest(token),
                EmailTokenRow.purpose == purpose,
                EmailTokenRow.used_at.is_(None),
                EmailTokenRow.expires_at > now,
            )
            .values(used_at=now)
            .returning(EmailTokenRow.user_id)
        )
        user_id = result.scalar_one_or_none()
        if user_id is None:
            raise Invalid(
                "this link is invalid, expired or already used", code="invalid_token", field="token"
            )
        return user_id

    def _queue_verification(self, session: AsyncSession, user: UserRow) -> None:
        token = self._email_token(session, user.id, "verify", timedelta(hours=self._s.verify_token_ttl_hours))
        link = f"{self._public_url}/api/v1/users/verify-email?token={token}"
        mail.enqueue(
            session,
            mail.verification_message(
                to=user.email, username=user.username, link=link, hours=self._s.verify_token_ttl_hours
            ),
            now=self._clock.now(),
        )

    async def _after_commit(
        self, revoked: list[uuid.UUID] | None = None, user_id: uuid.UUID | None = None
    ) -> None:
        if revoked:
            await self._revoker.revoke(revoked)
        if user_id is not None:
            await self._cache.delete(f"user:{user_id}")
        if self._mail is not None:
            self._mail.wake()

    async def _revoke_all(
        self, session: AsyncSession, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        ids = [s for s in await active_session_ids(session, user_id) if s != keep]
        await revoke_sessions(session, ids, at=self._clock.now(), reason=reason)
        if ids:
            await self._outbox.add(
                session, UserSessionsRevoked(user_id=user_id, session_ids=ids, reason=reason)
            )
        return ids

    async def restore_revocations(self) -> int:
        """Reload recent revocations into the (possibly empty, in-memory) revocation list."""
        since = self._clock.now() - timedelta(seconds=self._tokens.access_ttl + 60)
        async with self._db() as session:
            ids = await recently_revoked(session, since)
        await self._revoker.revoke(ids)
        return len(ids)

    # ---- registration and verification --------------------------------------------------------

    async def _create(self, data: UserCreate, *, role: Role, verified: bool, ip: str | None) -> UserRead:
        password_hash = await self._pw.hash(data.password)
        now = self._clock.now()
        email_norm, username_norm = str(data.email).lower(), data.username.lower()
        async with self._db() as session:
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
            self._audit(session, "user.registered", user_id=user.id, ip=ip)
            await self._outbox.add(
                session, UserRegistered(user_id=user.id, username=user.username, email=user.email, role=role)
            )
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict("this email or username is already registered", code="account_taken") from None
        await self._after_commit()
        log.info("users.registered", user_id=str(user.id))
        return _user_read(user)

    async def register(self, *, data: UserCreate, ip: str) -> UserRead:
        return await self._create(data, role=Role(self._s.default_role), verified=False, ip=ip)

    async def create_user(self, *, data: UserCreate, role: Role, verified: bool) -> UserRead:
        return await self._create(data, role=role, verified=verified, ip=None)

    async def verify_email(self, *, token: str) -> UserRead:
        async with self._db() as session:
            user_id = await self._use_email_token(session, token, "verify")
            user = await self._user(session, user_id)
            if not user.is_verified:
                user.is_verified = True
                user.updated_at = self._clock.now()
                await self._outbox.add(session, UserEmailVerified(user_id=user.id))
                self._audit(session, "user.email_verified", user_id=user.id)
            await session.commit()
        await self._after_commit(user_id=user.id)
        return _user_read(user)

    async def resend_verification(self, *, user_id: uuid.UUID) -> Accepted:
        await self._limit(f"verify-mail:{user_id}", capacity=3, per_seconds=3600)
        async with self._db() as session:
            user = await self._user(session, user_id)
            if user.is_verified:
                raise Conflict("the email address is already verified", code="already_verified")
            self._queue_verification(session, user)
            await session.commit()
        await self._after_commit()
        return Accepted(detail="a new verification email is on its way")

    async def _limit(self, key: str, *, capacity: float, per_seconds: float) -> None:
        from algotrendy.core.errors import TooManyRequests

        decision = await self._limiter.hit(key, capacity=capacity, rate=capacity / per_seconds)
        if not decision.allowed:
            raise TooManyRequests("too many attempts; try again later", retry_after=decision.retry_after)

    # ---- login, refresh, logout ---------------------------------------------------------------

    async def login(self, *, data: LoginRequest, ip: str, user_agent: str) -> TokenPair:
        # Throttled per name typed and, for a real account, per account as well: logging in
        # by username and by email must not double the guesses (API6). Unknown names get the
        # name key only, so their answers match those of real accounts.
        keys = [throttle.throttle_key(data.username)]
        now = self._clock.now()
        async with self._db() as session:
            user = await user_by_login(session, data.username)
            if user is not None:
                keys.append(throttle.account_key(user.id))
            for key in keys:
                await throttle.check(session, key, now=now)
        ok = await self._pw.verify(user.password_hash if user else None, data.password)
        async with self._db() as session:
            if user is not None:
                user = await session.get(UserRow, user.id)
            if not ok or user is None:
                await self._fail(session, keys, user, ip, user_agent, "bad_password")
                raise Unauthorized("invalid username or password", code="invalid_credentials")
            if not user.is_active:
                self._history(session, user.id, ip, user_agent, False, "inactive")
                await session.commit()
                raise Forbidden("this account is deactivated", code="account_inactive")
            if self._s.require_verified_email and not user.is_verified:
                raise Forbidden("verify your email address before logging in", code="email_not_verified")
            if user.totp_enabled:
                if not data.otp:
                    raise Unauthorized("a 2FA code is required", code="mfa_required")
                if not await self._check_second_factor(session, user, data.otp):
                    await self._fail(session, keys, user, ip, user_agent, "bad_2fa")
                    raise Unauthorized("invalid 2FA code", code="invalid_otp")
            for key in keys:
                await throttle.record_success(session, key)
            if self._pw.needs_rehash(user.password_hash):
                user.password_hash = await self._pw.hash(data.password)
            user.last_login_at = now
            self._history(session, user.id, ip, user_agent, True, "ok")
            pair = await self._open_session(session, user, ip=ip, user_agent=user_agent)
            await session.commit()
        await self._after_commit(user_id=user.id)
        return pair

    async def _fail(
        self, session: AsyncSession, keys: list[str], user: UserRow | None, ip: str, ua: str, reason: str
    ) -> None:
        for key in keys:
            await throttle.record_failure(session, key, now=self._clock.now(), settings=self._s)
        if user is not None:
            self._history(session, user.id, ip, ua, False, reason)
        await session.commit()

    def _history(
        self, session: AsyncSession, user_id: uuid.UUID, ip: str, ua: str, ok: bool, reason: str
    ) -> None:
        session.add(
            LoginEventRow(
                user_id=user_id, at=self._clock.now(), ip=ip, user_agent=ua or None, success=ok, reason=reason
            )
        )

    async def _check_second_factor(self, session: AsyncSession, user: UserRow, code: str) -> bool:
        if user.totp_secret and len(code) == 6 and code.isdigit():
            return self._accept_totp(user, code)
        row = (
            (
                await session.execute(
                    select(RecoveryCodeRow).where(
                        RecoveryCodeRow.user_id == user.id,
                        RecoveryCodeRow.code_hash == totp.hash_code(code),
                        RecoveryCodeRow.used_at.is_(None),
                    )
                )
            )
            .scalars()
            .first()
        )
        if row is None:
            return False
        row.used_at = self._clock.now()
        self._audit(session, "user.recovery_code_used", user_id=user.id)
        return True

    def _accept_totp(self, user: UserRow, code: str) -> bool:
        if not user.totp_secret:
            return False
        secret = self._box.decrypt(user.totp_secret)
        step = totp.matching_step(secret, code, at=self._clock.now(), last_step=user.totp_last_step)
        if step is None:
            return False
        user.totp_last_step = step
        return True

    async def _open_session(
        self, session: AsyncSession, user: UserRow, *, ip: str, user_agent: str
    ) -> TokenPair:
        now = self._clock.now()
        sid = uuid.uuid4()
        session.add(
            SessionRow(
                id=sid,
                user_id=user.id,
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(seconds=self._refresh_ttl),
                ip=ip,
                user_agent=user_agent or None,
            )
        )
        await session.flush()
        return self._issue(session, user, sid)

    def _issue(self, session: AsyncSession, user: UserRow, sid: uuid.UUID) -> TokenPair:
        refresh = secrets.token_urlsafe(32)
        session.add(RefreshTokenRow(token_hash=_digest(refresh), session_id=sid, issued_at=self._clock.now()))
        role = Role(user.role)
        access, _exp = self._tokens.issue_access(
            user_id=user.id,
            username=user.username,
            role=role,
            permissions=permissions_for(role),
            session_id=sid,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=self._tokens.access_ttl,
            refresh_expires_in=self._refresh_ttl,
        )

    async def refresh(self, *, refresh_token: str, ip: str, user_agent: str) -> TokenPair:
        now = self._clock.now()
        invalid = Unauthorized("refresh token is invalid or expired", code="invalid_refresh_token")
        async with self._db() as session:
            row = await session.get(RefreshTokenRow, _digest(refresh_token))
            if row is None:
                raise invalid
            sess = await session.get(SessionRow, row.session_id)
            if sess is None or sess.revoked_at is not None or sess.expires_at <= now:
                raise invalid
            claimed = await session.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.token_hash == row.token_hash, RefreshTokenRow.used_at.is_(None))
                .values(used_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                # A spent token came back: it was stolen or replayed. Kill the whole family.
                await revoke_sessions(session, [sess.id], at=now, reason="refresh_reuse")
                await self._outbox.add(
                    session,
                    UserSessionsRevoked(user_id=sess.user_id, session_ids=[sess.id], reason="refresh_reuse"),
                )
                self._audit(session, "user.refresh_reuse", user_id=sess.user_id, ip=ip)
                await session.commit()
                await self._after_commit(revoked=[sess.id])
                log.warning("users.refresh_reuse", session_id=str(sess.id))
                raise Unauthorized(
                    "refresh token reuse detected; the session was revoked", code="refresh_token_reused"
                )
            user = await self._user(session, sess.user_id)
            if not user.is_active:
                raise invalid
            sess.last_used_at = now
            sess.ip, sess.user_agent = ip, user_agent or None
            pair = self._issue(session, user, sess.id)
            await session.commit()
        return pair

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        async with self._db() as session:
            await revoke_sessions(session, [session_id], at=self._clock.now(), reason="logout")
            await self._outbox.add(
                session, UserSessionsRevoked(user_id=user_id, session_ids=[session_id], reason="logout")
            )
            await session.commit()
        await self._after_commit(revoked=[session_id])

    # ---- profile and settings -----------------------------------------------------------------

    async def get_user(self, *, user_id: uuid.UUID) -> UserRead:
        key = f"user:{user_id}"
        cached = await self._cache.get(key)
        if cached is not None:
            return UserRead.model_validate_json(cached)
        async with self._db() as session:
            user = _user_read(await self._user(session, user_id))
        if self._s.user_cache_seconds > 0:
            await self._cache.set(key, user.model_dump_json().encode(), ttl=self._s.user_cache_seconds)
        return user

    async def update_profile(self, *, user_id: uuid.UUID, data: ProfileUpdate) -> UserRead:
        changes = data.model_dump(exclude_unset=True)
        async with self._db() as session:
            user = await self._user(session, user_id)
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
            user.updated_at = self._clock.now()
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(
                    "this username is already taken", code="username_taken", field="username"
                ) from None
        await self._after_commit(user_id=user_id)
        return _user_read(user)

    async def get_settings(self, *, user_id: uuid.UUID) -> SettingsRead:
        async with self._db() as session:
            row = await session.get(SettingsRow, user_id)
            if row is None:
                raise NotFound("user not found", code="user_not_found")
            return _settings_read(row)

    async def update_settings(self, *, user_id: uuid.UUID, data: SettingsUpdate) -> SettingsRead:
        async with self._db() as session:
            row = await session.get(SettingsRow, user_id)
            if row is None:
                raise NotFound("user not found", code="user_not_found")
            for name, value in data.model_dump(exclude_unset=True).items():
                setattr(row, name, value)
            row.updated_at = self._clock.now()
            await session.commit()
            return _settings_read(row)

    # ---- passwords ----------------------------------------------------------------------------

    async def change_password(self, *, user_id: uuid.UUID, data: ChangePasswordRequest, ip: str) -> None:
        async with self._db() as session:
            user = await self._user(session, user_id)
            current_hash = user.password_hash
        if not await self._pw.verify(current_hash, data.current_password):
            raise Unauthorized("current password is wrong", code="invalid_credentials")
        new_hash = await self._pw.hash(data.new_password)
        async with self._db() as session:
            user = await self._user(session, user_id)
            user.password_hash = new_hash
            user.password_changed_at = user.updated_at = self._clock.now()
            revoked = await self._revoke_all(session, user_id, "password_changed")
            self._audit(session, "user.password_changed", user_id=user_id, ip=ip)
            mail.enqueue(
                session,
                mail.password_changed_message(to=user.email, username=user.username),
                now=self._clock.now(),
            )
            await session.commit()
        await self._after_commit(revoked=revoked, user_id=user_id)

    async def request_password_reset(self, *, email: str, ip: str) -> Accepted:
        answer = Accepted(detail="if an account has this email, a reset link is on its way")
        async with self._db() as session:
            user = await user_by_email(session, email)
            if user is None or not user.is_active:
                return answer
            recent = await session.scalar(
                select(func.count())
                .select_from(EmailTokenRow)
                .where(
                    EmailTokenRow.user_id == user.id,
                    EmailTokenRow.purpose == "reset",
                    EmailTokenRow.created_at > self._clock.now() - timedelta(hours=1),
                )
            )
            if (recent or 0) >= 5:
                return answer  # same answer; no more mail to this inbox this hour
            token = self._email_token(
                session, user.id, "reset", timedelta(minutes=self._s.reset_token_ttl_minutes)
            )
            link = f"{self._public_url}/reset-password?token={token}"
            mail.enqueue(
                session,
                mail.reset_message(
                    to=user.email, username=user.username, link=link, minutes=self._s.reset_token_ttl_minutes
                ),
                now=self._clock.now(),
            )
            self._audit(session, "user.password_reset_requested", user_id=user.id, ip=ip)
            await session.commit()
        await self._after_commit()
        return answer

    async def reset_password(self, *, data: PasswordResetConfirm, ip: str) -> None:
        new_hash = await self._pw.hash(data.new_password)
        async with self._db() as session:
            user_id = await self._use_email_token(session, data.token, "reset")
            user = await self._user(session, user_id)
            user.password_hash = new_hash
            user.password_changed_at = user.updated_at = self._clock.now()
            revoked = await self._revoke_all(session, user_id, "password_reset")
            for key in (
                throttle.throttle_key(user.email),
                throttle.throttle_key(user.username),
                throttle.account_key(user.id),
            ):
                await throttle.record_success(session, key)
            self._audit(session, "user.password_reset", user_id=user_id, ip=ip)
            await session.commit()
        await self._after_commit(revoked=revoked, user_id=user_id)

    # ---- 2FA ----------------------------------------------------------------------------------

    async def totp_enroll(self, *, user_id: uuid.UUID) -> TotpEnrollment:
        secret = totp.new_secret()
        async with self._db() as session:
            user = await self._user(session, user_id)
            if user.totp_enabled:
                raise Conflict("2FA is already enabled; disable it first", code="totp_enabled")
            user.totp_secret = self._box.encrypt(secret)
            user.totp_last_step = 0
            await session.commit()
            uri = totp.provisioning_uri(secret, account=user.email, issuer=self._s.totp_issuer)
        return TotpEnrollment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg_data_uri(uri))

    async def totp_confirm(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        await self._limit(f"totp:{user_id}", capacity=self._s.totp_max_attempts, per_seconds=300)
        async with self._db() as session:
            user = await self._user(session, user_id)
            if user.totp_enabled:
                raise Conflict("2FA is already enabled", code="totp_enabled")
            if not user.totp_secret:
                raise Conflict("start with POST /api/v1/users/2fa/enroll", code="totp_not_enrolled")
            if not self._accept_totp(user, code):
                await session.commit()
                raise Invalid("the code is wrong or was already used", code="invalid_otp", field="code")
            user.totp_enabled = True
            codes = await self._replace_recovery_codes(session, user_id)
            self._audit(session, "user.2fa_enabled", user_id=user_id)
            await session.commit()
        await self._after_commit(user_id=user_id)
        return RecoveryCodes(codes=codes)

    async def _replace_recovery_codes(self, session: AsyncSession, user_id: uuid.UUID) -> list[str]:
        from sqlalchemy import delete

        await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
        codes = totp.new_recovery_codes()
        session.add_all(RecoveryCodeRow(user_id=user_id, code_hash=totp.hash_code(c)) for c in codes)
        return codes

    async def totp_disable(self, *, user_id: uuid.UUID, data: TotpDisableRequest) -> None:
        await self._limit(f"totp:{user_id}", capacity=self._s.totp_max_attempts, per_seconds=300)
        async with self._db() as session:
            user = await self._user(session, user_id)
            stored_hash = user.password_hash
            if not user.totp_enabled:
                raise Conflict("2FA is not enabled", code="totp_not_enabled")
        if not await self._pw.verify(stored_hash, data.password):
            raise Unauthorized("password is wrong", code="invalid_credentials")
        async with self._db() as session:
            user = await self._user(session, user_id)
            if not await self._check_second_factor(session, user, data.code):
                await session.commit()
                raise Invalid("the code is wrong or was already used", code="invalid_otp", field="code")
            user.totp_enabled = False
            user.totp_secret = None
            from sqlalchemy import delete

            await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
            self._audit(session, "user.2fa_disabled", user_id=user_id)
            await session.commit()
        await self._after_commit(user_id=user_id)

    async def regenerate_recovery_codes(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        await self._limit(f"totp:{user_id}", capacity=self._s.totp_max_attempts, per_seconds=300)
        async with self._db() as session:
            user = await self._user(session, user_id)
            if not user.totp_enabled:
                raise Conflict("2FA is not enabled", code="totp_not_enabled")
            if not self._accept_totp(user, code):
                await session.commit()
                raise Invalid("the code is wrong or was already used", code="invalid_otp", field="code")
            codes = await self._replace_recovery_codes(session, user_id)
            self._audit(session, "user.recovery_codes_regenerated", user_id=user_id)
            await session.commit()
        return RecoveryCodes(codes=codes)

    # ---- sessions and history -----------------------------------------------------------------

    async def login_history(self, *, user_id: uuid.UUID, limit: int, offset: int) -> list[LoginEventRead]:
        async with self._db() as session:
            rows = (
                await session.execute(
                    select(LoginEventRow)
                    .where(LoginEventRow.user_id == user_id)
                    .order_by(LoginEventRow.at.desc(), LoginEventRow.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).scalars()
            return [
                LoginEventRead(at=r.at, ip=r.ip, user_agent=r.user_agent, success=r.success, reason=r.reason)
                for r in rows
            ]

    async def list_sessions(self, *, user_id: uuid.UUID, current: uuid.UUID | None) -> list[SessionRead]:
        now = self._clock.now()
        async with self._db() as session:
            rows = (
                await session.execute(
                    select(SessionRow)
                    .where(
                        SessionRow.user_id == user_id,
                        SessionRow.revoked_at.is_(None),
                        SessionRow.expires_at > now,
                    )
                    .order_by(SessionRow.last_used_at.desc())
                )
            ).scalars()
            return [
                SessionRead(
                    id=r.id,
                    created_at=r.created_at,
                    last_used_at=r.last_used_at,
                    expires_at=r.expires_at,
                    ip=r.ip,
                    user_agent=r.user_agent,
                    current=r.id == current,
                )
                for r in rows
            ]

    async def revoke_session(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        async with self._db() as session:
            row = await session.get(SessionRow, session_id)
            if row is None or row.user_id != user_id or row.revoked_at is not None:
                raise NotFound("session not found", code="session_not_found")
            await revoke_sessions(session, [session_id], at=self._clock.now(), reason="revoked_by_user")
            await self._outbox.add(
                session,
                UserSessionsRevoked(user_id=user_id, session_ids=[session_id], reason="revoked_by_user"),
            )
            await session.commit()
        await self._after_commit(revoked=[session_id])

    # ---- administration -----------------------------------------------------------------------

    async def list_users(
        self, *, limit: int, offset: int, q: str | None, role: Role | None, active: bool | None
    ) -> UserList:
        stmt = select(UserRow)
        if q:
            like = f"%{q.strip().lower()}%"
            stmt = stmt.where((UserRow.email_norm.like(like)) | (UserRow.username_norm.like(like)))
        if role is not None:
            stmt = stmt.where(UserRow.role == role.value)
        if active is not None:
            stmt = stmt.where(UserRow.is_active.is_(active))
        async with self._db() as session:
            total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            rows = await session.execute(
                stmt.order_by(UserRow.created_at, UserRow.id).limit(limit).offset(offset)
            )
            items = [_user_read(r) for r in rows.scalars()]
        return UserList(items=items, total=total, limit=limit, offset=offset)

    async def set_role(self, *, actor: uuid.UUID, user_id: uuid.UUID, role: Role) -> UserRead:
        async with self._db() as session:
            user = await self._user(session, user_id)
            if user_id == actor and role != Role.ADMIN:
                raise Conflict("admins cannot demote themselves", code="self_demotion")
            user.role = role.value
            user.updated_at = self._clock.now()
            # Tokens carry the role: end sessions so the new role applies at the next login.
            revoked = await self._revoke_all(session, user_id, "role_changed")
            await self._outbox.add(session, UserRoleChanged(user_id=user_id, role=role, changed_by=actor))
            self._audit(session, "admin.role_changed", user_id=user_id, actor_id=actor, role=role.value)
            await session.commit()
        await self._after_commit(revoked=revoked, user_id=user_id)
        return _user_read(user)

    async def set_active(self, *, actor: uuid.UUID, user_id: uuid.UUID, active: bool) -> UserRead:
        async with self._db() as session:
            user = await self._user(session, user_id)
            if user_id == actor and not active:
                raise Conflict("admins cannot deactivate themselves", code="self_deactivation")
            user.is_active = active
            user.updated_at = self._clock.now()
            revoked = [] if active else await self._revoke_all(session, user_id, "deactivated")
            await self._outbox.add(session, UserDeactivated(user_id=user_id, active=active, changed_by=actor))
            self._audit(session, "admin.activation_changed", user_id=user_id, actor_id=actor, active=active)
            await session.commit()
        await self._after_commit(revoked=revoked, user_id=user_id)
        return _user_read(user)
