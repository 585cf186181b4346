"""Settings section ``ALGO_USERS__*``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsersSettings(BaseModel):
    argon2_memory_kib: int = Field(19_456, ge=19_456, description="OWASP minimum: 19 MiB")
    argon2_time_cost: int = Field(2, ge=2)
    argon2_parallelism: int = Field(1, ge=1)
    max_concurrent_hashes: int = Field(4, ge=1, description="Cap on argon2 work at once (API4)")
    lockout_threshold: int = Field(5, ge=1, description="Failures before backoff starts")
    lockout_base_seconds: float = Field(1.0, gt=0)
    lockout_max_seconds: float = Field(900.0, gt=0)
    max_failures_per_hour: int = Field(100, ge=1, description="Soft lock past this (API6)")
    verify_token_ttl_hours: int = Field(48, ge=1)
    reset_token_ttl_minutes: int = Field(30, ge=5, le=24 * 60)
    totp_issuer: str = "AlgoTrendy"
    totp_max_attempts: int = Field(5, ge=1, description="Bad 2FA codes per 5 minutes")
    require_verified_email: bool = Field(False, description="Refuse login until the email is verified")
    default_role: str = "trader"
    user_cache_seconds: float = Field(30.0, ge=0)
