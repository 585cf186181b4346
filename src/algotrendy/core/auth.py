"""Roles, permissions and the authenticated principal (carried in access tokens).

The role -> permission table is the one place authorization is defined; routes ask for a
permission, never for a role name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ_PORTFOLIO = "read_portfolio"
    MANAGE_PORTFOLIO = "manage_portfolio"
    EXECUTE_TRADES = "execute_trades"
    READ_MARKET_DATA = "read_market_data"
    IMPORT_MARKET_DATA = "import_market_data"
    MANAGE_STRATEGIES = "manage_strategies"
    RUN_BACKTESTS = "run_backtests"
    MANAGE_MODELS = "manage_models"
    MANAGE_RISK = "manage_risk"
    USE_ASSISTANT = "use_assistant"
    MANAGE_USERS = "manage_users"
    VIEW_AUDIT = "view_audit"


_VIEWER = frozenset({Permission.READ_PORTFOLIO, Permission.READ_MARKET_DATA, Permission.USE_ASSISTANT})
_TRADER = _VIEWER | {
    Permission.MANAGE_PORTFOLIO,
    Permission.EXECUTE_TRADES,
    Permission.IMPORT_MARKET_DATA,
    Permission.MANAGE_STRATEGIES,
    Permission.RUN_BACKTESTS,
    Permission.MANAGE_MODELS,
    Permission.MANAGE_RISK,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.TRADER: frozenset(_TRADER),
    Role.ADMIN: frozenset(Permission),
}


def permissions_for(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: taken from a verified access token."""

    user_id: uuid.UUID
    username: str
    role: Role
    permissions: frozenset[Permission]
    session_id: uuid.UUID

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions
