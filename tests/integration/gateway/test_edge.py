"""The HTTP edge (API4, API8): token buckets per IP, per user and for auth routes, the body size
limit, problem+json for every framework error, request ids, readiness, metrics by route
template, CORS and X-Forwarded-For trust."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apphelp import Api, make_settings, remember, running

PROBLEM_JSON = "application/problem+json"
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
STINGY = {"ip_rate_per_minute": 0.001}  # a bucket that does not refill during a test


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
    body = r.json()
    assert body["status"] == status and body["type"] == f"urn:algotrendy:problem:{body['code']}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == r.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_retry_after(r: httpx.Response) -> None:
    assert int(r.headers["Retry-After"]) >= 1


@pytest.fixture
async def small_body_api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running(make_settings(tmp_path, gateway={"max_body_bytes": 1024})) as api:
        yield api


# ---- token buckets -----------------------------------------------------------------------------


async def test_per_ip_bucket_gives_429_with_retry_after_and_never_limits_health(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"ip_burst": 5, **STINGY})
    async with running(settings) as api:
        for _ in range(5):
            assert (await api.client.get("/auth/jwks.json")).status_code == 200
        limited = await api.client.get("/auth/jwks.json")
        assert_problem(limited, 429, "rate_limited")
        assert_retry_after(limited)
        # every API route shares the address's bucket, authenticated or not, known or not
        assert_problem(await api.client.post("/auth/login", json={"username": "x", "password": "y"}), 429)
        assert_problem(await api.client.get("/api/v1/users/profile"), 429)
        assert_problem(await api.client.get("/no/such/route"), 429)
        # the platform probes are never limited
        for _ in range(30):
            assert (await api.client.get("/health")).status_code == 200
        assert (await api.client.get("/ready")).status_code == 200
        assert (await api.client.get("/metrics")).status_code == 200


async def test_per_user_bucket_gives_429_past_the_burst(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"user_burst": 5, "user_rate_per_minute": 0.001})
    async with running(settings) as api:
        user, headers, password = await api.user()
        _other, other_headers, _ = await api.user()
        for _ in range(5):
            assert (await api.client.get("/auth/me", headers=headers)).status_code == 200
        limited = await api.client.get("/auth/me", headers=headers)
        assert_problem(limited, 429, "rate_limited")
        assert_retry_after(limited)
        assert_problem(await api.client.get("/api/v1/users/sessions", headers=headers), 429)
        # the bucket is the account's, not the token's: a new session does not reset it
        fresh = await api.login(user["username"], password)
        again = await api.client.get("/auth/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert_problem(again, 429)
        # other users are unaffected
        assert (await api.client.get("/auth/me", headers=other_headers)).status_code == 200


async def test_auth_bucket_limits_login_attempts_per_ip(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"auth_burst": 5, "auth_rate_per_minute": 0.001})
    async with running(settings) as api:
        for i in range(5):  # distinct names, so the per-account lockout plays no part
            r = await api.client.post(
                "/auth/login", json={"username": f"nobody{i}", "password": "wrong-password"}
            )
            assert_problem(r, 401, "invalid_credentials")
        limited = await api.client.post(
            "/auth/login", json={"username": "nobody9", "password": "wrong-password"}
        )
        assert_problem(limited, 429, "rate_limited")
        assert_retry_after(limited)
        # register and reset share the auth bucket
        reg = await api.client.post(
            "/api/v1/users/register",
            json={"email": "late@example.com", "username": "late", "password": "long enough password"},
        )
        assert_problem(reg, 429)
        assert_problem(
            await api.client.post("/api/v1/users/reset-password", json={"email": "a@example.com"}), 429
        )
        # other routes are not auth-limited
        assert (await api.client.get("/auth/jwks.json")).status_code == 200
        assert (await api.client.get("/health")).status_code == 200


# ---- body size ---------------------------------------------------------------------------------


def _padded_registration(username: str, size: int) -> bytes:
    body = json.dumps(
        {"email": f"{username}@example.com", "username": username, "password": "long enough password"}
    ).encode()
    return body + b" " * (size - len(body))  # still valid JSON: it would register if let through


async def _not_created(api: Api, username: str) -> None:
    listed = await api.users.list_users(limit=10, offset=0, q=username, role=None, active=None)
    assert listed.total == 0
    r = await api.client.post("/auth/login", json={"username": username, "password": "long enough password"})
    assert r.status_code == 401


async def test_body_over_the_limit_with_content_length_is_413_and_writes_nothing(small_body_api: Api) -> None:
    api = small_body_api
    # the control: the same body under the limit registers
    ok = await api.client.post(
        "/api/v1/users/register",
        content=_padded_registration("fits", 1000),
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 201, ok.text
    r = await api.client.post(
        "/api/v1/users/register",
        content=_padded_registration("toobig", 5000),
        headers={"content-type": "application/json"},
    )
    assert "content-length" in r.request.headers
    assert_problem(r, 413)
    await _not_created(api, "toobig")


async def test_body_over_the_limit_streamed_chunked_is_413_and_writes_nothing(small_body_api: Api) -> None:
    api = small_body_api
    payload = _padded_registration("streamed", 5000)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256):
            yield payload[i : i + 256]

    r = await api.client.post(
        "/api/v1/users/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(r, 413)
    await _not_created(api, "streamed")


async def test_lying_content_length_is_caught_while_streaming(small_body_api: Api) -> None:
    api = small_body_api
    payload = _padded_registration("liar", 5000)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256):
            yield payload[i : i + 256]

    r = await api.client.post(
        "/api/v1/users/register",
        content=chunks(),
        headers={"content-type": "application/json", "content-length": "100"},
    )
    assert_problem(r, 413)
    await _not_created(api, "liar")


async def test_oversized_body_has_the_same_problem_code_whether_streamed_or_not(small_body_api: Api) -> None:
    api = small_body_api
    payload = _padded_registration("samecode", 5000)

    async def chunks() -> AsyncIterator[bytes]:
        yield payload

    with_length = await api.client.post(
        "/api/v1/users/register", content=payload, headers={"content-type": "application/json"}
    )
    streamed = await api.client.post(
        "/api/v1/users/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert assert_problem(with_length, 413)["code"] == assert_problem(streamed, 413)["code"]


# ---- framework errors are problem+json ---------------------------------------------------------


async def test_malformed_json_is_422_problem_json(api: Api) -> None:
    for content in (b'{"username": "x", ', b"not json", b'{"username": "x"}}', b"\xff\xfe"):
        r = await api.client.post(
            "/auth/login", content=content, headers={"content-type": "application/json"}
        )
        body = assert_problem(r, 422, "validation_error")
        assert body["errors"] and body["errors"][0]["field"].startswith("body")
    for content in (b"[]", b'"a string"', b"null", b"42"):
        r = await api.client.post(
            "/auth/login", content=content, headers={"content-type": "application/json"}
        )
        assert_problem(r, 422, "validation_error")


async def test_wrong_types_are_422_naming_each_field(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/users/register", json={"email": 123, "username": ["x"], "password": {"a": 1}}
    )
    body = assert_problem(r, 422, "validation_error")
    fields = {e["field"] for e in body["errors"]}
    assert {"body.email", "body.username", "body.password"} <= fields
    assert body["detail"].startswith("body.")
    r = await api.client.post("/auth/login", json={"username": {"$ne": None}, "password": "x"})
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["body.username"]
    missing = await api.client.post("/auth/login", json={"password": "x"})
    assert [e["field"] for e in assert_problem(missing, 422)["errors"]] == ["body.username"]


async def test_query_and_path_parameters_are_validated_with_the_field_named(api: Api) -> None:
    _user, headers, _ = await api.user()
    r = await api.client.get("/api/v1/users/login-history", params={"limit": "abc"}, headers=headers)
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["query.limit"]
    page = await api.client.get("/api/v1/users/login-history", params={"limit": 100_000}, headers=headers)
    assert [e["field"] for e in assert_problem(page, 422)["errors"]] == ["query.limit"]  # page size cap
    # ids are UUIDs in the route itself: a malformed one names no resource, so 404
    bad_id = await api.client.delete("/api/v1/users/sessions/not-a-uuid", headers=headers)
    assert_problem(bad_id, 404)


async def test_unknown_route_is_404_problem_json(api: Api) -> None:
    for path in ("/nope", "/api/v1/nothing-here", "/api/v2/users/profile", "/auth/me/extra"):
        assert_problem(await api.client.get(path), 404)


async def test_wrong_method_is_405_problem_json(api: Api) -> None:
    for method, path, allowed in (
        ("DELETE", "/health", "GET"),
        ("GET", "/auth/login", "POST"),
        ("PUT", "/auth/refresh", "POST"),
        ("PATCH", "/api/v1/users/profile", ""),
    ):
        r = await api.client.request(method, path)
        assert_problem(r, 405)
        assert allowed in r.headers["allow"]


# ---- request ids -------------------------------------------------------------------------------


async def test_every_response_carries_a_request_id(api: Api) -> None:
    _user, headers, _ = await api.user()
    responses = [
        await api.client.get("/health"),
        await api.client.get("/ready"),
        await api.client.get("/metrics"),
        await api.client.get("/auth/me", headers=headers),
        await api.client.get("/auth/me"),
        await api.client.get("/nope"),
        await api.client.delete("/health"),
        await api.client.post("/auth/login", content=b"{", headers={"content-type": "application/json"}),
        await api.client.post("/auth/login", content=b"x" * 2_000_000),
        await api.client.get("/api/v1/users", headers=headers),
    ]
    assert sorted({r.status_code for r in responses}) == [200, 401, 403, 404, 405, 413, 422]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(HEX_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_a_sane_incoming_request_id_is_echoed(api: Api) -> None:
    for rid in ("abc12345", "req-2024.01_01-xyz", "A" * 64, str(uuid.uuid4())):
        r = await api.client.get("/health", headers={"X-Request-ID": rid})
        assert r.headers["x-request-id"] == rid
        problem = await api.client.get("/nope", headers={"X-Request-ID": rid})
        assert problem.headers["x-request-id"] == rid and problem.json()["request_id"] == rid


async def test_a_malicious_incoming_request_id_is_replaced(api: Api) -> None:
    for rid in (
        "abc12345\nSet-Cookie: x=1",
        "a" * 500,
        "short",
        "id with spaces ok?",
        "<script>alert(1)</script>",
        "abc12345\r\nX-Evil: 1",
        "../../../../etc/passwd",
        "ünïcödé-id-1234",
    ):
        r = await api.client.get("/nope", headers={"X-Request-ID": rid.encode("utf-8")})
        returned = r.headers["x-request-id"]
        assert returned != rid and HEX_ID.match(returned), (rid, returned)
        assert r.json()["request_id"] == returned
        assert "x-evil" not in r.headers and "set-cookie" not in r.headers


async def test_a_request_id_with_a_trailing_newline_is_replaced(api: Api) -> None:
    r = await api.client.get("/nope", headers={"X-Request-ID": b"abcdefgh\n"})
    returned = r.headers["x-request-id"]
    assert "\n" not in returned and "\n" not in r.json()["request_id"]
    assert HEX_ID.match(returned)


# ---- unhandled errors --------------------------------------------------------------------------


@pytest.fixture
async def crashing(api: Api) -> AsyncIterator[tuple[Api, httpx.AsyncClient, dict[str, str]]]:
    """The app with one service call that blows up, and a client that sees the 500 answer."""
    _user, headers, _ = await api.user()

    async def boom(**_kw: Any) -> None:
        raise RuntimeError("internal detail at /srv/algotrendy/secret_module.py line 42")

    api.app.state.services["users"].get_settings = boom
    transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 40000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield api, client, headers


async def test_unhandled_error_is_a_generic_500_problem_without_internals(
    crashing: tuple[Api, httpx.AsyncClient, dict[str, str]],
) -> None:
    api, client, headers = crashing
    r = await client.get("/api/v1/users/settings", headers=headers)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    body = r.json()
    assert body["code"] == "internal_error" and HEX_ID.match(body["request_id"])
    for leak in ("secret_module", "RuntimeError", "Traceback", "/srv/", "line 42"):
        assert leak not in r.text
    # the app keeps serving
    assert (await client.get("/api/v1/users/profile", headers=headers)).status_code == 200
    text = (await api.client.get("/metrics")).text
    assert 'route="/api/v1/users/settings",status="500"' in text


async def test_unhandled_error_response_carries_the_request_id_header(
    crashing: tuple[Api, httpx.AsyncClient, dict[str, str]],
) -> None:
    _api, client, headers = crashing
    r = await client.get("/api/v1/users/settings", headers={**headers, "X-Request-ID": "trace-me-500"})
    assert r.status_code == 500
    assert r.json()["request_id"] == "trace-me-500"
    assert r.headers.get("x-request-id") == "trace-me-500"


# ---- production mode ---------------------------------------------------------------------------


async def test_production_mode_serves_no_docs_or_spec(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from algotrendy.core.crypto import SecretBox

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    fernet = SecretBox.generate_key().decode()
    remember(*pem.splitlines()[1:-1], fernet)
    settings = make_settings(
        tmp_path, env="production", auth={"private_key": pem}, secrets={"encryption_key": fernet}
    )
    async with running(settings) as api:
        for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
            assert_problem(await api.client.get(path), 404)
        assert (await api.client.get("/health")).status_code == 200
        assert not (settings.data_dir / "secrets" / "jwt").exists()  # the configured key, none generated


# ---- readiness and metrics ---------------------------------------------------------------------


async def test_ready_returns_200_with_checks(api: Api) -> None:
    r = await api.client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "bus": "ok", "cache": "ok"}


async def test_metrics_count_requests_by_route_template_never_raw_ids(api: Api) -> None:
    _user, headers, _ = await api.user()
    session_id = str(uuid.uuid4())
    r = await api.client.delete(f"/api/v1/users/sessions/{session_id}", headers=headers)
    assert r.status_code == 404
    raw = f"/no/such/{uuid.uuid4()}"
    assert (await api.client.get(raw)).status_code == 404
    text = (await api.client.get("/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith("algotrendy_http_requests_total{")]
    assert any(
        'route="/api/v1/users/sessions/{session_id}"' in line
        and 'method="DELETE"' in line
        and 'status="404"' in line
        for line in lines
    ), lines
    assert any('route="unmatched"' in line for line in lines)
    assert session_id not in text and raw not in text
    assert "algotrendy_http_request_duration_seconds_bucket" in text


# ---- CORS --------------------------------------------------------------------------------------


async def test_cors_preflight_is_allowed_only_for_configured_origins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"cors_origins": ["https://app.example"]})
    async with running(settings) as api:
        pre = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        }
        ok = await api.client.options("/auth/login", headers={"Origin": "https://app.example", **pre})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        for origin in ("https://evil.example", "https://app.example.evil.com", "http://app.example", "null"):
            bad = await api.client.options("/auth/login", headers={"Origin": origin, **pre})
            assert bad.status_code >= 400, origin
            assert "access-control-allow-origin" not in bad.headers, origin
        # simple requests: the allowed origin may read the answer (and its request id), others not
        allowed = await api.client.get("/health", headers={"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = await api.client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_configured_origins(api: Api) -> None:
    r = await api.client.options(
        "/auth/login", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in r.headers


# ---- X-Forwarded-For ---------------------------------------------------------------------------


async def _hit(api: Api, forwarded: str) -> int:
    r = await api.client.get("/auth/jwks.json", headers={"X-Forwarded-For": forwarded})
    return r.status_code


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, gateway={"ip_burst": 2, **STINGY})) as api:
        assert await _hit(api, "203.0.113.1") == 200
        assert await _hit(api, "203.0.113.1") == 200
        # a different forwarded address does not buy a new bucket: the peer is 127.0.0.1
        assert await _hit(api, "203.0.113.2") == 429
        assert await _hit(api, "198.51.100.7, 203.0.113.3") == 429
        r = await api.client.get("/auth/jwks.json")
        assert_problem(r, 429)


async def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"ip_burst": 2, **STINGY, "trusted_proxies": ["127.0.0.1"]})
    async with running(settings) as api:
        assert await _hit(api, "203.0.113.1") == 200
        assert await _hit(api, "203.0.113.1") == 200
        assert await _hit(api, "203.0.113.1") == 429
        # another client behind the same proxy has its own bucket
        assert await _hit(api, "203.0.113.2") == 200
        # a client cannot escape by prepending a fake hop: the rightmost untrusted hop counts
        assert await _hit(api, "198.51.100.99, 203.0.113.1") == 429
        assert await _hit(api, "203.0.113.1, 127.0.0.1") == 429  # our proxy chain is skipped


async def test_x_forwarded_for_split_over_several_headers_cannot_be_spoofed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"ip_burst": 1, **STINGY, "trusted_proxies": ["127.0.0.1"]})
    async with running(settings) as api:
        # the client forges the first line; the trusted proxy appends the real address as a second line
        for forged in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            r = await api.client.get(
                "/auth/jwks.json", headers=[("X-Forwarded-For", forged), ("X-Forwarded-For", "203.0.113.7")]
            )
            last = r.status_code
            if forged == "198.51.100.1":
                assert last == 200
        assert last == 429  # one real client, one bucket


async def test_login_history_records_the_forwarded_client_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, gateway={"trusted_proxies": ["127.0.0.1"]})
    async with running(settings) as api:
        user, password = await api.register()
        r = await api.client.post(
            "/auth/login",
            json={"username": user["username"], "password": password},
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
        assert r.status_code == 200
        remember(r.json()["access_token"], r.json()["refresh_token"])
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        history = (await api.client.get("/api/v1/users/login-history", headers=headers)).json()
        assert history[0]["ip"] == "203.0.113.50"
    async with running(make_settings(tmp_path / "untrusted")) as api:
        user, password = await api.register()
        r = await api.client.post(
            "/auth/login",
            json={"username": user["username"], "password": password},
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
        remember(r.json()["access_token"], r.json()["refresh_token"])
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        history = (await api.client.get("/api/v1/users/login-history", headers=headers)).json()
        assert history[0]["ip"] == "127.0.0.1"
