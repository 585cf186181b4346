"""API2 (broken authentication): every forged, stale or misused bearer token gets 401 problem+json.

Each forgery is a small change to a token the server really issued, and
``test_resigned_copy_of_a_real_token_is_accepted`` proves the crafting itself is right (the same
claims, signed the same way, are accepted), so each refusal is due to the one thing changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from algotrendy.core.auth import Role, permissions_for
from algotrendy.core.clock import ManualClock
from algotrendy.gateway.keys import write_secret_file
from algotrendy.gateway.tokens import TokenCodec
from tests.apphelp import Api, make_settings, remember, running

PROBLEM_JSON = "application/problem+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A JWT assembled by hand: ``sign(signing_input) -> signature bytes`` (None: empty signature)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign is not None else b""
    return f"{signing_input}.{_b64(signature)}"


@dataclass
class Victim:
    api: Api
    user: dict[str, Any]
    headers: dict[str, str]
    password: str
    token: str
    claims: dict[str, Any]
    kid: str

    @property
    def private_key(self) -> Any:
        return self.api.container.keys.signing.private_key

    def fresh_claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {**self.claims, "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 600}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign_real(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, "typ": "at+jwt", **header}
        token = jwt.encode(claims, self.private_key, algorithm="EdDSA", headers=headers)
        remember(token)
        return token


@pytest.fixture
async def victim(api: Api) -> Victim:
    user, headers, password = await api.user()
    token = headers["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    claims = jwt.decode(token, options={"verify_signature": False})
    return Victim(api, user, headers, password, token, claims, header["kid"])


async def me(api: Api, token: str) -> Any:
    return await api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


async def assert_refused(api: Api, token: str, code: str | None = None) -> dict[str, Any]:
    r = await me(api, token)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = r.json()
    assert body["status"] == 401 and body["type"].startswith("urn:algotrendy:problem:")
    if code is not None:
        assert body["code"] == code, body
    return body


# ---- the control -------------------------------------------------------------------------------


async def test_resigned_copy_of_a_real_token_is_accepted(victim: Victim) -> None:
    assert (await me(victim.api, victim.token)).status_code == 200
    copy = victim.sign_real(victim.fresh_claims())
    r = await me(victim.api, copy)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == victim.user["id"]


# ---- algorithm and key confusion ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_token_is_refused(victim: Victim, alg: str) -> None:
    forged = raw_jwt({"alg": alg, "kid": victim.kid, "typ": "at+jwt"}, victim.fresh_claims())
    await assert_refused(victim.api, forged, "invalid_token")
    # and with the original signature left on
    original_sig = victim.token.rsplit(".", 1)[1]
    forged_with_sig = forged + original_sig
    await assert_refused(victim.api, forged_with_sig, "invalid_token")


async def test_token_signed_by_another_ed25519_key_with_the_real_kid_is_refused(victim: Victim) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    forged = jwt.encode(
        victim.fresh_claims(), other, algorithm="EdDSA", headers={"kid": victim.kid, "typ": "at+jwt"}
    )
    await assert_refused(victim.api, forged, "invalid_token")


async def test_hs256_signed_with_the_public_key_pem_is_refused(victim: Victim) -> None:
    """HS/RS confusion: the verifier must never use its public key as an HMAC secret."""
    public = victim.private_key.public_key()
    pems = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        json.dumps(victim.api.container.keys.get(victim.kid).jwk()).encode(),
    ]
    for secret in pems:
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            forged = raw_jwt(
                {"alg": alg, "kid": victim.kid, "typ": "at+jwt"},
                victim.fresh_claims(),
                lambda msg, s=secret, d=digest: hmac.new(s, msg, d).digest(),
            )
            await assert_refused(victim.api, forged, "invalid_token")


async def test_rs256_token_with_the_real_kid_is_refused(victim: Victim) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        victim.fresh_claims(), rsa_key, algorithm="RS256", headers={"kid": victim.kid, "typ": "at+jwt"}
    )
    await assert_refused(victim.api, forged, "invalid_token")


async def test_real_key_with_a_different_alg_header_is_refused(victim: Victim) -> None:
    # a real EdDSA signature, but the header claims another algorithm
    forged = raw_jwt(
        {"alg": "ES256", "kid": victim.kid, "typ": "at+jwt"}, victim.fresh_claims(), victim.private_key.sign
    )
    await assert_refused(victim.api, forged, "invalid_token")


# ---- registered claims -------------------------------------------------------------------------


async def test_expired_token_is_refused(victim: Victim) -> None:
    api = victim.api
    a = api.container.settings.auth
    clock = ManualClock(datetime.now(UTC) - timedelta(hours=2))
    codec = TokenCodec(
        keys=api.container.keys,
        issuer=a.issuer,
        audience=a.audience,
        access_ttl=900,
        leeway=a.leeway_seconds,
        clock=clock,
    )
    token, exp = codec.issue_access(
        user_id=uuid.UUID(victim.user["id"]),
        username=victim.user["username"],
        role=Role.TRADER,
        permissions=permissions_for(Role.TRADER),
        session_id=uuid.UUID(victim.claims["sid"]),
    )
    remember(token)
    assert exp < datetime.now(UTC)
    await assert_refused(api, token, "token_expired")
    # hand-made too: expired a minute ago (well past the leeway)
    now = int(time.time())
    stale = victim.sign_real(victim.fresh_claims(iat=now - 960, nbf=now - 960, exp=now - 60))
    await assert_refused(api, stale, "token_expired")


async def test_token_with_nbf_in_the_future_is_refused(victim: Victim) -> None:
    now = int(time.time())
    early = victim.sign_real(victim.fresh_claims(nbf=now + 600, exp=now + 1200))
    await assert_refused(victim.api, early, "invalid_token")


async def test_token_with_iat_in_the_future_is_refused(victim: Victim) -> None:
    now = int(time.time())
    await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(iat=now + 600)), "invalid_token")


async def test_token_with_wrong_audience_is_refused(victim: Victim) -> None:
    for aud in ("another-api", ["another-api"], None):
        await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(aud=aud)), "invalid_token")


async def test_token_with_wrong_issuer_is_refused(victim: Victim) -> None:
    for iss in ("evil-issuer", None):
        await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(iss=iss)), "invalid_token")


@pytest.mark.parametrize("claim", ["sub", "sid", "jti", "exp", "nbf", "iat", "typ", "role"])
async def test_token_missing_a_required_claim_is_refused(victim: Victim, claim: str) -> None:
    claims = victim.fresh_claims()
    del claims[claim]
    await assert_refused(victim.api, victim.sign_real(claims), "invalid_token")


async def test_key_named_in_the_token_itself_is_never_used(victim: Victim) -> None:
    """An attacker's key embedded as ``jwk`` or pointed at by ``jku``/``x5u`` must not verify."""
    from jwt.algorithms import OKPAlgorithm

    attacker = ed25519.Ed25519PrivateKey.generate()
    attacker_jwk = OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    for extra in (
        {"jwk": attacker_jwk},
        {"jku": "http://127.0.0.1:9/jwks.json"},
        {"x5u": "http://127.0.0.1:9/c"},
    ):
        forged = jwt.encode(
            victim.fresh_claims(),
            attacker,
            algorithm="EdDSA",
            headers={"kid": victim.kid, "typ": "at+jwt", **extra},
        )
        await assert_refused(victim.api, forged, "invalid_token")


async def test_unknown_critical_header_is_refused(victim: Victim) -> None:
    for extra in ({"crit": ["urn:example:ext"], "urn:example:ext": 1}, {"crit": ["b64"], "b64": False}):
        await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(), **extra), "invalid_token")


async def test_token_with_unknown_kid_is_refused(victim: Victim) -> None:
    for kid in ("unknown-kid", "", "../" + victim.kid):
        await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(), kid=kid), "invalid_token")
    # no kid at all
    no_kid = raw_jwt({"alg": "EdDSA", "typ": "at+jwt"}, victim.fresh_claims(), victim.private_key.sign)
    await assert_refused(victim.api, no_kid, "invalid_token")


async def test_token_without_typ_header_is_refused(victim: Victim) -> None:
    forged = raw_jwt({"alg": "EdDSA", "kid": victim.kid}, victim.fresh_claims(), victim.private_key.sign)
    await assert_refused(victim.api, forged, "invalid_token")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "rt+jwt", "AT+JWT "])
async def test_token_whose_typ_header_is_not_at_jwt_is_refused(victim: Victim, typ: str) -> None:
    await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(), typ=typ), "invalid_token")


@pytest.mark.parametrize("typ", ["refresh", "id", "Access", ""])
async def test_token_whose_typ_claim_is_not_access_is_refused(victim: Victim, typ: str) -> None:
    await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(typ=typ)), "invalid_token")


async def test_token_with_an_unknown_role_or_malformed_subject_is_refused(victim: Victim) -> None:
    for changes in (
        {"role": "superuser"},
        {"sub": "not-a-uuid"},
        {"sid": "not-a-uuid"},
        {"permissions": ["root"]},
        {"exp": "tomorrow"},
    ):
        await assert_refused(victim.api, victim.sign_real(victim.fresh_claims(**changes)), "invalid_token")


# ---- not a token at all, or tampered -------------------------------------------------------------


async def test_refresh_token_used_as_bearer_token_is_refused(victim: Victim) -> None:
    tokens = await victim.api.login(victim.user["username"], victim.password)
    await assert_refused(victim.api, tokens["refresh_token"], "invalid_token")


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b.c",
        "...",
        "eyJhbGciOiJFZERTQSJ9",
        "eyJhbGciOiJFZERTQSJ9.e30.",
        "x" * 5000,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "%00%ff",
        "null",
    ],
)
async def test_garbage_token_is_refused(victim: Victim, garbage: str) -> None:
    await assert_refused(victim.api, garbage)


async def test_missing_or_non_bearer_authorization_is_refused(victim: Victim) -> None:
    api = victim.api
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": ""},
        {"Authorization": f"Basic {victim.token}"},
        {"Authorization": victim.token},
    ):
        r = await api.client.get("/auth/me", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["content-type"].startswith(PROBLEM_JSON)
        assert r.json()["code"] in {"missing_token", "invalid_token"}


def _flip(ch: str) -> str:
    return "A" if ch != "A" else "B"


async def test_tampered_payload_is_refused(victim: Victim) -> None:
    header, payload, signature = victim.token.split(".")
    for i in (len(payload) // 3, len(payload) // 2, 2 * len(payload) // 3):
        tampered_payload = payload[:i] + _flip(payload[i]) + payload[i + 1 :]
        await assert_refused(victim.api, f"{header}.{tampered_payload}.{signature}", "invalid_token")
    # a meaningful tamper: promote ourselves to admin, keep the signature
    claims = {
        **victim.claims,
        "role": "admin",
        "permissions": sorted(p.value for p in permissions_for(Role.ADMIN)),
    }
    escalated = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    await assert_refused(victim.api, escalated, "invalid_token")
    # tampered signature and header too
    sig_flipped = signature[:5] + _flip(signature[5]) + signature[6:]
    await assert_refused(victim.api, f"{header}.{payload}.{sig_flipped}", "invalid_token")
    await assert_refused(victim.api, f"{header}.{payload}.", "invalid_token")
    # the untouched token still works: only the tampering was refused
    assert (await me(victim.api, victim.token)).status_code == 200


# ---- tokens of ended sessions ------------------------------------------------------------------


async def test_token_after_logout_is_refused(victim: Victim) -> None:
    api = victim.api
    other = await api.login(victim.user["username"], victim.password)  # a second session
    assert (await api.client.post("/auth/logout", headers=victim.headers)).status_code == 204
    await assert_refused(api, victim.token, "token_revoked")
    # a fresh token re-signed for the ended session is refused as well
    await assert_refused(api, victim.sign_real(victim.fresh_claims()), "token_revoked")
    # the other session is untouched
    assert (await me(api, other["access_token"])).status_code == 200


async def test_token_after_password_change_is_refused(victim: Victim) -> None:
    api = victim.api
    r = await api.client.post(
        "/api/v1/users/change-password",
        headers=victim.headers,
        json={"current_password": victim.password, "new_password": "a new long password"},
    )
    assert r.status_code == 204
    remember("a new long password")
    await assert_refused(api, victim.token, "token_revoked")


async def test_token_after_deactivation_or_role_change_is_refused(victim: Victim) -> None:
    api = victim.api
    _admin, admin_headers, _ = await api.user(Role.ADMIN)
    second, second_headers, _ = await api.user()
    r = await api.client.post(f"/api/v1/users/{victim.user['id']}/deactivate", headers=admin_headers)
    assert r.status_code == 200
    await assert_refused(api, victim.token, "token_revoked")
    r = await api.client.put(
        f"/api/v1/users/{second['id']}/role", headers=admin_headers, json={"role": "viewer"}
    )
    assert r.status_code == 200
    await assert_refused(api, second_headers["Authorization"].removeprefix("Bearer "), "token_revoked")


# ---- key rotation by kid -----------------------------------------------------------------------


def _pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def test_tokens_of_an_older_key_in_the_ring_verify_and_a_removed_kid_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key_dir = settings.data_dir / "secrets" / "jwt"

    async with running(settings) as api:
        user, old_headers, password = await api.user()
        old_kid = api.container.keys.signing.kid
        old_token = old_headers["Authorization"].removeprefix("Bearer ")
        assert jwt.get_unverified_header(old_token)["kid"] == old_kid
        assert (key_dir / f"{old_kid}.pem").is_file()

    # rotate: a newer key file (it sorts last, so it signs from the next start)
    new_kid = "99991231235959-rotated"
    write_secret_file(key_dir / f"{new_kid}.pem", _pem(ed25519.Ed25519PrivateKey.generate()))

    async with running(settings) as api:
        assert api.container.keys.signing.kid == new_kid
        assert set(api.container.keys.kids) == {old_kid, new_kid}
        jwks_kids = {k["kid"] for k in (await api.client.get("/auth/jwks.json")).json()["keys"]}
        assert jwks_kids == {old_kid, new_kid}
        # the token signed with the older key still verifies
        r = await me(api, old_token)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == user["id"]
        new_token = (await api.login(user["username"], password))["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert (await me(api, new_token)).status_code == 200

    # prune the old key: its tokens are refused, the new key's still work
    (key_dir / f"{old_kid}.pem").unlink()
    async with running(settings) as api:
        assert api.container.keys.kids == [new_kid]
        await assert_refused(api, old_token, "invalid_token")
        assert (await me(api, new_token)).status_code == 200
