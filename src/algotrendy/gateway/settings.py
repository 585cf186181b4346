"""Settings of the gateway layer: HTTP edge (CORS, limits) and token verification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class GatewaySettings(BaseModel):
    cors_origins: CsvList = Field(default_factory=list, description="Allowed browser origins")
    cors_allow_credentials: bool = True
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413")
    ip_rate_per_minute: float = Field(2000, gt=0, description="Per-IP token refill")
    ip_burst: float = Field(200, ge=1, description="Per-IP bucket size")
    user_rate_per_minute: float = Field(1000, gt=0, description="Per-user token refill (spec: 1000/min)")
    user_burst: float = Field(100, ge=1, description="Per-user bucket size (spec: burst 100)")
    auth_rate_per_minute: float = Field(30, gt=0, description="Per-IP refill for login/register/reset")
    auth_burst: float = Field(20, ge=1, description="Per-IP bucket for login/register/reset")
    trusted_proxies: CsvList = Field(
        default_factory=list,
        description="Addresses or CIDR ranges whose X-Forwarded-For is believed (nginx, an ingress)",
    )
    docs: bool | None = Field(None, description="Serve /docs; default on except in production")
    max_page_size: int = Field(200, ge=1)

    _csv = field_validator("cors_origins", "trusted_proxies", mode="before")(_split_csv)


class AuthSettings(BaseModel):
    issuer: str = "algotrendy"
    audience: str = "algotrendy-api"
    access_ttl_seconds: int = Field(900, ge=30, le=86_400)
    refresh_ttl_seconds: int = Field(30 * 86_400, ge=300)
    leeway_seconds: int = Field(5, ge=0, le=120)
    private_key: SecretStr | None = Field(
        None, description="PEM signing key (Ed25519, EC P-256 or RSA>=2048)"
    )
    private_key_file: Path | None = None
    public_keys_dir: Path | None = Field(
        None, description="Directory of <kid>.pem public keys to verify with (split-mode verifiers)"
    )
    jwks_url: str | None = Field(None, description="Fetch verification keys from the users service")
