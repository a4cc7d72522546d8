"""Issue 5 through the gateway, as two people and a stranger use it: a group conversation,
messages both ways, each side's conversation list with the last message and its own unread
count, read marks resetting them, a deleted message gone for both, a removed participant who
can no longer read or send, search limited to the caller's conversations, and a direct
conversation that is not duplicated. The writer's own reads present the write's consistency
token and see it at once; a token is bound to its writer (issue 19), so the other side's reads
poll until the write shows, as their client would after a push."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from parley_testing.accounts import Account, sign_up

TOKEN = "X-Consistency-Token"


def as_(account: Account, write: httpx.Response | None = None) -> dict[str, str]:
    headers = dict(account.headers)
    if write is not None:
        headers[TOKEN] = write.headers[TOKEN]
    return headers


async def eventually(read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool]) -> Any:
    """`read()` until `ok(result)` (another person's write shows once projected)."""
    deadline = time.monotonic() + 20
    while not ok(result := await read()):
        assert time.monotonic() < deadline, f"never: {result}"
        await asyncio.sleep(0.2)
    return result


async def conversation_of(
    client: httpx.AsyncClient,
    who: Account,
    conversation_id: str,
    write: httpx.Response,
    ok: Callable[[dict[str, Any]], bool] = lambda item: True,
) -> dict[str, Any]:
    async def read() -> dict[str, Any] | None:
        listed = await client.get("/v1/conversations", headers=as_(who, write))
        assert listed.status_code == 200, listed.text
        found = [c for c in listed.json()["items"] if c["id"] == conversation_id]
        return dict(found[0]) if found else None

    item: dict[str, Any] = await eventually(read, lambda item: item is not None and ok(item))
    return item


async def test_two_people_talk_and_a_stranger_sees_nothing(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ada = await sign_up(client, "Ada")
        bob = await sign_up(client, "Bob")
        eve = await sign_up(client, "Eve")
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": "plans"},
            headers=as_(ada),
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]

        sent = []
        for who, text in ((ada, "hello bob"), (bob, "hi ada"), (ada, "lunch at noon?")):
            r = await client.post(
                f"/v1/conversations/{cid}/messages", json={"content": text}, headers=as_(who)
            )
            assert r.status_code == 201, r.text
            sent.append(r)
        last = sent[-1]

        for who, unread in ((ada, 1), (bob, 2)):  # each side counts the other's messages
            item = await conversation_of(
                client, who, cid, last, lambda i: i["last_message"]["content"] == "lunch at noon?"
            )
            assert item["unread_count"] == unread, (who.email, item)
        total = await client.get("/v1/conversations/unread-count", headers=as_(bob))
        assert total.json()["count"] >= 2

        read = await client.post(f"/v1/conversations/{cid}/read", json={}, headers=as_(bob))
        assert read.status_code == 200, read.text
        assert (await conversation_of(client, bob, cid, read))["unread_count"] == 0

        page = await client.get(f"/v1/conversations/{cid}/messages", headers=as_(ada, last))
        assert [m["content"] for m in page.json()["items"]] == [
            "lunch at noon?",
            "hi ada",
            "hello bob",
        ]
        deleted = await client.delete(
            f"/v1/conversations/{cid}/messages/{sent[0].json()['id']}", headers=as_(ada)
        )
        assert deleted.status_code == 200, deleted.text
        page = await client.get(f"/v1/conversations/{cid}/messages", headers=as_(ada, deleted))
        assert "hello bob" not in [m["content"] for m in page.json()["items"]]

        async def bobs_page() -> list[str | None]:
            page = await client.get(f"/v1/conversations/{cid}/messages", headers=as_(bob))
            return [m["content"] for m in page.json()["items"]]

        await eventually(bobs_page, lambda contents: "hello bob" not in contents)

        found = await client.get("/v1/messages/search", params={"q": "lunch"}, headers=as_(bob))
        assert [m["content"] for m in found.json()["items"]] == ["lunch at noon?"]
        assert (
            await client.get("/v1/messages/search", params={"q": "lunch"}, headers=as_(eve))
        ).json()["items"] == []

        stranger_read = await client.get(f"/v1/conversations/{cid}/messages", headers=as_(eve))
        stranger_send = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "me too"}, headers=as_(eve)
        )
        assert stranger_read.status_code in (403, 404)
        assert stranger_send.status_code in (403, 404)

        removed = await client.delete(
            f"/v1/conversations/{cid}/participants/{bob.user_id}", headers=as_(ada)
        )
        assert removed.status_code == 200, removed.text
        late = await client.post(
            f"/v1/conversations/{cid}/messages", json={"content": "wait"}, headers=as_(bob)
        )
        assert late.status_code == 404  # a former participant is a stranger
        gone = await eventually(
            lambda: client.get(f"/v1/conversations/{cid}/messages", headers=as_(bob)),
            lambda r: r.status_code in (403, 404),
        )
        assert gone.headers["content-type"].startswith("application/problem+json")


async def test_a_direct_conversation_is_not_duplicated(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada = await sign_up(client, "Ada")
        bob = await sign_up(client, "Bob")
        first = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=as_(ada)
        )
        again = await client.post(
            "/v1/conversations", json={"participant_ids": [ada.user_id]}, headers=as_(bob)
        )
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
