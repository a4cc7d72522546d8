"""The chat command API against a real PostgreSQL: the flows of issue 5's command side, who may
do what (401/403/404), idempotent retries, concurrent senders, bad input (422, never 5xx) and a
snapshot that stays bounded."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings
from parley_chat.domain import WINDOW, direct_conversation_id
from parley_eventstore.migrate import migrate
from parley_http.consistency import ConsistencyToken
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.tokens import Signer, jwks

pytestmark = pytest.mark.integration
KEYS = MemoryKeys()  # plays the key owner (the auth service)

SIGNER = Signer()  # plays the auth service: the app trusts its key through a static JWKS
ADMIN_ID = str(uuid.uuid4())


def bearer(user_id: str, role: str = "user") -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id, role=role)}"}


ADMIN = bearer(ADMIN_ID, "admin")


class Api:
    def __init__(self, client: httpx.AsyncClient, dsn: str) -> None:
        self.client = client
        self.dsn = dsn

    async def create(self, me: str, *others: str, title: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"participant_ids": list(others)}
        if title is not None:
            body["title"] = title
        return await self.client.post("/v1/conversations", json=body, headers=bearer(me))

    async def group(self, me: str, *others: str) -> str:
        response = await self.create(me, *others, title="team")
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def send(self, cid: str, me: str, content: str = "hi", **extra: Any) -> httpx.Response:
        return await self.client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": content, **extra},
            headers=bearer(me),
        )

    async def read(self, cid: str, me: str, up_to: str | None = None) -> httpx.Response:
        body = {"up_to_message_id": up_to} if up_to else {}
        return await self.client.post(
            f"/v1/conversations/{cid}/read", json=body, headers=bearer(me)
        )

    async def events(self, cid: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await fetch(
            self.dsn,
            "SELECT event_type, data FROM events WHERE stream_id = $1 ORDER BY version",
            cid,
        )
        return [(r["event_type"], json.loads(r["data"])) for r in rows]


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
async def api(fresh_database: str, kafka_bootstrap: str) -> AsyncIterator[Api]:
    await migrate(fresh_database)
    settings = Settings(
        postgres_dsn=fresh_database,
        snapshot_every=10,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",  # the static set only: never the running auth service's keys
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_blocks=False,  # never join the live cluster's chat-blocks group
    )
    app = bootstrap(settings, keys=KEYS)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chat") as client:
            yield Api(client, fresh_database)


def people(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def test_group_flow_appends_events_and_outbox_rows(api: Api) -> None:
    a, b, c = people(3)
    created = await api.create(a, b, c, title="  team  ")
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    assert created.json()["version"] == 1
    token = ConsistencyToken.decode(created.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id, token.version) == ("chat", cid, 1)

    first = await api.send(cid, a, "  hello  ")
    assert first.status_code == 201, first.text
    assert first.json()["seq"] == 1
    assert first.json()["version"] == 2
    token = ConsistencyToken.decode(first.headers["X-Consistency-Token"])
    assert (token.stream_id, token.version) == (cid, 2)
    second = await api.send(cid, b, "hi a")
    assert second.json()["seq"] == 2

    read = await api.read(cid, c, first.json()["id"])
    assert read.status_code == 200, read.text
    assert read.json()["up_to_seq"] == 1
    deleted = await api.client.delete(
        f"/v1/conversations/{cid}/messages/{first.json()['id']}", headers=bearer(a)
    )
    assert deleted.status_code == 200, deleted.text
    events = await api.events(cid)
    assert [t for t, _ in events] == [
        "ConversationCreated",
        "MessageSent",
        "MessageSent",
        "MessagesRead",
        "MessageDeleted",
    ]
    assert events[0][1]["participant_ids"] == [a, b, c]
    assert events[0][1]["title"] == "team"
    sealed = events[1][1]["content"]
    assert sealed.startswith("pe1.") and "hello" not in sealed  # the sender's key seals it
    assert (await FieldCipher(KEYS).decrypt("MessageSent", events[1][1]))["content"] == "hello"
    assert events[3][1] == {
        "conversation_id": cid,
        "user_id": c,
        "up_to_seq": 1,
        "unread_after": 1,
    }
    assert events[4][1]["sender_id"] == a

    outbox = await fetch(api.dsn, "SELECT topic, key, headers FROM outbox ORDER BY id")
    assert {r["topic"] for r in outbox} == {"chat.events"}
    assert {r["key"] for r in outbox} == {cid}
    types = [json.loads(r["headers"])["ce_type"] for r in outbox]
    assert types[1] == "parley.chat.MessageSent.v1"
    # the MessageSent event's id is the message id (how old messages are found)
    assert json.loads(outbox[1]["headers"])["ce_id"] == first.json()["id"]


async def test_direct_conversation_is_not_duplicated(api: Api) -> None:
    a, b = people(2)
    first = await api.create(a, b)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == direct_conversation_id(a, b)
    again = await api.create(b, a)  # from the other side
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert "X-Consistency-Token" in again.headers
    c, d = people(2)
    at_once = await asyncio.gather(*(api.create(c, d) for _ in range(6)))
    assert sorted(r.status_code for r in at_once) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in at_once}) == 1
    assert len(await api.events(direct_conversation_id(c, d))) == 1
    with_title = await api.create(a, b, title="project")
    assert with_title.status_code == 201
    assert with_title.json()["id"] != first.json()["id"]


async def test_strangers_get_403_and_unknown_things_404(api: Api) -> None:
    a, b, stranger = people(3)
    cid = await api.group(a, b)
    sent = await api.send(cid, a)
    mid = sent.json()["id"]
    assert (await api.send(cid, stranger)).status_code == 403
    assert (await api.read(cid, stranger)).status_code == 403
    assert (await api.send(cid, ADMIN_ID)).status_code == 403  # admins moderate, not chat
    forbidden = await api.client.delete(
        f"/v1/conversations/{cid}/messages/{mid}", headers=bearer(b)
    )
    assert forbidden.status_code == 403  # not the sender
    assert forbidden.headers["content-type"] == "application/problem+json"
    add = await api.client.post(
        f"/v1/conversations/{cid}/participants",
        json={"user_id": stranger},
        headers=bearer(stranger),
    )
    assert add.status_code == 403

    missing = await api.send(str(uuid.uuid4()), a)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    no_message = await api.client.delete(
        f"/v1/conversations/{cid}/messages/{uuid.uuid4()}", headers=bearer(a)
    )
    assert no_message.status_code == 404
    assert (await api.read(cid, a, str(uuid.uuid4()))).status_code == 404

    anonymous = await api.client.post(f"/v1/conversations/{cid}/messages", json={"content": "x"})
    assert anonymous.status_code == 401
    forged = Signer().token(sub=a)
    refused = await api.client.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": "x"},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert refused.status_code == 401
    by_admin = await api.client.delete(f"/v1/conversations/{cid}/messages/{mid}", headers=ADMIN)
    assert by_admin.status_code == 200, by_admin.text


async def test_participants_join_and_leave(api: Api) -> None:
    a, b, c, d = people(4)
    cid = await api.group(a, b)
    added = await api.client.post(
        f"/v1/conversations/{cid}/participants", json={"user_id": c}, headers=bearer(b)
    )
    assert added.status_code == 200, added.text
    assert (await api.send(cid, c, "joined")).status_code == 201
    not_allowed = await api.client.delete(
        f"/v1/conversations/{cid}/participants/{c}", headers=bearer(b)
    )
    assert not_allowed.status_code == 403  # not self, not the creator
    removed = await api.client.delete(
        f"/v1/conversations/{cid}/participants/{c}", headers=bearer(a)
    )
    assert removed.status_code == 200
    assert (await api.send(cid, c, "still here?")).status_code == 403
    left = await api.client.delete(f"/v1/conversations/{cid}/participants/{b}", headers=bearer(b))
    assert left.status_code == 200
    assert (await api.send(cid, b)).status_code == 403
    by_admin = await api.client.post(
        f"/v1/conversations/{cid}/participants", json={"user_id": d}, headers=ADMIN
    )
    assert by_admin.status_code == 200
    kinds = [t for t, _ in await api.events(cid)]
    assert kinds.count("ParticipantAdded") == 2
    assert kinds.count("ParticipantRemoved") == 2

    x, y = people(2)
    direct = (await api.create(x, y)).json()["id"]
    refused = await api.client.post(
        f"/v1/conversations/{direct}/participants", json={"user_id": a}, headers=bearer(x)
    )
    assert refused.status_code == 409


async def test_unread_after_on_read_marks(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    ids = [(await api.send(cid, b, f"m{i}")).json()["id"] for i in range(5)]
    await api.send(cid, a, "mine")
    assert (await api.read(cid, a, ids[1])).json()["up_to_seq"] == 2
    latest = await api.read(cid, a)
    assert latest.json()["up_to_seq"] == 6
    again = await api.read(cid, a, ids[0])  # older than the position: nothing appended
    assert again.json()["up_to_seq"] == 6
    assert again.json()["version"] == latest.json()["version"]
    marks = [d for t, d in await api.events(cid) if t == "MessagesRead"]
    assert [(m["up_to_seq"], m["unread_after"]) for m in marks] == [(2, 3), (6, 0)]


async def test_client_message_id_makes_retries_idempotent(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    retries = await asyncio.gather(
        *(api.send(cid, a, "once", client_message_id="c-1") for _ in range(5))
    )
    assert {r.status_code for r in retries} == {201}
    assert len({r.json()["id"] for r in retries}) == 1
    assert {r.json()["seq"] for r in retries} == {1}
    later = await api.send(cid, a, "once", client_message_id="c-1")
    assert later.json() == retries[0].json()
    other = await api.send(cid, b, "same id, other sender", client_message_id="c-1")
    assert other.json()["seq"] == 2
    sent = [d for t, d in await api.events(cid) if t == "MessageSent"]
    assert len(sent) == 2
    assert sent[0]["client_message_id"] == "c-1"
    keyed = [
        await api.client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "keyed"},
            headers={**bearer(a), "Idempotency-Key": "k-9"},
        )
        for _ in range(2)
    ]
    assert keyed[0].json() == keyed[1].json()


async def test_concurrent_senders_all_succeed_with_gap_free_seq(api: Api) -> None:
    senders = people(20)
    cid = await api.group(senders[0], *senders[1:])
    responses = await asyncio.gather(
        *(api.send(cid, senders[i % 20], f"msg {i}") for i in range(100))
    )
    assert [r.status_code for r in responses] == [201] * 100
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 101))
    seqs = [d["seq"] for t, d in await api.events(cid) if t == "MessageSent"]
    assert seqs == list(range(1, 101))


async def test_concurrent_senders_without_the_queue_are_retried(api: Api) -> None:
    """Two replicas race on one stream: the store refuses one, the handler re-runs it."""
    api_chat = api.client._transport.app.state.chat  # type: ignore[attr-defined]
    api_chat.conversations.locks = None  # no in-process queue: every racer reaches the store
    senders = people(6)
    cid = await api.group(senders[0], *senders[1:])
    responses = await asyncio.gather(*(api.send(cid, s, "race") for s in senders * 2))
    assert [r.status_code for r in responses] == [201] * 12
    seqs = [d["seq"] for t, d in await api.events(cid) if t == "MessageSent"]
    assert seqs == list(range(1, 13))


async def test_old_messages_are_found_beyond_the_window(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    ids = [(await api.send(cid, b, f"m{i}")).json()["id"] for i in range(WINDOW + 5)]
    old = ids[2]
    read = await api.read(cid, a, ids[1])
    assert read.json()["up_to_seq"] == 2
    deleted = await api.client.delete(f"/v1/conversations/{cid}/messages/{old}", headers=bearer(b))
    assert deleted.status_code == 200, deleted.text
    again = await api.client.delete(f"/v1/conversations/{cid}/messages/{old}", headers=bearer(b))
    assert again.status_code == 200
    assert again.json()["version"] == deleted.json()["version"]  # nothing appended
    not_sender = await api.client.delete(
        f"/v1/conversations/{cid}/messages/{ids[3]}", headers=bearer(a)
    )
    assert not_sender.status_code == 403
    events = await api.events(cid)
    assert [d["seq"] for t, d in events if t == "MessageDeleted"] == [3]
    latest = await api.read(cid, a)
    assert latest.json()["up_to_seq"] == WINDOW + 5


async def test_snapshot_stays_bounded_after_many_messages(api: Api) -> None:
    a, b, c = people(3)
    cid = await api.group(a, b, c)
    sizes = []
    for target in (200, 600):
        while True:
            response = await api.send(cid, (a, b, c)[target % 3], "x" * 200)
            if response.json()["seq"] >= target:
                break
        (row,) = await fetch(
            api.dsn,
            "SELECT version, length(state::text) AS n FROM snapshots WHERE stream_id=$1",
            cid,
        )
        sizes.append(row["n"])
    assert sizes[1] <= sizes[0] * 1.05, sizes  # three times the messages, the same size
    assert sizes[1] < 24_000, sizes


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/conversations", {"participant_ids": []}),
        ("/v1/conversations", {"participant_ids": ["not-a-uuid"]}),
        ("/v1/conversations", {"participant_ids": "x"}),
        ("/v1/conversations", {"participant_ids": [str(uuid.uuid4())], "title": ""}),
        ("/v1/conversations", {"participant_ids": [str(uuid.uuid4())], "extra": 1}),
        ("/v1/conversations/{cid}/messages", {"content": ""}),
        ("/v1/conversations/{cid}/messages", {"content": "   \n "}),
        ("/v1/conversations/{cid}/messages", {"content": "x" * 4001}),
        ("/v1/conversations/{cid}/messages", {"content": 5}),
        ("/v1/conversations/{cid}/messages", {"content": "x", "client_message_id": ""}),
        ("/v1/conversations/{cid}/messages", {}),
        ("/v1/conversations/not-a-uuid/messages", {"content": "x"}),
        ("/v1/conversations/{cid}/participants", {"user_id": "nope"}),
        ("/v1/conversations/{cid}/read", {"up_to_message_id": "nope"}),
        ("/v1/conversations/{cid}/read", [1, 2]),
    ],
)
async def test_bad_input_is_422_problem(api: Api, path: str, payload: object) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    response = await api.client.post(path.format(cid=cid), json=payload, headers=bearer(a))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_malformed_and_oversized_bodies(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    for body in (b"{nope", b"", b"null", b"\xff\xfe"):
        response = await api.client.post(
            f"/v1/conversations/{cid}/messages",
            content=body,
            headers={**bearer(a), "content-type": "application/json"},
        )
        assert response.status_code == 422, (body, response.text)
    huge = await api.client.post(
        f"/v1/conversations/{cid}/messages",
        content=b"x" * 100_000,
        headers={**bearer(a), "content-type": "application/json"},
    )
    assert huge.status_code == 413
    self_only = await api.create(a, a)
    assert self_only.status_code == 422


async def test_openapi_lists_the_routes(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert {
        "/v1/conversations",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/conversations/{conversation_id}/messages/{message_id}",
        "/v1/conversations/{conversation_id}/participants",
        "/v1/conversations/{conversation_id}/participants/{user_id}",
        "/v1/conversations/{conversation_id}/read",
    } <= set(document["paths"])
