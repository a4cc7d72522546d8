"""The search model's rules, through the queries the gateway runs (parley_query_gateway.search)
over a fresh search database fed by projector-search's own handlers and store
(parley_projector_search.runtime.apply_events): who may find which message (joins, removals,
re-joins), forgotten people's texts, edits and deletions, keyset pages under concurrent
inserts, idempotent replays, and user search."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from parley_projector_search.migrate import migrate
from parley_projector_search.runtime import apply_events
from parley_query_gateway.search import SearchModel
from parley_readmodel.search import query_words
from parley_testing.plugin import create_database, drop_database
from parley_testing.projections import record

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Chat:
    """One conversation's stream: events with consecutive versions and times."""

    def __init__(self, cid: str, participants: list[str]) -> None:
        self.cid = cid
        self.version = 0
        self.seq = 0
        self.participants = list(participants)
        self.records: list[Any] = []
        self._event(
            "ConversationCreated",
            kind="group",
            participant_ids=participants,
            created_by=participants[0],
        )

    def _event(self, name: str, **data: Any) -> Any:
        self.version += 1
        at = T0 + timedelta(seconds=self.version)
        out = record(
            "chat", self.cid, self.version, name, {"conversation_id": self.cid, **data}, at
        )
        self.records.append(out)
        return out

    def send(self, sender: str, content: str) -> int:
        self.seq += 1
        others = [p for p in self.participants if p != sender]
        self._event(
            "MessageSent",
            message_id=f"{self.cid}-m{self.seq}",
            seq=self.seq,
            sender_id=sender,
            content=content,
            recipient_ids=others,
        )
        return self.seq

    def add(self, user: str) -> None:
        self.participants.append(user)
        self._event("ParticipantAdded", user_id=user, added_by=self.participants[0])

    def remove(self, user: str) -> None:
        self.participants.remove(user)
        self._event("ParticipantRemoved", user_id=user, removed_by=self.participants[0])

    def edit(self, seq: int, sender: str, content: str) -> None:
        self._event(
            "MessageEdited",
            message_id=f"{self.cid}-m{seq}",
            seq=seq,
            sender_id=sender,
            content=content,
        )

    def delete(self, seq: int, by: str) -> None:
        self._event("MessageDeleted", message_id=f"{self.cid}-m{seq}", seq=seq, deleted_by=by)

    def take(self) -> list[Any]:
        out, self.records = self.records, []
        return out


@pytest.fixture
async def model(postgres_dsn: str) -> AsyncIterator[tuple[SearchModel, asyncpg.Pool]]:
    dsn = await create_database(postgres_dsn)
    await migrate(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    search = SearchModel(dsn, pool_size=2)
    await search.open()
    try:
        yield search, pool
    finally:
        await search.close()
        await pool.close()
        await drop_database(dsn)


async def found(search: SearchModel, caller: str, q: str, limit: int = 50) -> list[int]:
    """The seqs `q` finds for `caller` (its words as the route takes them)."""
    return [r["seq"] for r in await search.messages(caller, query_words(q), None, limit)]


async def test_a_participant_finds_only_what_was_sent_while_they_were_in(model: Any) -> None:
    search, pool = model
    chat = Chat("c1", ["ann", "bob"])
    chat.send("ann", "plan alpha")  # 1: before carl joined
    chat.add("carl")
    chat.send("bob", "plan beta")  # 2
    chat.send("carl", "plan gamma")  # 3
    chat.remove("carl")
    chat.send("ann", "plan delta")  # 4: while carl was out
    chat.add("carl")
    chat.send("bob", "plan epsilon")  # 5
    await apply_events(pool, chat.take())
    assert await found(search, "ann", "plan") == [5, 4, 3, 2, 1]
    # not before his first join, nothing from while he was out
    assert await found(search, "carl", "plan") == [5, 3, 2]
    assert await found(search, "dora", "plan") == []  # never a participant

    chat.remove("carl")
    chat.send("ann", "plan zeta")  # 6
    await apply_events(pool, chat.take())
    # removed: he finds nothing in a conversation he is no longer in (his page is a 404 too)
    assert await found(search, "carl", "plan") == []
    assert await found(search, "ann", "plan zeta") == [6]


async def test_forgotten_texts_edits_and_deletions(model: Any) -> None:
    search, pool = model
    chat = Chat("c2", ["ann", "eve"])
    chat.send("eve", "Rendezvous at the Café")  # 1
    chat.send("ann", "café? sure")  # 2
    chat.send("ann", "old wording")  # 3
    chat.edit(3, "ann", "new wording")
    chat.send("ann", "to be deleted")  # 4
    chat.delete(4, "ann")
    await apply_events(pool, chat.take())
    assert await found(search, "ann", "CAFE") == [2, 1]  # accents and case
    assert await found(search, "ann", "caf rendez") == [1]  # word starts, any order
    assert await found(search, "ann", "old") == []
    assert await found(search, "ann", "new word") == [3]
    assert await found(search, "ann", "deleted") == []

    forgotten = record("users", "eve", 1, "UserForgotten", {"user_id": "eve"})
    await apply_events(pool, [forgotten])
    assert await found(search, "ann", "cafe") == [2]
    # a replay of everything (a rebuild, or a redelivery): the versions make it a no-op
    chat2 = Chat("c2", ["ann", "eve"])
    chat2.send("eve", "Rendezvous at the Café")
    assert (await apply_events(pool, chat2.take())).applied == 0
    assert await found(search, "ann", "cafe") == [2]


async def test_keyset_pages_stay_stable_while_messages_arrive(model: Any) -> None:
    search, pool = model
    chat = Chat("c3", ["ann", "bob"])
    for i in range(23):
        chat.send("bob", f"report {i}")
    await apply_events(pool, chat.take())
    expected = await found(search, "ann", "report")
    assert expected == list(range(23, 0, -1))

    seen: list[int] = []
    after = None
    pages = 0
    while True:
        rows = await search.messages("ann", ["report"], after, 6)
        more = len(rows) > 5
        rows = rows[:5]
        seen += [r["seq"] for r in rows]
        pages += 1
        # new messages (newer than everything) arrive between pages
        for i in range(3):
            chat.send("bob", f"report late {pages}.{i}")
        await apply_events(pool, chat.take())
        if not more:
            break
        last = rows[-1]
        after = (last["sent_at"], last["conversation_id"], last["seq"])
    assert seen == expected  # no duplicates, no gaps, the later ones not mixed in


async def test_users_by_name_start_without_accents_and_pending_hidden(model: Any) -> None:
    search, pool = model
    ids = {name: str(uuid.uuid4()) for name in ("Émilie Noël", "Emil Nolde", "Zoë Adams")}
    events = [
        record(
            "users",
            uid,
            1,
            "UserCreated",
            {"user_id": uid, "name": name, "email": f"{uid[:6]}@x.test"},
        )
        for name, uid in ids.items()
    ]
    pending = ids["Emil Nolde"]
    events.append(record("auth", pending, 1, "UserRegistered", {"user_id": pending}))
    await apply_events(pool, events)

    async def names(token: str, caller: str = "someone", admin: bool = False) -> list[str]:
        rows = await search.users(
            token, by_email=False, role=None, status=None, after=None, caller=caller,
            admin=admin, limit=10,
        )  # fmt: skip
        return [r["name"] for r in rows]

    assert await names("emil") == ["Émilie Noël"]  # the pending registration is hidden
    assert await names("emil", admin=True) == ["Emil Nolde", "Émilie Noël"]
    assert await names("emil", caller=pending) == ["Emil Nolde", "Émilie Noël"]
    assert await names("noel") == ["Émilie Noël"]
    assert await names("emilie n") == ["Émilie Noël"]  # the start of the whole name
    assert await names("adams") == ["Zoë Adams"]
    await apply_events(pool, [record("auth", pending, 2, "EmailVerified", {"user_id": pending})])
    assert await names("emil") == ["Emil Nolde", "Émilie Noël"]
