"""Administration of users: list and search accounts, change a role, (de)activate an account.
A role change or deactivation ends the user's sessions, so it applies from the next login."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from algotrendy.core.auth import Role
from algotrendy.core.errors import Conflict
from algotrendy.services.users.context import Context
from algotrendy.services.users.interface import UserDeactivated, UserList, UserRead, UserRoleChanged
from algotrendy.services.users.store import UserRow
from algotrendy.services.users.views import user_read


class Administration:
    def __init__(self, ctx: Context) -> None:
        self._c = ctx

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
        async with self._c.db() as session:
            total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            rows = await session.execute(
                stmt.order_by(UserRow.created_at, UserRow.id).limit(limit).offset(offset)
            )
            items = [user_read(r) for r in rows.scalars()]
        return UserList(items=items, total=total, limit=limit, offset=offset)

    async def set_role(self, *, actor: uuid.UUID, user_id: uuid.UUID, role: Role) -> UserRead:
        c = self._c
        async with c.db() as session:
            user = await c.user(session, user_id)
            if user_id == actor and role != Role.ADMIN:
                raise Conflict("admins cannot demote themselves", code="self_demotion")
            user.role = role.value
            user.updated_at = c.clock.now()
            # Tokens carry the role: end sessions so the new role applies at the next login.
            revoked = await c.revoke_all(session, user_id, "role_changed")
            await c.outbox.add(session, UserRoleChanged(user_id=user_id, role=role, changed_by=actor))
            c.audit(session, "admin.role_changed", user_id=user_id, actor_id=actor, role=role.value)
            await session.commit()
        await c.after_commit(revoked=revoked, user_id=user_id)
        return user_read(user)

    async def set_active(self, *, actor: uuid.UUID, user_id: uuid.UUID, active: bool) -> UserRead:
        c = self._c
        async with c.db() as session:
            user = await c.user(session, user_id)
            if user_id == actor and not active:
                raise Conflict("admins cannot deactivate themselves", code="self_deactivation")
            user.is_active = active
            user.updated_at = c.clock.now()
            revoked = [] if active else await c.revoke_all(session, user_id, "deactivated")
            await c.outbox.add(session, UserDeactivated(user_id=user_id, active=active, changed_by=actor))
            c.audit(session, "admin.activation_changed", user_id=user_id, actor_id=actor, active=active)
            await session.commit()
        await c.after_commit(revoked=revoked, user_id=user_id)
        return user_read(user)
