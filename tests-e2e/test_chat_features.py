"""Issue 20 through the gateway (:8080), as people use it: edits with their history, replies
with the quoted parent and the replies page, reactions counted with `me`, mentions in the list
and the unread count, and reports listed to admins and resolved by deleting the message. Each
feature's happy path and its refusals (a stranger, a removed participant, a non-admin).

Read-your-writes: a consistency token counts for its own caller only (issue 19), so a writer's
own read presents its token and must see the write at once; another person's read of it is
eventual and polls (`eventually`), with the token ignored."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from parley_testing.accounts import PASSWORD, Account, sign_up
from parley_testing.realtime import SseStream

TOKEN = "X-Consistency-Token"


def as_(account: Account, write: httpx.Response | None = None) -> dict[str, str]:
    headers = dict(account.headers)
    if write is not None:
        headers[TOKEN] = write.headers[TOKEN]
    return headers


async def eventually(fetch: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> Any:
    """`fetch()` until `check` holds (another person's write reaches the read model)."""
    deadline = time.monotonic() + 20
    while True:
        value = await fetch()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never held: {value!r}"
        await asyncio.sleep(0.1)


def problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def messages(
    client: httpx.AsyncClient, who: Account, cid: str, write: httpx.Response
) -> dict[str, dict[str, Any]]:
    page = await client.get(f"/v1/conversations/{cid}/messages", headers=as_(who, write))
    assert page.status_code == 200, page.text
    return {m["id"]: m for m in page.json()["items"]}


async def listed(
    client: httpx.AsyncClient, who: Account, cid: str, write: httpx.Response
) -> dict[str, Any]:
    response = await client.get("/v1/conversations", headers=as_(who, write))
    assert response.status_code == 200, response.text
    (item,) = [c for c in response.json()["items"] if c["id"] == cid]
    return dict(item)


async def group(client: httpx.AsyncClient) -> tuple[Account, Account, Account, Account, str]:
    ada, bob, cy, eve = [await sign_up(client, name) for name in ("Ada", "Bob", "Cy", "Eve")]
    created = await client.post(
        "/v1/conversations",
        json={"participant_ids": [bob.user_id, cy.user_id], "title": "features"},
        headers=as_(ada),
    )
    assert created.status_code == 201, created.text
    return ada, bob, cy, eve, created.json()["id"]


async def send(
    client: httpx.AsyncClient, who: Account, cid: str, content: str, **extra: Any
) -> httpx.Response:
    sent = await client.post(
        f"/v1/conversations/{cid}/messages", json={"content": content, **extra}, headers=as_(who)
    )
    assert sent.status_code == 201, sent.text
    return sent


async def test_edits_show_the_current_text_and_the_history_to_participants_only(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, eve, cid = await group(client)
        sent = await send(client, ada, cid, "draft one")
        mid = sent.json()["id"]
        path = f"/v1/conversations/{cid}/messages/{mid}"
        problem(await client.patch(path, json={"content": "bob's"}, headers=as_(bob)), 403)
        write = sent
        for text in ("draft two", "final"):
            write = await client.patch(path, json={"content": text}, headers=as_(ada))
            assert write.status_code == 200, write.text
            # read-your-writes: the editor's own token shows the edit at once
            shown = (await messages(client, ada, cid, write))[mid]
            assert shown["content"] == text and shown["edited_at"] is not None
        last = await eventually(
            lambda: listed(client, cy, cid, write),
            lambda item: item["last_message"]["content"] == "final",
        )
        assert last["last_message"]["edited_at"] is not None  # the preview follows the edit
        history = await client.get(f"{path}/history", headers=as_(ada, write))
        assert history.status_code == 200, history.text
        assert history.json()["content"] == "final"
        assert [v["content"] for v in history.json()["versions"]] == ["draft one", "draft two"]
        theirs = await client.get(f"{path}/history", headers=as_(bob))
        assert theirs.status_code == 200 and theirs.json()["versions"] == history.json()["versions"]
        problem(await client.get(f"{path}/history", headers=as_(eve)), 404)
        assert "draft" not in (await client.get(f"{path}/history", headers=as_(eve))).text
        removed = await client.delete(
            f"/v1/conversations/{cid}/participants/{cy.user_id}", headers=as_(ada)
        )
        assert removed.status_code == 200, removed.text
        await eventually(
            lambda: client.get(f"{path}/history", headers=as_(cy)), lambda r: r.status_code == 404
        )
        deleted = await client.delete(path, headers=as_(ada))
        assert deleted.status_code == 200, deleted.text
        gone = await client.get(f"{path}/history", headers=as_(ada, deleted))
        assert gone.json()["deleted"] is True
        assert gone.json()["content"] is None and gone.json()["versions"] == []
        assert "draft" not in gone.text


async def test_replies_quote_their_parent_and_page_under_it(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, eve, cid = await group(client)
        parent = await send(client, ada, cid, "question? " + "x" * 120)
        pid = parent.json()["id"]
        replies = [
            await send(client, who, cid, f"answer {i}", reply_to=pid)
            for i, who in enumerate((bob, cy, bob))
        ]
        last = replies[-1]
        page = await messages(client, bob, cid, last)  # bob's own last write: at once
        assert page[pid]["reply_count"] == 3
        quote = page[replies[0].json()["id"]]["reply_to"]
        assert quote["message_id"] == pid and quote["sender_id"] == ada.user_id
        assert quote["excerpt"] == ("question? " + "x" * 120)[:100]
        first = await client.get(
            f"/v1/conversations/{cid}/messages/{pid}/replies",
            params={"limit": 2},
            headers=as_(bob, last),
        )
        assert first.status_code == 200, first.text
        rest = await client.get(
            f"/v1/conversations/{cid}/messages/{pid}/replies",
            params={"limit": 2, "cursor": first.json()["next_cursor"]},
            headers=as_(bob, last),
        )
        ids = [m["id"] for m in first.json()["items"] + rest.json()["items"]]
        assert ids == [r.json()["id"] for r in replies] and rest.json()["next_cursor"] is None
        # the quote is always current: an edit of the parent shows in every reply
        edited = await client.patch(
            f"/v1/conversations/{cid}/messages/{pid}", json={"content": "better"}, headers=as_(ada)
        )
        assert edited.status_code == 200, edited.text
        quote = (await messages(client, ada, cid, edited))[replies[1].json()["id"]]["reply_to"]
        assert quote["excerpt"] == "better"
        problem(
            await client.get(f"/v1/conversations/{cid}/messages/{pid}/replies", headers=as_(eve)),
            404,
        )


async def test_reactions_count_each_person_once_and_say_me(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, eve, cid = await group(client)
        mid = (await send(client, ada, cid, "react to me")).json()["id"]
        path = f"/v1/conversations/{cid}/messages/{mid}/reactions"
        for who, emoji in ((bob, "👍"), (bob, "👍"), (cy, "👍"), (cy, "🎉"), (ada, "🎉")):
            write = await client.put(f"{path}/{emoji}", headers=as_(who))
            assert write.status_code == 200, write.text
            mine = (await messages(client, who, cid, write))[mid]["reactions"]
            assert {r["emoji"] for r in mine if r["me"]} >= {emoji}  # at once, own token
        write = await client.delete(f"{path}/🎉", headers=as_(ada))
        assert write.status_code == 200, write.text
        after = (await messages(client, ada, cid, write))[mid]["reactions"]
        assert {r["emoji"]: r["count"] for r in after} == {"👍": 2, "🎉": 1}
        for who, mine in ((bob, {"👍"}), (cy, {"👍", "🎉"}), (ada, set())):
            item = await eventually(
                lambda who=who: messages(client, who, cid, write),
                lambda page: (
                    {r["emoji"]: r["count"] for r in page[mid]["reactions"]} == {"👍": 2, "🎉": 1}
                ),
            )
            assert {r["emoji"] for r in item[mid]["reactions"] if r["me"]} == mine
        # a stranger: the conversation does not exist for them (issue 19)
        problem(await client.put(f"{path}/👍", headers=as_(eve)), 404)


async def test_mentions_count_per_conversation_and_in_the_unread_total(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, eve, cid = await group(client)
        await send(client, ada, cid, "hey @bob", mentions=[bob.user_id])
        write = await send(client, cy, cid, "@bob and @ada", mentions=[bob.user_id, ada.user_id])
        mid = write.json()["id"]
        shown = (await messages(client, cy, cid, write))[mid]["mentions"]
        assert sorted(shown) == sorted([bob.user_id, ada.user_id])
        item = await eventually(
            lambda: listed(client, bob, cid, write), lambda item: item["mention_count"] == 2
        )
        assert item["unread_count"] == 2
        total = await client.get("/v1/conversations/unread-count", headers=as_(bob))
        assert total.json() == {"count": 2, "mentions": 2}
        problem(
            await client.post(
                f"/v1/conversations/{cid}/messages",
                json={"content": "@eve", "mentions": [eve.user_id]},
                headers=as_(ada),
            ),
            422,
        )
        deleted = await client.delete(f"/v1/conversations/{cid}/messages/{mid}", headers=as_(cy))
        assert deleted.status_code == 200, deleted.text
        await eventually(
            lambda: listed(client, bob, cid, deleted), lambda item: item["mention_count"] == 1
        )
        read = await client.post(f"/v1/conversations/{cid}/read", json={}, headers=as_(bob))
        assert read.status_code == 200, read.text
        total = await client.get("/v1/conversations/unread-count", headers=as_(bob, read))
        assert total.json() == {"count": 0, "mentions": 0}  # bob's own mark: at once


async def test_reports_are_listed_to_admins_and_resolved_by_deleting_the_message(
    gateway_url: str, admin: Account
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, _, cid = await group(client)
        mid = (await send(client, ada, cid, "something rude")).json()["id"]
        reported = await client.post(
            f"/v1/conversations/{cid}/messages/{mid}/report",
            json={"reason": "it is rude"},
            headers=as_(bob),
        )
        assert reported.status_code == 201, reported.text
        report_id = reported.json()["report_id"]
        problem(await client.get("/v1/reports", headers=as_(bob, reported)), 403)

        async def reports(status: str, write: httpx.Response | None = None) -> dict[str, Any]:
            response = await client.get(
                "/v1/reports", params={"status": status, "limit": 100}, headers=as_(admin, write)
            )
            assert response.status_code == 200, response.text
            return {r["id"]: r for r in response.json()["items"]}

        opened = await eventually(lambda: reports("open"), lambda found: report_id in found)
        item = opened[report_id]
        assert item["reason"] == "it is rude" and item["reporter_id"] == bob.user_id
        assert item["sender_id"] == ada.user_id and item["message_id"] == mid
        resolve = f"/v1/reports/{report_id}/resolve"
        problem(await client.post(resolve, json={"action": "dismiss"}, headers=as_(bob)), 403)
        resolved = await client.post(resolve, json={"action": "delete_message"}, headers=as_(admin))
        assert resolved.status_code == 200, resolved.text
        done = await reports("resolved", resolved)  # the admin's own write: at once
        assert done[report_id]["action"] == "delete_message"
        assert done[report_id]["resolved_by"] == admin.user_id
        assert report_id not in await reports("open", resolved)
        shown = await eventually(
            lambda: messages(client, cy, cid, resolved), lambda page: page[mid]["deleted"]
        )
        assert shown[mid]["content"] is None


async def test_edits_and_reactions_are_pushed_to_the_participants_only(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, cy, eve, cid = await group(client)
        mid = (await send(client, ada, cid, "before")).json()["id"]
        async with (
            SseStream(client, headers=bob.headers) as stream,
            SseStream(client, headers=eve.headers) as stranger,
        ):
            for s in (stream, stranger):
                assert s.status_code == 200, s.error_body
                assert (await s.next()).event in ("ready", "reset")
            edited = await client.patch(
                f"/v1/conversations/{cid}/messages/{mid}",
                json={"content": "after"},
                headers=as_(ada),
            )
            assert edited.status_code == 200, edited.text
            pushed = await stream.first(lambda e: e.event == "message.edited", timeout_s=5)
            assert pushed.data["content"] == "after" and pushed.data["message_id"] == mid
            reacted = await client.put(
                f"/v1/conversations/{cid}/messages/{mid}/reactions/🎉", headers=as_(cy)
            )
            assert reacted.status_code == 200, reacted.text
            pushed = await stream.first(lambda e: e.event == "reaction.added", timeout_s=5)
            assert pushed.data["emoji"] == "🎉" and pushed.data["user_id"] == cy.user_id
            with pytest.raises(TimeoutError):
                await stranger.first(
                    lambda e: e.event in ("message.edited", "reaction.added"), timeout_s=1
                )


# the local cluster's limit per person per 10 s (deploy/local/settings.py, PARLEY_CHAT_SEND_LIMIT)
SEND_LIMIT = int(os.environ.get("PARLEY_CHAT_SEND_LIMIT", "600"))
FLOOD_CONVERSATIONS = 8


async def test_a_flooding_sender_gets_429_with_retry_after_and_others_are_not_slowed(
    gateway_url: str,
) -> None:
    """More than twice the limit in a burst (a fixed window lets at most twice through
    across a boundary): some sends are refused with 429 problem+json and a Retry-After
    within the window, every accepted one is stored once, and the other participant still
    sends. The limit is per person, so the burst goes to several conversations at once: one
    conversation's sends are written one after another (about 60 a second on a loaded
    two-replica cluster), too slow to pass twice the limit within two windows."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        ada, bob = await sign_up(client, "Flooding Ada"), await sign_up(client, "Bob")
        cids = []
        for i in range(FLOOD_CONVERSATIONS):
            created = await client.post(
                "/v1/conversations",
                json={"participant_ids": [bob.user_id], "title": f"flood {i}"},
                headers=as_(ada),
            )
            assert created.status_code == 201, created.text
            cids.append(created.json()["id"])
        gate = asyncio.Semaphore(32)

        async def send(i: int) -> tuple[str, httpx.Response]:
            cid = cids[i % len(cids)]
            async with gate:
                return cid, await client.post(
                    f"/v1/conversations/{cid}/messages",
                    json={"content": f"flood {i}"},
                    headers=as_(ada),
                )

        started = time.monotonic()
        answers = await asyncio.gather(*(send(i) for i in range(2 * SEND_LIMIT + 1)))
        took = time.monotonic() - started
        statuses = Counter(r.status_code for _, r in answers)
        refused = [r for _, r in answers if r.status_code == 429]
        assert refused and statuses[201] + statuses[429] == len(answers), (statuses, took)
        assert statuses[201] <= 2 * SEND_LIMIT
        problem(refused[0], 429)
        assert 1 <= int(refused[0].headers["Retry-After"]) <= 10
        bobs = await client.post(
            f"/v1/conversations/{cids[0]}/messages", json={"content": "hi"}, headers=as_(bob)
        )
        assert bobs.status_code == 201, bobs.text
        for cid in cids:  # each accepted one stored once
            seqs = sorted(r.json()["seq"] for c, r in answers if c == cid and r.status_code == 201)
            assert seqs == list(range(1, len(seqs) + 1)), cid


async def test_a_report_resolved_with_deactivate_user_deactivates_the_sender(
    gateway_url: str, admin: Account
) -> None:
    """The users context carries out the admin's decision (chat records it, users owns the
    account's status): the sender's profile shows deactivated, their sessions are revoked and
    the right password no longer logs them in."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        ada, bob, _, _, cid = await group(client)
        mid = (await send(client, ada, cid, "spam spam spam")).json()["id"]
        reported = await client.post(
            f"/v1/conversations/{cid}/messages/{mid}/report",
            json={"reason": "spam"},
            headers=as_(bob),
        )
        assert reported.status_code == 201, reported.text
        resolve = f"/v1/reports/{reported.json()['report_id']}/resolve"
        resolved = await client.post(
            resolve, json={"action": "deactivate_user"}, headers=as_(admin)
        )
        assert resolved.status_code == 200, resolved.text

        async def status() -> str | None:
            profile = await client.get(f"/v1/users/{ada.user_id}", headers=as_(admin))
            return profile.json().get("status") if profile.status_code == 200 else None

        await eventually(status, lambda s: s == "deactivated")
        login = await eventually(
            lambda: client.post("/v1/auth/login", json={"email": ada.email, "password": PASSWORD}),
            lambda r: r.status_code == 403,
        )
        problem(login, 403)
        # the message itself stays (only delete_message removes it)
        shown = await messages(client, bob, cid, reported)
        assert shown[mid]["deleted"] is False
