"""The users service's rows as read models: ``UserRead`` and ``SettingsRead``."""

from __future__ import annotations

from algotrendy.core.auth import Role, permissions_for
from algotrendy.services.users.interface import SettingsRead, UserRead
from algotrendy.services.users.store import SettingsRow, UserRow


def user_read(row: UserRow) -> UserRead:
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


def settings_read(row: SettingsRow) -> SettingsRead:
    return SettingsRead(
        timezone=row.timezone,
        language=row.language,
        currency=row.currency,
        notifications_enabled=row.notifications_enabled,
        email_notifications=row.email_notifications,
        telegram_notifications=row.telegram_notifications,
        updated_at=row.updated_at,
    )
