"""What every auth handler shares: its dependencies (`Auth`), the work it leaves for after
the response (`Background`) and its refusals (each maps to one HTTP status)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from parley_eventstore.aggregate import Repository
from parley_eventstore.records import AppendResult
from parley_privacy.store import KeyStore

from parley_auth import mail
from parley_auth.callers import Callers, RateLimit
from parley_auth.config import Settings
from parley_auth.domain import Account
from parley_auth.passwords import Passwords
from parley_auth.tokens import (
    AccessClaims,
    CodeHasher,
    KeySet,
)

if TYPE_CHECKING:  # the pool is handed to `tables`; handlers never use the driver
    import asyncpg

VERIFY, RESET, CHANGE_EMAIL = "verify_email", "password_reset", "change_email"


log = logging.getLogger("parley.auth")


class AuthError(Exception):
    """A refused request; the HTTP layer maps each subclass to one status."""


class InvalidCredentials(AuthError):
    """Unknown address, wrong password or dead refresh token: one answer for all (401)."""


class NotAuthenticated(AuthError):
    """No valid access token for an open session (401)."""


class AccountInactive(AuthError):
    """Right password, but the address is not verified yet (403)."""


class WrongPassword(AuthError):
    """A signed-in holder confirming a sensitive change gave a wrong password (403)."""


class InvalidCode(AuthError):
    """Wrong, expired or unknown code; never says whether the address exists (400)."""


class TooManyAttempts(AuthError):
    """The live code was tried too often (ask for a new one), or the address / account had
    too many wrong codes lately (`retry_after` seconds) (429)."""

    def __init__(self, retry_after: int | None = None) -> None:
        super().__init__("too many attempts")
        self.retry_after = retry_after


class Throttled(AuthError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class EmailTaken(AuthError):
    """The new address was claimed by another account meanwhile (409)."""


class SameEmail(AuthError):
    """The new address is the current one (422)."""


class AlreadyVerified(AuthError):
    """The address of this account is verified already: no code to send (409)."""


@dataclass
class Background:
    """Work done after the response (mails, enumeration-safe flows); `drain()` waits for it."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # never swallowed: the client already has its 202, the log must say what failed
            log.error("background work failed", exc_info=task.exception())

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


@dataclass
class Auth:
    """Everything a handler needs, built once by bootstrap()."""

    settings: Settings
    pool: asyncpg.Pool
    accounts: Repository[Account]
    keys: KeySet
    codes: CodeHasher
    passwords: Passwords
    mailer: mail.Mailer
    subject_keys: KeyStore
    background: Background = field(default_factory=Background)
    # the internal endpoints' callers and the per-caller limit on destroying keys
    callers: Callers = field(default_factory=Callers)
    destroy_limit: RateLimit = field(default_factory=lambda: RateLimit(0.0, 0))

    @classmethod
    def create(cls, settings: Settings, pool: asyncpg.Pool, accounts: Repository[Account]) -> Auth:
        """The dependencies over an open pool and the accounts' repository: signing keys (a
        development key under `key_dir` when none is configured), the code hasher, the
        password hasher, the mailer and the data-key table (auth owns the keys)."""
        s = settings
        keys = KeySet.from_settings(
            s.signing_key_pem, s.previous_key_pem, s.key_dir, issuer=s.issuer, audience=s.audience
        )
        secret = s.code_secret
        codes = CodeHasher(secret.encode()) if secret else CodeHasher.derived_from(keys.signing_key)
        callers = Callers.from_settings(s.internal_callers, s.internal_callers_file)
        if not callers.by_name:
            log.warning("AUTH_INTERNAL_CALLERS is not set: the internal endpoints refuse everyone")
        passwords = Passwords(
            s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism, s.hash_concurrency
        )
        mailer = mail.Mailer(s.smtp_host, s.smtp_port, s.smtp_timeout_s)
        limit = RateLimit(s.key_destroy_rate_per_s, s.key_destroy_burst)
        subject_keys = KeyStore(pool, master=s.master_keys())
        return cls(
            s,
            pool,
            accounts,
            keys,
            codes,
            passwords,
            mailer,
            subject_keys,
            callers=callers,
            destroy_limit=limit,
        )

    @property
    def access_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.access_ttl_s)

    @property
    def refresh_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_ttl_s)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    claims: AccessClaims
    outcome: AppendResult
