"""Query cost against collection size: the main GETs of the query gateway, one at a time and
read from the store (no cache), while the collection they read grows from 1,000 to 10,000 to
100,000 documents.

- `users_get`: `GET /v1/users/{id}` of a random user (`find_one` by `_id`, the one filter
  FerretDB 1.24 pushes down to SQLite).
- `messages_page`: `GET /v1/conversations/{id}/messages?limit=50`, the newest page (keyset on
  seq) of a conversation of 200 messages, while the rest of `messages` belongs to other
  conversations of 100 messages each. Messages are keyed "<conversation>:<seq>", so the page
  is 50 concurrent `find_one`s by `_id` below the conversation's `last_seq` (read by `_id`
  with the membership check); `store_*` times those 50 reads.
- `users_search`: `GET /v1/users?q=<first name>`, the first page of 20 of the users whose
  name has that word (1 in 10 of them), in name order.

The read models are seeded straight into generation 1 of a fresh database of the local
cluster's Mongo-wire store, with the documents the real projection handlers write
(parley_projector_users.views, parley_projector_chat.views) and the indexes the projections
declare; the same collections grow from one size to the next. A query gateway is started on
a free port against that database (as bench/chat_read.py does: the production entry point,
a static signing key). Each request presents a consistency token of the route's context that
is already applied, so the gateway reads the store instead of its caches. Before each route,
the same `find` is timed straight through PyMongo (`store_*`): the store's share, and its
cost where the gateway gives up (its socket timeout to the store is 5 s: past it, a 503).

On FerretDB 1.24 (SQLite backend) only `_id` equality reaches SQLite; every other filter
decodes the whole collection, so the search grows with the collection whatever the indexes
(the message page did too while it filtered on conversation_id). Requests are sequential; a
route takes up to 50 samples (`users_get`) or 20, and stops after 4 s once it has 3
(`.samples`, `.store_samples`: the p99 of a slow size is the slowest of a handful). A store
read that takes longer than the gateway's timeout is taken once and not sent through the
gateway (`.over_store_timeout`)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from parley_messaging.envelope import Envelope, ce_type
from parley_projector_chat import views as chat_views
from parley_projector_users import views as users_views
from parley_readmodel import aliases
from parley_readmodel.progress import progress_id, stream_key
from parley_readmodel.search import query_token
from parley_testing.infra import Server, locate
from parley_testing.tokens import Signer
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.chat_read import fresh_token, start_gateway, wait_ready
from bench.common import percentile
from bench.query import free_port

KEY_PREFIX = "query_size."  # every figure of this stage (run.py replaces them on a rerun)
SIZES = (1_000, 10_000, 100_000)
QUERIES = ("users_get", "messages_page", "users_search")
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


def message_doc(i: int) -> dict[str, Any]:
    """The i-th message of the collection: the first CONVERSATION_LEN are the measured
    conversation's, the rest fill conversations of OTHER_LEN."""
    if i < CONVERSATION_LEN:
        cid, seq = CONVERSATION, i + 1
    else:
        cid, seq = f"other-{(i - CONVERSATION_LEN) // OTHER_LEN:06d}", (i % OTHER_LEN) + 1
    at = T0 + timedelta(seconds=i)
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12)]
    data = {
        "conversation_id": cid,
        "message_id": f"{cid}-m{seq}",
        "sender_id": f"sender-{i % 50}",
        "seq": seq,
        "content": " ".join(words),
    }
    writes = chat_views.message_sent(envelope("chat", "MessageSent", cid, at), data)
    (message,) = [w for w in writes if w.collection == chat_views.MESSAGES]
    return {"_id": message.doc_id, **message.update["$set"], "_v": {cid: seq}}


def chunks(make: Callable[[int], dict[str, Any]], start: int, stop: int) -> Iterator[list[Any]]:
    for first in range(start, stop, CHUNK):
        yield [make(i) for i in range(first, min(first + CHUNK, stop))]


async def prepare(db: DB, caller: str) -> None:
    """The declared indexes, the caller's membership, and one applied stream per projection
    (a token naming it makes the gateway read fresh)."""
    await aliases.ensure_indexes(db, 1, users_views.users_projection().indexes)
    await aliases.ensure_indexes(db, 1, chat_views.chat_projection().indexes)
    await db[aliases.physical(chat_views.MEMBERSHIPS, 1)].insert_one(
        {
            "_id": chat_views.membership_id(caller, CONVERSATION),
            "user_id": caller,
            "conversation_id": CONVERSATION,
            "removed": False,
            "unread_count": 0,
            "_v": {CONVERSATION: 1},
        }
    )
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


async def grow(db: DB, user_ids: list[str], start: int, stop: int) -> float:
    """Users and messages [start, stop); returns the documents written per second."""
    users = db[aliases.physical(users_views.USERS, 1)]
    messages = db[aliases.physical(chat_views.MESSAGES, 1)]
    began = time.perf_counter()
    for docs in chunks(lambda i: user_doc(i, user_ids[i]), start, stop):
        await users.insert_many(docs, ordered=False)
    for docs in chunks(message_doc, start, stop):
        await messages.insert_many(docs, ordered=False)
    return 2 * (stop - start) / (time.perf_counter() - began)


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


class Store:
    """The same reads straight through PyMongo: what the store itself costs."""

    def __init__(self, db: DB, user_ids: list[str], rng: random.Random):
        self.users = db[aliases.physical(users_views.USERS, 1)]
        self.messages = db[aliases.physical(chat_views.MESSAGES, 1)]
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
        found = self.users.find({"search_name": query_token(SEARCHED)})
        found = found.sort([("name_key", 1), ("_id", 1)]).limit(SEARCH_PAGE + 1)
        return len(await found.to_list(None)) == SEARCH_PAGE + 1


def figures(prefix: str, latencies: list[float]) -> dict[str, float]:
    return {
        f"{prefix}p50_ms": round(percentile(latencies, 50), 2),
        f"{prefix}p99_ms": round(percentile(latencies, 99), 2),
    }


async def measure(routes: Routes, store: Store, size: int) -> dict[str, Any]:
    """Per query, the store alone first, then through the gateway unless the store alone
    already needs longer than the gateway waits for it (then it could only answer 503)."""
    routes.size = store.size = size
    out: dict[str, Any] = {}
    for query in QUERIES:
        most = GET_SAMPLES if query == "users_get" else SCAN_SAMPLES
        key = f"query_size.{query}.n_{size}."
        alone, store_errors = await sample(getattr(store, query), most)
        if store_errors:
            raise RuntimeError(f"{query} at {size}: the store's answer was short")
        out.update(figures(f"{key}store_", alone))
        out[f"{key}store_samples"] = len(alone)
        line = f"[query_size] {query:14} n={size:>7,}: store p50 {out[key + 'store_p50_ms']} ms"
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
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = None
    out: dict[str, Any] = {}
    try:
        await prepare(db, caller)
        seeded = 0
        for size in SIZES:
            rate = await grow(db, user_ids, seeded, size)
            print(f"[query_size] seeded {size:,} users and messages ({rate:,.0f} docs/s)")
            seeded = size
            if gateway is None:
                await asyncio.sleep(1.5)  # FerretDB's wrapper indexes `_id` of new tables
                gateway = start_gateway(port, mongo_url, database, signer)
                await asyncio.to_thread(wait_ready, base, auth)
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as http:
                routes = Routes(http, user_ids, rng)
                routes.size = size
                if size == SIZES[0]:  # warm the routes once (imports, alias lookups)
                    for query in QUERIES:
                        await getattr(routes, query)()
                out.update(await measure(routes, Store(db, user_ids, rng), size))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(15)
        await client.drop_database(database)
        await client.close()
    first, last = SIZES[0], SIZES[-1]
    for query in QUERIES:
        grew = out[f"query_size.{query}.n_{last}.store_p50_ms"]
        out[f"query_size.{query}.store_p50_ratio_{last}_vs_{first}"] = round(
            grew / out[f"query_size.{query}.n_{first}.store_p50_ms"], 1
        )
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
