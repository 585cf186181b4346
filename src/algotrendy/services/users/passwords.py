"""Password hashing with argon2id (OWASP: >= 19 MiB, >= 2 iterations), off the event loop.

Hashing is deliberately slow, so it runs in worker threads behind a semaphore: a burst of logins
cannot starve the server (API4). Unknown accounts are checked against a dummy hash so a wrong
username costs the same time as a wrong password.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, max_concurrent: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._gate = asyncio.Semaphore(max_concurrent)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._gate:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; with ``stored_hash=None`` burns the same time, False."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("dummy-password-for-timing")
            await self._verify(self._dummy, password)
            return False
        return await self._verify(stored_hash, password)

    async def _verify(self, stored_hash: str, password: str) -> bool:
        async with self._gate:
            try:
                return await asyncio.to_thread(self._hasher.verify, stored_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
