"""HTTP front door of the users service: ``/auth/*`` and ``/api/v1/users/*``. Thin: auth
dependency -> service call -> DTO."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from algotrendy.core.auth import Role
from algotrendy.core.errors import AlgoTrendyError
from algotrendy.gateway import metrics
from algotrendy.gateway.auth import Admin, AuthRateLimit, CurrentUser, client_ip, user_agent
from algotrendy.gateway.problems import PROBLEM_RESPONSES
from algotrendy.services.users.interface import (
    Accepted,
    AdminUserCreate,
    ChangePasswordRequest,
    Jwks,
    LoginEventRead,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileUpdate,
    RecoveryCodes,
    RefreshRequest,
    RoleUpdate,
    SessionRead,
    SettingsRead,
    SettingsUpdate,
    TokenPair,
    TotpCode,
    TotpDisableRequest,
    TotpEnrollment,
    UserCreate,
    UserList,
    UserRead,
    UsersApi,
    VerifyEmailRequest,
)


async def users_api(request: Request) -> UsersApi:
    api: UsersApi = request.app.state.services["users"]
    return api


Users = Annotated[UsersApi, Depends(users_api)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]

auth_router = APIRouter(prefix="/auth", tags=["auth"], responses=PROBLEM_RESPONSES)
router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=PROBLEM_RESPONSES)


# ---- /auth ----------------------------------------------------------------------------------


@auth_router.post("/login", dependencies=[AuthRateLimit])
async def login(body: LoginRequest, request: Request, users: Users) -> TokenPair:
    """Exchange username (or email), password and, with 2FA on, a code for a token pair."""
    try:
        pair = await users.login(data=body, ip=client_ip(request), user_agent=user_agent(request))
    except AlgoTrendyError as exc:
        metrics.LOGINS.labels(exc.code).inc()
        raise
    metrics.LOGINS.labels("ok").inc()
    return pair


@auth_router.post("/refresh", dependencies=[AuthRateLimit])
async def refresh(body: RefreshRequest, request: Request, users: Users) -> TokenPair:
    """Rotate a refresh token: the old one is spent; reusing a spent one revokes the session."""
    return await users.refresh(
        refresh_token=body.refresh_token, ip=client_ip(request), user_agent=user_agent(request)
    )


@auth_router.post("/logout", status_code=204)
async def logout(user: CurrentUser, users: Users) -> Response:
    """End this session: its access and refresh tokens stop working everywhere."""
    await users.logout(user_id=user.user_id, session_id=user.session_id)
    return Response(status_code=204)


@auth_router.get("/me")
async def me(user: CurrentUser, users: Users) -> UserRead:
    return await users.get_user(user_id=user.user_id)


@auth_router.get("/jwks.json")
async def jwks(request: Request) -> Jwks:
    """Public keys that verify access tokens (for split-mode services)."""
    keys: dict[str, Any] = request.app.state.authenticator.codec.keys.jwks()
    return Jwks(keys=keys["keys"])


# ---- /api/v1/users: self-service --------------------------------------------------------------


@router.post("/register", status_code=201, dependencies=[AuthRateLimit])
async def register(body: UserCreate, request: Request, users: Users) -> UserRead:
    """Create an account; a verification email goes out."""
    user = await users.register(data=body, ip=client_ip(request))
    metrics.REGISTRATIONS.inc()
    return user


@router.post("/verify-email", dependencies=[AuthRateLimit])
async def verify_email(body: VerifyEmailRequest, users: Users) -> UserRead:
    return await users.verify_email(token=body.token)


@router.get("/verify-email", dependencies=[AuthRateLimit])
async def verify_email_link(
    users: Users, token: Annotated[str, Query(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
) -> UserRead:
    """The link in the verification email."""
    return await users.verify_email(token=token)


@router.post("/verify-email/resend", status_code=202)
async def resend_verification(user: CurrentUser, users: Users) -> Accepted:
    return await users.resend_verification(user_id=user.user_id)


@router.get("/profile")
async def get_profile(user: CurrentUser, users: Users) -> UserRead:
    return await users.get_user(user_id=user.user_id)


@router.put("/profile")
async def update_profile(body: ProfileUpdate, user: CurrentUser, users: Users) -> UserRead:
    """Change username and names; fields left out stay as they are."""
    return await users.update_profile(user_id=user.user_id, data=body)


@router.get("/settings")
async def get_settings(user: CurrentUser, users: Users) -> SettingsRead:
    return await users.get_settings(user_id=user.user_id)


@router.put("/settings")
async def update_settings(body: SettingsUpdate, user: CurrentUser, users: Users) -> SettingsRead:
    return await users.update_settings(user_id=user.user_id, data=body)


@router.post("/change-password", status_code=204)
async def change_password(
    body: ChangePasswordRequest, request: Request, user: CurrentUser, users: Users
) -> Response:
    """Change the password; every session (this one too) is signed out."""
    await users.change_password(user_id=user.user_id, data=body, ip=client_ip(request))
    return Response(status_code=204)


@router.post("/reset-password", status_code=202, dependencies=[AuthRateLimit])
async def request_reset(body: PasswordResetRequest, request: Request, users: Users) -> Accepted:
    """Email a single-use reset link; the answer is the same whether the email is known or not."""
    return await users.request_password_reset(email=str(body.email), ip=client_ip(request))


@router.post("/reset-password/confirm", status_code=204, dependencies=[AuthRateLimit])
async def confirm_reset(body: PasswordResetConfirm, request: Request, users: Users) -> Response:
    await users.reset_password(data=body, ip=client_ip(request))
    return Response(status_code=204)


@router.post("/2fa/enroll")
async def totp_enroll(user: CurrentUser, users: Users) -> TotpEnrollment:
    """Start TOTP enrollment: scan the QR code, then confirm with a code."""
    return await users.totp_enroll(user_id=user.user_id)


@router.post("/2fa/verify")
async def totp_verify(body: TotpCode, user: CurrentUser, users: Users) -> RecoveryCodes:
    """Confirm enrollment with a current code; 2FA is on from now and recovery codes are shown once."""
    return await users.totp_confirm(user_id=user.user_id, code=body.code)


@router.post("/2fa/disable", status_code=204)
async def totp_disable(body: TotpDisableRequest, user: CurrentUser, users: Users) -> Response:
    await users.totp_disable(user_id=user.user_id, data=body)
    return Response(status_code=204)


@router.post("/2fa/recovery-codes")
async def recovery_codes(body: TotpCode, user: CurrentUser, users: Users) -> RecoveryCodes:
    return await users.regenerate_recovery_codes(user_id=user.user_id, code=body.code)


@router.get("/login-history")
async def login_history(
    user: CurrentUser, users: Users, limit: Limit = 50, offset: Offset = 0
) -> list[LoginEventRead]:
    return await users.login_history(user_id=user.user_id, limit=limit, offset=offset)


@router.get("/sessions")
async def sessions(user: CurrentUser, users: Users) -> list[SessionRead]:
    return await users.list_sessions(user_id=user.user_id, current=user.session_id)


@router.delete("/sessions/{session_id:uuid}", status_code=204)
async def revoke_session(session_id: uuid.UUID, user: CurrentUser, users: Users) -> Response:
    await users.revoke_session(user_id=user.user_id, session_id=session_id)
    return Response(status_code=204)


# ---- /api/v1/users: administration (manage_users) -----------------------------------------------


@router.get("")
async def list_users(
    admin: Admin,
    users: Users,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Annotated[str | None, Query(max_length=100)] = None,
    role: Role | None = None,
    active: bool | None = None,
) -> UserList:
    return await users.list_users(limit=limit, offset=offset, q=q, role=role, active=active)


@router.post("", status_code=201)
async def create_user(body: AdminUserCreate, admin: Admin, users: Users) -> UserRead:
    """Create an account with a chosen role (administrators only)."""
    data = UserCreate(**body.model_dump(exclude={"role", "verified"}))
    return await users.create_user(data=data, role=body.role, verified=body.verified)


@router.get("/{user_id:uuid}")
async def get_user(user_id: uuid.UUID, admin: Admin, users: Users) -> UserRead:
    return await users.get_user(user_id=user_id)


@router.put("/{user_id:uuid}/role")
async def set_role(user_id: uuid.UUID, body: RoleUpdate, admin: Admin, users: Users) -> UserRead:
    return await users.set_role(actor=admin.user_id, user_id=user_id, role=body.role)


@router.post("/{user_id:uuid}/deactivate")
async def deactivate(user_id: uuid.UUID, admin: Admin, users: Users) -> UserRead:
    return await users.set_active(actor=admin.user_id, user_id=user_id, active=False)


@router.post("/{user_id:uuid}/activate")
async def activate(user_id: uuid.UUID, admin: Admin, users: Users) -> UserRead:
    return await users.set_active(actor=admin.user_id, user_id=user_id, active=True)
