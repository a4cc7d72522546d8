"""Attachments over the kit (called from the composition root): the S3 client, the store and
the janitor's jobs. Without S3 credentials (unit tests, a service that never configured a
store) the routes answer 503 and no janitor runs: it would join the real consumer group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from parley_commandkit import Kit

from parley_chat import janitor
from parley_chat.attachments import Attachments
from parley_chat.attachments_config import AttachmentSettings
from parley_chat.storage import S3Storage


@dataclass
class AttachmentsWiring:
    attachments: Attachments
    jobs: list[Coroutine[Any, Any, None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def wire(kit: Kit, s: AttachmentSettings) -> AttachmentsWiring:
    storage = await S3Storage(s).open()  # no I/O: the client connects on its first call
    attachments = Attachments.of(kit.pool, storage, s)
    jobs = []
    if s.attachment_janitor and storage.configured:
        jobs = janitor.jobs(attachments, storage, s, kit.stop)
    return AttachmentsWiring(attachments, jobs, [storage.close])
