"""One client's stream from open to close, whatever carries it (SSE or WebSocket).

Open: count the stream against the person's cap (across replicas) and mark them online.
Then, with a cursor: check it can be resumed (else one `reset` event, then live), attach to
the hub, replay (cursor, the hub's position at attach) from Kafka, then the live flow that
queued meanwhile. Without one: attach and go live. The first frame is `ready` (or `reset`),
whose id is where the stream starts. While idle, a heartbeat every `heartbeat_s` carries the
current cursor. Close: detach, and mark the person offline if this was their last stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from parley_realtime import metrics
from parley_realtime.cursor import Cursor, TopicPartition, encode, furthest
from parley_realtime.feed import Replay, Translator
from parley_realtime.hub import Connection, Frame, Hub, StreamClosed
from parley_realtime.mappings import EXPIRED, READY, RESET
from parley_realtime.signals import Signals

log = logging.getLogger("parley.realtime.stream")


@dataclass(frozen=True)
class Holder:
    """Who the stream is for, from a verified access token or a redeemed ticket."""

    user_id: str
    role: str
    session_id: str
    expires_at: datetime


def _control(event: str, cursor: str | None, **data: object) -> Frame:
    return Frame(event, json.dumps(data, separators=(",", ":")).encode(), cursor, None)


class Streams:
    def __init__(
        self,
        hub: Hub,
        signals: Signals,
        translator: Translator,
        bootstrap_servers: str,
        *,
        heartbeat_s: float = 15.0,
        max_pending: int = 1000,
        max_replay_records: int = 100_000,
        is_revoked: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.hub = hub
        self.signals = signals
        self.translator = translator
        self.bootstrap_servers = bootstrap_servers
        self.heartbeat_s = heartbeat_s
        self.max_pending = max_pending
        self.max_replay_records = max_replay_records
        self.is_revoked = is_revoked

    async def open(self, holder: Holder) -> Connection:
        """Count the stream (raises signals.TooManyStreams at the cap)."""
        await self.signals.stream_opened(holder.user_id)
        return Connection(holder.user_id, holder.session_id, holder.expires_at, self.max_pending)

    async def frames(self, connection: Connection, cursor: Cursor | None) -> AsyncIterator[Frame]:
        """Everything the connection is owed, until it is closed or the client goes away."""
        try:
            async for frame in self._start(connection, cursor):
                yield frame
            while True:
                live = await connection.next(self.heartbeat_s)
                yield live or Frame(None, cursor=self.hub.cursor_of(connection))
        except StreamClosed as closed:
            metrics.CLOSED.labels(closed.reason).inc()
        finally:
            self.hub.detach(connection)
            # the client is gone either way; presence must follow even if we are cancelled
            await asyncio.shield(self._closed(connection))

    async def _closed(self, connection: Connection) -> None:
        try:
            await self.signals.stream_closed(connection.user_id)
        except Exception as error:  # the replica's sweep corrects presence if this fails
            log.warning("presence not updated for a closed stream: %r", error)

    async def _start(self, connection: Connection, cursor: Cursor | None) -> AsyncIterator[Frame]:
        if cursor is None:
            start = self.hub.attach(connection, None)
            yield _control(READY, encode(start, self.hub.topics), resumed=False)
            return
        metrics.RESUMES.inc()
        async with Replay(
            self.bootstrap_servers, self.hub.topics, self.translator, self.max_replay_records
        ) as replay:
            reason = await replay.check(cursor.offsets)
            if reason is not None:
                metrics.RESETS.labels(reason).inc()
                start = self.hub.attach(connection, None)
                yield _control(RESET, encode(start, self.hub.topics), reason=reason)
                return
            start = self.hub.attach(connection, cursor.offsets)
            replayed = 0
            async for frame in replay.frames(connection.user_id, cursor.offsets, start):
                if connection.closed is not None:
                    raise StreamClosed(connection.closed)
                replayed += 1
                yield frame
        reached: Mapping[TopicPartition, int] = furthest(cursor.offsets, start)
        yield _control(READY, encode(reached, self.hub.topics), resumed=True, replayed=replayed)

    async def police(self) -> None:
        """Close streams whose token expired or whose session was revoked (every second, so
        within the revocation list's own delay plus one second)."""
        while True:
            await asyncio.sleep(1.0)
            now = datetime.now(UTC)
            for connection in self.hub.connections():
                if self.is_revoked(connection.session_id):
                    connection.close("revoked")
                elif connection.expires_at <= now:
                    # no cursor: frames still queued are dropped, the client resumes from
                    # the last cursor it was given
                    connection.close("expired", _control(EXPIRED, None, reason="token"))
