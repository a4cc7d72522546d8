"""The crypto library without servers: envelope round trip, tamper detection, redaction when a
key is gone, the contract-driven field list, and the key client's cache against a fake owner."""

from __future__ import annotations

import json

import httpx
import pytest
from parley_privacy.client import KeyClient, key_body
from parley_privacy.envelope import TamperedValue, is_sealed, new_key, open_sealed, seal
from parley_privacy.fields import REDACTED, FieldCipher, contract_fields
from parley_privacy.keys import Key, KeyUnavailable, SubjectForgotten


class MemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[str, Key | None] = {}

    async def key(self, subject: str, max_age_s: float | None = None) -> Key | None:
        return self.keys.get(subject)

    async def key_for_writing(self, subject: str) -> Key:
        if subject in self.keys and self.keys[subject] is None:
            raise SubjectForgotten(subject)
        if subject not in self.keys:
            self.keys[subject] = Key(subject, "k1", new_key())
        key = self.keys[subject]
        assert key is not None
        return key

    def evict(self, subject: str) -> None:
        pass

    def clear(self) -> None:
        pass


def test_envelope_round_trip_and_binding() -> None:
    key = new_key()
    token = seal(key, "k1", "alice", "email", "alice@example.test")
    assert is_sealed(token) and "alice" not in token
    assert open_sealed(key, "alice", "email", token) == "alice@example.test"
    with pytest.raises(TamperedValue):  # another subject's or field's ciphertext
        open_sealed(key, "bob", "email", token)
    with pytest.raises(TamperedValue):
        open_sealed(key, "alice", "name", token)
    with pytest.raises(TamperedValue):  # another key
        open_sealed(new_key(), "alice", "email", token)
    body = token.rsplit(".", 1)[1]
    flipped = token[: -len(body)] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(TamperedValue):
        open_sealed(key, "alice", "email", flipped)
    with pytest.raises(TamperedValue):
        open_sealed(key, "alice", "email", "pe1.k1.!!")


def test_contract_declares_the_personal_fields() -> None:
    fields = {name: {f.name for f in fs} for name, fs in contract_fields().items()}
    assert fields["UserRegistered"] == {"email", "name"}
    assert fields["UserCreated"] == {"email", "name"}
    assert fields["UserProfileUpdated"] == {"name", "bio", "avatar_url"}
    assert fields["UserStatusChanged"] == {"reason"}
    assert {"content", "client_message_id", "attachment_names"} <= fields["MessageSent"]
    assert fields["ConversationCreated"] == fields["ParticipantAdded"] == {"title"}
    assert fields["NotificationCreated"] == {"preview"}
    assert "UserForgotten" not in fields


async def test_encrypt_decrypt_and_redaction_after_forgetting() -> None:
    keys = MemoryKeys()
    cipher = FieldCipher(keys)
    data = {"user_id": "u1", "email": "ada@example.test", "name": "Ada"}
    sealed = await cipher.encrypt("UserRegistered", data)
    assert sealed["user_id"] == "u1"
    assert "ada" not in json.dumps(sealed).lower()
    assert await cipher.decrypt("UserRegistered", sealed) == data
    assert await cipher.encrypt("UserRegistered", sealed) == sealed  # sealed once only
    keys.keys["u1"] = None  # forgotten
    redacted = await cipher.decrypt("UserRegistered", sealed)
    assert redacted == {
        "user_id": "u1",
        "email": "",
        "name": "Forgotten user",
        REDACTED: ["email", "name"],
    }
    assert REDACTED not in await cipher.open("UserRegistered", sealed)
    with pytest.raises(SubjectForgotten):
        await cipher.encrypt("UserRegistered", data)


async def test_message_text_uses_the_senders_key_and_plaintext_passes_through() -> None:
    keys = MemoryKeys()
    cipher = FieldCipher(keys)
    sent = {"sender_id": "s", "content": "hello", "seq": 1}
    sealed = await cipher.encrypt("MessageSent", sent)
    assert set(keys.keys) == {"s"}
    legacy = {"sender_id": "s", "content": "written before encryption"}
    assert await cipher.decrypt("MessageSent", legacy) == legacy
    assert await cipher.decrypt("RoleChanged", {"role": "admin"}) == {"role": "admin"}
    keys.keys["s"] = None
    assert (await cipher.decrypt("MessageSent", sealed))["content"] == "[redacted]"


async def test_key_client_caches_and_tells_gone_from_unreachable() -> None:
    secret = new_key()
    calls: list[str] = []
    state = {"gone": False, "down": False}

    def owner(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != "Bearer t":
            return httpx.Response(401)
        if state["down"]:
            return httpx.Response(503)
        if state["gone"]:
            return httpx.Response(410)
        return httpx.Response(200, json=key_body(Key("u1", "k1", secret)))

    client = KeyClient("http://owner", "t", ttl_s=60, transport=httpx.MockTransport(owner))
    key = await client.key("u1")
    assert key is not None and key.secret == secret
    assert await client.key("u1") == key and len(calls) == 1  # cached
    state["gone"] = True
    client.evict("u1")
    assert await client.key("u1") is None
    assert await client.key("u1") is None and len(calls) == 2  # forgotten: for good
    with pytest.raises(SubjectForgotten):
        await client.key_for_writing("u1")
    state["down"] = True
    with pytest.raises(KeyUnavailable):
        await client.key("u2")
    bad = KeyClient("http://owner", "wrong", transport=httpx.MockTransport(owner))
    with pytest.raises(KeyUnavailable):
        await bad.key("u1")
    await client.close()
    await bad.close()


@pytest.mark.integration
async def test_key_table_creates_once_and_forgets_for_good(fresh_database: str) -> None:
    import asyncio

    from parley_eventstore.migrate import migrate
    from parley_eventstore.pool import create_pool
    from parley_privacy.store import KeyStore, migrations_dir

    await migrate(fresh_database, migrations_dir())
    pool = await create_pool(fresh_database, min_size=1, max_size=4)
    try:
        stores = [KeyStore(pool), KeyStore(pool)]  # two replicas of the owner
        keys = await asyncio.gather(*(s.key_for_writing("u1") for s in stores for _ in range(3)))
        assert len({(k.kid, k.secret) for k in keys}) == 1  # concurrent creators agree
        assert await stores[1].key("nobody") is None
        await stores[0].forget("u1")
        await stores[0].forget("u1")  # idempotent
        assert await stores[0].key("u1") is None and await stores[0].is_forgotten("u1")
        with pytest.raises(SubjectForgotten):
            await stores[0].key_for_writing("u1")
        await stores[0].forget("never-had-a-key")
        with pytest.raises(SubjectForgotten):
            await stores[0].key_for_writing("never-had-a-key")
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT count(*) FROM subject_keys WHERE secret IS NOT NULL")
                == 0
            )
    finally:
        await pool.close()


async def test_a_title_is_sealed_with_the_conversations_key_not_a_persons() -> None:
    """issue 19.5: a conversation's title belongs to the conversation (key
    `conversation:<id>`): forgetting its creator (or anyone) leaves it readable."""
    keys = MemoryKeys()
    cipher = FieldCipher(keys)
    data = {
        "conversation_id": "c1",
        "kind": "group",
        "title": "Secret plans",
        "participant_ids": ["u1", "u2"],
        "created_by": "u1",
    }
    sealed = await cipher.encrypt("ConversationCreated", data)
    assert is_sealed(sealed["title"]) and "Secret" not in json.dumps(sealed)
    assert set(keys.keys) == {"conversation:c1"}  # no person's key, and never the bare id
    keys.keys["u1"] = None  # the creator forgotten
    assert (await cipher.decrypt("ConversationCreated", sealed))["title"] == "Secret plans"
    # the bare id is not the key (a person's DELETE with that id could not shred it)
    keys.keys["c1"] = None
    assert (await cipher.decrypt("ConversationCreated", sealed))["title"] == "Secret plans"
    keys.keys["conversation:c1"] = None
    gone = await cipher.decrypt("ConversationCreated", sealed)
    assert gone["title"] == "" and gone[REDACTED] == ["title"]


async def test_avatar_reason_and_client_message_id_are_sealed_for_their_person() -> None:
    keys = MemoryKeys()
    cipher = FieldCipher(keys)
    profile = await cipher.encrypt(
        "UserProfileUpdated", {"user_id": "u1", "avatar_url": "https://x.test/ada.png"}
    )
    status = await cipher.encrypt(
        "UserStatusChanged", {"user_id": "u1", "status": "deactivated", "reason": "spam"}
    )
    message = {"conversation_id": "c1", "message_id": "m1", "seq": 1, "sender_id": "u1"}
    sent = await cipher.encrypt(
        "MessageSent", {**message, "content": "hi", "client_message_id": "tab-1"}
    )
    wire = json.dumps([profile, status, sent])
    assert "ada.png" not in wire and "spam" not in wire and "tab-1" not in wire
    keys.keys["u1"] = None
    assert (await cipher.decrypt("UserProfileUpdated", profile))[REDACTED] == ["avatar_url"]
    assert (await cipher.decrypt("UserStatusChanged", status))["reason"] == ""
    opened = await cipher.decrypt("MessageSent", sent)
    assert opened["client_message_id"] == "" and "client_message_id" in opened[REDACTED]


async def test_a_consumer_refuses_a_personal_field_that_arrives_unencrypted() -> None:
    """Every producer seals personal fields (the event store's cipher): one in plaintext on a
    topic was forged or written around the cipher, and a consumer treats it as tampered."""
    cipher = FieldCipher(MemoryKeys())
    sealed = await cipher.encrypt("MessageSent", {"sender_id": "s", "content": "hi", "seq": 1})
    assert (await cipher.consume("MessageSent", sealed))["content"] == "hi"
    with pytest.raises(TamperedValue):
        await cipher.consume("MessageSent", {**sealed, "content": "forged in plaintext"})
    with pytest.raises(TamperedValue):
        cipher.require_sealed("UserCreated", {"user_id": "u", "email": "x@example.com"})
    # absent or null personal fields, and events without any, are not plaintext
    cipher.require_sealed("UserCreated", {"user_id": "u", "email": None})
    assert await cipher.consume("RoleChanged", {"role": "admin"}) == {"role": "admin"}
