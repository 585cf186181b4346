"""Access tokens: short-lived JWTs, algorithm pinned by key, every registered claim checked.

Header: ``alg`` (must equal the algorithm of the key named by ``kid``), ``kid``, ``typ: at+jwt``.
Claims: ``iss aud sub sid jti iat nbf exp typ=access`` plus ``username role permissions``.
Time checks use the injected clock (with a small leeway), not the library's wall clock.
Refresh tokens are not JWTs: they are opaque random strings the users service stores hashed,
so a refresh token can never pass as an access token.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import structlog

from algotrendy.core.auth import Permission, Principal, Role
from algotrendy.core.clock import Clock
from algotrendy.core.errors import Unauthorized
from algotrendy.gateway.keys import KeyRing, VerifyKey, load_public_pem

log = structlog.get_logger(__name__)

ACCESS_TYP = "at+jwt"
_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "typ", "role"]


class TokenCodec:
    def __init__(
        self,
        *,
        keys: KeyRing,
        issuer: str,
        audience: str,
        access_ttl: int,
        leeway: int,
        clock: Clock,
        jwks_url: str | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.leeway = leeway
        self._clock = clock
        self._jwks_url = jwks_url
        self._jwks_fetched_at = -1e9
        # token -> (principal, exp): tokens that already passed full verification. A hit skips
        # only the signature and claim parsing; expiry is re-checked and revocation is checked
        # by the caller on every request.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._verified_max = 10_000

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        username: str,
        role: Role,
        permissions: frozenset[Permission],
        session_id: uuid.UUID,
    ) -> tuple[str, datetime]:
        signing = self.keys.signing
        if signing is None:
            raise RuntimeError("this process has no signing key (it does not host the users service)")
        now = self._clock.now()
        exp = now + timedelta(seconds=self.access_ttl)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(exp.timestamp()),
            "typ": "access",
            "username": username,
            "role": role.value,
            "permissions": sorted(p.value for p in permissions),
        }
        token = jwt.encode(
            claims,
            signing.private_key,
            algorithm=signing.algorithm,
            headers={"kid": signing.kid, "typ": ACCESS_TYP},
        )
        return token, exp

    async def _refresh_jwks(self) -> None:
        if not self._jwks_url or self._clock.monotonic() - self._jwks_fetched_at < 30:
            return
        self._jwks_fetched_at = self._clock.monotonic()
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.get(self._jwks_url)
                resp.raise_for_status()
                for jwk in resp.json().get("keys", []):
                    key = jwt.PyJWK.from_dict(jwk)
                    from cryptography.hazmat.primitives import serialization

                    pem = key.key.public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                    self.keys.add(load_public_pem(pem, kid=str(jwk["kid"])))
        except Exception as exc:  # the verifier keeps its current keys
            log.warning("jwks.fetch_failed", url=self._jwks_url, error=type(exc).__name__)

    async def verify_access(self, token: str) -> Principal:
        """The principal of a valid access token; ``Unauthorized`` for anything else."""
        hit = self._verified.get(token)
        if hit is not None:
            principal, exp = hit
            if exp > self._clock.now().timestamp() - self.leeway:
                return principal
            self._verified.pop(token, None)
            raise Unauthorized("token expired", code="token_expired")
        principal, exp = await self._verify_fully(token)
        self._verified[token] = (principal, exp)
        if len(self._verified) > self._verified_max:
            self._verified.popitem(last=False)
        return principal

    async def _verify_fully(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token", code="invalid_token") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("token has no key id", code="invalid_token")
        key = self.keys.get(kid)
        if key is None:
            await self._refresh_jwks()
            key = self.keys.get(kid)
        if key is None:
            raise Unauthorized("token signed by an unknown key", code="invalid_token")
        if header.get("alg") != key.algorithm or header.get("typ") != ACCESS_TYP:
            raise Unauthorized("token algorithm or type not accepted", code="invalid_token")
        claims = self._decode(token, key)
        return self._principal(claims), float(claims["exp"])

    def _decode(self, token: str, key: VerifyKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise Unauthorized("invalid token", code="invalid_token") from None
        now = self._clock.now().timestamp()
        try:
            exp, nbf, iat = float(claims["exp"]), float(claims["nbf"]), float(claims["iat"])
        except (TypeError, ValueError):
            raise Unauthorized("invalid token", code="invalid_token") from None
        if exp <= now - self.leeway:
            raise Unauthorized("token expired", code="token_expired")
        if nbf > now + self.leeway or iat > now + self.leeway:
            raise Unauthorized("token not yet valid", code="invalid_token")
        if claims.get("typ") != "access":
            raise Unauthorized("not an access token", code="invalid_token")
        return claims

    @staticmethod
    def _principal(claims: dict[str, Any]) -> Principal:
        try:
            role = Role(claims["role"])
            perms = frozenset(Permission(p) for p in claims.get("permissions", []))
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                username=str(claims.get("username", "")),
                role=role,
                permissions=perms,
                session_id=uuid.UUID(claims["sid"]),
            )
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("invalid token claims", code="invalid_token") from None
