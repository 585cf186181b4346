"""TOTP (RFC 6238): 30-second steps, 6 digits; the current step and one step back are
accepted, and never a step at or before the last one used (no replay)."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from base64 import b64encode
from datetime import datetime

import pyotp
import segno

STEP = 30
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=4, border=2)
    return "data:image/svg+xml;base64," + b64encode(buf.getvalue()).decode()


def matching_step(secret: str, code: str, *, at: datetime, last_step: int) -> int | None:
    """The step ``code`` belongs to (now or one back), if it is newer than ``last_step``."""
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, interval=STEP)
    now_step = int(at.timestamp()) // STEP
    for step in (now_step, now_step - 1):
        if step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret, interval=STEP).at(at)


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
