"""Two-factor authentication: enrol a TOTP secret (stored encrypted), confirm it, disable it, and
the one-use recovery codes; also the second-factor check that login and disabling share (a TOTP
code is accepted once per time step, a recovery code once)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from algotrendy.core.errors import Conflict, Invalid, Unauthorized
from algotrendy.services.users import totp
from algotrendy.services.users.context import Context
from algotrendy.services.users.interface import RecoveryCodes, TotpDisableRequest, TotpEnrollment
from algotrendy.services.users.store import RecoveryCodeRow, UserRow


class TwoFactor:
    def __init__(self, ctx: Context) -> None:
        self._c = ctx

    # ---- the second factor ----------------------------------------------------------------------

    async def check_second_factor(self, session: AsyncSession, user: UserRow, code: str) -> bool:
        if user.totp_secret and len(code) == 6 and code.isdigit():
            return self.accept_totp(user, code)
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
        row.used_at = self._c.clock.now()
        self._c.audit(session, "user.recovery_code_used", user_id=user.id)
        return True

    def accept_totp(self, user: UserRow, code: str) -> bool:
        if not user.totp_secret:
            return False
        secret = self._c.box.decrypt(user.totp_secret)
        step = totp.matching_step(secret, code, at=self._c.clock.now(), last_step=user.totp_last_step)
        if step is None:
            return False
        user.totp_last_step = step
        return True

    # ---- enrolment, recovery codes, disabling --------------------------------------------------

    async def totp_enroll(self, *, user_id: uuid.UUID) -> TotpEnrollment:
        c = self._c
        secret = totp.new_secret()
        async with c.db() as session:
            user = await c.user(session, user_id)
            if user.totp_enabled:
                raise Conflict("2FA is already enabled; disable it first", code="totp_enabled")
            user.totp_secret = c.box.encrypt(secret)
            user.totp_last_step = 0
            await session.commit()
            uri = totp.provisioning_uri(secret, account=user.email, issuer=c.s.totp_issuer)
        return TotpEnrollment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg_data_uri(uri))

    async def totp_confirm(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        c = self._c
        await self._throttle(user_id)
        async with c.db() as session:
            user = await c.user(session, user_id)
            if user.totp_enabled:
                raise Conflict("2FA is already enabled", code="totp_enabled")
            if not user.totp_secret:
                raise Conflict("start with POST /api/v1/users/2fa/enroll", code="totp_not_enrolled")
            if not self.accept_totp(user, code):
                raise await _wrong_code(session)
            user.totp_enabled = True
            codes = await _replace_recovery_codes(session, user_id)
            c.audit(session, "user.2fa_enabled", user_id=user_id)
            await session.commit()
        await c.after_commit(user_id=user_id)
        return RecoveryCodes(codes=codes)

    async def totp_disable(self, *, user_id: uuid.UUID, data: TotpDisableRequest) -> None:
        c = self._c
        await self._throttle(user_id)
        async with c.db() as session:
            user = await c.user(session, user_id)
            stored_hash = user.password_hash
            _require_enabled(user)
        if not await c.pw.verify(stored_hash, data.password):
            raise Unauthorized("password is wrong", code="invalid_credentials")
        async with c.db() as session:
            user = await c.user(session, user_id)
            if not await self.check_second_factor(session, user, data.code):
                raise await _wrong_code(session)
            user.totp_enabled = False
            user.totp_secret = None
            await _delete_recovery_codes(session, user_id)
            c.audit(session, "user.2fa_disabled", user_id=user_id)
            await session.commit()
        await c.after_commit(user_id=user_id)

    async def regenerate_recovery_codes(self, *, user_id: uuid.UUID, code: str) -> RecoveryCodes:
        c = self._c
        await self._throttle(user_id)
        async with c.db() as session:
            user = await c.user(session, user_id)
            _require_enabled(user)
            if not self.accept_totp(user, code):
                raise await _wrong_code(session)
            codes = await _replace_recovery_codes(session, user_id)
            c.audit(session, "user.recovery_codes_regenerated", user_id=user_id)
            await session.commit()
        return RecoveryCodes(codes=codes)

    async def _throttle(self, user_id: uuid.UUID) -> None:
        await self._c.limit(f"totp:{user_id}", capacity=self._c.s.totp_max_attempts, per_seconds=300)


def _require_enabled(user: UserRow) -> None:
    if not user.totp_enabled:
        raise Conflict("2FA is not enabled", code="totp_not_enabled")


async def _wrong_code(session: AsyncSession) -> Invalid:
    """Commit what the check changed (a TOTP step or recovery code used) and the error to raise."""
    await session.commit()
    return Invalid("the code is wrong or was already used", code="invalid_otp", field="code")


async def _delete_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))


async def _replace_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> list[str]:
    await _delete_recovery_codes(session, user_id)
    codes = totp.new_recovery_codes()
    session.add_all(RecoveryCodeRow(user_id=user_id, code_hash=totp.hash_code(c)) for c in codes)
    return codes
