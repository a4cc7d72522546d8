"""The chat command API against a real PostgreSQL: the flows of issue 5's command side, who may
do what (401/403/404), idempotent retries, concurrent senders, bad input (422, never 5xx) and a
snapshot that stays bounded."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from parley_chat.bootstrap import bootstrap
from parley_chat.config import Settings
from parley_chat.domain import WINDOW, direct_conversation_id
from parley_chat.migrate import migrate
from parley_http.consistency import ConsistencyToken
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.tokens import Signer, jwks

pytestmark = pytest.mark.integration
KEYS = MemoryKeys()  # plays the key owner (the auth service)

SIGNER = Signer()  # plays the auth service: the app trusts its key through a static JWKS
ADMIN_ID = str(uuid.uuid4())
SECRET = "test-consistency-secret"  # the command side's and the gateway's shared secret


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
        consistency_secret=SECRET,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",  # the static set only: never the running auth service's keys
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_blocks=False,  # never join the live cluster's chat-blocks group
        send_limit=10_000,  # the limit has its own test; the others send many messages
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
    assert ConsistencyToken.verify(created.headers["X-Consistency-Token"], SECRET, a) == token
    assert ConsistencyToken.verify(created.headers["X-Consistency-Token"], SECRET, b) is None

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
    sealed_title = events[0][1]["title"]  # personal data under the conversation's own key
    assert sealed_title.startswith("pe1.") and "team" not in sealed_title
    opened = await FieldCipher(KEYS).decrypt("ConversationCreated", events[0][1])
    assert opened["title"] == "team"
    sealed = events[1][1]["content"]
    assert sealed.startswith("pe1.") and "hello" not in sealed  # the sender's key seals it
    assert (await FieldCipher(KEYS).decrypt("MessageSent", events[1][1]))["content"] == "hello"
    assert events[3][1] == {
        "conversation_id": cid,
        "user_id": c,
        "up_to_seq": 1,
        "unread_after": 1,
        "mentions_after": 0,
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


async def test_strangers_get_404_like_unknown_things_and_participants_403(api: Api) -> None:
    a, b, stranger = people(3)
    cid = await api.group(a, b)
    sent = await api.send(cid, a)
    mid = sent.json()["id"]
    # to a stranger an existing conversation is indistinguishable from a made-up one
    as_stranger = await api.send(cid, stranger)
    made_up = str(uuid.uuid4())
    unknown = await api.send(made_up, stranger)
    assert as_stranger.status_code == unknown.status_code == 404
    assert as_stranger.json()["detail"].replace(cid, "X") == unknown.json()["detail"].replace(
        made_up, "X"
    )
    assert (await api.read(cid, stranger)).status_code == 404
    assert (await api.send(cid, ADMIN_ID)).status_code == 404  # admins moderate, not chat
    remove = await api.client.delete(
        f"/v1/conversations/{cid}/participants/{a}", headers=bearer(stranger)
    )
    assert remove.status_code == 404
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
    assert add.status_code == 404

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
    assert (await api.send(cid, c, "still here?")).status_code == 404
    left = await api.client.delete(f"/v1/conversations/{cid}/participants/{b}", headers=bearer(b))
    assert left.status_code == 200
    assert (await api.send(cid, b)).status_code == 404
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
    assert sent[0]["client_message_id"].startswith("pe1.")  # sealed with the sender's key
    assert (await FieldCipher(KEYS).decrypt("MessageSent", sent[0]))["client_message_id"] == "c-1"
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


# -- issue 20: edits, replies, reactions, mentions, reports, send limits, blocks ------------


def chat_of(api: Api) -> Any:
    return api.client._transport.app.state.chat  # type: ignore[attr-defined]


def of_type(events: list[tuple[str, dict[str, Any]]], event_type: str) -> list[dict[str, Any]]:
    return [d for t, d in events if t == event_type]


async def test_the_sender_edits_within_the_window_and_nobody_else(api: Api) -> None:
    a, b, stranger = people(3)
    cid = await api.group(a, b)
    mid = (await api.send(cid, a, "first")).json()["id"]
    url = f"/v1/conversations/{cid}/messages/{mid}"
    edited = await api.client.patch(url, json={"content": " second "}, headers=bearer(a))
    assert edited.status_code == 200, edited.text
    token = ConsistencyToken.decode(edited.headers["X-Consistency-Token"])
    assert (token.stream_id, token.version) == (cid, edited.json()["version"])
    assert (
        await api.client.patch(url, json={"content": "x"}, headers=bearer(b))
    ).status_code == 403
    by_stranger = await api.client.patch(url, json={"content": "x"}, headers=bearer(stranger))
    assert by_stranger.status_code == 404
    unknown = f"/v1/conversations/{cid}/messages/{uuid.uuid4()}"
    assert (
        await api.client.patch(unknown, json={"content": "x"}, headers=bearer(a))
    ).status_code == 404
    [edit] = of_type(await api.events(cid), "MessageEdited")
    assert (edit["message_id"], edit["seq"], edit["sender_id"]) == (mid, 1, a)
    assert edit["content"].startswith("pe1.")  # personal data, sealed like the message
    opened = await FieldCipher(KEYS).decrypt("MessageEdited", edit)
    assert opened["content"] == "second"
    assert (edit["participant_ids"], edit["last_seq"]) == (sorted([a, b]), 1)
    # the send time, for the previews (the read side has no state to find it in)
    sent_at = datetime.fromisoformat(edit["sent_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=1)

    later = chat_of(api).clock() + timedelta(hours=49)
    chat_of(api).clock = lambda: later
    late = await api.client.patch(url, json={"content": "third"}, headers=bearer(a))
    assert late.status_code == 409, late.text
    chat_of(api).clock = lambda: datetime.now(UTC)
    assert (await api.client.delete(url, headers=bearer(a))).status_code == 200
    gone = await api.client.patch(url, json={"content": "fourth"}, headers=bearer(a))
    assert gone.status_code == 409
    assert len(of_type(await api.events(cid), "MessageEdited")) == 1
    [deletion] = of_type(await api.events(cid), "MessageDeleted")
    assert deletion["sent_at"] == edit["sent_at"]


async def test_replies_name_their_parent_in_the_same_conversation(api: Api) -> None:
    a, b = people(2)
    cid, other = await api.group(a, b), await api.group(a, b)
    parent = (await api.send(cid, a, "question")).json()
    reply = await api.send(cid, b, "answer", reply_to=parent["id"])
    assert reply.status_code == 201, reply.text
    elsewhere = (await api.send(other, a, "elsewhere")).json()["id"]
    assert (await api.send(cid, b, "x", reply_to=elsewhere)).status_code == 404
    assert (await api.send(cid, b, "x", reply_to=str(uuid.uuid4()))).status_code == 404
    sent = of_type(await api.events(cid), "MessageSent")
    assert [(m["reply_to"], m["reply_to_seq"]) for m in sent] == [
        (None, None),
        (parent["id"], parent["seq"]),
    ]


async def test_reactions_are_idempotent_both_ways_and_exact_under_races(api: Api) -> None:
    people_in = people(8)
    a = people_in[0]
    cid = await api.group(a, *people_in[1:])
    mid = (await api.send(cid, a, "react to me")).json()["id"]
    url = f"/v1/conversations/{cid}/messages/{mid}/reactions/%F0%9F%91%8D"  # thumbs up

    async def put(user: str) -> int:
        return (await api.client.put(url, headers=bearer(user))).status_code

    chat_of(api).conversations.locks = None  # racers reach the store, as across replicas
    # the same person from many devices at once, and everyone at once
    statuses = await asyncio.gather(*(put(a) for _ in range(6)), *(put(u) for u in people_in))
    assert set(statuses) == {200}
    added = of_type(await api.events(cid), "ReactionAdded")
    assert sorted(e["user_id"] for e in added) == sorted(people_in)
    assert {(e["emoji"], e["round"]) for e in added} == {("\U0001f44d", 0)}

    assert (await api.client.delete(url, headers=bearer(a))).status_code == 200
    assert (await api.client.delete(url, headers=bearer(a))).status_code == 200  # no-op
    assert await put(a) == 200
    events = await api.events(cid)
    mine = [(t, d["round"]) for t, d in events if t.startswith("Reaction") and d["user_id"] == a]
    assert mine == [("ReactionAdded", 0), ("ReactionRemoved", 0), ("ReactionAdded", 1)]
    stranger = (await api.client.put(url, headers=bearer(str(uuid.uuid4())))).status_code
    assert stranger == 404
    too_long = f"/v1/conversations/{cid}/messages/{mid}/reactions/{'x' * 65}"
    assert (await api.client.put(too_long, headers=bearer(a))).status_code == 422


async def test_mentions_name_participants_and_their_counters_follow_reads(api: Api) -> None:
    a, b, c = people(3)
    cid = await api.group(a, b, c)
    assert (await api.send(cid, a, "hey", mentions=[str(uuid.uuid4())])).status_code == 422
    first = (await api.send(cid, a, "hey @b", mentions=[b, b, a])).json()
    await api.send(cid, a, "hey @b @c", mentions=[b, c])
    sent = of_type(await api.events(cid), "MessageSent")
    assert [m["mentions"] for m in sent] == [[b], sorted([b, c])]
    await api.read(cid, b, first["id"])
    await api.read(cid, c)
    reads = of_type(await api.events(cid), "MessagesRead")
    assert [(r["user_id"], r["unread_after"], r["mentions_after"]) for r in reads] == [
        (b, 1, 1),
        (c, 0, 0),
    ]


async def test_reports_one_per_person_and_admins_resolve_them(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    mid = (await api.send(cid, a, "rude")).json()["id"]
    url = f"/v1/conversations/{cid}/messages/{mid}/report"
    first = await api.client.post(url, json={"reason": "spam"}, headers=bearer(b))
    assert first.status_code == 201, first.text
    again = await api.client.post(url, json={"reason": "spam!"}, headers=bearer(b))
    assert again.json()["report_id"] == first.json()["report_id"]
    own = await api.client.post(url, json={"reason": "me"}, headers=bearer(a))
    assert own.status_code == 422
    [reported] = of_type(await api.events(cid), "MessageReported")
    assert (reported["reporter_id"], reported["sender_id"]) == (b, a)
    assert reported["reason"].startswith("pe1.")

    report_id = first.json()["report_id"]
    resolve = f"/v1/reports/{report_id}/resolve"
    body = {"action": "delete_message"}
    assert (await api.client.post(resolve, json=body, headers=bearer(b))).status_code == 403
    missing = f"/v1/reports/{uuid.uuid4()}/resolve"
    assert (await api.client.post(missing, json=body, headers=ADMIN)).status_code == 404
    done = await api.client.post(resolve, json=body, headers=ADMIN)
    assert done.status_code == 200, done.text
    assert done.json()["conversation_id"] == cid
    assert (await api.client.post(resolve, json=body, headers=ADMIN)).status_code == 409
    types = [t for t, _ in await api.events(cid)]
    assert types[-2:] == ["ReportResolved", "MessageDeleted"]


async def test_the_send_limit_answers_429_with_retry_after(api: Api) -> None:
    a, b = people(2)
    cid = await api.group(a, b)
    chat_of(api).send_limit.limit = 3
    try:
        statuses = [(await api.send(cid, a, f"m{i}")).status_code for i in range(3)]
        limited = await api.send(cid, a, "one too many")
        other = await api.send(cid, b, "b is not limited by a")
    finally:
        chat_of(api).send_limit.limit = 10_000
    assert statuses == [201, 201, 201]
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert other.status_code == 201
    assert len(of_type(await api.events(cid), "MessageSent")) == 4


class FakeBlocks:
    def __init__(self, pairs: set[tuple[str, str]]) -> None:
        self.pairs = pairs  # (blocker, blocked)

    async def blockers_of(self, user_id: str) -> frozenset[str]:
        return frozenset(blocker for blocker, blocked in self.pairs if blocked == user_id)


async def test_a_blocked_person_cannot_start_or_write_a_direct_conversation(api: Api) -> None:
    a, b, c = people(3)
    existing = (await api.create(b, c)).json()["id"]  # before the block
    chat_of(api).blocks = FakeBlocks({(c, b)})  # c blocks b
    assert (await api.create(b, c)).status_code == 403
    assert (await api.send(existing, b, "hello?")).status_code == 403
    assert (await api.send(existing, c, "c may still write")).status_code == 201
    team = await api.group(a, b, c)
    assert (await api.send(team, b, "groups are not refused")).status_code == 201
    assert (await api.create(a, b)).status_code == 201


async def test_keyed_direct_ids_and_legacy_conversations_are_found(api: Api) -> None:
    a, b, c = people(3)
    legacy = (await api.create(a, b)).json()["id"]
    assert legacy == direct_conversation_id(a, b)
    chat_of(api).direct_secret = "deployment-secret"
    try:
        again = await api.create(b, a)
        fresh = await api.create(a, c)
    finally:
        chat_of(api).direct_secret = ""
    assert (again.status_code, again.json()["id"]) == (200, legacy)  # no second conversation
    assert fresh.status_code == 201
    assert fresh.json()["id"] == direct_conversation_id(a, c, "deployment-secret")
    assert fresh.json()["id"] != direct_conversation_id(a, c)


async def test_history_shows_a_member_only_what_they_may_see(api: Api) -> None:
    """Issue 19.5: a member's history starts when they joined, deleted messages' text is gone
    and reports are not shown; admins see the history as recorded."""
    a, b, c = people(3)
    cid = await api.group(a, b)
    secret = (await api.send(cid, a, "before c joined")).json()
    added = await api.client.post(
        f"/v1/conversations/{cid}/participants", json={"user_id": c}, headers=bearer(a)
    )
    joined_at = added.json()["version"]
    gone = (await api.send(cid, a, "soon deleted")).json()["id"]
    await api.client.delete(f"/v1/conversations/{cid}/messages/{gone}", headers=bearer(a))
    kept = (await api.send(cid, b, "kept")).json()["id"]
    report = await api.client.post(
        f"/v1/conversations/{cid}/messages/{kept}/report",
        json={"reason": "c reports b"},
        headers=bearer(c),
    )
    assert report.status_code == 201, report.text

    page = await api.client.get(f"/v1/conversations/{cid}/events", headers=bearer(c))
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert items[0]["version"] == joined_at  # nothing from before c joined
    assert secret["id"] not in json.dumps(items)
    texts = {i["data"]["message_id"]: i["data"] for i in items if i["type"] == "MessageSent"}
    assert texts[gone]["content"] is None and texts[gone]["deleted"] is True
    assert texts[kept]["content"] == "kept"
    assert not [i for i in items if i["type"] in ("MessageReported", "ReportResolved")]
    early = f"/v1/conversations/{cid}/events?after=0&limit=1"
    assert (await api.client.get(early, headers=bearer(c))).json()["items"][0][
        "version"
    ] == joined_at
    before = f"/v1/conversations/{cid}/state?at={joined_at - 1}"
    assert (await api.client.get(before, headers=bearer(c))).status_code == 404
    at_join = f"/v1/conversations/{cid}/state?at={joined_at}"
    assert (await api.client.get(at_join, headers=bearer(c))).status_code == 200

    # a, there from the start, sees the first message; nobody but admins sees the report
    seen_by_a = (await api.client.get(f"/v1/conversations/{cid}/events", headers=bearer(a))).json()
    assert secret["id"] in json.dumps(seen_by_a["items"])
    assert "MessageReported" not in {i["type"] for i in seen_by_a["items"]}
    audited = (await api.client.get(f"/v1/conversations/{cid}/events", headers=ADMIN)).json()
    types = [i["type"] for i in audited["items"]]
    assert types[0] == "ConversationCreated" and "MessageReported" in types
    stranger = await api.client.get(
        f"/v1/conversations/{cid}/events", headers=bearer(str(uuid.uuid4()))
    )
    assert stranger.status_code == 404
