"""The fan-out core: who is connected here, how far the live feed has got, and what each
connection is owed.

One live feed (feed.py) hands every record of the pushed topics to the hub in offset order per
partition. The hub keeps `positions`, the next offset per partition it has dispatched, and
delivers each record's pushes to the connections of its recipients. A connection attaches at
a known position (a snapshot of `positions`, taken with no await between it and the
registration), so a resuming client is owed exactly: the records between its cursor and that
snapshot (replayed from Kafka by the stream), then every record the hub dispatches after it
(queued here while the replay runs). Nothing falls between the two and nothing is in both.

Every frame a connection gets carries the cursor "everything for you below these offsets is
written", which is the hub's positions right after the record (merged with the connection's
own cursor where the client came from a replica further ahead). Ephemeral frames (typing,
presence) carry no cursor: they are not replayed.

Each connection has a bounded queue (`max_pending` frames). A client that does not read fast
enough to keep it below the bound is disconnected ("slow"), never buffered without bound; it
reconnects with its last cursor and misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parley_realtime import metrics
from parley_realtime.cursor import TopicPartition, encode, furthest
from parley_realtime.mappings import Meta, Rule


@dataclass(frozen=True)
class Frame:
    """One thing to write to a stream. `event=None` is a heartbeat (only the cursor)."""

    event: str | None
    data: bytes = b""
    cursor: str | None = None
    at: float | None = None  # when the event happened (epoch s), for the push-lag histogram


class Connection:
    """One open stream of one person on this replica."""

    def __init__(
        self,
        user_id: str,
        session_id: str,
        expires_at: datetime,
        max_pending: int = 1000,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.expires_at = expires_at
        self.max_pending = max_pending
        # partitions where the client's cursor is ahead of the hub (it came from a replica
        # further along): records below these offsets reached it already
        self.ahead: dict[TopicPartition, int] = {}
        self.closed: str | None = None
        self._pending: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self._final: Frame | None = None

    def accepts(self, tp: TopicPartition, offset: int) -> bool:
        return offset >= self.ahead.get(tp, 0)

    def offer(self, frame: Frame) -> None:
        if self.closed is not None:
            return
        if len(self._pending) >= self.max_pending:
            metrics.SLOW_DISCONNECTS.inc()
            self.close("slow")
            return
        self._pending.append(frame)
        self._wake.set()

    def close(self, reason: str, final: Frame | None = None) -> None:
        """Stop the stream after writing `final` (if any); what is still queued is dropped
        (the client resumes from the cursor it has)."""
        if self.closed is None:
            self.closed = reason
            self._final = final
            self._wake.set()

    async def next(self, timeout_s: float) -> Frame | None:
        """The next frame, None after `timeout_s` without one; raises StreamClosed once
        closed (after handing out the final frame)."""
        while True:
            if self.closed is not None:
                final, self._final = self._final, None
                if final is not None:
                    return final
                raise StreamClosed(self.closed)
            if self._pending:
                return self._pending.popleft()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout_s)
            except TimeoutError:
                return None

    @property
    def pending(self) -> int:
        return len(self._pending)


class StreamClosed(Exception):
    """The connection was closed by the server (slow, revoked, expired, shutting down)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Hub:
    topics: Sequence[str]
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    by_user: dict[str, set[Connection]] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the feed's side --------------------------------------------------------------------

    def start_at(self, positions: Mapping[TopicPartition, int]) -> None:
        """The feed knows where it starts (the topics' ends when the process starts)."""
        self.positions.update(positions)
        self.started.set()

    def wants(self, recipients: Iterable[str]) -> bool:
        return any(user in self.by_user for user in recipients)

    def advance(self, tp: TopicPartition, offset: int) -> None:
        """A record nobody here receives: only the position moves."""
        self.positions[tp] = offset + 1

    def deliver(
        self,
        tp: TopicPartition,
        offset: int,
        rule: Rule,
        data: dict[str, Any],
        recipients: Iterable[str],
        meta: Meta,
    ) -> int:
        """Dispatch one record to the connected recipients (no await: atomic with respect to
        attach). Returns the number of frames queued."""
        self.positions[tp] = offset + 1
        shared: str | None = None
        at = meta.time.timestamp()
        queued = 0
        bodies: dict[object, bytes] = {}
        for user in dict.fromkeys(recipients):
            connections = self.by_user.get(user)
            if not connections:
                continue
            audience = rule.audience(data, user) if rule.audience is not None else None
            body = bodies.get(audience)
            if body is None:
                body = json.dumps(rule.view(data, user, meta), separators=(",", ":")).encode()
                bodies[audience] = body
            for connection in connections:
                if not connection.accepts(tp, offset):
                    continue
                if connection.ahead:
                    cursor = self.cursor_of(connection)
                else:
                    shared = shared or encode(self.positions, self.topics)
                    cursor = shared
                connection.offer(Frame(rule.event, body, cursor, at))
                queued += 1
        return queued

    # -- the streams' side ------------------------------------------------------------------

    def attach(
        self, connection: Connection, resume_from: Mapping[TopicPartition, int] | None
    ) -> dict[TopicPartition, int]:
        """Register the connection; returns the hub's positions at this instant: a resuming
        stream replays (its cursor, these) from Kafka, everything after comes from the hub."""
        snapshot = dict(self.positions)
        if resume_from is not None:
            connection.ahead = {
                tp: offset for tp, offset in resume_from.items() if offset > snapshot.get(tp, 0)
            }
        self.by_user.setdefault(connection.user_id, set()).add(connection)
        metrics.CONNECTIONS.inc()
        return snapshot

    def detach(self, connection: Connection) -> None:
        connections = self.by_user.get(connection.user_id)
        if connections is not None and connection in connections:
            connections.discard(connection)
            metrics.CONNECTIONS.dec()
            if not connections:
                del self.by_user[connection.user_id]

    def cursor_of(self, connection: Connection) -> str:
        """Where the connection stands now (heartbeats carry it, so an idle client's cursor
        keeps up with the topics and a resume has little to read)."""
        if connection.ahead:
            # drop partitions the hub has caught up on
            connection.ahead = {
                tp: offset
                for tp, offset in connection.ahead.items()
                if offset > self.positions.get(tp, 0)
            }
            if connection.ahead:
                return encode(furthest(self.positions, connection.ahead), self.topics)
        return encode(self.positions, self.topics)

    def push_ephemeral(self, users: Iterable[str], event: str, payload: dict[str, Any]) -> int:
        """Typing and presence: to whoever of `users` is connected here, no cursor."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        frame = Frame(event, body, None, time.time())
        sent = 0
        for user in dict.fromkeys(users):
            for connection in self.by_user.get(user, ()):
                connection.offer(frame)
                sent += 1
        return sent

    def connections(self) -> list[Connection]:
        return [c for group in self.by_user.values() for c in group]

    def close_all(self, reason: str) -> None:
        for connection in self.connections():
            connection.close(reason)
