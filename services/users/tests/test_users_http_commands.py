"""The users command API against a real PostgreSQL: events and outbox rows land together,
retries are idempotent, conflicts and bad input get problem+json."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from parley_eventstore.migrate import migrate
from parley_http.consistency import ConsistencyToken
from parley_privacy.fields import FieldCipher
from parley_privacy.memory import MemoryKeys
from parley_testing.tokens import Signer, jwks
from parley_users.bootstrap import bootstrap
from parley_users.config import Settings

pytestmark = pytest.mark.integration
KEYS = MemoryKeys()  # plays the key owner (the auth service)


SIGNER = Signer()  # plays the auth service: the app trusts its key through a static JWKS
ADMIN_ID = str(uuid.uuid4())
ADMIN = {"Authorization": f"Bearer {SIGNER.token(sub=ADMIN_ID, role='admin')}"}
SECRET = "test-consistency-secret"  # the command side's and the gateway's shared secret


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SIGNER.token(sub=user_id)}"}


def fresh(user_id: str, age_s: int = 5) -> dict[str, str]:
    """A token of a login `age_s` seconds ago (the `auth_time` claim)."""
    token = SIGNER.token(sub=user_id, auth_time=int(time.time()) - age_s)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(
    fresh_database: str, kafka_bootstrap: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    await migrate(fresh_database)
    settings = Settings(
        postgres_dsn=fresh_database,
        snapshot_every=5,
        consistency_secret=SECRET,
        jwks=json.dumps(jwks(SIGNER)),
        jwks_url="",  # the static set only: never the running auth service's keys
        kafka_bootstrap_servers=kafka_bootstrap,
        consume_registrations=False,
    )
    app = bootstrap(settings, keys=KEYS)
    async with app.router.lifespan_context(app):
        assert await app.state.authn.revocations.wait_ready(15)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://users", headers=ADMIN
        ) as client:
            yield client, fresh_database


async def rows(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_create_appends_event_and_outbox_row(api: tuple[httpx.AsyncClient, str]) -> None:
    client, dsn = api
    response = await client.post("/v1/users", json={"name": "Ada", "email": "ada@example.test"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1
    token = ConsistencyToken.decode(response.headers["X-Consistency-Token"])
    assert (token.context, token.stream_id, token.version) == ("users", body["id"], 1)
    # signed for the admin who ran the command, and only for them
    assert ConsistencyToken.verify(response.headers["X-Consistency-Token"], SECRET, ADMIN_ID)
    assert not ConsistencyToken.verify(response.headers["X-Consistency-Token"], SECRET, body["id"])

    events = await rows(dsn, "SELECT stream_id, event_type, version, data FROM events")
    assert [(e["stream_id"], e["event_type"], e["version"]) for e in events] == [
        (body["id"], "UserCreated", 1)
    ]
    outbox = await rows(dsn, "SELECT topic, key, headers, payload FROM outbox")
    assert len(outbox) == 1
    headers = json.loads(outbox[0]["headers"])
    assert outbox[0]["topic"] == "users.events"
    assert outbox[0]["key"] == body["id"]
    assert headers["ce_type"] == "parley.users.UserCreated.v1"
    assert headers["ce_subject"] == body["id"]
    payload = json.loads(outbox[0]["payload"])
    assert payload["name"].startswith("pe1.") and b"Ada" not in bytes(outbox[0]["payload"])
    assert (await FieldCipher(KEYS).decrypt("UserCreated", payload))["name"] == "Ada"


async def test_retried_create_with_idempotency_key_appends_once(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = api
    body = {"name": "Ada", "email": "ada@example.test"}
    headers = {"Idempotency-Key": "k-1"}
    responses = await asyncio.gather(
        *(client.post("/v1/users", json=body, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await rows(dsn, "SELECT 1 FROM events")) == 1


async def test_patch_then_conflicts_and_not_found(api: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = api
    user_id = str(uuid.uuid4())
    created = await client.post(
        "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
    )
    assert created.status_code == 201
    again = await client.post(
        "/v1/users", json={"user_id": user_id, "name": "Ada", "email": "ada@example.test"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    patched = await client.patch(f"/v1/users/{user_id}", json={"bio": "mathematician"})
    assert patched.status_code == 200
    assert patched.json()["version"] == 2

    missing = await client.patch(f"/v1/users/{uuid.uuid4()}", json={"bio": "x"})
    assert missing.status_code == 404


async def test_concurrent_patches_keep_a_gap_free_stream(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = api
    user_id = str(uuid.uuid4())
    await client.post(
        "/v1/users", json={"user_id": user_id, "name": "A", "email": "a@example.test"}
    )
    responses = await asyncio.gather(
        *(client.patch(f"/v1/users/{user_id}", json={"bio": f"bio {i}"}) for i in range(12))
    )
    assert {r.status_code for r in responses} <= {200, 409}
    versions = [
        r["version"] for r in await rows(dsn, "SELECT version FROM events ORDER BY version")
    ]
    assert versions == list(range(1, len(versions) + 1))
    accepted = sum(r.status_code == 200 for r in responses)
    assert len(versions) == 1 + accepted


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/v1/users", {"name": "", "email": "ada@example.test"}),
        ("post", "/v1/users", {"name": "Ada", "email": "not-an-email"}),
        ("post", "/v1/users", {"name": "Ada", "email": "a@b.c", "role": "admin"}),
        ("patch", "/v1/users/not-a-uuid", {"bio": "x"}),
        ("patch", f"/v1/users/{uuid.uuid4()}", {}),
    ],
)
async def test_bad_input_is_422_problem(
    api: tuple[httpx.AsyncClient, str], method: str, path: str, payload: dict[str, object]
) -> None:
    client, _ = api
    response = await getattr(client, method)(path, json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_malformed_and_oversized_bodies(api: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = api
    malformed = await client.post(
        "/v1/users", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    huge = await client.post(
        "/v1/users", content=b"x" * 100_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413


async def test_commands_need_a_token_and_users_edit_only_themselves(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = api
    body = {"name": "Ada", "email": "ada@example.test"}
    user_id = (await client.post("/v1/users", json=body)).json()["id"]
    other = str(uuid.uuid4())

    anonymous = await client.patch(
        f"/v1/users/{user_id}", json={"bio": "x"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    forged = Signer().token(sub=user_id)  # right shape, key the service does not trust
    refused = await client.patch(
        f"/v1/users/{user_id}", json={"bio": "x"}, headers={"Authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401
    stranger = await client.patch(f"/v1/users/{user_id}", json={"bio": "x"}, headers=bearer(other))
    assert stranger.status_code == 403, stranger.text
    assert (await client.post("/v1/users", json=body, headers=bearer(user_id))).status_code == 403
    mine = await client.patch(f"/v1/users/{user_id}", json={"bio": "mine"}, headers=bearer(user_id))
    assert mine.status_code == 200, mine.text


async def new_user(client: httpx.AsyncClient, name: str = "Ada") -> str:
    user_id = str(uuid.uuid4())
    response = await client.post(
        "/v1/users", json={"user_id": user_id, "name": name, "email": f"{name}@example.test"}
    )
    assert response.status_code == 201, response.text
    return user_id


async def stream(dsn: str, user_id: str) -> list[tuple[int, str, dict[str, object]]]:
    found = await rows(
        dsn,
        f"SELECT version, event_type, data FROM events WHERE stream_id = '{user_id}' "
        "ORDER BY version",
    )
    cipher = FieldCipher(KEYS)  # personal fields are stored encrypted
    return [
        (r["version"], r["event_type"], await cipher.open(r["event_type"], json.loads(r["data"])))
        for r in found
    ]


def version_and_token(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    token = ConsistencyToken.decode(response.headers["X-Consistency-Token"])
    assert token.version == response.json()["version"]
    assert token.stream_id == response.json()["id"]
    version: int = response.json()["version"]
    return version


async def test_admins_deactivate_and_reactivate_once(api: tuple[httpx.AsyncClient, str]) -> None:
    client, dsn = api
    user_id = await new_user(client)
    off = await client.post(f"/v1/users/{user_id}/deactivate", json={"reason": "spam"})
    assert version_and_token(off) == 2
    again = await client.post(f"/v1/users/{user_id}/deactivate", json={"reason": "spam"})
    assert version_and_token(again) == 2  # already deactivated: nothing appended
    on = await client.post(f"/v1/users/{user_id}/reactivate")
    assert version_and_token(on) == 3
    assert [(v, t, d.get("status"), d.get("reason")) for v, t, d in await stream(dsn, user_id)][
        1:
    ] == [
        (2, "UserStatusChanged", "deactivated", "spam"),
        (3, "UserStatusChanged", "active", None),
    ]

    own = await client.post(
        f"/v1/users/{user_id}/deactivate", json={"reason": "me"}, headers=bearer(user_id)
    )
    assert own.status_code == 403
    assert own.headers["content-type"] == "application/problem+json"
    assert (await client.post(f"/v1/users/{uuid.uuid4()}/reactivate")).status_code == 404
    no_reason = await client.post(f"/v1/users/{user_id}/deactivate", json={})
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0]["field"] == "reason"
    anonymous = await client.post(f"/v1/users/{user_id}/reactivate", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_contacts_add_remove_and_their_rules(api: tuple[httpx.AsyncClient, str]) -> None:
    client, dsn = api
    ada = await new_user(client, "ada")
    bob = await new_user(client, "bob")
    eve = await new_user(client, "eve")
    mine = bearer(ada)

    added = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": bob}, headers=mine)
    assert version_and_token(added) == 2
    twice = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": bob}, headers=mine)
    assert version_and_token(twice) == 2  # a no-op, not an error

    stranger = await client.post(
        f"/v1/users/{ada}/contacts", json={"contact_id": eve}, headers=bearer(eve)
    )
    assert stranger.status_code == 403
    nobody = str(uuid.uuid4())
    ghost = await client.post(
        f"/v1/users/{ada}/contacts", json={"contact_id": nobody}, headers=mine
    )
    # any id: a 404 here would tell unknown ids from fresh registrations (enumeration)
    assert version_and_token(ghost) == 3
    itself = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": ada}, headers=mine)
    assert itself.status_code == 422
    assert itself.json()["errors"][0]["field"] == "contact_id"
    bad = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": "x"}, headers=mine)
    assert bad.status_code == 422
    by_admin = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": eve})
    assert version_and_token(by_admin) == 4

    removed = await client.delete(f"/v1/users/{ada}/contacts/{bob}", headers=mine)
    assert version_and_token(removed) == 5
    gone = await client.delete(f"/v1/users/{ada}/contacts/{bob}", headers=mine)
    assert version_and_token(gone) == 5  # DELETE is idempotent
    assert (
        await client.delete(f"/v1/users/{ada}/contacts/{eve}", headers=bearer(bob))
    ).status_code == 403
    assert (await client.delete(f"/v1/users/{uuid.uuid4()}/contacts/{eve}")).status_code == 404

    assert [(t, d.get("contact_id")) for _, t, d in await stream(dsn, ada)] == [
        ("UserCreated", None),
        ("UserContactAdded", bob),
        ("UserContactAdded", nobody),
        ("UserContactAdded", eve),
        ("UserContactRemoved", bob),
    ]

    await client.post(f"/v1/users/{ada}/deactivate", json={"reason": "spam"})
    refused = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": bob}, headers=mine)
    assert refused.status_code == 409


async def test_a_retried_contact_command_returns_its_first_result(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = api
    ada, bob = await new_user(client, "ada"), await new_user(client, "bob")
    key = {"Idempotency-Key": "add-bob-1"}
    first = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": bob}, headers=key)
    assert version_and_token(first) == 2
    await client.delete(f"/v1/users/{ada}/contacts/{bob}")
    retried = await client.post(f"/v1/users/{ada}/contacts", json={"contact_id": bob}, headers=key)
    assert version_and_token(retried) == 2  # the first result, not a new append
    assert len(await stream(dsn, ada)) == 3
    # the same client key on another user's command is another command
    other = await client.post(f"/v1/users/{bob}/contacts", json={"contact_id": ada}, headers=key)
    assert version_and_token(other) == 2


async def test_admins_assign_roles(api: tuple[httpx.AsyncClient, str]) -> None:
    client, dsn = api
    user_id = await new_user(client)
    assigned = await client.put(f"/v1/users/{user_id}/role", json={"role": "admin"})
    assert version_and_token(assigned) == 2
    same = await client.put(f"/v1/users/{user_id}/role", json={"role": "admin"})
    assert version_and_token(same) == 2
    self_service = await client.put(
        f"/v1/users/{user_id}/role", json={"role": "admin"}, headers=bearer(user_id)
    )
    assert self_service.status_code == 403
    wrong = await client.put(f"/v1/users/{user_id}/role", json={"role": "root"})
    assert wrong.status_code == 422
    assert (
        await client.put(f"/v1/users/{uuid.uuid4()}/role", json={"role": "user"})
    ).status_code == 404
    assert [(t, d.get("role")) for _, t, d in await stream(dsn, user_id)][1:] == [
        ("UserRoleAssigned", "admin")
    ]


def auth_record(
    name: str, data: dict[str, object], context: str = "auth", subject: str | None = None
) -> tuple[list[tuple[str, bytes]], bytes]:
    from datetime import UTC, datetime

    from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers

    envelope = Envelope(
        id=str(uuid.uuid4()),
        source=f"/parley/{context}",
        type=ce_type(context, name, 1),
        subject=subject if subject is not None else str(data["user_id"]),
        time=datetime.now(UTC),
        data=json.dumps(data).encode(),
        aggregate_version=1,
    )
    return kafka_headers(header_map(envelope)), envelope.data


async def test_the_users_context_mirrors_auth_roles_and_addresses(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    """auth.events -> commands (registrations.py), through the real repository. Profiles are
    the registration saga's: UserRegistered itself creates nothing here."""
    from parley_commandkit import Context
    from parley_eventstore.records import Metadata
    from parley_users import registrations
    from parley_users.handlers import CreateUser, handle

    client, dsn = api
    users = client._transport.app.state.users  # type: ignore[attr-defined]
    user_id = str(uuid.uuid4())
    ignored = str(uuid.uuid4())
    await handle(users, CreateUser(user_id, "A", "a@x.test"), Context(Metadata("c")))
    cipher = FieldCipher(KEYS)  # auth's event store seals personal fields before they leave

    async def sealed(name: str, data: dict[str, object]) -> tuple[list[tuple[str, bytes]], bytes]:
        return auth_record(name, await cipher.encrypt(name, data))

    registered = {"user_id": ignored, "email": "c@x.test", "name": "C"}
    records = [
        await sealed("UserRegistered", registered),
        auth_record("RoleChanged", {"user_id": user_id, "role": "admin", "previous_role": "user"}),
        await sealed("UserEmailChanged", {"user_id": user_id, "email": "b@x.test"}),
        # an address in plaintext was not written by auth's store: refused, not applied
        auth_record("UserEmailChanged", {"user_id": user_id, "email": "forged@x.test"}),
        auth_record("UserLoggedIn", {"user_id": user_id, "session_id": "s"}),
        auth_record(
            "RoleChanged", {"user_id": str(uuid.uuid4()), "role": "admin", "previous_role": "user"}
        ),  # no profile: skipped
        ([("ce_type", b"garbage")], b"{"),  # undecodable: skipped
    ]
    for _ in range(2):  # a redelivery appends nothing new
        for headers, value in records:
            await registrations.apply(users, cipher, headers, value, None)
    assert [(t, d.get("role"), d.get("email")) for _, t, d in await stream(dsn, user_id)] == [
        ("UserCreated", None, "a@x.test"),
        ("UserRoleAssigned", "admin", None),
        ("UserProfileEmailChanged", None, "b@x.test"),
    ]
    assert await stream(dsn, ignored) == []


async def test_a_cancelled_registration_deactivates_its_profile(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    """auth.events RegistrationCancelled (auth expires registrations never verified) ->
    Deactivate: the profile the saga made leaves searches; once, however often it comes, and
    nothing more after the saga's own compensation deactivated it."""
    from parley_commandkit import Context
    from parley_eventstore.records import Metadata
    from parley_users import registrations
    from parley_users.handlers import CreateUser, handle

    client, dsn = api
    users = client._transport.app.state.users  # type: ignore[attr-defined]
    user_id = str(uuid.uuid4())
    await handle(users, CreateUser(user_id, "A", "a@x.test"), Context(Metadata("c")))
    cancelled = {"user_id": user_id, "reason": "verification_expired"}
    for _ in range(2):
        for headers, value in [
            auth_record("RegistrationCancelled", cancelled),
            auth_record("RegistrationCancelled", {"user_id": str(uuid.uuid4()), "reason": "x"}),
        ]:  # the second has no profile: skipped
            await registrations.apply(users, FieldCipher(KEYS), headers, value, None)
    events = [(t, d.get("status"), d.get("reason")) for _, t, d in await stream(dsn, user_id)]
    assert events == [
        ("UserCreated", None, None),
        ("UserStatusChanged", "deactivated", "registration_cancelled"),
    ]


def chat_record(name: str, data: dict[str, object]) -> tuple[list[tuple[str, bytes]], bytes]:
    """A chat.events record (subject = the conversation), as relay-chat publishes it."""
    return auth_record(name, data, context="chat", subject=str(data["conversation_id"]))


async def test_a_report_resolved_with_deactivate_user_deactivates_the_sender(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    """chat.events ReportResolved -> Deactivate (the users context owns account status);
    the other actions and every other chat event change nothing, and a redelivery appends
    nothing new."""
    from parley_commandkit import Context
    from parley_eventstore.records import Metadata
    from parley_users import registrations
    from parley_users.handlers import CreateUser, handle

    client, dsn = api
    users = client._transport.app.state.users  # type: ignore[attr-defined]
    sender, spared = str(uuid.uuid4()), str(uuid.uuid4())
    for user_id in (sender, spared):
        await handle(users, CreateUser(user_id, "A", f"{user_id}@x.test"), Context(Metadata("c")))

    def resolved(user_id: str, action: str) -> tuple[list[tuple[str, bytes]], bytes]:
        return chat_record(
            "ReportResolved",
            {
                "conversation_id": str(uuid.uuid4()),
                "report_id": str(uuid.uuid4()),
                "message_id": str(uuid.uuid4()),
                "sender_id": user_id,
                "resolved_by": str(uuid.uuid4()),
                "action": action,
            },
        )

    records = [
        resolved(spared, "dismiss"),
        resolved(spared, "delete_message"),
        chat_record("MessageSent", {"conversation_id": str(uuid.uuid4()), "content": "pe1.x"}),
        resolved(sender, "deactivate_user"),
    ]
    for _ in range(2):
        for headers, value in records:
            await registrations.apply(users, FieldCipher(KEYS), headers, value, None)
    events = [(t, d.get("status")) for _, t, d in await stream(dsn, sender)]
    assert events == [("UserCreated", None), ("UserStatusChanged", "deactivated")]
    assert [t for _, t, _ in await stream(dsn, spared)] == ["UserCreated"]


async def test_history_pages_and_state_at_a_version_or_a_moment(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    """snapshot_every=5 in this fixture: the past states below straddle snapshots, and each
    must be what the first N events say (the bio of the (N-1)th edit), not the snapshot's."""
    client, _ = api
    user_id = (await client.post("/v1/users", json={"name": "Ada", "email": "a@x.test"})).json()[
        "id"
    ]
    for i in range(12):
        assert (
            await client.patch(f"/v1/users/{user_id}", json={"bio": f"b{i}"})
        ).status_code == 200

    first = await client.get(f"/v1/users/{user_id}/events", params={"limit": 5})
    assert first.status_code == 200, first.text
    assert [e["version"] for e in first.json()["items"]] == [1, 2, 3, 4, 5]
    assert first.json()["items"][0]["type"] == "UserCreated"
    rest = await client.get(
        f"/v1/users/{user_id}/events", params={"after": first.json()["next_cursor"]}
    )
    assert [e["version"] for e in rest.json()["items"]] == list(range(6, 14))
    assert rest.json()["next_cursor"] is None

    for version in (1, 2, 5, 6, 10, 13):
        past = await client.get(f"/v1/users/{user_id}/state", params={"at": str(version)})
        assert past.status_code == 200, past.text
        body = past.json()
        assert body["version"] == version
        expected = None if version == 1 else f"b{version - 2}"
        assert body["state"]["profile"]["bio"] == expected, (version, body)

    seventh = rest.json()["items"][1]  # version 7
    at_time = await client.get(f"/v1/users/{user_id}/state", params={"at": seventh["recorded_at"]})
    assert at_time.json()["version"] == 7
    assert (
        await client.get(f"/v1/users/{user_id}/state", params={"at": "yesterday"})
    ).status_code == 422
    before = await client.get(f"/v1/users/{user_id}/state", params={"at": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404
    other = str(uuid.uuid4())
    stranger = await client.get(f"/v1/users/{user_id}/events", headers=bearer(other))
    assert stranger.status_code == 403


async def test_forgetting_a_user_shreds_their_data(api: tuple[httpx.AsyncClient, str]) -> None:
    """DELETE /v1/users/{id}: the key owner forgets the key, UserForgotten is appended, the
    plaintext snapshot is gone, stored events hold no plaintext and read as placeholders."""
    client, dsn = api
    created = await client.post("/v1/users", json={"name": "Zelda Q", "email": "zq@x.test"})
    user_id = created.json()["id"]
    for i in range(6):  # past snapshot_every=5: a snapshot exists
        await client.patch(f"/v1/users/{user_id}", json={"bio": f"secret bio {i}"})
    assert await rows(dsn, f"SELECT 1 FROM snapshots WHERE stream_id = '{user_id}'")
    stranger = bearer(str(uuid.uuid4()))
    assert (await client.delete(f"/v1/users/{user_id}", headers=stranger)).status_code == 403
    forgotten = await client.delete(f"/v1/users/{user_id}", headers=fresh(user_id))
    assert forgotten.status_code == 200, forgotten.text
    again = await client.delete(f"/v1/users/{user_id}")
    assert again.status_code == 200 and again.json()["version"] == forgotten.json()["version"]
    raw = await rows(dsn, f"SELECT data::text AS d FROM events WHERE stream_id = '{user_id}'")
    outbox = await rows(dsn, f"SELECT payload FROM outbox WHERE key = '{user_id}'")
    text = " ".join(r["d"] for r in raw) + " ".join(bytes(r["payload"]).decode() for r in outbox)
    for secret in ("Zelda", "zq@x.test", "secret bio"):
        assert secret not in text
    assert not await rows(dsn, f"SELECT 1 FROM snapshots WHERE stream_id = '{user_id}'")
    types = [t for _, t, _ in await stream(dsn, user_id)]
    assert types[-1] == "UserForgotten" and types.count("UserForgotten") == 1
    history = (await client.get(f"/v1/users/{user_id}/events")).json()["items"]
    assert history[0]["data"]["name"] == "Forgotten user"
    assert history[0]["data"]["email"] == ""
    state = (await client.get(f"/v1/users/{user_id}/state", params={"at": "2"})).json()
    assert state["state"]["profile"]["bio"] == ""
    patched = await client.patch(f"/v1/users/{user_id}", json={"bio": "back"})
    assert patched.status_code == 404


async def test_deleting_oneself_needs_a_fresh_login(api: tuple[httpx.AsyncClient, str]) -> None:
    """Self-deletion needs a token whose login (`auth_time`) is under 5 minutes old: without
    the claim, or with an older login (a refreshed token keeps it), 401 with the step-up
    challenge and nothing happens; an admin deleting someone else needs no fresh login."""
    client, dsn = api
    user_id = (await client.post("/v1/users", json={"name": "Fresh", "email": "f@x.test"})).json()[
        "id"
    ]
    for headers in (bearer(user_id), fresh(user_id, age_s=301), fresh(user_id, age_s=3600)):
        refused = await client.delete(f"/v1/users/{user_id}", headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["type"] == "/problems/fresh-authentication-required"
        assert body["max_age"] == 300
        challenge = refused.headers["www-authenticate"]
        assert 'error="insufficient_user_authentication"' in challenge
        assert "max_age=300" in challenge
    assert "UserForgotten" not in [t for _, t, _ in await stream(dsn, user_id)]
    assert KEYS.keys.get(user_id, True) is not None  # the key owner was not asked to forget
    # a login in the future of the token's issue is no login at all
    forged = SIGNER.token(sub=user_id, auth_time=int(time.time()) + 600)
    bad = await client.delete(f"/v1/users/{user_id}", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]

    accepted = await client.delete(f"/v1/users/{user_id}", headers=fresh(user_id, age_s=60))
    assert accepted.status_code == 200, accepted.text
    assert [t for _, t, _ in await stream(dsn, user_id)][-1] == "UserForgotten"

    other = (await client.post("/v1/users", json={"name": "Other", "email": "o@x.test"})).json()
    by_admin = await client.delete(f"/v1/users/{other['id']}")  # ADMIN: no auth_time at all
    assert by_admin.status_code == 200, by_admin.text


async def test_saga_create_profile_decrypts_the_sealed_registration_fields(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    """The saga copies UserRegistered's sealed email and name into CreateProfile as they are;
    the participant decrypts them, and refuses a person forgotten before their profile."""
    from parley_messaging.saga import Rejected, SagaCommand
    from parley_users import saga

    client, dsn = api
    users = client._transport.app.state.users  # type: ignore[attr-defined]
    cipher = FieldCipher(KEYS)
    handlers = saga.handlers(users, cipher)

    def command(user_id: str, data: dict[str, object]) -> SagaCommand:
        return SagaCommand(
            str(uuid.uuid4()), "users", "CreateProfile", user_id, "s1", "r", "profile", data
        )

    user_id = str(uuid.uuid4())
    sealed = await cipher.encrypt(
        "UserRegistered", {"user_id": user_id, "email": "saga@x.test", "name": "Saga Person"}
    )
    assert sealed["name"].startswith("pe1.")
    await handlers["CreateProfile"](command(user_id, sealed))
    [(_, kind, data)] = await stream(dsn, user_id)
    assert (kind, data["name"], data["email"]) == ("UserCreated", "Saga Person", "saga@x.test")

    gone = str(uuid.uuid4())
    sealed = await cipher.encrypt(
        "UserRegistered", {"user_id": gone, "email": "gone@x.test", "name": "Gone"}
    )
    await KEYS.forget(gone)
    with pytest.raises(Rejected):
        await handlers["CreateProfile"](command(gone, sealed))
