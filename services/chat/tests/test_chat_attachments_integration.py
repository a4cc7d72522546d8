"""Attachments against the real PostgreSQL, SeaweedFS (S3) and Kafka of the local cluster: an
upload through the signed URL, the claim (all or none, each refusal), the janitor's expiry
(unreferenced, and claimed by a message that never got appended), a deleted message's files
(gone with it, also when chat-api died mid-deletion) and the forgetting, directly and from a
UserForgotten record on a topic of this test's own.

The S3 server: `CHAT_S3_ENDPOINT_URL` / `CHAT_S3_ACCESS_KEY` / `CHAT_S3_SECRET_KEY` when set,
else the local cluster's (`make up`: PARLEY_S3_PORT, the keys in .local/s3-credentials). Objects
go to the cluster's bucket under random conversation ids, so nothing collides with real data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from parley_chat.attachments import AttachmentRefused, Attachments, object_key
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.domain import deletion_event_id
from parley_chat.janitor import consume_forgotten, sweep_once
from parley_chat.migrate import migrate
from parley_chat.storage import S3Storage
from parley_messaging.envelope import Envelope, ce_type, header_map, kafka_headers
from parley_messaging.security import kafka_security
from parley_messaging.topics import Topic, ensure_topics

pytestmark = pytest.mark.integration


def s3_settings(**extra: Any) -> AttachmentSettings:
    if os.environ.get("CHAT_S3_ACCESS_KEY"):
        return AttachmentSettings(**extra)
    state = Path(os.environ.get("PARLEY_STATE_DIR", Path(__file__).parents[3] / ".local"))
    credentials = state / "s3-credentials"
    if not credentials.exists():
        pytest.fail(f"no S3 server: set CHAT_S3_* or run `make up` ({credentials} is missing)")
    access_key, secret_key = credentials.read_text().split()
    host = os.environ.get("PARLEY_HOST", "127.0.0.1")
    return AttachmentSettings(
        s3_endpoint_url=f"http://{host}:{os.environ.get('PARLEY_S3_PORT', '8333')}",
        s3_access_key=access_key,
        s3_secret_key=secret_key,
        s3_bucket=os.environ.get("PARLEY_S3_BUCKET", "parley-attachments"),
        **extra,
    )


@pytest.fixture
async def storage() -> AsyncIterator[S3Storage]:
    async with S3Storage(s3_settings()) as opened:
        await opened.ensure_bucket()
        yield opened


@pytest.fixture
async def database(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(fresh_database)
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def attachments(database: asyncpg.Pool, storage: S3Storage) -> Attachments:
    return Attachments.of(database, storage, s3_settings(attachment_ttl_s=3600))


async def put(attachments: Attachments, cid: str, who: str, data: bytes, name: str = "f") -> str:
    """Ask for an upload and PUT the bytes through the signed URL, as a client does."""
    upload = await attachments.request_upload(cid, who, f"{name}.txt", "text/plain", len(data))
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.put(
            upload.upload_url, content=data, headers={"Content-Type": upload.content_type}
        )
    assert r.status_code == 200, r.text
    return upload.attachment_id


async def message_appended(pool: asyncpg.Pool, cid: str, message_id: str) -> None:
    """A stand-in for the send's MessageSent: an event of the conversation with that id."""
    await pool.execute(
        """INSERT INTO events (stream_id, stream_type, version, event_id, event_type, data)
           VALUES ($1, 'Conversation', 1, $2, 'MessageSent', '{}')""",
        cid,
        uuid.UUID(message_id),
    )


async def test_a_claim_takes_uploaded_attachments_all_or_none(attachments: Attachments) -> None:
    cid, ada, bob = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    first = await put(attachments, cid, ada, b"hello", "one")
    second = await put(attachments, cid, ada, b"world!", "two")
    not_uploaded = await attachments.request_upload(cid, ada, "n.txt", "text/plain", 3)
    mid, other_mid = str(uuid.uuid4()), str(uuid.uuid4())

    refusals = {
        "someone else's": (cid, bob, [first]),
        "unknown": (cid, ada, [str(uuid.uuid4())]),
        "not an id": (cid, ada, ["x"]),
        "another conversation": (str(uuid.uuid4()), ada, [first]),
        "listed twice": (cid, ada, [first, first]),
        "not uploaded (with one that is)": (cid, ada, [first, not_uploaded.attachment_id]),
    }
    for why, (conversation, sender, ids) in refusals.items():
        with pytest.raises(AttachmentRefused):
            await attachments.claim(conversation, sender, ids, mid)
        found = await attachments.get(first)
        assert found is not None and found.message_id is None, why  # nothing was claimed

    described = await attachments.claim(cid, ada, [second, first], mid)
    assert described == [
        {"attachment_id": second, "filename": "two.txt", "content_type": "text/plain", "size": 6},
        {"attachment_id": first, "filename": "one.txt", "content_type": "text/plain", "size": 5},
    ]
    # a retried send claims again: the same answer; another message may not take them
    assert await attachments.claim(cid, ada, [second, first], mid) == described
    with pytest.raises(AttachmentRefused, match="another message"):
        await attachments.claim(cid, ada, [first], other_mid)


async def test_a_claim_refuses_an_object_of_another_size_than_declared(
    attachments: Attachments, storage: S3Storage
) -> None:
    cid, ada = str(uuid.uuid4()), str(uuid.uuid4())
    upload = await attachments.request_upload(cid, ada, "a.txt", "text/plain", 10)
    # written past the signed URL (which would refuse another length)
    key = object_key(cid, upload.attachment_id)
    await storage._api.put_object(Bucket=storage.bucket, Key=key, Body=b"12345")
    with pytest.raises(AttachmentRefused, match="5 bytes, not 10"):
        await attachments.claim(cid, ada, [upload.attachment_id], str(uuid.uuid4()))


async def test_the_janitor_deletes_what_no_appended_message_refers_to_after_the_ttl(
    database: asyncpg.Pool, storage: S3Storage
) -> None:
    attachments = Attachments.of(database, storage, s3_settings(attachment_ttl_s=0.5))
    cid, ada = str(uuid.uuid4()), str(uuid.uuid4())
    unsent = await put(attachments, cid, ada, b"a")
    failed_send = await put(attachments, cid, ada, b"b")
    sent = await put(attachments, cid, ada, b"c")
    failed_mid, sent_mid = str(uuid.uuid4()), str(uuid.uuid4())
    await attachments.claim(cid, ada, [failed_send], failed_mid)  # its append never happened
    await attachments.claim(cid, ada, [sent], sent_mid)
    await message_appended(database, cid, sent_mid)

    assert await sweep_once(attachments) == 0  # younger than the TTL: nothing goes
    await asyncio.sleep(0.6)
    assert await sweep_once(attachments) == 2
    for gone in (unsent, failed_send):
        assert await attachments.get(gone) is None
        assert await storage.size_of(object_key(cid, gone)) is None
    kept = await attachments.get(sent)
    assert kept is not None and kept.sent and kept.readable_by(str(uuid.uuid4()))
    assert await storage.size_of(kept.object_key) == 1
    assert await sweep_once(attachments) == 0


async def event_appended(
    pool: asyncpg.Pool, cid: str, event_id: uuid.UUID, event_type: str
) -> None:
    """A stand-in for an append to the conversation (the next version)."""
    await pool.execute(
        """INSERT INTO events (stream_id, stream_type, version, event_id, event_type, data)
           SELECT $1, 'Conversation', coalesce(max(version), 0) + 1, $2, $3, '{}'
           FROM events WHERE stream_id = $1""",
        cid,
        event_id,
        event_type,
    )


async def test_a_deleted_messages_attachments_go_with_it(
    database: asyncpg.Pool, storage: S3Storage
) -> None:
    attachments = Attachments.of(database, storage, s3_settings(attachment_ttl_s=0.5))
    cid, ada, bob = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    mids = [str(uuid.uuid4()) for _ in range(3)]
    files = {mid: [await put(attachments, cid, ada, b"x" * (i + 1))] for i, mid in enumerate(mids)}
    files[mids[0]].append(await put(attachments, cid, ada, b"two"))
    for mid in mids:
        await attachments.claim(cid, ada, files[mid], mid)
        await event_appended(database, cid, uuid.UUID(mid), "MessageSent")
    first, second, third = mids

    async def readable(aid: str) -> bool:
        found = await attachments.get(aid)
        return found is not None and found.readable_by(bob)

    assert all([await readable(aid) for aid in files[first]])
    # the handler marks, appends, and dies before deleting: from the append on nobody may
    # download the files, and the janitor deletes them
    await attachments.message_deleting(first)
    await event_appended(database, cid, deletion_event_id(first), "MessageDeleted")
    assert not any([await readable(aid) for aid in files[first]])
    assert await sweep_once(attachments) == 2
    for aid in files[first]:
        assert await attachments.get(aid) is None
        assert await storage.size_of(object_key(cid, aid)) is None
    # a deletion that was refused (never appended) deletes nothing; its mark is cleared later
    await attachments.message_deleting(second)
    assert await attachments.message_deleted(second) == 0
    assert await readable(files[second][0])
    await asyncio.sleep(0.6)
    assert await sweep_once(attachments) == 0
    marks = await database.fetchval(
        "SELECT count(*) FROM attachments WHERE deleting_since IS NOT NULL"
    )
    assert marks == 0 and await readable(files[second][0])
    # the handler's path: marked, appended, deleted at once
    await attachments.message_deleting(third)
    await event_appended(database, cid, deletion_event_id(third), "MessageDeleted")
    assert await attachments.message_deleted(third) == 1
    assert await storage.size_of(object_key(cid, files[third][0])) is None
    assert await readable(files[second][0])  # another message's file stays


async def test_forgetting_a_person_deletes_their_objects_and_no_one_elses(
    attachments: Attachments, storage: S3Storage
) -> None:
    cid, ada, bob = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    adas = [await put(attachments, cid, ada, b"x" * n) for n in (1, 2, 3)]
    bobs = await put(attachments, cid, bob, b"bob")
    mid = str(uuid.uuid4())
    await attachments.claim(cid, ada, adas[:1], mid)

    assert await attachments.forget(ada, batch=2) == 3  # in batches
    for aid in adas:
        assert await attachments.get(aid) is None
        assert await storage.size_of(object_key(cid, aid)) is None
    assert await attachments.get(bobs) is not None
    assert await storage.size_of(object_key(cid, bobs)) == 3
    assert await attachments.forget(ada) == 0  # again: nothing left, no error


def forgotten(user_id: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/parley/users",
        type=ce_type("users", "UserForgotten", 1),
        subject=user_id,
        time=datetime.now(UTC),
        data=json.dumps({"user_id": user_id, "forgotten_by": user_id}).encode(),
        aggregate_version=7,
    )
    return user_id.encode(), envelope.data, kafka_headers(header_map(envelope))


async def eventually(check: Callable[[], Awaitable[bool]], wait_s: float = 20) -> None:
    deadline = time.monotonic() + wait_s
    while not await check():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.2)


async def test_the_janitor_forgets_a_person_on_user_forgotten(
    attachments: Attachments, storage: S3Storage, kafka_bootstrap: str, unique_name: str
) -> None:
    topic = f"t.users.{unique_name}"
    await ensure_topics(kafka_bootstrap, [Topic(topic, 2)])
    cid, ada = str(uuid.uuid4()), str(uuid.uuid4())
    aid = await put(attachments, cid, ada, b"secret")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, **kafka_security())
    await producer.start()
    try:
        # a poison record first: skipped, the partition keeps flowing
        await producer.send_and_wait(topic, b"not json", key=ada.encode())
        key, value, headers = forgotten(ada)
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    stop = asyncio.Event()
    group = f"t-attachments-{unique_name}"
    task = asyncio.create_task(
        consume_forgotten(attachments, kafka_bootstrap, group, stop, topic=topic)
    )
    try:

        async def gone() -> bool:
            return await storage.size_of(object_key(cid, aid)) is None

        await eventually(gone)
        assert await attachments.get(aid) is None
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
