"""argon2id password hashing (argon2-cffi), in worker threads so the event loop keeps serving.

Defaults: time cost 3, 19 MiB memory, parallelism 1 (OWASP's minimum is m=19 MiB with t=2;
t=3 measured ~45 ms per verification on the 2-core dev machine). Parallelism above 1 was slower
here. A semaphore bounds concurrent hashes (memory and CPU). Unknown accounts verify against a
dummy hash so a login takes the same time whether or not the address exists.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(
        self,
        time_cost: int = 3,
        memory_kib: int = 19456,
        parallelism: int = 1,
        concurrency: int = 4,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._slots = asyncio.Semaphore(concurrency)
        # same parameters as real hashes, so verifying it costs the same
        self._dummy = self._hasher.hash("parley-dummy-password-for-unknown-accounts")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True if `password` matches `stored`; None (no such account) burns the same time."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            self._hasher.verify(stored or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored is not None

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
