"""Authenticated symmetric encryption for secrets at rest (TOTP seeds, exchange API keys).

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``; several keys may be given so old
ciphertexts stay readable after a key rotation (the first key encrypts).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from algotrendy.core.errors import ConfigurationError


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("no encryption key configured")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"encryption key is not a valid Fernet key: {exc}") from exc

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("stored secret cannot be decrypted with the configured keys") from exc
