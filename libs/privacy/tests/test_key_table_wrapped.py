"""The key owner's table against PostgreSQL (issue 19.5): no data key in the clear at rest,
keys written before the change are wrapped at the owner's start (idempotent), and rotating
the master key (a new id) re-wraps every row while old ciphertexts keep opening."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from parley_eventstore.migrate import migrate
from parley_privacy.fields import FieldCipher
from parley_privacy.keys import KeyUnavailable
from parley_privacy.store import KeyStore, migrations_dir, rewrap
from parley_privacy.wrapping import MasterKeys, new_master_key

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(fresh_database, migrations_dir(), event_store=False)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


async def rows(pool: asyncpg.Pool) -> dict[str, tuple[bytes | None, str | None]]:
    found = await pool.fetch("SELECT subject_id, secret, wrap_kid FROM subject_keys")
    return {
        r["subject_id"]: (None if r["secret"] is None else bytes(r["secret"]), r["wrap_kid"])
        for r in found
    }


async def test_the_table_holds_no_data_key_in_the_clear(pool: asyncpg.Pool) -> None:
    master = MasterKeys.parse(new_master_key(), "m1")
    store = KeyStore(pool, ttl_s=0, master=master)
    alice = await store.key_for_writing("alice")
    conversation = await store.key_for_writing("conversation:c1")
    stored = await rows(pool)
    for key in (alice, conversation):
        secret, wrap_kid = stored[key.subject]
        assert wrap_kid == "m1" and secret is not None
        assert key.secret not in secret  # wrapped, not the key itself
    assert (await store.key("alice")) == alice  # unwrapped on the way out
    # the database alone (no master key, or another one) yields no key, never a wrong one
    with pytest.raises(KeyUnavailable):
        await KeyStore(pool, ttl_s=0).key("alice")
    with pytest.raises(KeyUnavailable):
        await KeyStore(pool, ttl_s=0, master=MasterKeys.parse(new_master_key(), "m1")).key("alice")
    await store.forget("alice")
    assert (await rows(pool))["alice"] == (None, None)


async def test_keys_stored_in_the_clear_are_wrapped_once_and_still_open_old_values(
    pool: asyncpg.Pool,
) -> None:
    # what the table held before the change: plaintext keys, no wrap_kid
    legacy = KeyStore(pool, ttl_s=0)
    cipher = FieldCipher(legacy)
    sealed = await cipher.encrypt("UserProfileUpdated", {"user_id": "bob", "bio": "Hello"})
    plain_secret = (await rows(pool))["bob"][0]
    assert plain_secret is not None and len(plain_secret) == 32
    master = MasterKeys.parse(new_master_key(), "m1")
    assert await rewrap(pool, master) == 1
    assert await rewrap(pool, master) == 0  # idempotent
    secret, wrap_kid = (await rows(pool))["bob"]
    assert wrap_kid == "m1" and secret != plain_secret and plain_secret not in (secret or b"")
    opened = await FieldCipher(KeyStore(pool, ttl_s=0, master=master)).decrypt(
        "UserProfileUpdated", sealed
    )
    assert opened["bio"] == "Hello"


async def test_rotating_the_master_key_rewraps_every_row(pool: asyncpg.Pool) -> None:
    old_text = new_master_key()
    old = MasterKeys.parse(old_text, "m1")
    store = KeyStore(pool, ttl_s=0, master=old)
    for subject in ("a", "b", "c"):
        await store.key_for_writing(subject)
    await store.forget("c")  # a tombstone stays as it is
    sealed = await FieldCipher(store).encrypt(
        "UserStatusChanged", {"user_id": "a", "status": "deactivated", "reason": "spam"}
    )
    rotated = MasterKeys.parse(new_master_key(), "m2", f"m1:{old_text}")
    # before the re-wrap, the new configuration reads rows of the old key
    assert (await KeyStore(pool, ttl_s=0, master=rotated).key("a")) == await store.key("a")
    assert await rewrap(pool, rotated, batch=1) == 2  # pages of one row
    assert {s: w for s, (_, w) in (await rows(pool)).items()} == {"a": "m2", "b": "m2", "c": None}
    # the old master key can be dropped now
    only_new = MasterKeys(rotated.current_id, {"m2": rotated.keys["m2"]})
    opened = await FieldCipher(KeyStore(pool, ttl_s=0, master=only_new)).decrypt(
        "UserStatusChanged", sealed
    )
    assert opened["reason"] == "spam"
    with pytest.raises(KeyUnavailable):
        await KeyStore(pool, ttl_s=0, master=old).key("a")
