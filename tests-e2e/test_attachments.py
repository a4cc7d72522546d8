"""Attachments through the gateway (issue 20): a participant asks for an upload, PUTs the bytes
straight to the object store (SeaweedFS's S3 API) through the signed URL, sends a message with
the attachment; the other participant downloads identical bytes through the redirect; a
stranger gets 404; after the uploader is forgotten the object is gone, and a deleted message's
files are gone with it. The limits (type,
size, participants only) and the signed URL's binding (type and length) are checked on the
way."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from parley_testing.accounts import Account, sign_up

MIB = 1024 * 1024


async def eventually(check: Callable[[], Awaitable[Any]], wait_s: float = 30) -> Any:
    deadline = time.monotonic() + wait_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.3)


async def upload(
    client: httpx.AsyncClient, who: Account, cid: str, data: bytes, kind: str, name: str
) -> str:
    asked = await client.post(
        f"/v1/conversations/{cid}/attachments",
        json={"filename": name, "content_type": kind, "size": len(data)},
        headers=who.headers,
    )
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert body["method"] == "PUT" and body["headers"]["Content-Type"] == kind
    async with httpx.AsyncClient(timeout=30) as storage:  # no bearer token to the store
        put = await storage.put(body["upload_url"], content=data, headers=body["headers"])
    assert put.status_code == 200, put.text
    attachment_id: str = body["attachment_id"]
    return attachment_id


async def download(client: httpx.AsyncClient, who: Account, attachment_id: str) -> httpx.Response:
    """The redirect, then the signed URL it names (without the bearer token)."""
    located = await client.get(f"/v1/attachments/{attachment_id}", headers=who.headers)
    if located.status_code != 307:
        return located
    async with httpx.AsyncClient(timeout=30) as storage:
        return await storage.get(located.headers["Location"])


async def test_a_file_travels_from_one_participant_to_the_other_and_is_gone_when_forgotten(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        ada, bob, eve = await asyncio.gather(
            sign_up(client, "Ada"), sign_up(client, "Bob"), sign_up(client, "Eve")
        )
        created = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": "files"},
            headers=ada.headers,
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        data = os.urandom(300_000)
        aid = await upload(client, ada, cid, data, "application/pdf", "plan ü.pdf")

        # before a message carries it: its uploader may fetch it, nobody else
        mine = await download(client, ada, aid)
        assert mine.status_code == 200 and mine.content == data
        assert (await download(client, bob, aid)).status_code == 404

        sent = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "the plan", "attachment_ids": [aid]},
            headers=ada.headers,
        )
        assert sent.status_code == 201, sent.text

        got = await download(client, bob, aid)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"].startswith("attachment;")
        # a stranger: as if it did not exist (the same answer as an unknown id)
        for stranger_sees in (
            await client.get(f"/v1/attachments/{aid}", headers=eve.headers),
            await client.get(f"/v1/attachments/{os.urandom(16).hex()}", headers=eve.headers),
        ):
            assert stranger_sees.status_code == 404, stranger_sees.text
            assert stranger_sees.headers["content-type"] == "application/problem+json"
        # the same attachment cannot travel with a second message
        again = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "again", "attachment_ids": [aid]},
            headers=ada.headers,
        )
        assert again.status_code == 422, again.text

        # a signed URL handed out before the forgetting
        located = await client.get(f"/v1/attachments/{aid}", headers=bob.headers)
        signed = located.headers["Location"]
        forgotten = await client.delete(f"/v1/users/{ada.user_id}", headers=ada.headers)
        assert forgotten.status_code == 200, forgotten.text

        async def object_gone() -> bool:
            async with httpx.AsyncClient(timeout=10) as storage:
                return (await storage.get(signed)).status_code == 404

        await eventually(object_gone)
        assert (await download(client, bob, aid)).status_code == 404


async def test_deleting_a_message_deletes_its_files(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        ada, bob = await asyncio.gather(sign_up(client, "Ada"), sign_up(client, "Bob"))
        created = await client.post(
            "/v1/conversations", json={"participant_ids": [bob.user_id]}, headers=ada.headers
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        kept, deleted = os.urandom(1000), os.urandom(2000)
        kept_id = await upload(client, ada, cid, kept, "image/png", "kept.png")
        deleted_ids = [
            await upload(client, ada, cid, deleted, "image/png", f"gone {i}.png") for i in (1, 2)
        ]
        ids = {}
        for text, files in (("stays", [kept_id]), ("oops", deleted_ids)):
            sent = await client.post(
                f"/v1/conversations/{cid}/messages",
                json={"content": text, "attachment_ids": files},
                headers=ada.headers,
            )
            assert sent.status_code == 201, sent.text
            ids[text] = sent.json()["id"]
        # signed URLs bob got before the deletion
        located = [
            await client.get(f"/v1/attachments/{aid}", headers=bob.headers) for aid in deleted_ids
        ]
        assert [r.status_code for r in located] == [307, 307]

        removed = await client.delete(
            f"/v1/conversations/{cid}/messages/{ids['oops']}", headers=ada.headers
        )
        assert removed.status_code == 200, removed.text
        # at once: nobody gets them (uploader included), and the objects are gone
        for who in (ada, bob):
            for aid in deleted_ids:
                gone = await client.get(f"/v1/attachments/{aid}", headers=who.headers)
                assert gone.status_code == 404, gone.text
        async with httpx.AsyncClient(timeout=10) as storage:
            for signed in located:
                assert (await storage.get(signed.headers["Location"])).status_code == 404
        # the other message's file is untouched
        still = await download(client, bob, kept_id)
        assert still.status_code == 200 and still.content == kept


async def test_uploads_are_limited_to_participants_allowed_types_size_and_the_signed_headers(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=15) as client:
        ada, bob, eve = await asyncio.gather(
            sign_up(client, "Ada"), sign_up(client, "Bob"), sign_up(client, "Eve")
        )
        direct = await client.post(
            "/v1/conversations", json={"participant_ids": [eve.user_id]}, headers=ada.headers
        )
        cid = direct.json()["id"]  # ada and eve
        group = await client.post(
            "/v1/conversations",
            json={"participant_ids": [bob.user_id], "title": "uploads"},
            headers=ada.headers,
        )
        own = group.json()["id"]  # ada and bob: eve is a stranger here
        url = f"/v1/conversations/{own}/attachments"

        def asked(**body: Any) -> dict[str, Any]:
            return {"filename": "a.png", "content_type": "image/png", "size": 10, **body}

        cases = [
            (asked(content_type="text/html"), 422, "content_type"),
            (asked(content_type="image/svg+xml"), 422, "content_type"),
            (asked(size=25 * MIB + 1), 422, "size"),
            (asked(filename="../etc/passwd"), 422, "filename"),
        ]
        for body, status, field in cases:
            r = await client.post(url, json=body, headers=ada.headers)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert field in r.text
        # someone who is not a participant: the conversation does not exist for them
        r = await client.post(url, json=asked(), headers=eve.headers)
        assert r.status_code == 404, r.text
        # no token
        assert (await client.post(url, json=asked())).status_code == 401

        # the signed URL takes exactly the declared type and length
        r = await client.post(url, json=asked(size=1000), headers=ada.headers)
        body = r.json()
        async with httpx.AsyncClient(timeout=30) as storage:
            longer = await storage.put(
                body["upload_url"], content=b"x" * 1001, headers={"Content-Type": "image/png"}
            )
            other_type = await storage.put(
                body["upload_url"], content=b"x" * 1000, headers={"Content-Type": "text/plain"}
            )
        assert longer.status_code == 403 and other_type.status_code == 403

        # an Idempotency-Key answers the same attachment to a retry
        keyed = {**ada.headers, "Idempotency-Key": "upload-1"}
        first = await client.post(url, json=asked(), headers=keyed)
        second = await client.post(url, json=asked(), headers=keyed)
        assert first.status_code == second.status_code == 201
        assert first.json()["attachment_id"] == second.json()["attachment_id"]
        other = await client.post(url, json=asked(), headers=ada.headers)
        assert other.json()["attachment_id"] != first.json()["attachment_id"]

        # not uploaded yet: a message cannot carry it
        sent = await client.post(
            f"/v1/conversations/{own}/messages",
            json={"content": "x", "attachment_ids": [other.json()["attachment_id"]]},
            headers=ada.headers,
        )
        assert sent.status_code == 422, sent.text
        # another conversation's attachment
        mine = await upload(client, ada, own, b"12345", "text/plain", "n.txt")
        elsewhere = await client.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": "x", "attachment_ids": [mine]},
            headers=ada.headers,
        )
        assert elsewhere.status_code == 422, elsewhere.text
