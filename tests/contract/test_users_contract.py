"""One suite of ``UsersApi`` behaviours, run on ``UsersService`` and on ``UsersClient``.

The ``side`` fixture (tests/contract/conftest.py) runs each test twice: on the service object
the app hosts, and on the HTTP client talking to that same app through ``httpx.ASGITransport``.
Both must answer with the same DTOs and raise the same ``core.errors`` classes and codes.
Behaviour only the HTTP side has (authorization in the gateway, request validation, the
client's own error mapping) is pinned at the end, client only.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import ValidationError

from algotrendy.core.auth import Permission, Role
from algotrendy.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TemporaryError,
    TooManyRequests,
    Unauthorized,
)
from algotrendy.services.users.client import UsersClient
from algotrendy.services.users.interface import (
    Accepted,
    ChangePasswordRequest,
    LoginRequest,
    ProfileUpdate,
    SettingsUpdate,
    TokenPair,
    UserCreate,
)
from tests.apphelp import Api, remember
from tests.contract._sides import IP, UA, Side, claims


def _unique() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


# ---- registration and login ---------------------------------------------------------------------


async def test_register_returns_the_new_account(side: Side) -> None:
    name, password = _unique(), f"pw-{uuid.uuid4().hex}"
    remember(password, f"{name}@example.com")
    data = UserCreate(
        email=f"{name}@Example.com", username=name, password=password, first_name="Ada", last_name="Lovelace"
    )
    user = await side.anon.register(data=data, ip=IP)
    assert (user.email, user.username, user.first_name, user.last_name) == (
        f"{name}@example.com",
        name,
        "Ada",
        "Lovelace",
    )  # the domain part is normalized
    assert user.role is Role.TRADER and set(user.permissions) == set(
        Permission(p)
        for p in (
            "read_portfolio",
            "manage_portfolio",
            "execute_trades",
            "read_market_data",
            "import_market_data",
            "manage_strategies",
            "run_backtests",
            "manage_models",
            "manage_risk",
            "use_assistant",
        )
    )
    assert (user.is_active, user.is_verified, user.totp_enabled) == (True, False, False)
    assert user.last_login_at is None
    assert user.created_at.tzinfo is not None

    tokens = await side.login(name, password)
    me = await side.as_(tokens).get_user(user_id=user.id)
    assert me.model_dump(exclude={"last_login_at"}) == user.model_dump(exclude={"last_login_at"})
    assert me.last_login_at is not None


async def test_duplicate_email_or_username_is_a_conflict_naming_the_field(side: Side) -> None:
    first = await side.person()
    password = f"pw-{uuid.uuid4().hex}"
    remember(password)
    same_email = UserCreate(email=first.user.email.upper(), username=_unique(), password=password)
    same_name = UserCreate(
        email=f"{_unique()}@example.com", username=first.user.username.upper(), password=password
    )
    with pytest.raises(Conflict) as email_taken:
        await side.anon.register(data=same_email, ip=IP)
    with pytest.raises(Conflict) as name_taken:
        await side.anon.register(data=same_name, ip=IP)
    assert (email_taken.value.code, email_taken.value.field) == ("email_taken", "email")
    assert (name_taken.value.code, name_taken.value.field) == ("username_taken", "username")


async def test_login_returns_a_token_pair_for_username_or_email(side: Side) -> None:
    who = await side.person()
    by_email = await side.login(who.user.email.upper(), who.password)
    for pair in (who.tokens, by_email):
        assert isinstance(pair, TokenPair) and pair.token_type == "bearer"
        assert pair.expires_in > 0 and pair.refresh_expires_in > pair.expires_in
        assert claims(pair.access_token)["sub"] == str(who.id)
    assert by_email.refresh_token != who.tokens.refresh_token
    assert claims(by_email.access_token)["sid"] != str(who.sid)  # a second session


async def test_wrong_password_and_unknown_user_get_the_same_unauthorized(side: Side) -> None:
    who = await side.person()
    with pytest.raises(Unauthorized) as wrong:
        await side.anon.login(
            data=LoginRequest(username=who.user.username, password="not-the-password"), ip=IP, user_agent=UA
        )
    with pytest.raises(Unauthorized) as unknown:
        await side.anon.login(
            data=LoginRequest(username=_unique(), password="not-the-password"), ip=IP, user_agent=UA
        )
    assert wrong.value.code == unknown.value.code == "invalid_credentials"
    assert wrong.value.detail == unknown.value.detail


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(side: Side) -> None:
    who = await side.person()
    new = await side.anon.refresh(refresh_token=who.tokens.refresh_token, ip=IP, user_agent=UA)
    remember(new.access_token, new.refresh_token)
    assert new.refresh_token != who.tokens.refresh_token
    assert claims(new.access_token)["sid"] == str(who.sid)  # same session, new tokens

    with pytest.raises(Unauthorized) as reused:
        await side.anon.refresh(refresh_token=who.tokens.refresh_token, ip=IP, user_agent=UA)
    assert reused.value.code == "refresh_token_reused"
    with pytest.raises(Unauthorized) as family:  # the whole family is dead, the newest token too
        await side.anon.refresh(refresh_token=new.refresh_token, ip=IP, user_agent=UA)
    assert family.value.code == "invalid_refresh_token"


async def test_unknown_refresh_token_is_unauthorized(side: Side) -> None:
    with pytest.raises(Unauthorized) as exc:
        await side.anon.refresh(refresh_token="x" * 43, ip=IP, user_agent=UA)
    assert exc.value.code == "invalid_refresh_token"


# ---- users, profile, settings ---------------------------------------------------------------------


async def test_get_user_by_self_and_by_admin_and_unknown_is_not_found(side: Side) -> None:
    who = await side.person()
    admin = await side.person(role=Role.ADMIN)
    mine = await who.users.get_user(user_id=who.id)
    seen_by_admin = await admin.users.get_user(user_id=who.id)
    assert mine == seen_by_admin
    assert mine.id == who.id and mine.username == who.user.username
    with pytest.raises(NotFound) as missing:
        await admin.users.get_user(user_id=uuid.uuid4())
    assert missing.value.code == "user_not_found"


async def test_update_profile_changes_only_the_fields_given(side: Side) -> None:
    who = await side.person()
    other = await side.person()
    renamed = _unique()
    updated = await who.users.update_profile(user_id=who.id, data=ProfileUpdate(first_name="Grace"))
    assert (updated.first_name, updated.last_name, updated.username) == ("Grace", None, who.user.username)
    updated = await who.users.update_profile(
        user_id=who.id, data=ProfileUpdate(username=renamed, last_name="Hopper")
    )
    assert (updated.first_name, updated.last_name, updated.username) == ("Grace", "Hopper", renamed)
    assert await who.users.get_user(user_id=who.id) == updated
    cleared = await who.users.update_profile(user_id=who.id, data=ProfileUpdate(first_name=None))
    assert (cleared.first_name, cleared.last_name) == (None, "Hopper")

    with pytest.raises(Conflict) as taken:
        await who.users.update_profile(
            user_id=who.id, data=ProfileUpdate(username=other.user.username.upper())
        )
    assert (taken.value.code, taken.value.field) == ("username_taken", "username")


async def test_settings_have_defaults_and_partial_updates(side: Side) -> None:
    who = await side.person()
    defaults = await who.users.get_settings(user_id=who.id)
    assert (defaults.timezone, defaults.language, defaults.currency) == ("UTC", "en", "USD")
    flags = (defaults.notifications_enabled, defaults.email_notifications, defaults.telegram_notifications)
    assert flags == (True, True, False)

    updated = await who.users.update_settings(
        user_id=who.id, data=SettingsUpdate(timezone="Europe/Berlin", telegram_notifications=True)
    )
    assert (updated.timezone, updated.language) == ("Europe/Berlin", "en")
    assert updated.telegram_notifications is True
    assert updated.updated_at >= defaults.updated_at
    assert await who.users.get_settings(user_id=who.id) == updated

    with pytest.raises(ValidationError) as null:  # optional, but never null: refused by the DTO itself
        SettingsUpdate(currency=None)
    assert null.value.errors()[0]["loc"] == ("currency",)


async def test_bad_time_zone_is_refused_when_the_dto_is_built(side: Side) -> None:
    # The same for both sides: the DTO refuses it before any call.
    with pytest.raises(ValidationError, match="unknown time zone"):
        SettingsUpdate(timezone="Mars/Olympus_Mons")


# ---- passwords ---------------------------------------------------------------------------------------


async def test_change_password_needs_the_current_one_and_signs_out_every_session(side: Side) -> None:
    who = await side.person()
    new_password = f"pw-{uuid.uuid4().hex}"
    remember(new_password)
    wrong_current = ChangePasswordRequest(current_password="not-it", new_password=new_password)
    with pytest.raises(Unauthorized) as wrong:
        await who.users.change_password(user_id=who.id, data=wrong_current, ip=IP)
    assert wrong.value.code == "invalid_credentials"

    right = ChangePasswordRequest(current_password=who.password, new_password=new_password)
    await who.users.change_password(user_id=who.id, data=right, ip=IP)
    with pytest.raises(Unauthorized) as old:
        await side.login(who.user.username, who.password)
    assert old.value.code == "invalid_credentials"
    with pytest.raises(Unauthorized) as signed_out:
        await side.anon.refresh(refresh_token=who.tokens.refresh_token, ip=IP, user_agent=UA)
    assert signed_out.value.code == "invalid_refresh_token"
    assert isinstance(await side.login(who.user.username, new_password), TokenPair)


async def test_password_reset_request_answers_the_same_for_unknown_emails(side: Side) -> None:
    who = await side.person()
    known = await side.anon.request_password_reset(email=who.user.email, ip=IP)
    unknown = await side.anon.request_password_reset(email=f"{_unique()}@example.com", ip=IP)
    assert isinstance(known, Accepted) and known == unknown


# ---- sessions ------------------------------------------------------------------------------------------


async def test_sessions_are_listed_and_revoked_only_by_their_owner(side: Side) -> None:
    who = await side.person()
    second = await side.login(who.user.username, who.password)
    second_sid = uuid.UUID(claims(second.access_token)["sid"])
    stranger = await side.person()

    listed = await who.users.list_sessions(user_id=who.id, current=who.sid)
    assert {s.id for s in listed} == {who.sid, second_sid}
    assert [s.id for s in listed if s.current] == [who.sid]
    assert all(s.user_agent == UA for s in listed)

    with pytest.raises(NotFound) as foreign:
        await stranger.users.revoke_session(user_id=stranger.id, session_id=second_sid)
    assert foreign.value.code == "session_not_found"

    await who.users.revoke_session(user_id=who.id, session_id=second_sid)
    assert [s.id for s in await who.users.list_sessions(user_id=who.id, current=who.sid)] == [who.sid]
    with pytest.raises(NotFound):  # already revoked
        await who.users.revoke_session(user_id=who.id, session_id=second_sid)
    with pytest.raises(Unauthorized):
        await side.anon.refresh(refresh_token=second.refresh_token, ip=IP, user_agent=UA)


# ---- administration ------------------------------------------------------------------------------------


async def test_admin_lists_users_and_changes_role_and_activation(side: Side) -> None:
    admin = await side.person(role=Role.ADMIN)
    who = await side.person()

    query = who.user.username.upper()
    found = await admin.users.list_users(limit=10, offset=0, q=query, role=None, active=None)
    assert (found.total, found.limit, found.offset) == (1, 10, 0)
    unstable = {"last_login_at"}
    assert found.items[0].model_dump(exclude=unstable) == who.user.model_dump(exclude=unstable)
    admins = await admin.users.list_users(limit=200, offset=0, q=None, role=Role.ADMIN, active=True)
    assert admin.id in {u.id for u in admins.items} and who.id not in {u.id for u in admins.items}

    viewer = await admin.users.set_role(actor=admin.id, user_id=who.id, role=Role.VIEWER)
    assert viewer.role is Role.VIEWER and Permission.EXECUTE_TRADES not in viewer.permissions
    with pytest.raises(Unauthorized):  # a role change ends the sessions: the new role applies at next login
        await side.anon.refresh(refresh_token=who.tokens.refresh_token, ip=IP, user_agent=UA)

    off = await admin.users.set_active(actor=admin.id, user_id=who.id, active=False)
    assert off.is_active is False
    inactive = await admin.users.list_users(limit=200, offset=0, q=who.user.username, role=None, active=False)
    assert [u.id for u in inactive.items] == [who.id]
    with pytest.raises(Forbidden) as refused:
        await side.login(who.user.username, who.password)
    assert refused.value.code == "account_inactive"
    on = await admin.users.set_active(actor=admin.id, user_id=who.id, active=True)
    assert on.is_active is True
    assert isinstance(await side.login(who.user.username, who.password), TokenPair)

    with pytest.raises(NotFound):
        await admin.users.set_role(actor=admin.id, user_id=uuid.uuid4(), role=Role.TRADER)


async def test_admins_cannot_demote_or_deactivate_themselves(side: Side) -> None:
    admin = await side.person(role=Role.ADMIN)
    with pytest.raises(Conflict) as demote:
        await admin.users.set_role(actor=admin.id, user_id=admin.id, role=Role.TRADER)
    with pytest.raises(Conflict) as deactivate:
        await admin.users.set_active(actor=admin.id, user_id=admin.id, active=False)
    assert (demote.value.code, deactivate.value.code) == ("self_demotion", "self_deactivation")


async def test_admin_creates_accounts_with_a_role(side: Side) -> None:
    admin = await side.person(role=Role.ADMIN)
    name, password = _unique(), f"pw-{uuid.uuid4().hex}"
    remember(password, f"{name}@example.com")
    created = await admin.users.create_user(
        data=UserCreate(email=f"{name}@example.com", username=name, password=password),
        role=Role.VIEWER,
        verified=True,
    )
    assert (created.role, created.is_verified, created.username) == (Role.VIEWER, True, name)
    assert await admin.users.get_user(user_id=created.id) == created


# ---- only over HTTP: the gateway's authorization and validation, the client's mapping -----------------


async def _trader_client(http: httpx.AsyncClient, api: Api) -> tuple[UsersClient, uuid.UUID]:
    client, user_id, _sid = await _trader_session(http, api)
    return client, user_id


async def _trader_session(http: httpx.AsyncClient, api: Api) -> tuple[UsersClient, uuid.UUID, uuid.UUID]:
    user, headers, _password = await api.user()
    token = headers["Authorization"].removeprefix("Bearer ")
    return UsersClient(http, token=token), uuid.UUID(user["id"]), uuid.UUID(claims(token)["sid"])


async def test_client_trader_is_forbidden_from_admin_routes(api: Api, http: httpx.AsyncClient) -> None:
    trader, trader_id = await _trader_client(http, api)
    other, _ = await api.register()
    calls = [
        trader.list_users(limit=10, offset=0, q=None, role=None, active=None),
        trader.get_user(user_id=uuid.UUID(other["id"])),
        trader.set_role(actor=trader_id, user_id=uuid.UUID(other["id"]), role=Role.ADMIN),
        trader.set_active(actor=trader_id, user_id=uuid.UUID(other["id"]), active=False),
        trader.create_user(
            data=UserCreate(
                email=f"{_unique()}@example.com", username=_unique(), password="long enough password"
            ),
            role=Role.ADMIN,
            verified=True,
        ),
    ]
    for call in calls:
        with pytest.raises(Forbidden) as exc:
            await call
        assert exc.value.code == "permission_denied"


async def test_client_gets_invalid_with_the_field_for_a_bad_payload(
    api: Api, http: httpx.AsyncClient
) -> None:
    client, user_id = await _trader_client(http, api)
    # model_construct skips validation, so the raw bad value reaches the server.
    with pytest.raises(Invalid) as exc:
        raw = SettingsUpdate.model_construct(timezone="Mars/Olympus")
        await client.update_settings(user_id=user_id, data=raw)
    assert (exc.value.code, exc.value.field) == ("validation_error", "timezone")
    assert "unknown time zone" in exc.value.detail


async def test_client_without_or_with_a_bad_token_is_unauthorized(http: httpx.AsyncClient) -> None:
    with pytest.raises(Unauthorized) as missing:
        await UsersClient(http).get_user(user_id=uuid.uuid4())
    assert missing.value.code == "missing_token"
    with pytest.raises(Unauthorized) as bad:
        await UsersClient(http, token="not.a.jwt").get_user(user_id=uuid.uuid4())
    assert bad.value.code == "invalid_token"


async def test_client_refuses_to_act_for_another_user(api: Api, http: httpx.AsyncClient) -> None:
    client, user_id, sid = await _trader_session(http, api)
    with pytest.raises(Forbidden) as exc:
        await client.get_settings(user_id=uuid.uuid4())
    assert exc.value.code == "not_token_owner"
    with pytest.raises(Forbidden):
        await client.logout(user_id=user_id, session_id=uuid.uuid4())
    await client.logout(user_id=user_id, session_id=sid)
    with pytest.raises(Unauthorized) as revoked:
        await client.get_user(user_id=user_id)
    assert revoked.value.code == "token_revoked"


def _mock(handler: httpx.MockTransport) -> UsersClient:
    return UsersClient(httpx.AsyncClient(transport=handler, base_url="http://users.internal"))


async def test_client_maps_rate_limits_server_errors_and_transport_failures() -> None:
    def limited(_request: httpx.Request) -> httpx.Response:
        problem = {
            "type": "urn:algotrendy:problem:rate_limited",
            "title": "Too many requests",
            "status": 429,
            "detail": "slow down",
            "code": "rate_limited",
        }
        return httpx.Response(429, headers={"Retry-After": "7"}, json=problem)

    def broken(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def garbage(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"not": "a user"})

    with pytest.raises(TooManyRequests) as rate:
        await _mock(httpx.MockTransport(limited)).request_password_reset(email="a@example.com", ip=IP)
    assert (rate.value.retry_after, rate.value.code, rate.value.detail) == (7, "rate_limited", "slow down")
    with pytest.raises(TemporaryError) as server:
        await _mock(httpx.MockTransport(broken)).request_password_reset(email="a@example.com", ip=IP)
    assert server.value.code == "temporarily_unavailable"
    with pytest.raises(TemporaryError) as transport:
        await _mock(httpx.MockTransport(unreachable)).request_password_reset(email="a@example.com", ip=IP)
    assert transport.value.code == "upstream_unavailable"
    with pytest.raises(TemporaryError) as bad_body:
        await _mock(httpx.MockTransport(garbage)).verify_email(token="t" * 20)
    assert bad_body.value.code == "bad_upstream_response"


async def test_client_keeps_code_and_field_of_a_domain_422(api: Api, http: httpx.AsyncClient) -> None:
    with pytest.raises(Invalid) as exc:
        await UsersClient(http).verify_email(token="y" * 43)
    assert (exc.value.code, exc.value.field) == ("invalid_token", "token")
