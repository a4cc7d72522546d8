"""Query cost against collection size: the main GETs of the query gateway, one at a time and
read from the stores (no cache), while the data they read grows in three steps: 1,000 /
10,000 / 100,000 users, 10,000 / 100,000 / 1,000,000 messages in the search model (1,000 /
10,000 / 100,000 in the Mongo-wire `messages`), 1,000 / 10,000 / 100,000 memberships.

- `users_get`: `GET /v1/users/{id}` of a random user (`find_one` by `_id`, the one filter
  FerretDB 1.24 pushes down to SQLite). N = users.
- `messages_page`: `GET /v1/conversations/{id}/messages?limit=50`, the newest page (keyset on
  seq) of a conversation of 200 messages, while the rest of `messages` belongs to other
  conversations of 100 messages each: 50 concurrent `find_one`s by `_id`. N = Mongo messages.
- `users_search`: `GET /v1/users?q=<first name>`, the first page of 20 of the users whose
  name has that word (1 in 10 of them), in name order: the search model's token index
  (PostgreSQL). N = users.
- `messages_search`: `GET /v1/messages/search?q=<word>&limit=20`, the newest 20 messages
  with a word (in ~40% of all texts) among the caller's 50 conversations (1,000 messages),
  while the rest of the search model's messages are other conversations': one index range
  per conversation in the search model, then the 20 documents by `_id`. N = messages in the
  search model.
- `conversation_list`: `GET /v1/conversations?limit=20`, the first page of the caller's 50
  conversations while the other memberships are other people's: the caller's range of the
  search model's inbox index joined to the conversations' rows. N = memberships (in the
  search model, and as many membership documents in the Mongo-wire store).

The Mongo-wire read models are seeded straight into generation 1 of a fresh database of the
local cluster's store with the documents the real projection handlers write; the search
model into generation 1 of a fresh PostgreSQL database (parley_projector_search.migrate),
bulk-loaded with COPY, its rows computed by the functions its handlers use
(parley_readmodel.search: normalise, prefix_tokens, query_words), then ANALYZEd (what
autovacuum does to a live table). A query gateway is started on a free port against both
(as bench/chat_read.py does: the production entry point, a static signing key). Each
request presents a consistency token of the route's context that both models applied, so
the gateway reads the stores instead of its caches. Before each route, the store's part is
timed directly (`store_*`: PyMongo, or the gateway's own SQL through asyncpg), so the
gateway's share shows.

Requests are sequential; a route takes up to 50 samples (`users_get`), 100 (the search
model's three) or 20, and stops after 4 s once it has 3 (`.samples`, `.store_samples`). A
store read that takes longer than the gateway's timeout is taken once and not sent through
the gateway (`.over_store_timeout`)."""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from parley_messaging.envelope import Envelope, ce_type
from parley_projector_chat import views as chat_views
from parley_projector_search.migrate import migrate as migrate_search
from parley_projector_users import views as users_views
from parley_query_gateway.search import SearchModel
from parley_readmodel import aliases
from parley_readmodel.progress import progress_id, stream_key
from parley_readmodel.search import prefix_tokens, query_token, query_words
from parley_testing.infra import Server, locate
from parley_testing.plugin import create_database, drop_database
from parley_testing.tokens import Signer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.chat_read import fresh_token, start_gateway, wait_ready
from bench.common import percentile
from bench.query import free_port

KEY_PREFIX = "query_size."  # every figure of this stage (run.py replaces them on a rerun)
SIZES = (1_000, 10_000, 100_000)  # users, Mongo messages, memberships per step
SEARCH_MESSAGES = (10_000, 100_000, 1_000_000)  # messages in the search model per step
QUERIES = ("users_get", "messages_page", "users_search", "messages_search", "conversation_list")
# the search model's queries: many samples (they are cheap), their p99 is a target
SEARCH_QUERIES = ("users_search", "messages_search", "conversation_list")
SEARCH_SAMPLES = 100
MY_CONVERSATIONS = 50  # the caller's (my_conversations)
SEARCH_WORD = "quarterly"
CONVERSATION = "bench-conversation"
CONVERSATION_LEN = 200  # the measured conversation; the rest of `messages` is other ones
OTHER_LEN = 100
PAGE = 50
SEARCH_PAGE = 20
CHUNK = 1000
GET_SAMPLES = 50
SCAN_SAMPLES = 20
LEAST = 3
BUDGET_S = 4.0
STORE_TIMEOUT_MS = 5000  # the gateway's socketTimeoutMS to its store: past it, a 503
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FIRST = ("Ada", "Bruno", "Chiara", "Dmitri", "Émilie", "Farah", "Goran", "Hana", "Ines", "Jonas")
LAST = ("Noël", "Okafor", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka", "Ueda", "Varga")
SEARCHED = "Émilie"  # a first name: 1 user in 10 at every size
TEXT = (
    "see you at the standup tomorrow bring the numbers for the quarterly review and the "
    "release notes of the mobile client we ship on friday after lunch"
)
WORDS = TEXT.split()

DB = AsyncDatabase[dict[str, Any]]


def envelope(context: str, event: str, subject: str, at: datetime) -> Envelope:
    """What the handlers read of an event besides its data: the stream and the time."""
    return Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, event, 1),
        subject=subject,
        time=at,
        data=b"{}",
        aggregate_version=1,
        schema_version=1,
    )


def user_doc(i: int, user_id: str) -> dict[str, Any]:
    at = T0 + timedelta(seconds=i)
    name = f"{FIRST[i % len(FIRST)]} {LAST[i // len(FIRST) % len(LAST)]} {i}"
    data = {"user_id": user_id, "name": name, "email": f"user{i}@example.test"}
    (write,) = users_views.user_created(envelope("users", "UserCreated", user_id, at), data)
    return {"_id": write.doc_id, **write.update["$set"], "_v": {user_id: 1}}


def place(i: int) -> tuple[str, int]:
    """The conversation and seq of the i-th message: the first CONVERSATION_LEN are the
    measured conversation's, the rest fill conversations of OTHER_LEN."""
    if i < CONVERSATION_LEN:
        return CONVERSATION, i + 1
    return f"other-{(i - CONVERSATION_LEN) // OTHER_LEN:06d}", (i % OTHER_LEN) + 1


def text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12))


def my_conversations() -> list[str]:
    """The caller's: the measured one, the first others (OTHER_LEN messages each, all of them
    among the first SIZES[0] messages, so their documents are in the Mongo-wire store from
    the first step on) and quiet ones without messages (the list has MY_CONVERSATIONS)."""
    talked = (SIZES[0] - CONVERSATION_LEN) // OTHER_LEN
    quiet = [f"quiet-{k:03d}" for k in range(MY_CONVERSATIONS - 1 - talked)]
    return [CONVERSATION, *(f"other-{k:06d}" for k in range(talked)), *quiet]


def message_doc(i: int) -> dict[str, Any]:
    cid, seq = place(i)
    at = T0 + timedelta(seconds=i)
    data = {
        "conversation_id": cid,
        "message_id": f"{cid}-m{seq}",
        "sender_id": f"sender-{i % 50}",
        "seq": seq,
        "content": text(i),
    }
    writes = chat_views.message_sent(envelope("chat", "MessageSent", cid, at), data)
    (message,) = [w for w in writes if w.collection == chat_views.MESSAGES]
    return {"_id": message.doc_id, **message.update["$set"], "_v": {cid: seq}}


def membership(i: int, caller: str) -> tuple[str, str, datetime]:
    """The i-th membership: the caller's first, then other people's."""
    if i < MY_CONVERSATIONS:
        return caller, my_conversations()[i], T0 + timedelta(seconds=i)
    return f"member-{i:07d}", f"group-{i // 4:07d}", T0 + timedelta(seconds=i)


def membership_doc(i: int, caller: str) -> dict[str, Any]:
    user, cid, at = membership(i, caller)
    return {
        "_id": chat_views.membership_id(user, cid),
        "user_id": user,
        "conversation_id": cid,
        "title": f"conversation {i}",
        "kind": "group",
        "participant_ids": [user],
        "last_message": None,
        "last_activity_at": at,
        "unread_count": 0,
        "mention_count": 0,
        "read_up_to_seq": 0,
        "removed": False,
        "_v": {cid: 1},
    }


def chunks(make: Callable[[int], dict[str, Any]], start: int, stop: int) -> Iterator[list[Any]]:
    for first in range(start, stop, CHUNK):
        yield [make(i) for i in range(first, min(first + CHUNK, stop))]


async def prepare(db: DB, caller: str) -> None:
    """The declared indexes, the conversation document, and one applied stream per
    projection (a token naming it makes the gateway read fresh)."""
    await aliases.ensure_indexes(db, 1, users_views.users_projection().indexes)
    await aliases.ensure_indexes(db, 1, chat_views.chat_projection().indexes)
    await db[aliases.physical(chat_views.CONVERSATIONS, 1)].insert_one(
        {"_id": CONVERSATION, "last_seq": CONVERSATION_LEN, "_v": {CONVERSATION: 1}}
    )
    await db["_progress"].insert_many(
        [
            {
                "_id": progress_id(name, 1, stream_key(context, "bench")),
                "version": 1,
                "projection": name,
                "generation": 1,
            }
            for name, context in ((users_views.NAME, "users"), (chat_views.NAME, "chat"))
        ]
    )


async def prepare_search(conn: asyncpg.Connection, caller: str) -> None:
    """The search model's side: the same applied streams, the caller's participations."""
    await conn.executemany(
        "INSERT INTO g1.applied (stream, version) VALUES ($1, 1)",
        [("users/bench",), ("chat/bench",)],
    )
    await conn.executemany(
        "INSERT INTO g1.members (conversation_id, user_id, from_seq, to_seq)"
        " VALUES ($1, $2, 0, NULL)",
        [(cid, caller) for cid in my_conversations()],
    )


async def grow(db: DB, user_ids: list[str], start: int, stop: int) -> float:
    """Users, messages and memberships [start, stop) of the Mongo-wire store; returns the
    documents written per second."""
    users = db[aliases.physical(users_views.USERS, 1)]
    messages = db[aliases.physical(chat_views.MESSAGES, 1)]
    memberships = db[aliases.physical(chat_views.MEMBERSHIPS, 1)]
    caller = user_ids[0]
    began = time.perf_counter()
    for docs in chunks(lambda i: user_doc(i, user_ids[i]), start, stop):
        await users.insert_many(docs, ordered=False)
    for docs in chunks(message_doc, start, stop):
        await messages.insert_many(docs, ordered=False)
    for docs in chunks(lambda i: membership_doc(i, caller), start, stop):
        await memberships.insert_many(docs, ordered=False)
    return 3 * (stop - start) / (time.perf_counter() - began)


def _copy_text(rows: list[tuple[Any, ...]]) -> io.BytesIO:
    """COPY's text format (no value here has a tab, newline or backslash)."""
    lines = ("\t".join("\\N" if v is None else str(v) for v in row) for row in rows)
    return io.BytesIO(("\n".join(lines) + "\n").encode())


async def grow_search(
    conn: asyncpg.Connection,
    user_ids: list[str],
    users: tuple[int, int],
    messages: tuple[int, int],
    members: tuple[int, int],
) -> float:
    """The search model's users, messages and inbox rows in the given ranges, by COPY, the
    rows computed as the handlers compute them; then ANALYZE. Rows written per second."""
    began = time.perf_counter()
    rows = 0
    for first in range(*users, 10_000):
        docs = [user_doc(i, user_ids[i]) for i in range(first, min(first + 10_000, users[1]))]
        await conn.copy_records_to_table(
            "users",
            schema_name="g1",
            columns=[
                "id",
                "name",
                "name_key",
                "email",
                "email_key",
                "role",
                "status",
                "created_at",
                "updated_at",
            ],
            records=[
                (
                    d["_id"],
                    d["name"],
                    d["name_key"],
                    d["email"],
                    d["email_key"],
                    d["role"],
                    d["status"],
                    d["created_at"],
                    d["updated_at"],
                )
                for d in docs
            ],
        )
        names = [(t, d["name_key"], d["_id"]) for d in docs for t in prefix_tokens(d["name"])]
        local = [(d, d["email"].rpartition("@")[0]) for d in docs]
        emails = [(t, d["name_key"], d["_id"]) for d, part in local for t in prefix_tokens(part)]
        for table, records in (("name_tokens", names), ("email_tokens", emails)):
            await conn.copy_records_to_table(
                table, schema_name="g1", columns=["token", "name_key", "user_id"], records=records
            )
        rows += len(docs) + len(names) + len(emails)
    for first in range(*messages, 50_000):
        batch = []
        for i in range(first, min(first + 50_000, messages[1])):
            cid, seq = place(i)
            lexemes = " ".join(f"'{w}'" for w in query_words(text(i)))
            at = (T0 + timedelta(seconds=i)).isoformat()
            batch.append((cid, seq, f"sender-{i % 50}", at, lexemes, "f", "f"))
        await conn.copy_to_table(
            "messages",
            schema_name="g1",
            source=_copy_text(batch),
            columns=[
                "conversation_id",
                "seq",
                "sender_id",
                "sent_at",
                "words",
                "deleted",
                "redacted",
            ],
            format="text",
        )
        rows += len(batch)
    caller = user_ids[0]
    inbox = []
    for i in range(*members):
        user, cid, at = membership(i, caller)
        inbox.append((user, cid, at, False, 0, 0))
    await conn.copy_records_to_table(
        "inbox",
        schema_name="g1",
        columns=[
            "user_id",
            "conversation_id",
            "last_activity_at",
            "removed",
            "unread_count",
            "mention_count",
        ],
        records=inbox,
    )
    rows += len(inbox)
    # each conversation's row (what the list shows of it), once per conversation
    conversations = []
    for i in range(*members):
        user, cid, at = membership(i, caller)
        if i < MY_CONVERSATIONS or i % 4 == 0:
            last = {"message_id": f"{cid}-m1", "seq": 1, "sender_id": user, "content": text(i),
                    "deleted": False, "redacted": False, "sent_at": at.isoformat()}  # fmt: skip
            conversations.append((cid, 1, f"conversation {i}", "group", [user], json.dumps(last)))
    await conn.copy_records_to_table(
        "conversations",
        schema_name="g1",
        columns=["id", "last_seq", "title", "kind", "participant_ids", "last_message"],
        records=conversations,
    )
    rows += len(conversations)
    await conn.execute("ANALYZE")
    return rows / (time.perf_counter() - began)


async def sample(call: Callable[[], Awaitable[bool]], most: int) -> tuple[list[float], int]:
    """Latencies (ms) of sequential calls and how many failed: up to `most`; once BUDGET_S
    passed, no more after LEAST, or after the first that took as long as the gateway's store
    timeout (a scan of 100,000 documents: one sample is the figure, more would only burn
    minutes of the shared box)."""
    latencies: list[float] = []
    errors = 0
    began = time.perf_counter()
    while len(latencies) < most:
        t0 = time.perf_counter()
        ok = await call()
        latencies.append((time.perf_counter() - t0) * 1000)
        errors += not ok
        if time.perf_counter() - began >= BUDGET_S and (
            len(latencies) >= LEAST or latencies[-1] >= STORE_TIMEOUT_MS
        ):
            break
    return latencies, errors


class Routes:
    """The three GETs through the gateway, each checked on its first success."""

    def __init__(self, client: httpx.AsyncClient, user_ids: list[str], rng: random.Random):
        # tokens signed for the caller (user_ids[0]) as the command side would sign them
        self.users = fresh_token("users", user_ids[0])
        self.chat = fresh_token("chat", user_ids[0])
        self.client = client
        self.user_ids = user_ids
        self.rng = rng
        self.size = 0
        self.checked: set[str] = set()

    def _ok(self, query: str, response: httpx.Response, check: Callable[[Any], bool]) -> bool:
        if response.status_code != 200:
            return False
        if query not in self.checked:
            body = response.json()
            if not check(body):
                raise RuntimeError(f"{query}: unexpected answer {str(body)[:300]}")
            self.checked.add(query)
        return True

    async def users_get(self) -> bool:
        user_id = self.user_ids[self.rng.randrange(self.size)]
        response = await self.client.get(f"/v1/users/{user_id}", headers=self.users)
        return self._ok("users_get", response, lambda b: b["id"] == user_id)

    async def messages_page(self) -> bool:
        response = await self.client.get(
            f"/v1/conversations/{CONVERSATION}/messages",
            params={"limit": PAGE},
            headers=self.chat,
        )
        expected = list(range(CONVERSATION_LEN, CONVERSATION_LEN - PAGE, -1))
        return self._ok(
            "messages_page",
            response,
            lambda b: [m["seq"] for m in b["items"]] == expected and bool(b["next_cursor"]),
        )

    async def users_search(self) -> bool:
        response = await self.client.get(
            "/v1/users", params={"q": SEARCHED, "limit": SEARCH_PAGE}, headers=self.users
        )
        return self._ok(
            "users_search",
            response,
            lambda b: (
                len(b["items"]) == SEARCH_PAGE
                and all(i["name"].startswith(SEARCHED) for i in b["items"])
            ),
        )

    async def messages_search(self) -> bool:
        response = await self.client.get(
            "/v1/messages/search",
            params={"q": SEARCH_WORD, "limit": SEARCH_PAGE},
            headers=self.chat,
        )
        return self._ok(
            "messages_search",
            response,
            lambda b: (
                len(b["items"]) == SEARCH_PAGE
                and all(SEARCH_WORD in (m["content"] or "") for m in b["items"])
                and bool(b["next_cursor"])
            ),
        )

    async def conversation_list(self) -> bool:
        response = await self.client.get(
            "/v1/conversations", params={"limit": SEARCH_PAGE}, headers=self.chat
        )
        return self._ok(
            "conversation_list",
            response,
            lambda b: len(b["items"]) == SEARCH_PAGE and bool(b["next_cursor"]),
        )


class Store:
    """The same reads straight from the stores: PyMongo, or the gateway's own SQL of the
    search model (parley_query_gateway.search) through asyncpg."""

    def __init__(self, db: DB, search: SearchModel, user_ids: list[str], rng: random.Random):
        self.users = db[aliases.physical(users_views.USERS, 1)]
        self.messages = db[aliases.physical(chat_views.MESSAGES, 1)]
        self.search = search
        self.user_ids = user_ids
        self.rng = rng
        self.size = 0

    async def users_get(self) -> bool:
        user_id = self.user_ids[self.rng.randrange(self.size)]
        return await self.users.find_one({"_id": user_id}) is not None

    async def messages_page(self) -> bool:
        seqs = range(CONVERSATION_LEN, CONVERSATION_LEN - PAGE, -1)
        keys = [chat_views.message_key(CONVERSATION, s) for s in seqs]
        found = await asyncio.gather(*(self.messages.find_one({"_id": k}) for k in keys))
        return all(doc is not None for doc in found)

    async def users_search(self) -> bool:
        found = await self.search.users(
            query_token(SEARCHED),
            by_email=False,
            role=None,
            status=None,
            after=None,
            caller=self.user_ids[0],
            admin=False,
            limit=SEARCH_PAGE + 1,
        )
        return len(found) == SEARCH_PAGE + 1

    async def messages_search(self) -> bool:
        found = await self.search.messages(self.user_ids[0], [SEARCH_WORD], None, SEARCH_PAGE + 1)
        return len(found) == SEARCH_PAGE + 1

    async def conversation_list(self) -> bool:
        found = await self.search.conversations(self.user_ids[0], None, SEARCH_PAGE + 1)
        return len(found) == SEARCH_PAGE + 1


def figures(prefix: str, latencies: list[float]) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": round(percentile(latencies, 50), 2),
        f"{prefix}p99_ms": round(percentile(latencies, 99), 2),
    }


def sizes_of(step: int) -> dict[str, int]:
    """N of each query at a step: what grows under it."""
    n = SIZES[step]
    return {q: SEARCH_MESSAGES[step] if q == "messages_search" else n for q in QUERIES}


async def measure(routes: Routes, store: Store, step: int) -> dict[str, Any]:
    """Per query, the store alone first, then through the gateway unless the store alone
    already needs longer than the gateway waits for it (then it could only answer 503)."""
    routes.size = store.size = SIZES[step]
    out: dict[str, Any] = {}
    for query, size in sizes_of(step).items():
        most = (
            GET_SAMPLES
            if query == "users_get"
            else SEARCH_SAMPLES
            if query in SEARCH_QUERIES
            else SCAN_SAMPLES
        )
        key = f"query_size.{query}.n_{size}."
        alone, store_errors = await sample(getattr(store, query), most)
        if store_errors:
            raise RuntimeError(f"{query} at {size}: the store's answer was short")
        out.update(figures(f"{key}store_", alone))
        out[f"{key}store_samples"] = len(alone)
        line = f"[query_size] {query:17} n={size:>9,}: store p50 {out[key + 'store_p50_ms']} ms"
        if min(alone) >= STORE_TIMEOUT_MS:
            out[f"{key}over_store_timeout"] = 1
            print(f"{line}; not sent to the gateway (it would answer 503)", flush=True)
            continue
        through, errors = await sample(getattr(routes, query), most)
        out.update(figures(key, through))
        out[f"{key}samples"] = len(through)
        out[f"{key}errors"] = errors
        print(
            f"{line}; gateway p50 {out[key + 'p50_ms']} ms, p99 {out[key + 'p99_ms']} ms, "
            f"{errors} errors of {len(through)}",
            flush=True,
        )
        if errors:  # the store may still be finishing the reads the gateway gave up on
            await asyncio.sleep(max(3.0, percentile(alone, 50) / 1000))
    return out


async def run() -> dict[str, Any]:
    mongo_url = locate(Server.MONGO).address
    database = f"bench_qsize_{uuid.uuid4().hex[:8]}"
    rng = random.Random(7)
    user_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(SIZES[-1])]
    caller = user_ids[0]
    signer = Signer()
    auth = {"Authorization": f"Bearer {signer.token(sub=caller)}"}  # 15 minutes
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[database]
    search_dsn = await create_database(locate(Server.POSTGRES).address)
    await migrate_search(search_dsn)
    conn = await asyncpg.connect(search_dsn)
    search = SearchModel(search_dsn, pool_size=2)
    await search.open()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = None
    out: dict[str, Any] = {}
    try:
        await prepare(db, caller)
        await prepare_search(conn, caller)
        seeded, seeded_messages = 0, 0
        for step, size in enumerate(SIZES):
            rate = await grow(db, user_ids, seeded, size)
            print(f"[query_size] seeded {size:,} users, messages, memberships ({rate:,.0f} docs/s)")
            messages = SEARCH_MESSAGES[step]
            rate = await grow_search(
                conn, user_ids, (seeded, size), (seeded_messages, messages), (seeded, size)
            )
            print(f"[query_size] search model: {messages:,} messages ({rate:,.0f} rows/s)")
            seeded, seeded_messages = size, messages
            if gateway is None:
                await asyncio.sleep(1.5)  # FerretDB's wrapper indexes `_id` of new tables
                gateway = start_gateway(port, mongo_url, database, signer, search_dsn)
                await asyncio.to_thread(wait_ready, base, auth)
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as http:
                routes = Routes(http, user_ids, rng)
                routes.size = size
                if step == 0:  # warm the routes once (imports, alias lookups)
                    for query in QUERIES:
                        await getattr(routes, query)()
                out.update(await measure(routes, Store(db, search, user_ids, rng), step))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(15)
        await search.close()
        await conn.close()
        await drop_database(search_dsn)
        await client.drop_database(database)
        await client.close()
    first, last = sizes_of(0), sizes_of(len(SIZES) - 1)
    for query in QUERIES:
        lo, hi = first[query], last[query]
        grew = out[f"query_size.{query}.n_{hi}.store_p50_ms"]
        out[f"query_size.{query}.store_p50_ratio_{hi}_vs_{lo}"] = round(
            grew / out[f"query_size.{query}.n_{lo}.store_p50_ms"], 1
        )
        if f"query_size.{query}.n_{hi}.p99_ms" in out:
            out[f"query_size.{query}.p99_ratio_{hi}_vs_{lo}"] = round(
                out[f"query_size.{query}.n_{hi}.p99_ms"] / out[f"query_size.{query}.n_{lo}.p99_ms"],
                2,
            )
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
