"""Authentication and login sessions: login (throttling, lockout, 2FA, history), access and
refresh tokens (a refresh token is used once; a spent one coming back revokes its session),
logout, the user's list of sessions and login history, and reloading recent revocations."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.auth import Role, permissions_for
from algotrendy.core.errors import Forbidden, NotFound, Unauthorized
from algotrendy.services.users import throttle
from algotrendy.services.users.context import Context, digest
from algotrendy.services.users.interface import LoginEventRead, LoginRequest, SessionRead, TokenPair
from algotrendy.services.users.store import (
    LoginEventRow,
    RefreshTokenRow,
    SessionRow,
    UserRow,
    recently_revoked,
    user_by_login,
)
from algotrendy.services.users.twofactor import TwoFactor

log = structlog.get_logger(__name__)


class Authentication:
    def __init__(self, ctx: Context, two_factor: TwoFactor) -> None:
        self._c = ctx
        self._2fa = two_factor

    async def restore_revocations(self) -> int:
        """Reload recent revocations into the (possibly empty, in-memory) revocation list."""
        c = self._c
        since = c.clock.now() - timedelta(seconds=c.tokens.access_ttl + 60)
        async with c.db() as session:
            ids = await recently_revoked(session, since)
        await c.revoker.revoke(ids)
        return len(ids)

    # ---- login, refresh, logout ---------------------------------------------------------------

    async def login(self, *, data: LoginRequest, ip: str, user_agent: str) -> TokenPair:
        c = self._c
        # Throttled per name typed and, for a real account, per account as well: logging in
        # by username and by email must not double the guesses (API6). Unknown names get the
        # name key only, so their answers match those of real accounts.
        keys = [throttle.throttle_key(data.username)]
        now = c.clock.now()
        async with c.db() as session:
            user = await user_by_login(session, data.username)
            if user is not None:
                keys.append(throttle.account_key(user.id))
            for key in keys:
                await throttle.check(session, key, now=now)
        ok = await c.pw.verify(user.password_hash if user else None, data.password)
        async with c.db() as session:
            if user is not None:
                user = await session.get(UserRow, user.id)
            if not ok or user is None:
                await self._fail(session, keys, user, ip, user_agent, "bad_password")
                raise Unauthorized("invalid username or password", code="invalid_credentials")
            if not user.is_active:
                self._history(session, user.id, ip, user_agent, False, "inactive")
                await session.commit()
                raise Forbidden("this account is deactivated", code="account_inactive")
            if c.s.require_verified_email and not user.is_verified:
                raise Forbidden("verify your email address before logging in", code="email_not_verified")
            if user.totp_enabled:
                if not data.otp:
                    raise Unauthorized("a 2FA code is required", code="mfa_required")
                if not await self._2fa.check_second_factor(session, user, data.otp):
                    await self._fail(session, keys, user, ip, user_agent, "bad_2fa")
                    raise Unauthorized("invalid 2FA code", code="invalid_otp")
            for key in keys:
                await throttle.record_success(session, key)
            if c.pw.needs_rehash(user.password_hash):
                user.password_hash = await c.pw.hash(data.password)
            user.last_login_at = now
            self._history(session, user.id, ip, user_agent, True, "ok")
            pair = await self._open_session(session, user, ip=ip, user_agent=user_agent)
            await session.commit()
        await c.after_commit(user_id=user.id)
        return pair

    async def _fail(
        self, session: AsyncSession, keys: list[str], user: UserRow | None, ip: str, ua: str, reason: str
    ) -> None:
        for key in keys:
            await throttle.record_failure(session, key, now=self._c.clock.now(), settings=self._c.s)
        if user is not None:
            self._history(session, user.id, ip, ua, False, reason)
        await session.commit()

    def _history(
        self, session: AsyncSession, user_id: uuid.UUID, ip: str, ua: str, ok: bool, reason: str
    ) -> None:
        session.add(
            LoginEventRow(
                user_id=user_id,
                at=self._c.clock.now(),
                ip=ip,
                user_agent=ua or None,
                success=ok,
                reason=reason,
            )
        )

    async def _open_session(
        self, session: AsyncSession, user: UserRow, *, ip: str, user_agent: str
    ) -> TokenPair:
        now = self._c.clock.now()
        sid = uuid.uuid4()
        session.add(
            SessionRow(
                id=sid,
                user_id=user.id,
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(seconds=self._c.refresh_ttl),
                ip=ip,
                user_agent=user_agent or None,
            )
        )
        await session.flush()
        return self._issue(session, user, sid)

    def _issue(self, session: AsyncSession, user: UserRow, sid: uuid.UUID) -> TokenPair:
        c = self._c
        refresh = secrets.token_urlsafe(32)
        session.add(RefreshTokenRow(token_hash=digest(refresh), session_id=sid, issued_at=c.clock.now()))
        role = Role(user.role)
        access, _exp = c.tokens.issue_access(
            user_id=user.id,
            username=user.username,
            role=role,
            permissions=permissions_for(role),
            session_id=sid,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=c.tokens.access_ttl,
            refresh_expires_in=c.refresh_ttl,
        )

    async def refresh(self, *, refresh_token: str, ip: str, user_agent: str) -> TokenPair:
        c = self._c
        now = c.clock.now()
        invalid = Unauthorized("refresh token is invalid or expired", code="invalid_refresh_token")
        async with c.db() as session:
            row = await session.get(RefreshTokenRow, digest(refresh_token))
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
                await c.revoke(session, sess.user_id, [sess.id], "refresh_reuse", at=now)
                c.audit(session, "user.refresh_reuse", user_id=sess.user_id, ip=ip)
                await session.commit()
                await c.after_commit(revoked=[sess.id])
                log.warning("users.refresh_reuse", session_id=str(sess.id))
                raise Unauthorized(
                    "refresh token reuse detected; the session was revoked", code="refresh_token_reused"
                )
            user = await c.user(session, sess.user_id)
            if not user.is_active:
                raise invalid
            sess.last_used_at = now
            sess.ip, sess.user_agent = ip, user_agent or None
            pair = self._issue(session, user, sess.id)
            await session.commit()
        return pair

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        async with self._c.db() as session:
            await self._c.revoke(session, user_id, [session_id], "logout")
            await session.commit()
        await self._c.after_commit(revoked=[session_id])

    # ---- the user's sessions and history ------------------------------------------------------

    async def login_history(self, *, user_id: uuid.UUID, limit: int, offset: int) -> list[LoginEventRead]:
        async with self._c.db() as session:
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
        now = self._c.clock.now()
        async with self._c.db() as session:
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
        async with self._c.db() as session:
            row = await session.get(SessionRow, session_id)
            if row is None or row.user_id != user_id or row.revoked_at is not None:
                raise NotFound("session not found", code="session_not_found")
            await self._c.revoke(session, user_id, [session_id], "revoked_by_user")
            await session.commit()
        await self._c.after_commit(revoked=[session_id])
