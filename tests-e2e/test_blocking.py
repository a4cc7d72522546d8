"""Blocking (issue 20), through the gateway as clients see it.

- the routes: `PUT`/`DELETE /v1/users/{me|own id}/blocks/{other_id}` (users-api) and
  `GET /v1/users/me/blocks` (query gateway): idempotent both ways, Idempotency-Key, a
  consistency token on every command, nobody (admins neither) edits someone else's list;
- notifications: whoever blocks the sender gets nothing of their group messages, mentions
  included, until they unblock; a mention pierces a muted conversation unless its mentions
  are muted too, and says so (`mention: true`);
- chat: the blocked person cannot start a direct conversation with the blocker or send into
  the one they share (403); group conversations are unaffected; unblocking lifts it.

Blocks reach chat and notifications through users.events (no synchronous call), so the
effects are awaited with `eventually`, each with a positive sentinel beside the absence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from parley_http.consistency import ConsistencyToken
from parley_testing.accounts import Account, sign_up

Json = dict[str, Any]


async def eventually(check: Callable[[], Awaitable[bool]], wait_s: float = 30) -> None:
    deadline = time.monotonic() + wait_s
    while not await check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.2)


def token_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"X-Consistency-Token": response.headers["X-Consistency-Token"]}


async def blocks_of(client: httpx.AsyncClient, who: Account, **headers: str) -> list[str]:
    listed = await client.get("/v1/users/me/blocks", headers={**who.headers, **headers})
    assert listed.status_code == 200, listed.text
    return [item["user_id"] for item in listed.json()["items"]]


async def test_block_routes_idempotency_tokens_and_the_list(
    gateway_url: str, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, eve = [await sign_up(client, n) for n in ("Ada", "Bob", "Eve")]
        path = f"/v1/users/me/blocks/{bob.user_id}"

        first = await client.put(path, headers=ada.headers)
        assert first.status_code == 200, first.text
        token = ConsistencyToken.decode(first.headers["X-Consistency-Token"])
        assert (token.context, token.stream_id) == ("users", ada.user_id)
        assert first.json() == {"id": ada.user_id, "version": token.version}
        again = await client.put(
            f"/v1/users/{ada.user_id}/blocks/{bob.user_id}", headers=ada.headers
        )
        assert again.json() == first.json(), "blocking twice appends nothing"
        assert await blocks_of(client, ada, **token_of(again)) == [bob.user_id]
        assert await blocks_of(client, bob, **token_of(again)) == []  # only one's own list

        # someone else's list: 403 for a stranger, for the blocked person and for an admin
        for who in (eve, bob, admin):
            for method in ("PUT", "DELETE"):
                url = f"/v1/users/{ada.user_id}/blocks/{eve.user_id}"
                refused = await client.request(method, url, headers=who.headers)
                assert refused.status_code == 403, (method, refused.text)
                assert refused.headers["content-type"].startswith("application/problem+json")
        assert (await client.put(path)).status_code == 401
        oneself = await client.put(f"/v1/users/me/blocks/{ada.user_id}", headers=ada.headers)
        assert oneself.status_code == 422, oneself.text
        for bad in ("/v1/users/me/blocks/not-a-uuid", f"/v1/users/nobody/blocks/{bob.user_id}"):
            assert (await client.put(bad, headers=ada.headers)).status_code == 422

        # an id whose profile does not exist is accepted (documented), and the list pages
        stranger = str(uuid.uuid4())
        more = await client.put(f"/v1/users/me/blocks/{stranger}", headers=ada.headers)
        page = await client.get(
            "/v1/users/me/blocks?limit=1", headers={**ada.headers, **token_of(more)}
        )
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) == 1 and page.json()["next_cursor"]
        rest = await client.get(
            "/v1/users/me/blocks",
            params={"limit": 1, "cursor": page.json()["next_cursor"]},
            headers=ada.headers,
        )
        listed = {page.json()["items"][0]["user_id"], rest.json()["items"][0]["user_id"]}
        assert listed == {bob.user_id, stranger} and rest.json()["next_cursor"] is None

        # unblock: idempotent too; the Idempotency-Key of a retried command returns its
        # first result and appends nothing
        keyed = {**ada.headers, "Idempotency-Key": f"unblock-{uuid.uuid4()}"}
        gone = await client.delete(path, headers=keyed)
        assert gone.status_code == 200, gone.text
        assert gone.json()["version"] == first.json()["version"] + 2
        retried = await client.delete(path, headers=keyed)
        assert retried.json() == gone.json()
        assert "X-Consistency-Token" in retried.headers
        noop = await client.delete(path, headers=ada.headers)
        assert noop.json() == gone.json(), "unblocking someone not blocked appends nothing"
        assert await blocks_of(client, ada, **token_of(noop)) == [stranger]


async def group_of(client: httpx.AsyncClient, creator: Account, *others: Account) -> str:
    created = await client.post(
        "/v1/conversations",
        json={"participant_ids": [o.user_id for o in others], "title": "team"},
        headers=creator.headers,
    )
    assert created.status_code == 201, created.text
    conversation_id: str = created.json()["id"]
    return conversation_id


async def send(
    client: httpx.AsyncClient, sender: Account, conversation: str, mentions: tuple[str, ...] = ()
) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"content": f"hi {uuid.uuid4()}", "mentions": list(mentions)},
        headers=sender.headers,
    )


async def notification_of(client: httpx.AsyncClient, who: Account, message_id: str) -> Json | None:
    listed = await client.get("/v1/notifications?limit=100", headers=who.headers)
    assert listed.status_code == 200, listed.text
    found = [n for n in listed.json()["items"] if n["message_id"] == message_id]
    return found[0] if found else None


async def settle(client: httpx.AsyncClient, sentinel: Account, message_id: str) -> None:
    """The policy handled the message: its notification for `sentinel` is there."""

    async def there() -> bool:
        return await notification_of(client, sentinel, message_id) is not None

    await eventually(there)


async def test_a_blocker_hears_nothing_of_the_blocked_in_groups_until_unblocking(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, eve = [await sign_up(client, n) for n in ("Ada", "Bob", "Eve")]
        group = await group_of(client, ada, bob, eve)
        blocked = await client.put(f"/v1/users/me/blocks/{ada.user_id}", headers=bob.headers)
        assert blocked.status_code == 200, blocked.text

        # the block reaches the policy through users.events: from some message on, eve is
        # notified and bob is not (each message settled by eve's notification)
        async def bob_is_spared() -> bool:
            sent = await send(client, ada, group)
            assert sent.status_code == 201, sent.text
            await settle(client, eve, sent.json()["id"])
            return await notification_of(client, bob, sent.json()["id"]) is None

        await eventually(bob_is_spared)
        mention = await send(client, ada, group, (bob.user_id, eve.user_id))
        assert mention.status_code == 201, mention.text  # groups: the blocked may still write
        await settle(client, eve, mention.json()["id"])
        assert await notification_of(client, bob, mention.json()["id"]) is None
        eves = await notification_of(client, eve, mention.json()["id"])
        assert eves is not None and eves["mention"] is True

        unblocked = await client.delete(f"/v1/users/me/blocks/{ada.user_id}", headers=bob.headers)
        assert unblocked.status_code == 200, unblocked.text

        async def bob_hears_again() -> bool:
            sent = await send(client, ada, group, (bob.user_id,))
            await settle(client, eve, sent.json()["id"])
            note = await notification_of(client, bob, sent.json()["id"])
            return note is not None and note["mention"] is True

        await eventually(bob_hears_again)


async def test_a_mention_pierces_a_muted_conversation_unless_its_mentions_are_muted(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob = await sign_up(client, "Ada"), await sign_up(client, "Bob")
        eve, dan = await sign_up(client, "Eve"), await sign_up(client, "Dan")
        group = await group_of(client, ada, bob, eve, dan)
        muted = {"in_app": True, "email": False, "muted_conversations": [group]}
        put = await client.put("/v1/notifications/preferences", json=muted, headers=bob.headers)
        assert put.status_code == 200, put.text
        all_muted = {**muted, "muted_mentions": [group]}
        put = await client.put("/v1/notifications/preferences", json=all_muted, headers=eve.headers)
        assert put.status_code == 200, put.text
        shown = await client.get(
            "/v1/notifications/preferences", headers={**eve.headers, **token_of(put)}
        )
        assert shown.json()["muted_mentions"] == [group]

        plain = await send(client, ada, group)
        mention = await send(client, ada, group, (bob.user_id, eve.user_id))
        for sent in (plain, mention):
            assert sent.status_code == 201, sent.text
            await settle(client, dan, sent.json()["id"])  # dan muted nothing
        assert await notification_of(client, bob, plain.json()["id"]) is None  # muted
        bobs = await notification_of(client, bob, mention.json()["id"])
        assert bobs is not None and bobs["mention"] is True and bobs["kind"] == "message"
        assert await notification_of(client, eve, mention.json()["id"]) is None
        dans = await notification_of(client, dan, mention.json()["id"])
        assert dans is not None and dans["mention"] is False


async def test_the_blocked_cannot_start_or_write_a_direct_conversation_with_the_blocker(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, eve = [await sign_up(client, n) for n in ("Ada", "Bob", "Eve")]
        direct = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=ada.headers
        )
        assert direct.status_code == 201, direct.text
        direct_id = direct.json()["id"]
        group = await group_of(client, ada, bob, eve)
        blocked = await client.put(f"/v1/users/me/blocks/{ada.user_id}", headers=bob.headers)
        assert blocked.status_code == 200, blocked.text

        async def ada_is_refused() -> bool:
            sent = await send(client, ada, direct_id)
            assert sent.status_code in (201, 403), sent.text
            return sent.status_code == 403

        await eventually(ada_is_refused)  # the block reaches chat through users.events
        refused = await send(client, ada, direct_id)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        start = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=ada.headers
        )
        assert start.status_code == 403, start.text
        assert (await send(client, ada, group)).status_code == 201  # groups are unaffected
        assert (await send(client, bob, direct_id)).status_code == 201  # the blocker may write
        # a third person is not concerned
        other = await client.post(
            "/v1/conversations", json={"participant_ids": [eve.user_id]}, headers=ada.headers
        )
        assert other.status_code == 201, other.text

        unblocked = await client.delete(f"/v1/users/me/blocks/{ada.user_id}", headers=bob.headers)
        assert unblocked.status_code == 200, unblocked.text

        async def ada_may_write_again() -> bool:
            sent = await send(client, ada, direct_id)
            assert sent.status_code in (201, 403), sent.text
            return sent.status_code == 201

        await eventually(ada_may_write_again)
