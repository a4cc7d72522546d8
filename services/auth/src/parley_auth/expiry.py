"""Unverified registrations expire: an address claimed but never proved (no verification
code, no reset link used) within `registration_ttl_s` is released and the registration is
cancelled through the ordinary command (`CancelRegistration`, reason `verification_expired`),
so someone who registered another person's address cannot keep it from its owner, and typos
do not hold addresses forever.

`RegistrationCancelled` is public: the users context deactivates the profile the saga made
(its follower of auth.events), exactly as after the saga's own compensation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import asyncpg
from parley_commandkit import Context
from parley_eventstore.records import Metadata

from parley_auth import handlers as h
from parley_auth import tables
from parley_auth.commands import CancelRegistration

log = logging.getLogger("parley.auth.expiry")
REASON = "verification_expired"
BATCH = 100


async def expire_unverified(auth: h.Auth) -> int:
    """Cancel the registrations past their time without a verified address; how many."""
    ttl = timedelta(seconds=auth.settings.registration_ttl_s)
    done = 0
    for account_id in await tables.unverified_claims(auth.pool, ttl, BATCH):
        # the claim goes first, and only if still unproved: a verification racing this wins
        if not await tables.release_unverified(auth.pool, account_id):
            continue
        ctx = Context(Metadata(correlation_id=str(uuid.uuid4()), actor="auth:expiry"))
        command = CancelRegistration(account_id, REASON, key=f"auth.expire:{account_id}")
        await h.BUS.handle(auth, command, ctx)
        done += 1
    if done:
        log.info("cancelled %d unverified registrations", done)
    return done


async def expire_forever(auth: h.Auth, stop: asyncio.Event) -> None:
    """`expire_unverified` every `registration_sweep_s` (right away at start) until `stop`."""
    while not stop.is_set():
        try:
            while await expire_unverified(auth) == BATCH:
                pass
        except (OSError, asyncpg.PostgresError):
            log.warning("registration expiry failed; retrying later", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), auth.settings.registration_sweep_s)
