"""Administration from the command line, against the auth database of AUTH_POSTGRES_DSN:

    python -m parley_auth.admin grant-admin <email>    # the first admin, or any later one
    python -m parley_auth.admin revoke-admin <email>

Appends RoleChanged to the account (published on auth.events like every event); the new role
is in the access tokens issued from the next login or refresh on.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid

import asyncpg
from parley_commandkit import Context
from parley_eventstore.aggregate import Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.pool import create_pool
from parley_eventstore.records import Metadata
from parley_eventstore.store import EventStore
from parley_privacy.fields import FieldCipher
from parley_privacy.store import KeyStore

from parley_auth import handlers
from parley_auth.config import Settings
from parley_auth.domain import EVENTS, Account, AccountNotFound

COMMANDS = {"grant-admin": "admin", "revoke-admin": "user"}


async def build(settings: Settings, pool: asyncpg.Pool) -> tuple[handlers.Auth, EventStore]:
    """`Auth` and its store over an open pool, outside the service (this CLI, tests)."""
    store = EventStore(pool, topic="auth.events", source="/parley/auth", context="auth")
    accounts = Repository(
        store,
        Account,
        EventCodec(*EVENTS),
        snapshot_every=settings.snapshot_every,
        cipher=FieldCipher(KeyStore(pool, master=settings.master_keys())),
    )
    return handlers.Auth.create(settings, pool, accounts), store


async def set_role(settings: Settings, email: str, role: str) -> int:
    pool = await create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    try:
        auth, store = await build(settings, pool)
        ctx = Context(Metadata(correlation_id=str(uuid.uuid4()), actor=f"cli:{getpass.getuser()}"))
        try:
            outcome = await handlers.change_role(auth, email, role, ctx)
        except AccountNotFound:
            print(f"no account with the address {email}", file=sys.stderr)
            return 1
        print(f"account {outcome.stream_id}: role {role} (version {outcome.version})")
        await store.close()
        return 0
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_auth.admin", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("email")
    args = parser.parse_args(argv)
    return asyncio.run(set_role(Settings(), args.email, COMMANDS[args.command]))


if __name__ == "__main__":
    raise SystemExit(main())
