from __future__ import annotations

from datetime import UTC, datetime

import pytest

from algotrendy.core.auth import Permission, Role, permissions_for
from algotrendy.core.clock import ManualClock
from algotrendy.core.crypto import SecretBox
from algotrendy.core.errors import ConfigurationError, Invalid, TooManyRequests


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    clock.advance(90)
    assert clock.now() == datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC) and clock.monotonic() == 90
    with pytest.raises(ValueError, match="backwards"):
        clock.set(datetime(2023, 1, 1, tzinfo=UTC))


def test_roles_nest_and_only_admin_manages_users() -> None:
    viewer, trader, admin = (permissions_for(r) for r in (Role.VIEWER, Role.TRADER, Role.ADMIN))
    assert viewer < trader < admin
    assert Permission.MANAGE_USERS in admin and Permission.MANAGE_USERS not in trader
    assert Permission.EXECUTE_TRADES not in viewer


def test_errors_carry_status_code_and_field() -> None:
    err = Invalid("bad", field="email", code="bad_email")
    assert (err.status, err.code, err.field) == (422, "bad_email", "email")
    assert TooManyRequests("slow down", retry_after=0.2).retry_after == 1


def test_secret_box_round_trip_rotation_and_bad_key() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox([old]).encrypt("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DP" not in token
    assert SecretBox([new, old]).decrypt(token) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(ConfigurationError):
        SecretBox([new]).decrypt(token)
    with pytest.raises(ConfigurationError):
        SecretBox([b"not-a-key"])
