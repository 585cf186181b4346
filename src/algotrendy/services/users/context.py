"""What the parts of ``UsersService`` share: its dependencies and the helpers of one transaction
(load a user, audit, one-use email tokens, revoke a user's sessions, rate limits) and of the moment
after commit (push revocations, drop the cached user, wake the mail worker)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.clock import Clock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import Invalid, NotFound, TooManyRequests
from algotrendy.core.ports import Cache, RateLimiter
from algotrendy.db.outbox import Outbox
from algotrendy.services.users import mail
from algotrendy.services.users.interface import SessionRevoker, TokenIssuer, UserSessionsRevoked
from algotrendy.services.users.passwords import Passwords
from algotrendy.services.users.settings import UsersSettings
from algotrendy.services.users.store import (
    AuditRow,
    EmailTokenRow,
    UserRow,
    active_session_ids,
    revoke_sessions,
)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Context:
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
        self.db = sessions
        self.s = settings
        self.pw = passwords
        self.tokens = tokens
        self.refresh_ttl = refresh_ttl
        self.revoker = revoker
        self.outbox = outbox
        self.box = secret_box
        self.cache = cache
        self.limiter = limiter
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.mail = mail_worker

    async def user(self, session: AsyncSession, user_id: uuid.UUID) -> UserRow:
        row = await session.get(UserRow, user_id)
        if row is None:
            raise NotFound("user not found", code="user_not_found")
        return row

    def audit(
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
                at=self.clock.now(), actor_id=actor_id, user_id=user_id, action=action, ip=ip, detail=detail
            )
        )

    def email_token(self, session: AsyncSession, user_id: uuid.UUID, purpose: str, ttl: timedelta) -> str:
        token = secrets.token_urlsafe(32)  # 256 bits
        now = self.clock.now()
        session.add(
            EmailTokenRow(
                token_hash=digest(token),
                user_id=user_id,
                purpose=purpose,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return token

    async def use_email_token(self, session: AsyncSession, token: str, purpose: str) -> uuid.UUID:
        now = self.clock.now()
        result = await session.execute(
            update(EmailTokenRow)
            .where(
                EmailTokenRow.token_hash == digest(token),
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

    async def after_commit(
        self, revoked: list[uuid.UUID] | None = None, user_id: uuid.UUID | None = None
    ) -> None:
        if revoked:
            await self.revoker.revoke(revoked)
        if user_id is not None:
            await self.cache.delete(f"user:{user_id}")
        if self.mail is not None:
            self.mail.wake()

    async def revoke(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        ids: list[uuid.UUID],
        reason: str,
        *,
        at: datetime | None = None,
    ) -> None:
        """Revoke these sessions of the user, with the ``UserSessionsRevoked`` event (none if empty)."""
        await revoke_sessions(session, ids, at=at or self.clock.now(), reason=reason)
        if ids:
            await self.outbox.add(
                session, UserSessionsRevoked(user_id=user_id, session_ids=ids, reason=reason)
            )

    async def revoke_all(
        self, session: AsyncSession, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        ids = [s for s in await active_session_ids(session, user_id) if s != keep]
        await self.revoke(session, user_id, ids, reason)
        return ids

    async def limit(self, key: str, *, capacity: float, per_seconds: float) -> None:
        decision = await self.limiter.hit(key, capacity=capacity, rate=capacity / per_seconds)
        if not decision.allowed:
            raise TooManyRequests("too many attempts; try again later", retry_after=decision.retry_after)
