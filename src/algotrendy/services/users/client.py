"""``UsersClient``: the ``UsersApi`` over HTTP, for processes that do not host the users service.

Same method names, keyword-only arguments and DTOs as ``UsersService``; errors come back as the
``core.errors`` class the server raised (from its RFC 9457 problem+json body), with ``code``,
``detail`` and, for 409/422, ``field`` kept. A transport failure or a 5xx is ``TemporaryError``.

What HTTP cannot carry:

- "the current user" is the bearer token's user: methods taking ``user_id`` (or ``actor``) refuse
  locally with ``Forbidden`` when it is not the token's ``sub``; ``logout`` likewise needs the
  token's own session. ``get_user`` of another user goes to the admin route.
- ``ip`` is what the server sees (the caller's address, or ``X-Forwarded-For`` from a trusted
  proxy); it is not sent. ``user_agent`` is sent as the ``User-Agent`` header.
- ``list_sessions(current=...)`` marks the session named by ``current``, as the service does,
  whatever session the token belongs to.

The token is read without verifying its signature only to learn ``sub`` and ``sid``; the
server verifies every request.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from algotrendy.core.auth import Role
from algotrendy.core.errors import (
    Forbidden,
)
from algotrendy.gateway.remote import RemoteApi
from algotrendy.services.users.interface import (
    Accepted,
    ChangePasswordRequest,
    LoginEventRead,
    LoginRequest,
    PasswordResetConfirm,
    ProfileUpdate,
    RecoveryCodes,
    SessionRead,
    SettingsRead,
    SettingsUpdate,
    TokenPair,
    TotpDisableRequest,
    TotpEnrollment,
    UserCreate,
    UserList,
    UserRead,
    UsersApi,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_USERS = "/api/v1/users"
_SESSIONS = TypeAdapter(list[SessionRead])
_HISTORY = TypeAdapter(list[LoginEventRead])


class UsersClient(RemoteApi):
    """``UsersApi`` over an ``httpx.AsyncClient`` (a real transport or ``httpx.ASGITransport``)."""

    service = "users"

    def with_token(self, token: str) -> UsersClient:
        """The same connection acting as the owner of ``token``."""
        return UsersClient(self._http, token=token)

    # ---- registration and verification ----------------------------------------------------------

    async def register(self, *, data: UserCreate, ip: str) -> UserRead:
        r = await self._send("POST", f"{_USERS}/register", json=self._body(data), auth=False)
        return self._model(r, UserRead)

    async def create_user(self, *, data: UserCreate, role: Role, verified: bool) -> UserRead:
        body = {**self._body(data), "role": role.value, "verified": verified}
        return self._model(await self._send("POST", _USERS, json=body), UserRead)

    async def verify_email(self, *, token: str) -> UserRead:
        r = await self._send("POST", f"{_USERS}/verify-email", json={"token": token}, auth=False)
        return self._model(r, UserRead)

    async def resend_verification(self, *, user_id: uuid.UUID) -> Accepted:
        self._own(user_id)
        return self._model(await self._send("POST", f"{_USERS}/verify-email/resend"), Accepted)

    # ---- login, refresh, logout -----------------------------------------------------------------

    async def login(self, *, data: LoginRequest, ip: str, user_agent: str) -> TokenPair:
        r = await self._send("POST", "/auth/login", json=self._body(data), auth=False, user_agent=user_agent)
        return self._model(r, TokenPair)

    async def refresh(self, *, refresh_token: str, ip: str, user_agent: str) -> TokenPair:
        r = await self._send(
            "POST", "/auth/refresh", json={"refresh_token": refresh_token}, auth=False, user_agent=user_agent
        )
        return self._model(r, TokenPair)

    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self._own(user_id)
        if self._sid is not None and session_id != self._sid:
            raise Forbidden(
                "logout ends the token's own session; use revoke_session for others", code="not_token_session"
            )
        await self._send("POST", "/auth/logout")

    # ---- profile and settings -------------------------------------------------------------------

    async def get_user(self, *, user_id: uuid.UUID) -> UserRead:
        path = "/auth/me" if user_id == self._sub else f"{_USERS}/{user_id}"
        return self._model(await self._send("GET", path), UserRead)

    async def update_profile(self, *, user_id: uuid.UUID, data: ProfileUpdate) -> UserRead:
        self._own(user_id)
        return self._model(await self._send("PUT", f"{_USERS}/profile", json=self._body(data)), UserRead)

    async def get_settings(self, *, user_id: uuid.UUID) -> SettingsRead:
        self._own(user_id)
        return self._model(await self._send("GET", f"{_USERS}/settings"), SettingsRead)

    async def update_settings(self, *, user_id: uuid.UUID, data: SettingsUpdate) -> SettingsRead:
        self._own(user_id)
        r = await self._send("PUT", f"{_USERS}/settings", json=self._body(data))
        return self._model(r, SettingsRead)

    # ---- passwords ------------------------------------------------------------------------------

    async def change_password(self, *, user_id: uuid.UUID, data: ChangePasswordRequest, ip: str) -> None:
        self._own(user_id)
        await self._send("POST", f"{_USERS}/change-password", json=self._body(data))

    async def request_password_reset(self, *, email: str, ip: str) -> Accepted:
        r = await self._send("POST", f"{_USERS}/reset-password", json={"email": email}, auth=False)
        return self._model(r, Accepted)

    async def reset_password(self, *, data: PasswordResetConfirm, ip: str) -> None:
        await self._send("POST", f"{_USERS}/reset-password/confirm", json=self._body(data), auth=False)

    # ---- 2FA ------------------------------------------------------------------------------------

    async def totp_enroll(self, *, user_id: uuid.UUID) -> TotpEnrollment:
        self._own(user_id)
        return self._model(await self._send("POST", f"{_USERS}/2fa/enroll"), TotpEnrollment)

    async def totp_confirm(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        self._own(user_id)
        r = await self._send("POST", f"{_USERS}/2fa/verify", json={"code": code})
        return self._model(r, RecoveryCodes)

    async def totp_disable(self, *, user_id: uuid.UUID, data: TotpDisableRequest) -> None:
        self._own(user_id)
        await self._send("POST", f"{_USERS}/2fa/disable", json=self._body(data))

    async def regenerate_recovery_codes(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        self._own(user_id)
        r = await self._send("POST", f"{_USERS}/2fa/recovery-codes", json={"code": code})
        return self._model(r, RecoveryCodes)

    # ---- sessions and history -------------------------------------------------------------------

    async def login_history(self, *, user_id: uuid.UUID, limit: int, offset: int) -> list[LoginEventRead]:
        self._own(user_id)
        r = await self._send("GET", f"{_USERS}/login-history", params={"limit": limit, "offset": offset})
        return self._parse(r, _HISTORY)

    async def list_sessions(self, *, user_id: uuid.UUID, current: uuid.UUID | None) -> list[SessionRead]:
        self._own(user_id)
        sessions = self._parse(await self._send("GET", f"{_USERS}/sessions"), _SESSIONS)
        return [s.model_copy(update={"current": s.id == current}) for s in sessions]

    async def revoke_session(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self._own(user_id)
        await self._send("DELETE", f"{_USERS}/sessions/{session_id}")

    # ---- administration -------------------------------------------------------------------------

    async def list_users(
        self, *, limit: int, offset: int, q: str | None, role: Role | None, active: bool | None
    ) -> UserList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if q is not None:
            params["q"] = q
        if role is not None:
            params["role"] = role.value
        if active is not None:
            params["active"] = "true" if active else "false"
        return self._model(await self._send("GET", _USERS, params=params), UserList)

    async def set_role(self, *, actor: uuid.UUID, user_id: uuid.UUID, role: Role) -> UserRead:
        self._own(actor)
        r = await self._send("PUT", f"{_USERS}/{user_id}/role", json={"role": role.value})
        return self._model(r, UserRead)

    async def set_active(self, *, actor: uuid.UUID, user_id: uuid.UUID, active: bool) -> UserRead:
        self._own(actor)
        action = "activate" if active else "deactivate"
        return self._model(await self._send("POST", f"{_USERS}/{user_id}/{action}"), UserRead)


if TYPE_CHECKING:  # mypy proves the client offers exactly the Protocol

    def _conforms(client: UsersClient) -> UsersApi:
        return client
