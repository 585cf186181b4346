"""TOTP second factor (RFC 6238): enrollment, confirmation, login with codes and recovery codes,
replay protection, the one-step-back window, disabling, and limits on guessing.

Time is a ManualClock started at the real now (it also drives token expiry and the rate
limiters), moved to 10 s into a fresh 30 s step so no step boundary falls inside a check.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from algotrendy.core.clock import ManualClock
from algotrendy.services.users.totp import STEP, code_at
from tests.apphelp import Api, make_settings, remember, running

PROBLEM_JSON = "application/problem+json"


@dataclass
class Timed:
    api: Api
    clock: ManualClock

    def next_step(self, steps: int = 1) -> None:
        self.clock.advance(STEP * steps)


def _aligned_clock() -> ManualClock:
    start = datetime.now(UTC)
    clock = ManualClock(start)
    next_step = int(start.timestamp()) // STEP + 1
    clock.set(datetime.fromtimestamp(next_step * STEP + 10, UTC))
    return clock


@pytest.fixture
async def timed(tmp_path: Path) -> AsyncIterator[Timed]:
    clock = _aligned_clock()
    async with running(make_settings(tmp_path), clock=clock) as api:
        yield Timed(api, clock)


@dataclass
class Enrolled:
    user: dict[str, Any]
    headers: dict[str, str]
    password: str
    secret: str
    recovery: list[str]
    clock: ManualClock

    def code(self, steps_back: int = 0) -> str:
        return code_at(self.secret, self.clock.now() - timedelta(seconds=STEP * steps_back))

    def wrong_code(self) -> str:
        valid = {self.code(0), self.code(1)}
        return next(c for c in (f"{n:06d}" for n in range(0, 1_000_000, 7919)) if c not in valid)


async def enroll(t: Timed) -> tuple[dict[str, Any], dict[str, str], str, dict[str, Any]]:
    user, headers, password = await t.api.user()
    r = await t.api.client.post("/api/v1/users/2fa/enroll", headers=headers)
    assert r.status_code == 200, r.text
    enrollment = r.json()
    remember(enrollment["secret"])
    return user, headers, password, enrollment


async def enrolled(t: Timed) -> Enrolled:
    user, headers, password, enrollment = await enroll(t)
    secret = enrollment["secret"]
    r = await t.api.client.post(
        "/api/v1/users/2fa/verify", headers=headers, json={"code": code_at(secret, t.clock.now())}
    )
    assert r.status_code == 200, r.text
    codes = r.json()["codes"]
    remember(*codes)
    return Enrolled(user, headers, password, secret, codes, t.clock)


async def login(t: Timed, e: Enrolled, otp: str | None) -> Any:
    body: dict[str, Any] = {"username": e.user["username"], "password": e.password}
    if otp is not None:
        body["otp"] = otp
    r = await t.api.client.post("/auth/login", json=body)
    if r.status_code == 200:
        remember(r.json()["access_token"], r.json()["refresh_token"])
    return r


def assert_problem(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    body = r.json()
    if code is not None:
        assert body["code"] == code, body
    return body


# ---- enrollment ----------------------------------------------------------------------------------


async def test_enrollment_returns_secret_otpauth_uri_with_issuer_and_svg_qr(timed: Timed) -> None:
    user, headers, password, enrollment = await enroll(timed)
    secret = enrollment["secret"]
    assert len(secret) >= 32 and base64.b32decode(secret + "=" * (-len(secret) % 8))
    uri = urlsplit(enrollment["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["AlgoTrendy"]
    assert unquote(uri.path).lstrip("/") == f"AlgoTrendy:{user['email']}"
    assert enrollment["qr_svg"].startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(enrollment["qr_svg"].split(",", 1)[1])
    assert b"<svg" in svg and secret.encode() not in svg  # the QR encodes it; not as plain text
    # not active until confirmed: login still needs no code
    me = (await timed.api.client.get("/auth/me", headers=headers)).json()
    assert me["totp_enabled"] is False
    r = await timed.api.client.post("/auth/login", json={"username": user["username"], "password": password})
    assert r.status_code == 200
    remember(r.json()["access_token"], r.json()["refresh_token"])


async def test_confirm_with_current_code_returns_ten_single_use_recovery_codes(timed: Timed) -> None:
    e = await enrolled(timed)
    assert len(e.recovery) == 10 and len(set(e.recovery)) == 10
    me = (await timed.api.client.get("/auth/me", headers=e.headers)).json()
    assert me["totp_enabled"] is True
    # a second confirmation or enrollment is refused
    again = await timed.api.client.post("/api/v1/users/2fa/enroll", headers=e.headers)
    assert_problem(again, 409, "totp_enabled")


async def test_confirm_with_a_wrong_code_leaves_2fa_off(timed: Timed) -> None:
    _user, headers, _password, enrollment = await enroll(timed)
    valid = {code_at(enrollment["secret"], timed.clock.now() - timedelta(seconds=s)) for s in (0, 30)}
    wrong = next(f"{n:06d}" for n in range(1000, 999_999, 7919) if f"{n:06d}" not in valid)
    r = await timed.api.client.post("/api/v1/users/2fa/verify", headers=headers, json={"code": wrong})
    body = assert_problem(r, 422, "invalid_otp")
    assert body["errors"][0]["field"] == "code"
    assert (await timed.api.client.get("/auth/me", headers=headers)).json()["totp_enabled"] is False


async def test_totp_secret_and_recovery_codes_are_not_stored_in_plain_text(timed: Timed) -> None:
    from sqlalchemy import text

    e = await enrolled(timed)
    async with timed.api.container.sessions() as session:
        users = (await session.execute(text("SELECT * FROM users_users"))).all()
        codes = (await session.execute(text("SELECT * FROM users_recovery_codes"))).all()
    dump = repr(users) + repr(codes)
    assert e.secret not in dump
    assert e.secret.lower() not in dump.lower()
    for code in e.recovery:
        assert code not in dump
    assert len(codes) == 10


# ---- login ---------------------------------------------------------------------------------------


async def test_login_without_code_is_401_mfa_required(timed: Timed) -> None:
    e = await enrolled(timed)
    assert_problem(await login(timed, e, None), 401, "mfa_required")


async def test_login_with_current_code_works_once_and_replay_is_refused(timed: Timed) -> None:
    e = await enrolled(timed)
    # the code that confirmed enrollment cannot be replayed to log in
    assert_problem(await login(timed, e, e.code()), 401, "invalid_otp")
    timed.next_step()
    code = e.code()
    assert (await login(timed, e, code)).status_code == 200
    assert_problem(await login(timed, e, code), 401, "invalid_otp")  # replay, same step
    timed.clock.advance(15)  # still inside the one-step-back window: a replay all the same
    assert_problem(await login(timed, e, code), 401, "invalid_otp")


async def test_code_one_step_back_is_accepted_once_and_two_steps_back_refused(timed: Timed) -> None:
    e = await enrolled(timed)
    timed.next_step(3)
    one_back = e.code(1)
    assert (await login(timed, e, one_back)).status_code == 200
    assert_problem(await login(timed, e, one_back), 401, "invalid_otp")
    # now two steps on: the code of the step after the last one used is two steps old
    timed.next_step(3)
    assert_problem(await login(timed, e, e.code(2)), 401, "invalid_otp")
    assert_problem(await login(timed, e, e.code(3)), 401, "invalid_otp")
    # a code from the future is refused too
    future = code_at(e.secret, timed.clock.now() + timedelta(seconds=STEP))
    if future not in {e.code(0), e.code(1)}:
        assert_problem(await login(timed, e, future), 401, "invalid_otp")
    # the current one still works: the refusals were about the step, not a lock
    assert (await login(timed, e, e.code())).status_code == 200


async def test_recovery_code_works_once_only(timed: Timed) -> None:
    e = await enrolled(timed)
    code = e.recovery[3]
    assert (await login(timed, e, code)).status_code == 200
    assert_problem(await login(timed, e, code), 401, "invalid_otp")
    assert_problem(await login(timed, e, code.upper()), 401, "invalid_otp")
    # another one still works, and an invented one does not
    assert (await login(timed, e, e.recovery[4])).status_code == 200
    assert_problem(await login(timed, e, "deadbeef-deadbeef"), 401, "invalid_otp")


async def test_regenerated_recovery_codes_replace_the_old_ones(timed: Timed) -> None:
    e = await enrolled(timed)
    timed.next_step()
    r = await timed.api.client.post(
        "/api/v1/users/2fa/recovery-codes", headers=e.headers, json={"code": e.code()}
    )
    assert r.status_code == 200, r.text
    fresh = r.json()["codes"]
    remember(*fresh)
    assert len(fresh) == 10 and not set(fresh) & set(e.recovery)
    assert_problem(await login(timed, e, e.recovery[0]), 401, "invalid_otp")
    assert (await login(timed, e, fresh[0])).status_code == 200


# ---- disabling -----------------------------------------------------------------------------------


async def test_disabling_needs_password_and_a_valid_code(timed: Timed) -> None:
    e = await enrolled(timed)
    c = timed.api.client
    timed.next_step()
    wrong_pw = await c.post(
        "/api/v1/users/2fa/disable",
        headers=e.headers,
        json={"password": "not-the-password", "code": e.code()},
    )
    assert_problem(wrong_pw, 401, "invalid_credentials")
    wrong_code = await c.post(
        "/api/v1/users/2fa/disable", headers=e.headers, json={"password": e.password, "code": e.wrong_code()}
    )
    body = assert_problem(wrong_code, 422, "invalid_otp")
    assert body["errors"][0]["field"] == "code"
    missing = await c.post("/api/v1/users/2fa/disable", headers=e.headers, json={"password": e.password})
    assert_problem(missing, 422)
    assert (await c.get("/auth/me", headers=e.headers)).json()["totp_enabled"] is True
    assert_problem(await login(timed, e, None), 401, "mfa_required")

    ok = await c.post(
        "/api/v1/users/2fa/disable", headers=e.headers, json={"password": e.password, "code": e.code()}
    )
    assert ok.status_code == 204, ok.text
    assert (await c.get("/auth/me", headers=e.headers)).json()["totp_enabled"] is False
    assert (await login(timed, e, None)).status_code == 200
    # the old recovery codes died with it
    timed.next_step()
    assert_problem(
        await c.post(
            "/api/v1/users/2fa/disable",
            headers=e.headers,
            json={"password": e.password, "code": e.recovery[0]},
        ),
        409,
        "totp_not_enabled",
    )


# ---- guessing ------------------------------------------------------------------------------------


async def test_bad_code_guesses_on_verify_are_rate_limited(timed: Timed) -> None:
    api = timed.api
    max_attempts = api.container.settings.users.totp_max_attempts
    user, headers, _password, enrollment = await enroll(timed)
    secret = enrollment["secret"]
    valid = {code_at(secret, timed.clock.now() - timedelta(seconds=s)) for s in (0, 30)}
    guesses = (g for g in (f"{n:06d}" for n in range(12345, 999_999, 7919)) if g not in valid)
    for _ in range(max_attempts):
        r = await api.client.post("/api/v1/users/2fa/verify", headers=headers, json={"code": next(guesses)})
        assert_problem(r, 422, "invalid_otp")
    limited = await api.client.post("/api/v1/users/2fa/verify", headers=headers, json={"code": next(guesses)})
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # even the right code waits out the limit
    right = await api.client.post(
        "/api/v1/users/2fa/verify", headers=headers, json={"code": code_at(secret, timed.clock.now())}
    )
    assert_problem(right, 429)
    assert (await api.client.get("/auth/me", headers=headers)).json()["totp_enabled"] is False
    # another user's budget is separate
    _u2, headers2, _p2, enrollment2 = await enroll(timed)
    r2 = await api.client.post(
        "/api/v1/users/2fa/verify",
        headers=headers2,
        json={"code": code_at(enrollment2["secret"], timed.clock.now())},
    )
    assert r2.status_code == 200
    remember(*r2.json()["codes"])
    # after the advertised wait, the right code is accepted
    timed.clock.advance(int(limited.headers["Retry-After"]) + 1)
    ok = await api.client.post(
        "/api/v1/users/2fa/verify", headers=headers, json={"code": code_at(secret, timed.clock.now())}
    )
    assert ok.status_code == 200, ok.text
    remember(*ok.json()["codes"])
    assert (await api.client.get("/auth/me", headers=headers)).json()["id"] == user["id"]


async def test_bad_code_guesses_on_disable_share_the_limit(timed: Timed) -> None:
    e = await enrolled(timed)  # the confirmation used one attempt of the budget
    api = timed.api
    max_attempts = api.container.settings.users.totp_max_attempts
    statuses = []
    for _ in range(max_attempts + 1):
        r = await api.client.post(
            "/api/v1/users/2fa/disable",
            headers=e.headers,
            json={"password": e.password, "code": e.wrong_code()},
        )
        statuses.append(r.status_code)
    assert statuses[: max_attempts - 1] == [422] * (max_attempts - 1)
    assert statuses[-1] == 429
    assert (await api.client.get("/auth/me", headers=e.headers)).json()["totp_enabled"] is True
