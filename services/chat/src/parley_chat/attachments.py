"""Attachments: files sent with messages, stored in S3 (`storage.py`), described by the
`attachments` table of the chat database.

A participant asks for an upload (`request_upload`: a row and a presigned PUT bound to the
declared type and length), the client PUTs the bytes to the object store itself, and the send
command claims the attachment for its message (`claim`, called by the send handler before it
appends). Downloads are presigned GETs (`download_url`) for the conversation's participants once
a sent message refers to the attachment (for its uploader before that too).

The janitor (`janitor.py`) deletes what no message refers to after `attachment_ttl_s`
(`expire`) and every attachment of a forgotten person (`forget`).

A deleted message's attachments go with it: the delete handler marks them
(`message_deleting`) before it appends MessageDeleted and deletes them after
(`message_deleted`); the janitor finishes deletions a process died in the middle of
(`finish_deletions`). From the moment the deletion is appended nobody can download them
(`Attachment.deleted`, looked up by the deletion's derived event id), whatever is left.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from parley_chat.attachments_config import AttachmentSettings
from parley_chat.domain import InvalidCommand, deletion_event_id
from parley_chat.storage import ObjectStore

MAX_FILENAME = 255
# `type/subtype`, optionally with a charset (what browsers send for text files); the header is
# signed into the upload URL, so the client sends exactly this value
_CONTENT_TYPE = re.compile(
    r"(?P<base>[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63})"
    r"(?:; ?charset=[a-z0-9_.:-]{1,40})?"
)


class AttachmentRefused(InvalidCommand):
    """A message may not carry these attachments (the send answers 422, as any input the
    domain refuses): unknown, someone else's, another conversation's, already sent with
    another message, or not uploaded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidAttachment(ValueError):
    """An upload request the limits refuse (422, naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    content_types: frozenset[str]

    @classmethod
    def of(cls, settings: AttachmentSettings) -> Limits:
        listed = settings.attachment_content_types.split(",")
        types = frozenset(t.strip().lower() for t in listed if t.strip())
        return cls(settings.attachment_max_bytes, types)

    def check(self, filename: str, content_type: str, size: int) -> tuple[str, str]:
        """The upload's (filename, content type) as stored, or InvalidAttachment."""
        name = unicodedata.normalize("NFC", filename).strip()
        if not 1 <= len(name) <= MAX_FILENAME:
            raise InvalidAttachment("filename", f"1 to {MAX_FILENAME} characters")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
            raise InvalidAttachment("filename", "no control or format characters")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise InvalidAttachment("filename", "a file name, not a path")
        kind = content_type.strip().lower()
        matched = _CONTENT_TYPE.fullmatch(kind)
        if matched is None or matched["base"] not in self.content_types:
            allowed = ", ".join(sorted(self.content_types))
            raise InvalidAttachment("content_type", f"not allowed; one of {allowed}")
        if not 1 <= size <= self.max_bytes:
            raise InvalidAttachment("size", f"1 to {self.max_bytes} bytes")
        return name, kind


@dataclass(frozen=True)
class Attachment:
    id: str
    conversation_id: str
    uploader_id: str
    filename: str
    content_type: str
    size: int
    object_key: str
    created_at: datetime
    message_id: str | None
    sent: bool  # a message with id `message_id` is in the conversation's stream
    deleted: bool = False  # and was deleted since (its MessageDeleted is in the stream)

    @classmethod
    def of(cls, row: asyncpg.Record, deleted: bool = False) -> Attachment:
        message_id = row["message_id"]
        return cls(
            id=str(row["id"]),
            conversation_id=row["conversation_id"],
            uploader_id=row["uploader_id"],
            filename=row["filename"],
            content_type=row["content_type"],
            size=int(row["size"]),
            object_key=row["object_key"],
            created_at=row["created_at"],
            message_id=None if message_id is None else str(message_id),
            sent=bool(row["sent"]),
            deleted=deleted,
        )

    def described(self) -> dict[str, Any]:
        """What a message carries of it (the send handler's claim result)."""
        return {
            "attachment_id": self.id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
        }

    def readable_by(self, user_id: str) -> bool:
        """Sent with a message (any participant), or not yet sent (its uploader only); the
        caller's participation is checked against the conversation by the route. Nobody's
        once its message was deleted."""
        if self.deleted:
            return False
        return self.sent or user_id == self.uploader_id


@dataclass(frozen=True)
class Upload:
    attachment_id: str
    upload_url: str
    content_type: str
    size: int
    expires_in_s: int


def object_key(conversation_id: str, attachment_id: str) -> str:
    return f"{conversation_id}/{attachment_id}"


# whether the attachment's message was appended: MessageSent's event id is the message id
_SENT = """EXISTS (SELECT 1 FROM events e
                   WHERE e.event_id = a.message_id AND e.stream_id = a.conversation_id)"""
_COLUMNS = f"""a.id, a.conversation_id, a.uploader_id, a.filename, a.content_type, a.size,
               a.object_key, a.created_at, a.message_id, {_SENT} AS sent"""


class Attachments:
    """The attachments of the chat database and their objects."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        storage: ObjectStore,
        limits: Limits,
        *,
        upload_url_ttl_s: int = 900,
        download_url_ttl_s: int = 300,
        ttl_s: float = 3600.0,
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.limits = limits
        self.upload_url_ttl_s = upload_url_ttl_s
        self.download_url_ttl_s = download_url_ttl_s
        self.ttl_s = ttl_s

    @classmethod
    def of(cls, pool: asyncpg.Pool, storage: ObjectStore, s: AttachmentSettings) -> Attachments:
        return cls(
            pool,
            storage,
            Limits.of(s),
            upload_url_ttl_s=s.attachment_upload_url_ttl_s,
            download_url_ttl_s=s.attachment_download_url_ttl_s,
            ttl_s=s.attachment_ttl_s,
        )

    # -- upload --------------------------------------------------------------------------------

    async def request_upload(
        self,
        conversation_id: str,
        uploader_id: str,
        filename: str,
        content_type: str,
        size: int,
        idempotency_key: str | None = None,
    ) -> Upload:
        """A new attachment row and its signed PUT. The caller checked that the uploader is a
        participant. With a (scoped) idempotency key, a retry gets the first request's
        attachment (and a fresh URL for it), whatever its body says."""
        name, kind = self.limits.check(filename, content_type, size)
        attachment_id = uuid.uuid4()
        key = object_key(conversation_id, str(attachment_id))
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """INSERT INTO attachments (id, conversation_id, uploader_id, filename,
                                            content_type, size, object_key, idempotency_key)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (idempotency_key) DO NOTHING
                   RETURNING id, content_type, size, object_key""",
                attachment_id,
                conversation_id,
                uploader_id,
                name,
                kind,
                size,
                key,
                idempotency_key,
            )
            if row is None:  # the key's first request made it
                row = await conn.fetchrow(
                    "SELECT id, content_type, size, object_key FROM attachments"
                    " WHERE idempotency_key = $1",
                    idempotency_key,
                )
        if row is None:  # made and already expired or forgotten: start over without the key
            return await self.request_upload(conversation_id, uploader_id, filename, kind, size)
        url = await self.storage.presign_put(
            row["object_key"], row["content_type"], int(row["size"]), self.upload_url_ttl_s
        )
        return Upload(
            str(row["id"]), url, row["content_type"], int(row["size"]), self.upload_url_ttl_s
        )

    # -- sending -------------------------------------------------------------------------------

    async def claim(
        self,
        conversation_id: str,
        sender_id: str,
        attachment_ids: Sequence[str],
        message_id: str,
    ) -> list[dict[str, Any]]:
        """Mark the attachments as `message_id`'s, all or none, and describe them in the order
        given: `{attachment_id, filename, content_type, size}` each. Claiming again for the
        same message (a retried send) is a no-op with the same answer. AttachmentRefused when
        one is unknown, someone else's, another conversation's, another message's, or its
        object is missing or of another size than declared."""
        if not attachment_ids:
            return []
        ids = [_uuid_or_refuse(a) for a in attachment_ids]
        if len(set(ids)) != len(ids):
            raise AttachmentRefused("an attachment is listed twice")
        mid = _uuid_or_refuse(message_id)
        found = {a.id: a for a in await self._fetch(ids)}
        for given in ids:
            a = found.get(str(given))
            if a is None or a.uploader_id != sender_id:  # someone else's: as if unknown
                raise AttachmentRefused(f"no attachment {given} of yours")
            if a.conversation_id != conversation_id:
                raise AttachmentRefused(f"attachment {given} belongs to another conversation")
            if a.message_id not in (None, str(mid)):
                raise AttachmentRefused(f"attachment {given} was sent with another message")
        sizes = await asyncio.gather(*(self.storage.size_of(a.object_key) for a in found.values()))
        for a, stored in zip(found.values(), sizes, strict=True):
            if stored is None:
                raise AttachmentRefused(f"attachment {a.id} was not uploaded")
            if stored != a.size:
                raise AttachmentRefused(f"attachment {a.id} has {stored} bytes, not {a.size}")
        async with self.pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                """UPDATE attachments SET message_id = $4, claimed_at = clock_timestamp()
                   WHERE id = ANY($1::uuid[]) AND uploader_id = $2 AND conversation_id = $3
                     AND (message_id IS NULL OR message_id = $4)
                   RETURNING id""",
                ids,
                sender_id,
                conversation_id,
                mid,
            )
            if len(claimed) != len(ids):  # a concurrent send or the janitor came first: undo
                raise AttachmentRefused("an attachment was sent with another message meanwhile")
        return [found[str(i)].described() for i in ids]

    # -- download ------------------------------------------------------------------------------

    async def get(self, attachment_id: str) -> Attachment | None:
        aid = _uuid_or_none(attachment_id)
        if aid is None:
            return None
        found = await self._fetch([aid])
        return found[0] if found else None

    async def download_url(self, attachment: Attachment) -> str:
        return await self.storage.presign_get(
            attachment.object_key,
            attachment.filename,
            attachment.content_type,
            self.download_url_ttl_s,
        )

    # -- the janitor's work --------------------------------------------------------------------

    async def expire(self, batch: int = 100) -> int:
        """Delete (object, then row) up to `batch` attachments that no appended message refers
        to, `ttl_s` after they were asked for or last claimed (a claim whose send failed leaves
        a message id that never appears in the stream). Replicas share the work: rows are taken
        with SKIP LOCKED. Returns how many went."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT a.id, a.object_key FROM attachments a
                    WHERE GREATEST(a.created_at, a.claimed_at)
                            < clock_timestamp() - make_interval(secs => $1)
                      AND (a.message_id IS NULL OR NOT {_SENT})
                    ORDER BY a.created_at
                    LIMIT $2
                    FOR UPDATE OF a SKIP LOCKED""",
                self.ttl_s,
                batch,
            )
            return await self._delete(conn, rows)

    async def forget(self, user_id: str, batch: int = 100) -> int:
        """Delete every attachment `user_id` uploaded, objects first (idempotent: a crash
        between the two leaves rows whose objects are gone, deleted again next time)."""
        deleted = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    """SELECT id, object_key FROM attachments WHERE uploader_id = $1
                       LIMIT $2 FOR UPDATE SKIP LOCKED""",
                    user_id,
                    batch,
                )
                deleted += await self._delete(conn, rows)
            if len(rows) < batch:
                return deleted

    # -- a deleted message's files ---------------------------------------------------------------

    async def message_deleting(self, message_id: str) -> None:
        """Before a deletion of `message_id` is appended: its attachments are marked, so that
        the janitor finishes their deletion if this process dies right after the append."""
        mid = _uuid_or_none(message_id)
        if mid is None:
            return
        await self.pool.execute(
            "UPDATE attachments SET deleting_since = COALESCE(deleting_since, clock_timestamp())"
            " WHERE message_id = $1",
            mid,
        )

    async def message_deleted(self, message_id: str) -> int:
        """After the deletion was appended: the message's attachments go, objects first (only
        if its MessageDeleted is in the store: a refused deletion deletes nothing)."""
        mid = _uuid_or_none(message_id)
        if mid is None:
            return 0
        return await self._finish("a.message_id = $1", mid)

    async def finish_deletions(self) -> int:
        """The janitor's part: the attachments marked by a deletion that was appended go; a
        mark older than `ttl_s` whose deletion never was (refused, or its process died before
        the append) is cleared."""
        deleted = await self._finish("a.deleting_since IS NOT NULL")
        await self.pool.execute(
            "UPDATE attachments SET deleting_since = NULL WHERE deleting_since IS NOT NULL"
            " AND deleting_since < clock_timestamp() - make_interval(secs => $1)",
            self.ttl_s,
        )
        return deleted

    async def _finish(self, where: str, *args: Any, batch: int = 100) -> int:
        """Delete the attachments matching `where` whose message was deleted, `batch` rows at a
        time in id order (rows whose deletion was not appended are passed over, not retried)."""
        deleted, after = 0, uuid.UUID(int=0)
        position = f"${len(args) + 1}"
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    f"""SELECT a.id, a.object_key, a.message_id FROM attachments a
                        WHERE {where} AND a.message_id IS NOT NULL AND a.id > {position}
                        ORDER BY a.id LIMIT {batch} FOR UPDATE OF a SKIP LOCKED""",
                    *args,
                    after,
                )
                gone = await self._deleted_messages(conn, [r["message_id"] for r in rows])
                deleted += await self._delete(conn, [r for r in rows if r["message_id"] in gone])
            if len(rows) < batch:
                return deleted
            after = rows[-1]["id"]

    @staticmethod
    async def _deleted_messages(
        conn: asyncpg.Connection, message_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these messages were deleted: their MessageDeleted events (ids derived
        from the message id, domain.deletion_event_id) are in the store."""
        if not message_ids:
            return set()
        by_event = {deletion_event_id(str(m)): m for m in set(message_ids)}
        found = await conn.fetch(
            "SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])", list(by_event)
        )
        return {by_event[r["event_id"]] for r in found}

    async def _delete(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> int:
        if not rows:
            return 0
        await asyncio.gather(*(self.storage.delete(r["object_key"]) for r in rows))
        await conn.execute(
            "DELETE FROM attachments WHERE id = ANY($1::uuid[])", [r["id"] for r in rows]
        )
        return len(rows)

    async def _fetch(self, ids: Sequence[uuid.UUID]) -> list[Attachment]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM attachments a WHERE a.id = ANY($1::uuid[])", list(ids)
            )
            sent = [r["message_id"] for r in rows if r["sent"]]
            gone = await self._deleted_messages(conn, sent)
        return [Attachment.of(r, deleted=r["message_id"] in gone) for r in rows]


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _uuid_or_refuse(value: str) -> uuid.UUID:
    found = _uuid_or_none(value)
    if found is None:
        raise AttachmentRefused(f"no attachment {value!r}")
    return found
