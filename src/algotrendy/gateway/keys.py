"""JWT signing and verification keys, with rotation by ``kid``.

Keys are asymmetric (Ed25519 by default; EC P-256 and RSA >= 2048 accepted when given), so
split-mode services verify tokens with public keys only and cannot mint them. The signing key
is taken from settings (PEM text or file) or, outside production, generated on first start
into ``<data_dir>/secrets/jwt/<kid>.pem`` (mode 0600). Older key files stay valid for
verification after ``algotrendy keys rotate`` until they are pruned.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from algotrendy.core.errors import ConfigurationError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str
    algorithm: str
    public_key: PublicKey

    def jwk(self) -> dict[str, Any]:
        if isinstance(self.public_key, ed25519.Ed25519PublicKey):
            jwk = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        elif isinstance(self.public_key, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.kid, self.algorithm, self.private_key.public_key())


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """The one algorithm a key may be used with (pinned: no negotiation from the token)."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError(f"EC keys must be P-256, not {key.curve.name}")
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigurationError(f"RSA key of {key.key_size} bits is too weak (need >= {MIN_RSA_BITS})")
        return "RS256"
    raise ConfigurationError(f"unsupported JWT key type {type(key).__name__}")


def thumbprint_kid(public_key: PublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def load_private_pem(pem: bytes, *, kid: str | None = None) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"JWT private key is not a readable unencrypted PEM key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError(f"unsupported JWT key type {type(key).__name__}")
    alg = algorithm_for(key)
    return SigningKey(kid or thumbprint_kid(key.public_key()), alg, key)


def load_public_pem(pem: bytes, *, kid: str) -> VerifyKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"public key {kid} is not a readable PEM key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ConfigurationError(f"unsupported JWT key type {type(key).__name__}")
    return VerifyKey(kid, algorithm_for(key), key)


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (its folder 0700); never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def generate_key_file(directory: Path) -> SigningKey:
    key = ed25519.Ed25519PrivateKey.generate()
    kid = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + thumbprint_kid(key.public_key())[:8]
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret_file(directory / f"{kid}.pem", pem)
    return SigningKey(kid, "EdDSA", key)


class KeyRing:
    """The signing key (if this process issues tokens) and every key it accepts, by kid."""

    def __init__(self, signing: SigningKey | None, verify: dict[str, VerifyKey]) -> None:
        self.signing = signing
        self._verify = dict(verify)
        if signing is not None:
            self._verify[signing.kid] = signing.verify_key

    def get(self, kid: str) -> VerifyKey | None:
        return self._verify.get(kid)

    def add(self, key: VerifyKey) -> None:
        self._verify[key.kid] = key

    @property
    def kids(self) -> list[str]:
        return sorted(self._verify)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._verify[k].jwk() for k in self.kids]}

    @classmethod
    def load(
        cls,
        *,
        key_dir: Path,
        private_key_pem: str | None,
        private_key_file: Path | None,
        public_keys_dir: Path | None,
        need_signing: bool,
        production: bool,
    ) -> KeyRing:
        """Build the ring from settings; generate a key only outside production."""
        stored: list[SigningKey] = []
        if key_dir.is_dir():
            for f in sorted(key_dir.glob("*.pem")):
                stored.append(load_private_pem(f.read_bytes(), kid=f.stem))
        signing: SigningKey | None = None
        if private_key_pem:
            signing = load_private_pem(private_key_pem.encode())
        elif private_key_file:
            if not private_key_file.is_file():
                raise ConfigurationError(f"JWT key file {private_key_file} does not exist")
            signing = load_private_pem(private_key_file.read_bytes())
        elif need_signing:
            if production:
                raise ConfigurationError(
                    "production mode needs a JWT signing key: set ALGO_AUTH__PRIVATE_KEY or "
                    "ALGO_AUTH__PRIVATE_KEY_FILE (Ed25519, EC P-256 or RSA >= 2048 PEM)"
                )
            signing = stored[-1] if stored else generate_key_file(key_dir)
        verify = {k.kid: k.verify_key for k in stored}
        if public_keys_dir is not None and public_keys_dir.is_dir():
            for f in sorted(public_keys_dir.glob("*.pem")):
                verify[f.stem] = load_public_pem(f.read_bytes(), kid=f.stem)
        return cls(signing, verify)
