"""The users queries through the gateway app against the real Mongo-wire store, seeded by the
users projection's own handlers and the read-model library's idempotent apply (the documents
the projector writes): pagination without duplicates or gaps, accent-insensitive search, who
may see what, role stats, contacts."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from parley_http.consistency import ConsistencyToken
from parley_messaging.envelope import Envelope, ce_type
from parley_projector_search.runtime import apply_events
from parley_projector_users.views import users_projection
from parley_query_gateway.bootstrap import bootstrap
from parley_query_gateway.config import Settings
from parley_readmodel.aliases import read_alias
from parley_readmodel.apply import Change, apply_changes
from parley_readmodel.progress import record_progress, stream_key
from parley_readmodel.projection import writes_for
from parley_readmodel.search import normalise
from parley_testing.projections import record
from parley_testing.tokens import Signer, jwks
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration
DB = AsyncDatabase[dict[str, Any]]
SIGNER = Signer()
PROJECTION = users_projection()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = [
    "Émilie Noël", "emilie noel", "Emil Nolde", "Zoë Adams", "Ada Lovelace", "ada lovelace",
    "Åsa Berg", "Bob", "bob", "BOB", "Chloé", "Chloe", "Ünal", "unal", "Ørjan", "Olga",
    "Ólafur", "Mary Ann", "Mary-Ann", "Mary ann", "Grace Hopper", "Alan Turing", "Edsger",
]  # fmt: skip


def bearer(user_id: str, role: str = "user") -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id, role=role)}"}


ADMIN_ID = str(uuid.uuid4())
ADMIN = bearer(ADMIN_ID, "admin")
SECRET = "test-consistency-secret"


AUTH_EVENTS = {"UserRegistered", "EmailVerified"}


class Seeder:
    """Events -> the projection's writes -> the active generation (as the projector does), and
    the same events into the search model (projector-search's handlers and store), which
    serves the list and its search."""

    def __init__(self, db: DB, search: asyncpg.Pool) -> None:
        self.db = db
        self.search = search
        self.versions: dict[str, int] = {}
        self.auth_versions: dict[str, int] = {}

    async def __call__(self, user_id: str, event_name: str, /, **data: Any) -> int:
        version = self.versions.get(user_id, 0) + 1
        self.versions[user_id] = version
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/parley/users",
            type=ce_type("users", event_name, 1),
            subject=user_id,
            time=T0 + timedelta(seconds=version),
            data=b"{}",
            aggregate_version=version,
        )
        writes = writes_for(PROJECTION, envelope, {"user_id": user_id, **data})
        changes = [Change(w.collection, w.doc_id, w.update, user_id, version) for w in writes]
        generation = (await read_alias(self.db, PROJECTION.name)).active
        await apply_changes(self.db, generation, changes, guard=False)
        await record_progress(
            self.db, PROJECTION.name, generation, {stream_key("users", user_id): version}
        )
        # the search model: the registration's events are auth's (their own stream)
        context = "auth" if event_name in AUTH_EVENTS else "users"
        versions = self.auth_versions if context == "auth" else self.versions
        if context == "auth":
            versions[user_id] = versions.get(user_id, 0) + 1
        record = search_record(
            context, user_id, versions[user_id], event_name, envelope.time, data, user_id
        )
        await apply_events(self.search, [record])
        return version

    async def user(self, name: str, email: str | None = None) -> str:
        user_id = str(uuid.uuid4())
        email = email or f"{normalise(name).replace(' ', '.')}.{user_id[:4]}@example.test"
        await self(user_id, "UserCreated", name=name, email=email)
        return user_id


def search_record(
    context: str,
    subject: str,
    version: int,
    name: str,
    at: datetime,
    data: dict[str, Any],
    user_id: str,
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return record(context, subject, version, name, {"user_id": user_id, **data}, at)


@pytest.fixture
async def env(
    mongo_url: str, kafka_bootstrap: str, search_dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Seeder]]:
    name = f"qg_{uuid.uuid4().hex[:10]}"
    settings = Settings(
        mongo_url=mongo_url,
        mongo_db=name,
        search_dsn=search_dsn,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",
        kafka_bootstrap_servers=kafka_bootstrap,
        consistency_wait_s=0.3,
        consistency_secret=SECRET,
        cache_ttl_s=0,
    )
    app = bootstrap(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    pool = await asyncpg.create_pool(search_dsn, min_size=1, max_size=2)
    try:
        async with app.router.lifespan_context(app):
            assert await app.state.authn.revocations.wait_ready(15)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://query", headers=ADMIN
            ) as http:
                yield http, Seeder(client[name], pool)
    finally:
        await pool.close()
        await client.drop_database(name)
        await client.close()


async def all_pages(
    client: httpx.AsyncClient, params: dict[str, Any], headers: dict[str, str] | None = None
) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/users", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body.get("next_cursor")
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


async def test_pages_cover_every_user_once_in_name_order(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ids = {await seed.user(name): name for name in NAMES}
    expected = sorted(ids, key=lambda i: (normalise(ids[i]), i))
    for limit in (1, 4, 7, 23, 100):
        pages = await all_pages(client, {"limit": limit})
        assert all(len(p) == limit for p in pages[:-1]) and 0 < len(pages[-1]) <= limit
        assert [u["id"] for p in pages for u in p] == expected, f"limit {limit}"
    # users added between two requests: one sorting before the cursor (not on later pages),
    # one after it (shown once, in its place); nobody else moves, nobody repeats
    first = (await client.get("/v1/users", params={"limit": 5})).json()
    before, later = await seed.user("Aaron"), await seed.user("Zygmunt")
    rest = await all_pages(client, {"limit": 5, "cursor": first["next_cursor"]})
    seen = [u["id"] for u in first["items"]] + [u["id"] for p in rest for u in p]
    ids[later] = "Zygmunt"
    assert seen == sorted(set(ids), key=lambda i: (normalise(ids[i]), i))  # ("ø" > "z")
    assert before not in seen


async def test_search_is_case_and_accent_insensitive_by_word_or_start(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ids = {await seed.user(name): name for name in NAMES}

    async def names(q: str, headers: dict[str, str] | None = None) -> list[str]:
        return [ids[u["id"]] for p in await all_pages(client, {"q": q, "limit": 2}, headers)
                for u in p]  # fmt: skip

    assert sorted(await names("EMILIE")) == ["emilie noel", "Émilie Noël"]
    assert sorted(await names("émi")) == ["Emil Nolde", "emilie noel", "Émilie Noël"]
    assert sorted(await names("noël")) == ["emilie noel", "Émilie Noël"]
    assert sorted(await names("emilie n")) == ["emilie noel", "Émilie Noël"]
    assert sorted(await names("chloe")) == ["Chloe", "Chloé"]
    assert sorted(await names("  UNAL ")) == ["unal", "Ünal"]
    assert sorted(await names("ann")) == ["Mary Ann", "Mary ann", "Mary-Ann"]
    assert await names("milie") == []  # prefixes of words, not substrings
    assert await names("zzz") == []


async def test_email_is_searched_and_shown_only_for_admins(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ada = await seed.user("Ada", email="countess.lovelace@example.test")
    other = bearer(str(uuid.uuid4()))
    by_admin = (await client.get("/v1/users", params={"q": "countess"})).json()["items"]
    assert [(u["id"], u["email"]) for u in by_admin] == [(ada, "countess.lovelace@example.test")]
    assert (await client.get("/v1/users", params={"q": "countess"}, headers=other)).json()[
        "items"
    ] == []
    listed = (await client.get("/v1/users", params={"q": "ada"}, headers=other)).json()["items"]
    assert [u["id"] for u in listed] == [ada] and listed[0]["email"] is None
    mine = (await client.get("/v1/users", params={"q": "ada"}, headers=bearer(ada))).json()
    assert mine["items"][0]["email"] == "countess.lovelace@example.test"


async def test_role_and_status_show_and_filter(env: tuple[httpx.AsyncClient, Seeder]) -> None:
    client, seed = env
    ada, bob, eve = [await seed.user(n) for n in ("Ada", "Bob", "Eve")]
    await seed(ada, "UserRoleAssigned", role="admin")
    version = await seed(eve, "UserStatusChanged", status="deactivated", reason="spam")

    token = ConsistencyToken("users", eve, version, ADMIN_ID).sign(SECRET)
    seen = await client.get(f"/v1/users/{eve}", headers={"X-Consistency-Token": token})
    assert seen.status_code == 200
    assert (seen.json()["status"], seen.json()["status_reason"]) == ("deactivated", "spam")
    as_user = (await client.get(f"/v1/users/{eve}", headers=bearer(bob))).json()
    assert (as_user["status"], as_user["status_reason"]) == ("deactivated", None)
    assert (await client.get(f"/v1/users/{ada}")).json()["role"] == "admin"

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [u["id"] for u in response.json()["items"]]

    assert ids(await client.get("/v1/users", params={"role": "admin"})) == [ada]
    assert ids(await client.get("/v1/users", params={"status": "deactivated"})) == [eve]
    active_users = await client.get("/v1/users", params={"status": "active", "role": "user"})
    assert ids(active_users) == [bob]
    assert (await client.get("/v1/users", params={"role": "root"})).status_code == 422

    stats = await client.get("/v1/stats/roles")
    assert stats.status_code == 200
    assert stats.json() == {"roles": {"user": 2, "admin": 1}, "total": 3}
    active = (await client.get("/v1/stats/roles", params={"status": "active"})).json()
    assert active == {"roles": {"user": 1, "admin": 1}, "total": 2}
    await seed(bob, "UserRoleAssigned", role="admin")
    assert (await client.get("/v1/stats/roles")).json()["roles"] == {"user": 1, "admin": 2}


async def test_lookup_by_email_is_for_admins_and_case_insensitive(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ada = await seed.user("Ada", email="Ada.Lovelace@Example.test")
    found = await client.get("/v1/users/by-email/ada.lovelace@example.TEST")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == ada
    await seed(ada, "UserProfileEmailChanged", email="ada@new.test")
    assert (await client.get("/v1/users/by-email/ada.lovelace@example.test")).status_code == 404
    assert (await client.get("/v1/users/by-email/ada@new.test")).json()["id"] == ada
    refused = await client.get("/v1/users/by-email/ada@new.test", headers=bearer(ada))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/users/by-email/not-an-address")).status_code == 422


async def test_contacts_pages_and_who_may_read_them(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ada = await seed.user("Ada")
    others = [await seed.user(f"Friend {i}") for i in range(9)]
    for contact in others:
        await seed(ada, "UserContactAdded", contact_id=contact)
    await seed(ada, "UserContactRemoved", contact_id=others[3])
    await seed(others[0], "UserContactAdded", contact_id=ada)  # another user's list

    listed, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/v1/users/{ada}/contacts", params=params, headers=bearer(ada))
        assert response.status_code == 200, response.text
        listed += response.json()["items"]
        cursor = response.json().get("next_cursor")
        if cursor is None:
            break
    expected = sorted(set(others) - {others[3]})
    assert [c["contact_id"] for c in listed] == expected
    names = {c["contact_id"]: c["name"] for c in listed}
    assert names[others[0]] == "Friend 0"

    assert (await client.get(f"/v1/users/{ada}/contacts")).status_code == 200  # an admin
    stranger = await client.get(f"/v1/users/{ada}/contacts", headers=bearer(others[0]))
    assert stranger.status_code == 403
    missing = await client.get(f"/v1/users/{uuid.uuid4()}/contacts")
    assert missing.status_code == 404
    garbage = await client.get(f"/v1/users/{ada}/contacts", params={"cursor": "!!"})
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/problem+json"


async def test_admin_routes_refuse_users_and_every_route_needs_a_token(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    client, seed = env
    ada = await seed.user("Ada")
    for path in ("/v1/stats/roles", "/v1/users/by-email/a@b.test"):
        refused = await client.get(path, headers=bearer(ada))
        assert refused.status_code == 403, path
    for path in (
        "/v1/users",
        "/v1/users/me",
        f"/v1/users/{ada}",
        f"/v1/users/{ada}/contacts",
        "/v1/stats/roles",
        "/v1/users/by-email/a@b.test",
    ):
        anonymous = await client.get(path, headers={"Authorization": ""})
        assert anonymous.status_code == 401, path
    bad = await client.get("/v1/users", params={"cursor": "bm9wZQ"})  # base64 of "nope"
    assert bad.status_code == 400
    assert (await client.get("/v1/users", params={"limit": 0})).status_code == 422
    assert (await client.get("/v1/users", params={"limit": 101})).status_code == 422


async def test_an_unverified_registration_is_shown_only_to_the_person_and_admins(
    env: tuple[httpx.AsyncClient, Seeder],
) -> None:
    """The saga makes a profile right after the registration, a taken address gets a decoy id
    with none: until the address is verified (auth.events EmailVerified), anyone else gets
    the decoy's 404 for the profile and does not find it in lists."""
    client, seed = env
    bob = await seed.user("Bob")
    fresh = await seed.user("Fresh Registrant")
    await seed(fresh, "UserRegistered", email="pe1.x", name="pe1.y")
    decoy = str(uuid.uuid4())

    def without_id(response: httpx.Response, user_id: str) -> tuple[int, str]:
        return response.status_code, response.text.replace(user_id, "<id>")

    answers = [
        without_id(await client.get(f"/v1/users/{target}", headers=bearer(bob)), target)
        for target in (fresh, decoy)
    ]
    assert answers[0] == answers[1] and answers[0][0] == 404
    listed = await all_pages(client, {"q": "fresh"}, headers=bearer(bob))
    assert [u["id"] for page in listed for u in page] == []
    # the person and admins see it
    assert (await client.get(f"/v1/users/{fresh}", headers=bearer(fresh))).status_code == 200
    assert (await client.get(f"/v1/users/{fresh}")).status_code == 200
    admin_list = await all_pages(client, {"q": "fresh"})
    assert [u["id"] for page in admin_list for u in page] == [fresh]

    await seed(fresh, "EmailVerified", email="pe1.x")
    assert (await client.get(f"/v1/users/{fresh}", headers=bearer(bob))).status_code == 200
    listed = await all_pages(client, {"q": "fresh"}, headers=bearer(bob))
    assert [u["id"] for page in listed for u in page] == [fresh]
