"""API3 (object property level authorization): clients cannot set properties they do not own,
and no response ever carries a password hash, a TOTP secret or (outside login/refresh) a
refresh token."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from algotrendy.core.auth import Role
from algotrendy.services.users import totp
from tests.apphelp import Api, remember

PROBLEM_JSON = "application/problem+json"


def _registration(**extra: Any) -> dict[str, Any]:
    name = f"mass{uuid.uuid4().hex[:8]}"
    return {"email": f"{name}@example.com", "username": name, "password": "long enough password", **extra}


async def _count(api: Api, q: str) -> int:
    listed = await api.users.list_users(limit=200, offset=0, q=q, role=None, active=None)
    return int(listed.total)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "admin"),
        ("is_verified", True),
        ("is_active", True),
        ("totp_enabled", True),
        ("permissions", ["manage_users"]),
        ("id", str(uuid.uuid4())),
        ("password_hash", "x"),
        ("verified", True),
    ],
)
async def test_register_with_a_privileged_field_is_422_naming_it_and_creates_nothing(
    api: Api, field: str, value: Any
) -> None:
    body = _registration(**{field: value})
    r = await api.client.post("/api/v1/users/register", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [(f"body.{field}", "extra_forbidden")], (
        problem
    )
    assert field in problem["detail"]
    assert await _count(api, body["username"]) == 0
    # the same registration without the extra field works: the username was never taken
    clean = {k: v for k, v in body.items() if k != field}
    ok = await api.client.post("/api/v1/users/register", json=clean)
    assert ok.status_code == 201
    created = ok.json()
    assert (
        created["role"] == "trader" and created["is_verified"] is False and created["totp_enabled"] is False
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role", "admin"),
        ("is_verified", True),
        ("email", "taken-over@example.com"),
        ("is_active", False),
        ("totp_enabled", True),
        ("permissions", ["manage_users"]),
        ("id", str(uuid.uuid4())),
    ],
)
async def test_profile_update_with_a_privileged_field_is_422_and_changes_nothing(
    api: Api, field: str, value: Any
) -> None:
    user, headers, _ = await api.user()
    before = (await api.client.get("/auth/me", headers=headers)).json()
    r = await api.client.put(
        "/api/v1/users/profile", headers=headers, json={"first_name": "Mallory", field: value}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert any(e["field"] == f"body.{field}" for e in r.json()["errors"])
    # nothing at all applied, not even the allowed field sent alongside
    fresh = await api.users.get_user(user_id=uuid.UUID(user["id"]))
    assert fresh.role is Role.TRADER and fresh.is_verified is False and fresh.is_active
    assert fresh.email == user["email"] and fresh.first_name is None and fresh.totp_enabled is False
    after = (await api.client.get("/auth/me", headers=headers)).json()
    assert after == before


async def test_settings_update_rejects_unknown_fields(api: Api) -> None:
    _user, headers, _ = await api.user()
    r = await api.client.put(
        "/api/v1/users/settings", headers=headers, json={"role": "admin", "currency": "EUR"}
    )
    assert r.status_code == 422
    assert (await api.client.get("/api/v1/users/settings", headers=headers)).json()["currency"] != "EUR"


# ---- nothing secret in any response of a full flow -------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.responses: list[tuple[str, str, int, str]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.responses.append((request.method, request.url.path, response.status_code, response.text))


TOKEN_ROUTES = {("POST", "/auth/login"), ("POST", "/auth/refresh")}


async def test_no_response_in_a_full_flow_carries_secrets(api: Api) -> None:
    recorder = Recorder()
    api.client.event_hooks["response"].append(recorder)
    c = api.client
    password = f"pw-{uuid.uuid4().hex}"
    remember(password)
    reg = await c.post(
        "/api/v1/users/register",
        json={"email": "flow@example.com", "username": "flowuser", "password": password, "first_name": "Flo"},
    )
    assert reg.status_code == 201
    token = await api.mail_token("flow@example.com", "Confirm")
    assert (await c.get("/api/v1/users/verify-email", params={"token": token})).status_code == 200
    login = await c.post("/auth/login", json={"username": "flowuser", "password": password})
    assert login.status_code == 200
    pair = login.json()
    remember(pair["access_token"], pair["refresh_token"])
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    for method, path, body in [
        ("GET", "/auth/me", None),
        ("GET", "/api/v1/users/profile", None),
        ("PUT", "/api/v1/users/profile", {"last_name": "Wer"}),
        ("GET", "/api/v1/users/settings", None),
        ("PUT", "/api/v1/users/settings", {"currency": "EUR"}),
        ("GET", "/api/v1/users/sessions", None),
        ("GET", "/api/v1/users/login-history", None),
        ("GET", "/api/v1/notifications/history", None),
        ("GET", "/auth/jwks.json", None),
    ]:
        r = await c.request(method, path, headers=h, json=body)
        assert r.status_code == 200, (path, r.text)

    enroll = await c.post("/api/v1/users/2fa/enroll", headers=h)
    assert enroll.status_code == 200
    secret = enroll.json()["secret"]
    remember(secret)
    enroll_index = len(recorder.responses) - 1
    now = api.container.clock.now()
    codes = await c.post("/api/v1/users/2fa/verify", headers=h, json={"code": totp.code_at(secret, now)})
    assert codes.status_code == 200, codes.text
    recovery = codes.json()["codes"]
    remember(*recovery)
    me = (await c.get("/auth/me", headers=h)).json()
    assert me["totp_enabled"] is True
    r = await c.post("/api/v1/users/2fa/recovery-codes", headers=h, json={"code": recovery[0]})
    assert r.status_code == 422  # regeneration needs a TOTP code, not a recovery code
    login2 = await c.post(
        "/auth/login", json={"username": "flowuser", "password": password, "otp": recovery[1]}
    )
    assert login2.status_code == 200
    pair2 = login2.json()
    remember(pair2["access_token"], pair2["refresh_token"])
    refreshed = await c.post("/auth/refresh", json={"refresh_token": pair2["refresh_token"]})
    assert refreshed.status_code == 200
    remember(refreshed.json()["access_token"], refreshed.json()["refresh_token"])
    h2 = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    for path in ("/auth/me", "/api/v1/users/sessions", "/api/v1/users/login-history"):
        assert (await c.get(path, headers=h2)).status_code == 200

    # an admin looks at the user
    _admin, ah, _ = await api.user(Role.ADMIN)
    listed = await c.get("/api/v1/users", headers=ah, params={"q": "flowuser"})
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert (await c.get(f"/api/v1/users/{reg.json()['id']}", headers=ah)).status_code == 200
    assert (await c.post("/auth/logout", headers=h2)).status_code == 204
    assert (await c.post("/auth/logout", headers=h)).status_code == 204

    refresh_tokens = {pair["refresh_token"], pair2["refresh_token"], refreshed.json()["refresh_token"]}
    assert len(recorder.responses) >= 25
    for i, (method, path, status, text) in enumerate(recorder.responses):
        where = (method, path, status)
        lowered = text.lower()
        assert "password_hash" not in lowered and "totp_secret" not in lowered, where
        assert password not in text, where
        if (method, path) in TOKEN_ROUTES and status == 200:
            assert '"refresh_token"' in text, where
        else:
            assert "refresh_token" not in lowered, where
            for rt in refresh_tokens:
                assert rt not in text, where
        if i > enroll_index:
            assert secret not in text, where
        if path not in {"/api/v1/users/2fa/verify", "/api/v1/users/2fa/recovery-codes"}:
            for code in recovery:
                assert code not in text, where
    # the secret is only in the enrollment answer (and its otpauth URI), shown once
    assert secret in recorder.responses[enroll_index][3]
