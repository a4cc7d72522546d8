"""Attachments of 1 MiB through the gateway and the object store (issue 20): one participant
uploads (asks for the upload through nginx, then PUTs the bytes to SeaweedFS through the signed
URL), sends a message carrying it, and the other participant downloads it (the redirect through
nginx, then the signed GET). One file at a time, `ROUNDS` times.

Keys: `chat.attachment_1mb.upload_ms` and `chat.attachment_1mb.download_ms` (medians, what a
client waits for end to end), with `..._p99_ms` beside them; `chat.attachment_1mb.put_ms` and
`get_ms` are the object store's part alone (the signed PUT and GET).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import httpx
from parley_testing.accounts import Account, sign_up

from bench.common import percentile

KEY_PREFIX = "chat.attachment_1mb."
ROUNDS = 30
SIZE = 1024 * 1024


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


async def send(api: httpx.AsyncClient, sender: Account, cid: str, i: int, aid: str) -> None:
    """The message carrying the file (not measured); the per-person send limit (429) is
    waited out."""
    while True:
        sent = await api.post(
            f"/v1/conversations/{cid}/messages",
            json={"content": f"file {i}", "attachment_ids": [aid]},
            headers=sender.headers,
        )
        if sent.status_code != 429:
            break
        await asyncio.sleep(float(sent.headers.get("Retry-After", "1")))
    assert sent.status_code == 201, sent.text


async def run() -> dict[str, Any]:
    upload, put, download, get = [], [], [], []
    async with (
        httpx.AsyncClient(base_url=gateway(), timeout=30) as api,
        httpx.AsyncClient(timeout=60) as store,
    ):
        sender = await sign_up(api, "bench uploader")
        reader = await sign_up(api, "bench downloader")
        created = await api.post(
            "/v1/conversations",
            json={"participant_ids": [reader.user_id], "title": "files"},
            headers=sender.headers,
        )
        cid = created.json()["id"]
        for i in range(ROUNDS + 2):  # the first two warm the connections up
            data = os.urandom(SIZE)
            t0 = time.perf_counter()
            asked = await api.post(
                f"/v1/conversations/{cid}/attachments",
                json={"filename": f"f{i}.pdf", "content_type": "application/pdf", "size": SIZE},
                headers=sender.headers,
            )
            assert asked.status_code == 201, asked.text
            body = asked.json()
            t1 = time.perf_counter()
            stored = await store.put(body["upload_url"], content=data, headers=body["headers"])
            t2 = time.perf_counter()
            assert stored.status_code == 200, stored.text
            await send(api, sender, cid, i, body["attachment_id"])
            t3 = time.perf_counter()
            located = await api.get(
                f"/v1/attachments/{body['attachment_id']}", headers=reader.headers
            )
            assert located.status_code == 307, located.text
            t4 = time.perf_counter()
            got = await store.get(located.headers["Location"])
            t5 = time.perf_counter()
            assert got.status_code == 200
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
            if i >= 2:
                upload.append((t2 - t0) * 1000)
                put.append((t2 - t1) * 1000)
                download.append((t5 - t3) * 1000)
                get.append((t5 - t4) * 1000)
    return {
        f"{KEY_PREFIX}upload_ms": round(percentile(upload, 50), 2),
        f"{KEY_PREFIX}upload_p99_ms": round(percentile(upload, 99), 2),
        f"{KEY_PREFIX}download_ms": round(percentile(download, 50), 2),
        f"{KEY_PREFIX}download_p99_ms": round(percentile(download, 99), 2),
        f"{KEY_PREFIX}put_ms": round(percentile(put, 50), 2),
        f"{KEY_PREFIX}get_ms": round(percentile(get, 50), 2),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run()), indent=2))
