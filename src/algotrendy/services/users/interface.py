"""What other services and front doors may use of the users service: the API, DTOs, events."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from algotrendy.core.auth import Permission, Role
from algotrendy.core.events import Event

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
Password = Annotated[str, StringConstraints(min_length=10, max_length=128)]
Name = Annotated[str, StringConstraints(max_length=100, strip_whitespace=True)]
OtpCode = Annotated[str, StringConstraints(min_length=6, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
OpaqueToken = Annotated[str, StringConstraints(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class _In(BaseModel):
    """Request bodies refuse unknown fields: a client cannot smuggle in ``role`` (API3)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def _schema_without_null(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """OpenAPI: fields in ``_not_null`` are optional but not nullable."""
    not_null: frozenset[str] = getattr(model, "_not_null", frozenset())
    if isinstance(not_null, frozenset):
        for name, prop in schema.get("properties", {}).items():
            variants = prop.get("anyOf")
            if name not in not_null or not variants:
                continue
            rest = [v for v in variants if v.get("type") != "null"]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
            if prop.get("default", "") is None:
                del prop["default"]


class _Patch(BaseModel):
    """A partial update: a field left out stays as it is; those in ``_not_null`` refuse null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_schema_without_null)
    _not_null: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name in cls._not_null:
            raise ValueError("may be left out, but not set to null")
        return value


# ---- accounts -------------------------------------------------------------------------------


class UserCreate(_In):
    email: EmailStr
    username: Username
    password: Password
    first_name: Name | None = None
    last_name: Name | None = None


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    username: str
    first_name: str | None
    last_name: str | None
    role: Role
    permissions: list[Permission]
    is_active: bool
    is_verified: bool
    totp_enabled: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class ProfileUpdate(_Patch):
    """Fields left out stay as they are; names may be cleared with null, the username may not."""

    _not_null: ClassVar[frozenset[str]] = frozenset({"username"})

    username: Username | None = None
    first_name: Name | None = None
    last_name: Name | None = None


class SettingsRead(BaseModel):
    timezone: str
    language: str
    currency: str
    notifications_enabled: bool
    email_notifications: bool
    telegram_notifications: bool
    updated_at: datetime


class SettingsUpdate(_Patch):
    """Fields left out stay as they are; none may be set to null."""

    _not_null: ClassVar[frozenset[str]] = frozenset(
        {
            "timezone",
            "language",
            "currency",
            "notifications_enabled",
            "email_notifications",
            "telegram_notifications",
        }
    )

    timezone: str | None = Field(None, max_length=64, description="IANA zone, e.g. Europe/Berlin")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    notifications_enabled: bool | None = None
    email_notifications: bool | None = None
    telegram_notifications: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


# ---- authentication -------------------------------------------------------------------------


class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=254, description="Username or email")
    password: str = Field(min_length=1, max_length=128)
    otp: OtpCode | None = Field(None, description="TOTP code or recovery code when 2FA is on")


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_expires_in: int


class RefreshRequest(_In):
    refresh_token: OpaqueToken


class ChangePasswordRequest(_In):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: Password


class PasswordResetRequest(_In):
    email: EmailStr


class PasswordResetConfirm(_In):
    token: OpaqueToken
    new_password: Password


class VerifyEmailRequest(_In):
    token: OpaqueToken


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


# ---- 2FA, sessions, history ------------------------------------------------------------------


class TotpEnrollment(BaseModel):
    secret: str = Field(description="Base32 secret, shown once; add it to an authenticator app")
    otpauth_uri: str
    qr_svg: str = Field(description="QR code of the otpauth URI as an SVG data URI")


class TotpCode(_In):
    code: OtpCode


class TotpDisableRequest(_In):
    password: str = Field(min_length=1, max_length=128)
    code: OtpCode


class RecoveryCodes(BaseModel):
    codes: list[str] = Field(description="Single-use codes, shown once")


class SessionRead(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class LoginEventRead(BaseModel):
    at: datetime
    ip: str | None
    user_agent: str | None
    success: bool
    reason: str


class AdminUserCreate(UserCreate):
    role: Role = Role.TRADER
    verified: bool = Field(False, description="Mark the email as verified (no verification mail)")


class RoleUpdate(_In):
    role: Role


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


# ---- events ---------------------------------------------------------------------------------


class UserRegistered(Event):
    topic = "user.registered"
    user_id: uuid.UUID
    username: str
    email: str
    role: Role


class UserEmailVerified(Event):
    topic = "user.email_verified"
    user_id: uuid.UUID


class UserSessionsRevoked(Event):
    topic = "user.sessions_revoked"
    user_id: uuid.UUID
    session_ids: list[uuid.UUID]
    reason: str


class UserRoleChanged(Event):
    topic = "user.role_changed"
    user_id: uuid.UUID
    role: Role
    changed_by: uuid.UUID | None


class UserDeactivated(Event):
    topic = "user.deactivated"
    user_id: uuid.UUID
    active: bool
    changed_by: uuid.UUID | None


# ---- ports the service needs, and the API it offers -------------------------------------------


class TokenIssuer(Protocol):
    access_ttl: int

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        username: str,
        role: Role,
        permissions: frozenset[Permission],
        session_id: uuid.UUID,
    ) -> tuple[str, datetime]: ...


class SessionRevoker(Protocol):
    async def revoke(self, session_ids: Iterable[uuid.UUID]) -> None: ...


class UsersApi(Protocol):
    async def register(self, *, data: UserCreate, ip: str) -> UserRead: ...
    async def create_user(self, *, data: UserCreate, role: Role, verified: bool) -> UserRead: ...
    async def verify_email(self, *, token: str) -> UserRead: ...
    async def resend_verification(self, *, user_id: uuid.UUID) -> Accepted: ...
    async def login(self, *, data: LoginRequest, ip: str, user_agent: str) -> TokenPair: ...
    async def refresh(self, *, refresh_token: str, ip: str, user_agent: str) -> TokenPair: ...
    async def logout(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None: ...
    async def get_user(self, *, user_id: uuid.UUID) -> UserRead: ...
    async def update_profile(self, *, user_id: uuid.UUID, data: ProfileUpdate) -> UserRead: ...
    async def get_settings(self, *, user_id: uuid.UUID) -> SettingsRead: ...
    async def update_settings(self, *, user_id: uuid.UUID, data: SettingsUpdate) -> SettingsRead: ...
    async def change_password(self, *, user_id: uuid.UUID, data: ChangePasswordRequest, ip: str) -> None: ...
    async def request_password_reset(self, *, email: str, ip: str) -> Accepted: ...
    async def reset_password(self, *, data: PasswordResetConfirm, ip: str) -> None: ...
    async def totp_enroll(self, *, user_id: uuid.UUID) -> TotpEnrollment: ...
    async def totp_confirm(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes: ...
    async def totp_disable(self, *, user_id: uuid.UUID, data: TotpDisableRequest) -> None: ...
    async def regenerate_recovery_codes(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes: ...
    async def login_history(self, *, user_id: uuid.UUID, limit: int, offset: int) -> list[LoginEventRead]: ...
    async def list_sessions(self, *, user_id: uuid.UUID, current: uuid.UUID | None) -> list[SessionRead]: ...
    async def revoke_session(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> None: ...
    async def list_users(
        self, *, limit: int, offset: int, q: str | None, role: Role | None, active: bool | None
    ) -> UserList: ...
    async def set_role(self, *, actor: uuid.UUID, user_id: uuid.UUID, role: Role) -> UserRead: ...
    async def set_active(self, *, actor: uuid.UUID, user_id: uuid.UUID, active: bool) -> UserRead: ...
