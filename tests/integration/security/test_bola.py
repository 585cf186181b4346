"""API1 (object level) and API5 (function level) authorization.

User A handed user B's ids gets 404 (as for an id that does not exist), learns nothing of B and
changes nothing. The role x route matrix is built from the published OpenAPI document, so a new
route is covered (or makes this test fail) without anyone remembering to add it here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute

from algotrendy.core.auth import Role
from tests.apphelp import Api

PROBLEM_JSON = "application/problem+json"

PUBLIC: set[tuple[str, str]] = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("GET", "/auth/jwks.json"),
    ("POST", "/api/v1/users/register"),
    ("GET", "/api/v1/users/verify-email"),
    ("POST", "/api/v1/users/verify-email"),
    ("POST", "/api/v1/users/reset-password"),
    ("POST", "/api/v1/users/reset-password/confirm"),
}
PUBLIC_OUTSIDE_SPEC = [("GET", "/docs"), ("GET", "/openapi.json")]

EXPECTED_ADMIN: set[tuple[str, str]] = {
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{user_id}"),
    ("PUT", "/api/v1/users/{user_id}/role"),
    ("POST", "/api/v1/users/{user_id}/deactivate"),
    ("POST", "/api/v1/users/{user_id}/activate"),
}


def spec_operations(api: Api) -> dict[tuple[str, str], dict[str, Any]]:
    spec = api.app.openapi()
    return {
        (method.upper(), path): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }


def _walk(routes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.13x nests included routers
        out.extend(_walk(included.routes) if included is not None else [route])
    return out


def _dependency_names(dependant: Any) -> set[str]:
    names: set[str] = set()
    for dep in dependant.dependencies:
        names.add(getattr(dep.call, "__name__", ""))
        names |= _dependency_names(dep)
    return names


def admin_operations(api: Api) -> set[tuple[str, str]]:
    """Operations whose dependencies include ``require(Permission.MANAGE_USERS)``."""
    found: set[tuple[str, str]] = set()
    for route in _walk(api.app.router.routes):
        if isinstance(route, APIRoute) and "require_manage_users" in _dependency_names(route.dependant):
            found |= {(m, route.path_format) for m in route.methods}
    return found


def success_status(op: dict[str, Any]) -> int:
    return min(int(code) for code in op["responses"] if code.isdigit() and code.startswith("2"))


def fill(path: str, **params: str) -> str:
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a path parameter in {path}"
    return path


# ---- API1: object level ------------------------------------------------------------------------


async def _current_session_id(api: Api, headers: dict[str, str]) -> str:
    r = await api.client.get("/api/v1/users/sessions", headers=headers)
    assert r.status_code == 200
    (current,) = [s for s in r.json() if s["current"]]
    return str(current["id"])


async def test_user_cannot_revoke_another_users_session_and_gets_404(api: Api) -> None:
    _a, a_headers, _ = await api.user()
    b, b_headers, _ = await api.user()
    b_session = await _current_session_id(api, b_headers)

    r = await api.client.delete(f"/api/v1/users/sessions/{b_session}", headers=a_headers)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    # the same answer as for a session that does not exist: no existence oracle
    missing = await api.client.delete(f"/api/v1/users/sessions/{uuid.uuid4()}", headers=a_headers)
    assert missing.status_code == 404
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(r.json()) == strip(missing.json())
    assert b_session not in r.text and b["email"] not in r.text and b["username"] not in r.text

    # B's session is untouched
    assert (await api.client.get("/auth/me", headers=b_headers)).status_code == 200
    assert await _current_session_id(api, b_headers) == b_session
    # and A can still revoke its own
    a_session = await _current_session_id(api, a_headers)
    assert (
        await api.client.delete(f"/api/v1/users/sessions/{a_session}", headers=a_headers)
    ).status_code == 204
    assert (await api.client.get("/auth/me", headers=a_headers)).status_code == 401
    assert (await api.client.get("/auth/me", headers=b_headers)).status_code == 200


async def test_user_responses_never_contain_another_users_data(api: Api) -> None:
    _a, a_headers, _ = await api.user()
    b, b_headers, _ = await api.user()
    b_session = await _current_session_id(api, b_headers)
    # give B some history A might see by mistake
    await api.client.post(
        "/auth/login",
        json={"username": b["username"], "password": "wrong-password"},
        headers={"User-Agent": "b-agent-marker"},
    )
    await api.client.put("/api/v1/users/profile", headers=b_headers, json={"first_name": "Bfirstname"})

    b_markers = [b["email"], b["username"], b["id"], b_session, "b-agent-marker", "Bfirstname"]
    ops = spec_operations(api)
    admin = admin_operations(api)
    seen = 0
    for (method, path), _op in sorted(ops.items()):
        if method != "GET" or (method, path) in PUBLIC or (method, path) in admin or "{" in path:
            continue
        r = await api.client.get(path, headers=a_headers)
        assert r.status_code == 200, (path, r.text)
        seen += 1
        for marker in b_markers:
            assert marker.lower() not in r.text.lower(), (path, marker)
    assert seen >= 6  # me, profile, settings, sessions, login-history, notifications
    # admin routes with B's id: 403 for A, and nothing of B in the answer
    for method, path in sorted(admin):
        if "{user_id}" not in path:
            continue
        r = await api.client.request(
            method,
            fill(path, user_id=b["id"]),
            headers=a_headers,
            json={"role": "admin"} if method == "PUT" else None,
        )
        assert r.status_code == 403, (method, path, r.text)
        for marker in b_markers:
            assert marker.lower() not in r.text.lower(), (path, marker)
    # nothing changed for B
    me_b = (await api.client.get("/auth/me", headers=b_headers)).json()
    assert me_b["role"] == "trader" and me_b["is_active"] is True
    me_a = (await api.client.get("/auth/me", headers=a_headers)).json()
    assert me_a["role"] == "trader"


# ---- API5: function level, the role x route matrix ---------------------------------------------


async def test_public_routes_are_exactly_the_unsecured_operations_of_the_spec(api: Api) -> None:
    ops = spec_operations(api)
    unsecured = {key for key, op in ops.items() if not op.get("security")}
    assert unsecured == PUBLIC
    assert EXPECTED_ADMIN <= admin_operations(api) <= set(ops)
    for method, path in PUBLIC_OUTSIDE_SPEC:
        assert (await api.client.request(method, path)).status_code == 200


async def test_every_non_public_route_answers_401_without_a_token(api: Api) -> None:
    ops = spec_operations(api)
    dummy = str(uuid.uuid4())
    checked = 0
    for (method, path), _op in sorted(ops.items()):
        if (method, path) in PUBLIC:
            continue
        url = fill(
            path,
            user_id=dummy,
            session_id=dummy,
            job_id=dummy,
            strategy_id=dummy,
            backtest_id=dummy,
            order_id=dummy,
            portfolio_id=dummy,
            position_id=dummy,
            connection_id=dummy,
            deployment_id=dummy,
            alert_id=dummy,
            report_id=dummy,
            model_id=dummy,
            signal_id=dummy,
            name="some-model",
            format="pdf",
            version="1",
            symbol="SPY",
            subscription_id="sub_x",
            chain_id="1",
            token_address="0x" + "1" * 40,
            wallet_address="0x" + "2" * 40,
        )
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = await api.client.request(
                method, url, headers=headers, json={} if method in {"POST", "PUT", "PATCH"} else None
            )
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["content-type"].startswith(PROBLEM_JSON)
        checked += 1
    assert checked >= 20


def _admin_request(method: str, path: str, target: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """A valid request for each manage_users operation."""
    url = fill(path, user_id=target["id"])
    bodies: dict[tuple[str, str], dict[str, Any] | None] = {
        ("GET", "/api/v1/users"): None,
        ("POST", "/api/v1/users"): {
            "email": f"made{uuid.uuid4().hex[:8]}@example.com",
            "username": f"made{uuid.uuid4().hex[:8]}",
            "password": "created by admin",
            "role": "viewer",
        },
        ("GET", "/api/v1/users/{user_id}"): None,
        ("PUT", "/api/v1/users/{user_id}/role"): {"role": "viewer"},
        ("POST", "/api/v1/users/{user_id}/deactivate"): None,
        ("POST", "/api/v1/users/{user_id}/activate"): None,
    }
    assert (method, path) in bodies, f"new admin route {method} {path}: add a valid request for it here"
    return url, bodies[(method, path)]


# deactivate before activate so the target ends active
_ORDER = {"deactivate": 0, "activate": 1}


def _ordered(ops: set[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(ops, key=lambda k: (_ORDER.get(k[1].rsplit("/", 1)[-1], -1), k))


@pytest.mark.parametrize("role", [Role.TRADER, Role.VIEWER])
async def test_admin_routes_refuse_traders_and_viewers_with_403(api: Api, role: Role) -> None:
    target, _t_headers, _ = await api.user()
    caller, headers, _ = await api.user(role)
    me = (await api.client.get("/auth/me", headers=headers)).json()
    assert me["role"] == role.value and "manage_users" not in me["permissions"]
    admin = admin_operations(api)
    assert admin >= EXPECTED_ADMIN
    for method, path in _ordered(admin):
        url, body = _admin_request(method, path, target)
        r = await api.client.request(method, url, headers=headers, json=body)
        assert r.status_code == 403, (role, method, path, r.text)
        assert r.headers["content-type"].startswith(PROBLEM_JSON)
        assert r.json()["code"] == "permission_denied"
        # and on its own id too: no self-service escalation through the admin routes
        if "{user_id}" in path:
            own_url, own_body = _admin_request(method, path, caller)
            own = await api.client.request(
                method, own_url, headers=headers, json={"role": "admin"} if own_body else None
            )
            assert own.status_code == 403, (role, method, path, own.text)
    # nothing changed: the target is still an active trader, no user was created
    t = await api.users.get_user(user_id=uuid.UUID(target["id"]))
    assert t.role is Role.TRADER and t.is_active
    listed = await api.users.list_users(limit=200, offset=0, q="made", role=None, active=None)
    assert listed.total == 0
    me_after = (await api.client.get("/auth/me", headers=headers)).json()
    assert me_after["role"] == role.value


async def test_admin_routes_answer_an_admin_with_success(api: Api) -> None:
    target, _t_headers, _ = await api.user()
    _admin, headers, _ = await api.user(Role.ADMIN)
    ops = spec_operations(api)
    admin = admin_operations(api)
    for method, path in _ordered(admin):
        url, body = _admin_request(method, path, target)
        r = await api.client.request(method, url, headers=headers, json=body)
        assert r.status_code == success_status(ops[(method, path)]), (method, path, r.text)
        assert 200 <= r.status_code < 300
    t = await api.users.get_user(user_id=uuid.UUID(target["id"]))
    assert t.role is Role.VIEWER and t.is_active


async def test_user_gets_404_for_every_route_on_another_users_job(api: Api) -> None:
    from tests.integration.jobs.jobfns import count

    jobs = api.container.services["jobs"]
    api.container.services["jobs.registry"].register("test.count", count)
    owner, owner_headers, _ = await api.user()
    _other, other_headers, _ = await api.user()
    job = await jobs.submit(owner=uuid.UUID(owner["id"]), kind="test.count", params={"n": 3})
    for method, url in (("GET", f"/api/v1/jobs/{job.id}"), ("POST", f"/api/v1/jobs/{job.id}/cancel")):
        r = await api.client.request(method, url, headers=other_headers)
        assert r.status_code == 404, (method, url, r.text)
    listed = await api.client.get("/api/v1/jobs", headers=other_headers)
    assert listed.status_code == 200 and all(j["id"] != str(job.id) for j in listed.json())
    mine = await api.client.get(f"/api/v1/jobs/{job.id}", headers=owner_headers)
    assert mine.status_code == 200 and mine.json()["cancel_requested"] is False


async def test_user_gets_404_for_every_route_on_another_users_strategy(api: Api) -> None:
    owner, owner_headers, _ = await api.user()
    _other, other_headers, _ = await api.user()
    template = {
        "name": "Owner's cross",
        "parameters": {"n": {"name": "n", "type": "int", "min_value": 2, "max_value": 50, "default": 10}},
        "entry_conditions": ["close crosses_above sma(close, n)"],
        "exit_conditions": ["close crosses_below sma(close, n)"],
    }
    r = await api.client.post(
        "/api/v1/strategies", json={"name": "owner-marker", "template": template}, headers=owner_headers
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    ops = spec_operations(api)
    # the strategies service's own routes (the backtest service's routes under the same prefix
    # take other bodies)
    routes = sorted(
        k for k, op in ops.items() if "{strategy_id}" in k[1] and op.get("tags") == ["strategies"]
    )
    assert len(routes) == 5
    for method, path in routes:
        url = fill(path, strategy_id=sid, version="1")
        body = {"name": "stolen"} if method == "PUT" else None
        r = await api.client.request(method, url, headers=other_headers, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert "owner-marker" not in r.text and owner["id"] not in r.text
    listed = await api.client.get("/api/v1/strategies", headers=other_headers)
    assert listed.status_code == 200 and listed.json() == []
    mine = await api.client.get(f"/api/v1/strategies/{sid}", headers=owner_headers)
    assert mine.status_code == 200 and mine.json()["name"] == "owner-marker"
