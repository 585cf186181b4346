"""JWT key handling (``KeyRing.load``), the settings loader and the CLI's refusal of unsafe
configuration: the parts of the gateway that run before any request."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import ValidationError
from typer.testing import CliRunner

from algotrendy.app import cli
from algotrendy.app.settings import SERVICES, Settings, load_settings, masked
from algotrendy.core.auth import Role, permissions_for
from algotrendy.core.clock import SystemClock
from algotrendy.core.errors import ConfigurationError, Unauthorized
from algotrendy.gateway.keys import KeyRing, write_secret_file
from algotrendy.gateway.tokens import TokenCodec
from tests.apphelp import remember

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def pem_of(key: Any, *, password: bytes | None = None) -> str:
    encryption: Any = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()
    remember(*pem.splitlines()[1:-1])  # the key material must never reach a log line
    return pem


def load(tmp_path: Path, **kw: Any) -> KeyRing:
    args: dict[str, Any] = {
        "key_dir": tmp_path / "secrets" / "jwt",
        "private_key_pem": None,
        "private_key_file": None,
        "public_keys_dir": None,
        "need_signing": True,
        "production": False,
    }
    args.update(kw)
    return KeyRing.load(**args)


def codec(ring: KeyRing) -> TokenCodec:
    return TokenCodec(
        keys=ring,
        issuer="algotrendy",
        audience="algotrendy-api",
        access_ttl=60,
        leeway=5,
        clock=SystemClock(),
    )


async def round_trip(ring: KeyRing) -> None:
    c = codec(ring)
    token, _exp = c.issue_access(
        user_id=uuid.uuid4(),
        username="u",
        role=Role.VIEWER,
        permissions=permissions_for(Role.VIEWER),
        session_id=uuid.uuid4(),
    )
    remember(token)
    principal = await c.verify_access(token)
    assert principal.role is Role.VIEWER


# ---- KeyRing.load ------------------------------------------------------------------------------


async def test_load_generates_an_ed25519_key_file_0600_in_a_0700_dir(tmp_path: Path) -> None:
    ring = load(tmp_path)
    key_dir = tmp_path / "secrets" / "jwt"
    files = list(key_dir.glob("*.pem"))
    assert [f.stem for f in files] == [ring.signing.kid]
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert ring.signing.algorithm == "EdDSA"
    assert isinstance(ring.signing.private_key, ed25519.Ed25519PrivateKey)
    assert ring.kids == [ring.signing.kid]
    await round_trip(ring)


def test_load_reuses_the_key_file_on_the_next_load(tmp_path: Path) -> None:
    first = load(tmp_path)
    second = load(tmp_path)
    assert second.signing.kid == first.signing.kid
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert second.signing.private_key.public_key().public_bytes(
        *raw
    ) == first.signing.private_key.public_key().public_bytes(*raw)
    assert len(list((tmp_path / "secrets" / "jwt").glob("*.pem"))) == 1


def test_write_secret_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "k.pem"
    write_secret_file(path, b"one")
    with pytest.raises(FileExistsError):
        write_secret_file(path, b"two")
    assert path.read_bytes() == b"one"


def test_production_without_a_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ALGO_AUTH__PRIVATE_KEY"):
        load(tmp_path, production=True)
    assert not (tmp_path / "secrets" / "jwt").exists()  # nothing generated
    # not even a key file left in the data dir from development is used for signing
    load(tmp_path)
    with pytest.raises(ConfigurationError):
        load(tmp_path, production=True)
    # a verifier-only process needs no signing key, in production too
    assert load(tmp_path, production=True, need_signing=False).signing is None


def test_production_with_a_configured_key_loads(tmp_path: Path) -> None:
    pem = pem_of(ed25519.Ed25519PrivateKey.generate())
    ring = load(tmp_path, production=True, private_key_pem=pem)
    assert ring.signing.algorithm == "EdDSA" and len(ring.signing.kid) == 16
    assert not (tmp_path / "secrets" / "jwt").exists()


def test_weak_rsa_1024_key_is_a_configuration_error(tmp_path: Path) -> None:
    pem = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ConfigurationError, match="too weak"):
        load(tmp_path, private_key_pem=pem)
    key_file = tmp_path / "weak.pem"
    key_file.write_text(pem)
    with pytest.raises(ConfigurationError, match="too weak"):
        load(tmp_path, private_key_file=key_file)


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
)
async def test_strong_keys_are_accepted_with_their_pinned_algorithm(
    tmp_path: Path, make: Any, alg: str
) -> None:
    pem = pem_of(make())
    ring = load(tmp_path, private_key_pem=pem)
    assert ring.signing.algorithm == alg
    assert ring.get(ring.signing.kid).algorithm == alg
    await round_trip(ring)
    # the same key from a file
    key_file = tmp_path / "key.pem"
    key_file.write_text(pem)
    assert load(tmp_path, private_key_file=key_file).signing.algorithm == alg


def test_ec_keys_other_than_p256_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="P-256"):
        load(tmp_path, private_key_pem=pem_of(ec.generate_private_key(ec.SECP384R1())))


@pytest.mark.parametrize(
    "text",
    [
        "not a pem at all",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "",
    ],
)
def test_unreadable_pem_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    key_file = tmp_path / "bad.pem"
    key_file.write_text(text)
    with pytest.raises(ConfigurationError):
        load(tmp_path, private_key_file=key_file)
    if text:
        with pytest.raises(ConfigurationError):
            load(tmp_path, private_key_pem=text)


def test_encrypted_pem_and_missing_file_are_configuration_errors(tmp_path: Path) -> None:
    encrypted = pem_of(ed25519.Ed25519PrivateKey.generate(), password=b"passphrase")
    with pytest.raises(ConfigurationError):
        load(tmp_path, private_key_pem=encrypted)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load(tmp_path, private_key_file=tmp_path / "missing.pem")


def test_a_corrupt_file_in_the_key_dir_is_a_configuration_error(tmp_path: Path) -> None:
    key_dir = tmp_path / "secrets" / "jwt"
    write_secret_file(key_dir / "20200101000000-broken.pem", b"garbage")
    with pytest.raises(ConfigurationError):
        load(tmp_path)


async def test_public_keys_dir_adds_verify_only_keys(tmp_path: Path) -> None:
    issuer_ring = load(tmp_path / "issuer")
    pub_dir = tmp_path / "public"
    pub_dir.mkdir()
    public_pem = issuer_ring.signing.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (pub_dir / f"{issuer_ring.signing.kid}.pem").write_bytes(public_pem)
    verifier = load(tmp_path / "verifier", need_signing=False, public_keys_dir=pub_dir)
    assert verifier.signing is None and verifier.kids == [issuer_ring.signing.kid]
    token, _ = codec(issuer_ring).issue_access(
        user_id=uuid.uuid4(),
        username="u",
        role=Role.TRADER,
        permissions=permissions_for(Role.TRADER),
        session_id=uuid.uuid4(),
    )
    remember(token)
    assert (await codec(verifier).verify_access(token)).role is Role.TRADER
    with pytest.raises(RuntimeError):
        codec(verifier).issue_access(
            user_id=uuid.uuid4(),
            username="u",
            role=Role.TRADER,
            permissions=frozenset(),
            session_id=uuid.uuid4(),
        )
    # a token from a key the verifier does not know is refused
    other = load(tmp_path / "other")
    stranger, _ = codec(other).issue_access(
        user_id=uuid.uuid4(), username="u", role=Role.TRADER, permissions=frozenset(), session_id=uuid.uuid4()
    )
    remember(stranger)
    with pytest.raises(Unauthorized):
        await codec(verifier).verify_access(stranger)


def test_jwks_exposes_public_keys_only(tmp_path: Path) -> None:
    ring = load(tmp_path / "a")
    for make in (
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP256R1()),
    ):
        other = load(tmp_path / uuid.uuid4().hex, private_key_pem=pem_of(make()))
        ring.add(other.signing.verify_key)
    jwks = ring.jwks()
    assert len(jwks["keys"]) == 3
    assert {k["kty"] for k in jwks["keys"]} == {"OKP", "RSA", "EC"}
    for jwk in jwks["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk
        assert jwk["use"] == "sig" and jwk["kid"] in ring.kids
        assert jwk["alg"] == ring.get(jwk["kid"]).algorithm
    text = json.dumps(jwks)
    assert "PRIVATE" not in text


# ---- settings ----------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("ALGO_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_settings_read_algo_prefixed_env_with_double_underscore_nesting(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("ALGO_ENV", "production")
    clean_env.setenv("ALGO_DATA_DIR", str(tmp_path))
    clean_env.setenv("ALGO_PORT", "9123")
    clean_env.setenv("ALGO_USERS__ARGON2_TIME_COST", "3")
    clean_env.setenv("ALGO_GATEWAY__IP_BURST", "7")
    clean_env.setenv("ALGO_AUTH__ACCESS_TTL_SECONDS", "600")
    clean_env.setenv("ALGO_GATEWAY__CORS_ORIGINS", "https://a.example, https://b.example")
    clean_env.setenv("ALGO_GATEWAY__TRUSTED_PROXIES", '["10.0.0.1"]')
    clean_env.setenv("PORT", "1")  # no prefix: ignored
    clean_env.setenv("USERS__ARGON2_TIME_COST", "9")
    s = load_settings()
    assert s.production and s.env == "production"
    assert s.data_dir == tmp_path.resolve()
    assert s.port == 9123
    assert s.users.argon2_time_cost == 3
    assert s.gateway.ip_burst == 7
    assert s.auth.access_ttl_seconds == 600
    assert s.gateway.cors_origins == ["https://a.example", "https://b.example"]
    assert s.gateway.trusted_proxies == ["10.0.0.1"]
    assert s.docs_enabled is False  # docs are off in production by default


def test_settings_env_values_are_validated(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ALGO_USERS__ARGON2_MEMORY_KIB", "1024")  # below the OWASP minimum
    with pytest.raises(ValidationError):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "services", "hosted"),
    [
        ("users,notifications", ["users", "notifications"], ("users", "notifications")),
        (" Users , jobs ", ["users", "jobs"], ("users", "jobs")),
        ("all", ["all"], SERVICES),
        ('["notifications"]', ["notifications"], ("notifications",)),
    ],
)
def test_algo_services_accepts_comma_separated_names(
    clean_env: pytest.MonkeyPatch, raw: str, services: list[str], hosted: tuple[str, ...]
) -> None:
    clean_env.setenv("ALGO_SERVICES", raw)
    s = load_settings()
    assert s.services == services
    assert s.hosted_services == hosted


@pytest.mark.parametrize("raw", ["users,bogus", "quant", "users;notifications"])
def test_unknown_service_is_refused(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    clean_env.setenv("ALGO_SERVICES", raw)
    with pytest.raises(ValidationError, match="unknown service"):
        load_settings()


def test_masked_hides_url_passwords_and_secret_values(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = {
        "db": "db-pass-4f1e9c",
        "redis": "redis-pass-77ab",
        "nats": "nats-pass-9c0d",
        "pem": pem_of(ed25519.Ed25519PrivateKey.generate()),
        "fernet": "fernet-key-material-123",
        "smtp": "smtp-pass-5566",
    }
    s = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://app:{secrets['db']}@db.internal:5432/algotrendy",
        redis_url=f"redis://:{secrets['redis']}@cache:6379/0",
        nats_url=f"nats://svc:{secrets['nats']}@bus:4222",
        auth={"private_key": secrets["pem"]},
        secrets={"encryption_key": secrets["fernet"]},
        mail={"smtp_password": secrets["smtp"], "smtp_username": "mailer"},
    )
    shown = masked(s)
    text = json.dumps(shown)
    for name, value in secrets.items():
        for part in value.splitlines() or [value]:
            if len(part) >= 8:
                assert part not in text, name
    assert shown["database_url"] == "postgresql+asyncpg://app:***@db.internal:5432/algotrendy"
    assert shown["redis_url"] == "redis://:***@cache:6379/0"
    assert shown["nats_url"] == "nats://svc:***@bus:4222"
    assert shown["auth"]["private_key"] == shown["secrets"]["encryption_key"] == "**********"
    assert shown["mail"]["smtp_password"] == "**********" and shown["mail"]["smtp_username"] == "mailer"
    # the object itself still has the values (masking is for display only)
    assert s.auth.private_key is not None and s.auth.private_key.get_secret_value() == secrets["pem"]
    # without a password nothing is mangled, and the SQLite default is shown
    plain = masked(Settings(data_dir=tmp_path))
    assert plain["database_url"].startswith("sqlite+aiosqlite:///")
    assert plain["hosted_services"] == list(SERVICES)


# ---- the CLI -----------------------------------------------------------------------------------


def test_cli_config_show_prints_json_without_the_secret(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pem = pem_of(ed25519.Ed25519PrivateKey.generate())
    result = CliRunner().invoke(
        cli.app,
        ["config", "show"],
        env={
            "ALGO_DATA_DIR": str(tmp_path),
            "ALGO_AUTH__PRIVATE_KEY": pem,
            "ALGO_DATABASE_URL": "postgresql+asyncpg://app:cli-db-pass-123@db/x",
        },
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["auth"]["private_key"] == "**********"
    assert shown["database_url"] == "postgresql+asyncpg://app:***@db/x"
    assert shown["data_dir"] == str(tmp_path.resolve())
    for line in pem.splitlines()[1:-1]:
        assert line not in result.output
    assert "cli-db-pass-123" not in result.output


def test_cli_config_show_reports_invalid_configuration(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app, ["config", "show"], env={"ALGO_DATA_DIR": str(tmp_path), "ALGO_SERVICES": "bogus"}
    )
    assert result.exit_code == 2
    assert "invalid configuration" in result.output and "unknown service" in result.output


def test_cli_serve_in_production_without_a_key_exits_2_with_a_clear_message(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["serve", "--port", "0"],
        env={
            "ALGO_ENV": "production",
            "ALGO_DATA_DIR": str(tmp_path / "data"),
            "ALGO_SECRETS__ENCRYPTION_KEY": "x" * 44,
        },
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start" in result.output
    assert "JWT signing key" in result.output and "ALGO_AUTH__PRIVATE_KEY" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "secrets" / "jwt").exists()  # no key was generated


def test_cli_serve_in_production_without_an_encryption_key_exits_2(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["serve", "--port", "0"],
        env={
            "ALGO_ENV": "production",
            "ALGO_DATA_DIR": str(tmp_path / "data"),
            "ALGO_AUTH__PRIVATE_KEY": pem_of(ed25519.Ed25519PrivateKey.generate()),
        },
    )
    assert result.exit_code == 2, result.output
    assert "refusing to start" in result.output and "ALGO_SECRETS__ENCRYPTION_KEY" in result.output


def test_cli_serve_in_production_refuses_wildcard_cors_with_credentials(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["serve", "--port", "0"],
        env={
            "ALGO_ENV": "production",
            "ALGO_DATA_DIR": str(tmp_path / "data"),
            "ALGO_GATEWAY__CORS_ORIGINS": "*",
        },
    )
    assert result.exit_code == 2, result.output
    assert "CORS" in result.output
