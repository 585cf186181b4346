"""UsersService: registration, verification, login (2FA, lockout), token rotation, profile,
settings, password flows, sessions and administration.

Every state change commits together with its outbox event and queued mail; session
revocations are pushed to the shared revocation list right after commit so every process
refuses the session's access tokens at once.

This class is the ``UsersApi`` the router and client call; it delegates to the parts next to
it: ``accounts.Accounts`` (registration, verification, profile, settings, passwords),
``authentication.Authentication`` (login, tokens, logout, sessions and history),
``twofactor.TwoFactor`` (TOTP and recovery codes) and ``admin.Administration``. They share one
``context.Context`` (dependencies and per-transaction helpers).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from algotrendy.core.auth import Role
from algotrendy.core.clock import Clock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.ports import Cache, RateLimiter
from algotrendy.db.outbox import Outbox
from algotrendy.services.users import mail
from algotrendy.services.users.accounts import Accounts
from algotrendy.services.users.admin import Administration
from algotrendy.services.users.authentication import Authentication
from algotrendy.services.users.context import Context
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
    UserList,
    UserRead,
)
from algotrendy.services.users.passwords import Passwords
from algotrendy.services.users.settings import UsersSettings
from algotrendy.services.users.twofactor import TwoFactor


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
        ctx = Context(
            sessions=sessions,
            settings=settings,
            passwords=passwords,
            tokens=tokens,
            refresh_ttl=refresh_ttl,
            revoker=revoker,
            outbox=outbox,
            secret_box=secret_box,
            cache=cache,
            limiter=limiter,
            clock=clock,
            public_url=public_url,
            mail_worker=mail_worker,
        )
        self._accounts = Accounts(ctx)
        self._2fa = TwoFactor(ctx)
        self._auth = Authentication(ctx, self._2fa)
        self._admin = Administration(ctx)

    async def restore_revocations(self) -> int:
        """Reload recent revocations into the (possibly empty, in-memory) revocation list."""
        return await self._auth.restore_revocations()

    # ---- registration and verification --------------------------------------------------------

    async def register(self, *, data: UserCreate, ip: str) -> UserRead:
        return await self._accounts.register(data=data, ip=ip)

    async def create_user(self, *, data: UserCreate, role: Role, verified: bool) -> UserRead:
        return await self._accounts.create_user(data=data, role=role, verified=verified)

    async def verify_email(self, *, token: str) -> UserRead:
        return await self._accounts.verify_email(token=token)

    async def resend_verification(self, *, user_id: uuid.UUID) -> Accepted:
        return await self._accounts.resend_verification(user_id=user_id)

    # ---- login, refresh, logout ---------------------------------------------------------------

    async def login(self, *, data: LoginRequest, ip: str, user_agent: str) -> TokenPair:
        return await self._auth.login(data=data, ip=ip, user_agent=user_agent)

    async def refresh(self, *, refresh_token: str, ip: str, user_agent: str) -> TokenPair:
        return await self._auth.refresh(refresh_token=refresh_token, ip=ip, user_agent=user_agent)

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        await self._auth.logout(user_id=user_id, session_id=session_id)

    # ---- profile and settings -----------------------------------------------------------------

    async def get_user(self, *, user_id: uuid.UUID) -> UserRead:
        return await self._accounts.get_user(user_id=user_id)

    async def update_profile(self, *, user_id: uuid.UUID, data: ProfileUpdate) -> UserRead:
        return await self._accounts.update_profile(user_id=user_id, data=data)

    async def get_settings(self, *, user_id: uuid.UUID) -> SettingsRead:
        return await self._accounts.get_settings(user_id=user_id)

    async def update_settings(self, *, user_id: uuid.UUID, data: SettingsUpdate) -> SettingsRead:
        return await self._accounts.update_settings(user_id=user_id, data=data)

    # ---- passwords ----------------------------------------------------------------------------

    async def change_password(self, *, user_id: uuid.UUID, data: ChangePasswordRequest, ip: str) -> None:
        await self._accounts.change_password(user_id=user_id, data=data, ip=ip)

    async def request_password_reset(self, *, email: str, ip: str) -> Accepted:
        return await self._accounts.request_password_reset(email=email, ip=ip)

    async def reset_password(self, *, data: PasswordResetConfirm, ip: str) -> None:
        await self._accounts.reset_password(data=data, ip=ip)

    # ---- 2FA ----------------------------------------------------------------------------------

    async def totp_enroll(self, *, user_id: uuid.UUID) -> TotpEnrollment:
        return await self._2fa.totp_enroll(user_id=user_id)

    async def totp_confirm(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        return await self._2fa.totp_confirm(user_id=user_id, code=code)

    async def totp_disable(self, *, user_id: uuid.UUID, data: TotpDisableRequest) -> None:
        await self._2fa.totp_disable(user_id=user_id, data=data)

    async def regenerate_recovery_codes(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        return await self._2fa.regenerate_recovery_codes(user_id=user_id, code=code)

    # ---- sessions and history -----------------------------------------------------------------

    async def login_history(self, *, user_id: uuid.UUID, limit: int, offset: int) -> list[LoginEventRead]:
        return await self._auth.login_history(user_id=user_id, limit=limit, offset=offset)

    async def list_sessions(self, *, user_id: uuid.UUID, current: uuid.UUID | None) -> list[SessionRead]:
        return await self._auth.list_sessions(user_id=user_id, current=current)

    async def revoke_session(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        await self._auth.revoke_session(user_id=user_id, session_id=session_id)

    # ---- administration -----------------------------------------------------------------------

    async def list_users(
        self, *, limit: int, offset: int, q: str | None, role: Role | None, active: bool | None
    ) -> UserList:
        return await self._admin.list_users(limit=limit, offset=offset, q=q, role=role, active=active)

    async def set_role(self, *, actor: uuid.UUID, user_id: uuid.UUID, role: Role) -> UserRead:
        return await self._admin.set_role(actor=actor, user_id=user_id, role=role)

    async def set_active(self, *, actor: uuid.UUID, user_id: uuid.UUID, active: bool) -> UserRead:
        return await self._admin.set_active(actor=actor, user_id=user_id, active=active)
