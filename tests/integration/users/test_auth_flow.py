"""Registration, verification, login, refresh rotation, logout and password flows."""

from __future__ import annotations

import asyncio

from tests.apphelp import Api


async def test_register_verify_login_refresh_logout(any_api: Api) -> None:
    api = any_api
    user, password = await api.register(username="Carol", email="Carol@Example.com")
    assert user["is_verified"] is False and "password_hash" not in user
    token = await api.mail_token("carol@example.com", "Confirm")
    r = await api.client.get("/api/v1/users/verify-email", params={"token": token})
    assert r.status_code == 200 and r.json()["is_verified"] is True
    again = await api.client.post("/api/v1/users/verify-email", json={"token": token})
    assert again.status_code == 422 and again.json()["errors"][0]["field"] == "token"

    tokens = await api.login("carol", password)  # usernames are case-insensitive
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = await api.client.get("/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["username"] == "Carol"

    refreshed = await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    new_headers = {"Authorization": f"Bearer {new['access_token']}"}
    assert (await api.client.post("/auth/logout", headers=new_headers)).status_code == 204
    assert (await api.client.get("/auth/me", headers=new_headers)).status_code == 401
    assert (await api.client.get("/auth/me", headers=headers)).status_code == 401  # same session
    r = await api.client.post("/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 401


async def test_login_by_email_and_duplicate_accounts_case_insensitive(any_api: Api) -> None:
    api = any_api
    _user, password = await api.register(username="dave", email="dave@example.com")
    await api.login("DAVE@EXAMPLE.COM", password)
    dup_email = await api.client.post(
        "/api/v1/users/register",
        json={"email": "Dave@example.com", "username": "other", "password": "long enough password"},
    )
    assert dup_email.status_code == 409 and dup_email.json()["errors"][0]["field"] == "email"
    dup_name = await api.client.post(
        "/api/v1/users/register",
        json={"email": "x@example.com", "username": "DaVe", "password": "long enough password"},
    )
    assert dup_name.status_code == 409 and dup_name.json()["errors"][0]["field"] == "username"


async def test_unknown_user_and_wrong_password_get_the_same_answer(any_api: Api) -> None:
    api = any_api
    await api.register(username="erin")
    wrong = await api.client.post("/auth/login", json={"username": "erin", "password": "not-the-password"})
    unknown = await api.client.post(
        "/auth/login", json={"username": "nobody", "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())


async def test_lockout_after_repeated_failures_known_or_unknown(any_api: Api) -> None:
    api = any_api
    _user, password = await api.register(username="frank")
    threshold = api.container.settings.users.lockout_threshold
    for name in ("frank", "ghost-user"):
        for _ in range(threshold):
            r = await api.client.post("/auth/login", json={"username": name, "password": "wrong-password"})
            assert r.status_code == 401
        locked = await api.client.post("/auth/login", json={"username": name, "password": "wrong-password"})
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["Retry-After"]) >= 1
        assert locked.json()["code"] == "login_locked"
    # even the right password waits out the lock
    r = await api.client.post("/auth/login", json={"username": "frank", "password": password})
    assert r.status_code == 429
    history = await api.users.login_history(user_id=_user_id(_user), limit=50, offset=0)
    assert sum(1 for h in history if not h.success) == threshold


def _user_id(user: dict) -> object:
    import uuid

    return uuid.UUID(user["id"])


async def test_reused_refresh_token_revokes_family(any_api: Api) -> None:
    api = any_api
    user, _headers, password = await api.user()
    tokens = await api.login(user["username"], password)
    first = await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    live = first.json()
    replay = await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401 and replay.json()["code"] == "refresh_token_reused"
    # the legitimate child is dead too, and so is its access token
    assert (
        await api.client.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})
    ).status_code == 401
    me = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {live['access_token']}"})
    assert me.status_code == 401 and me.json()["code"] == "token_revoked"


async def test_concurrent_refresh_with_one_token_yields_one_winner(any_api: Api) -> None:
    api = any_api
    user, _h, password = await api.user()
    tokens = await api.login(user["username"], password)
    results = await asyncio.gather(
        *[api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(5)]
    )
    assert sorted(r.status_code for r in results).count(200) <= 1


async def test_password_change_revokes_every_session(any_api: Api) -> None:
    api = any_api
    user, headers, password = await api.user()
    other = await api.login(user["username"], password)
    r = await api.client.post(
        "/api/v1/users/change-password",
        headers=headers,
        json={"current_password": password, "new_password": "a brand new password"},
    )
    assert r.status_code == 204
    for h in (headers, {"Authorization": f"Bearer {other['access_token']}"}):
        assert (await api.client.get("/auth/me", headers=h)).status_code == 401
    assert (
        await api.client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 401
    bad = await api.client.post("/auth/login", json={"username": user["username"], "password": password})
    assert bad.status_code == 401
    await api.login(user["username"], "a brand new password")


async def test_change_password_needs_current_password(any_api: Api) -> None:
    api = any_api
    _user, headers, _password = await api.user()
    r = await api.client.post(
        "/api/v1/users/change-password",
        headers=headers,
        json={"current_password": "wrong-wrong", "new_password": "another long one"},
    )
    assert r.status_code == 401


async def test_password_reset_is_single_use_and_revokes_sessions(any_api: Api) -> None:
    api = any_api
    user, headers, _password = await api.user()
    r = await api.client.post("/api/v1/users/reset-password", json={"email": user["email"]})
    assert r.status_code == 202
    token = await api.mail_token(user["email"], "Reset")
    ok = await api.client.post(
        "/api/v1/users/reset-password/confirm", json={"token": token, "new_password": "reset password 123"}
    )
    assert ok.status_code == 204
    assert (await api.client.get("/auth/me", headers=headers)).status_code == 401
    again = await api.client.post(
        "/api/v1/users/reset-password/confirm", json={"token": token, "new_password": "another password 456"}
    )
    assert again.status_code == 422
    await api.login(user["username"], "reset password 123")


async def test_reset_request_answers_the_same_for_unknown_email(any_api: Api) -> None:
    api = any_api
    user, _h, _p = await api.user()
    known = await api.client.post("/api/v1/users/reset-password", json={"email": user["email"]})
    unknown = await api.client.post("/api/v1/users/reset-password", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()


async def test_login_history_and_last_login(any_api: Api) -> None:
    api = any_api
    user, headers, _password = await api.user()
    await api.client.post("/auth/login", json={"username": user["username"], "password": "bad-password"})
    r = await api.client.get("/api/v1/users/login-history", headers=headers)
    assert r.status_code == 200
    reasons = [e["reason"] for e in r.json()]
    assert reasons[0] == "bad_password" and "ok" in reasons
    me = (await api.client.get("/auth/me", headers=headers)).json()
    assert me["last_login_at"] is not None


async def test_verification_link_expires(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from algotrendy.core.clock import ManualClock
    from tests.apphelp import make_settings, running

    clock = ManualClock(datetime.now(UTC))
    async with running(make_settings(tmp_path), clock=clock) as api:
        user, _password = await api.register(username="late", email="late@example.com")
        token = await api.mail_token("late@example.com", "Confirm")
        clock.advance(api.container.settings.users.verify_token_ttl_hours * 3600 + 1)
        r = await api.client.post("/api/v1/users/verify-email", json={"token": token})
        assert r.status_code == 422 and r.json()["code"] == "invalid_token"
        assert (await api.users.get_user(user_id=_user_id(user))).is_verified is False
