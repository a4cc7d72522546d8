"""Revoked sessions, learnt from the auth service's events on Kafka and kept in memory.

An access token stays valid until it expires; logging out or revoking a session must stop it
sooner. The auth service publishes ``parley.auth.UserLoggedOut.v1`` and
``parley.auth.SessionRevoked.v1`` (data: ``user_id``, ``session_id``) and
``parley.auth.PasswordChanged.v1`` (data may list ``revoked_session_ids``) on ``auth.events``.
:class:`RevocationList` reads that topic in every process that verifies tokens and answers
``is_revoked(session_id)`` from memory.

No durable state and no consumer group: an access token lives at most ``max_token_ttl_s``,
so a revocation older than that (plus twice the clock leeway) concerns only tokens that have
expired anyway. At start the list seeks every partition to ``offsets_for_times(now - window)``
and reads from there; it is :attr:`ready` once it reached the end offsets it saw at start, and
forgets each entry ``window`` after it was revoked. Every replica reads the whole topic on its
own (no group, no commits), which is cheap: the topic is small within the window.

Inherent delay: a revocation takes effect here only after the auth service committed it, the
outbox relay published it and this consumer polled it; typically tens of milliseconds, more
when the relay or Kafka is slow or down. During that delay a revoked token is still accepted.

Records that are not CloudEvents, carry bad JSON or miss the session id are skipped and
logged at warning: a poison record never stops the list. Other ``auth`` events are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.envelope import InvalidEnvelope, decode, parse_ce_type
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of

from parley_authn.settings import AuthnSettings

log = logging.getLogger("parley.authn.revocation")

SESSION_EVENTS = frozenset({"UserLoggedOut", "SessionRevoked"})
EVICT_EVERY_S = 30.0
MAX_BACKOFF_S = 30.0


class RevocationList:
    """In-memory revoked session ids fed by a background task on ``auth.events``.

    ``async with RevocationList(...)`` (or :meth:`start` / :meth:`stop`) runs the task; a
    failing consumer is logged and restarted after ``retry_backoff_s``, keeping what it knew.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = "auth.events",
        max_token_ttl_s: float = 900.0,
        leeway_s: float = 10.0,
        retry_backoff_s: float = 1.0,
        poll_timeout_ms: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        # a token issued just before the revocation lives max_token_ttl_s (+ leeway accepted on
        # exp); one more leeway covers the skew between the relay's clock and ours
        self.window_s = max_token_ttl_s + 2 * leeway_s
        self.retry_backoff_s = retry_backoff_s
        self.poll_timeout_ms = poll_timeout_ms
        self._clock = clock
        self._revoked: dict[str, float] = {}  # session id -> when to forget it (epoch s)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._evicted_at = 0.0
        self._polling = False  # the current consumer got as far as polling
        self.consumed = 0  # records read (for metrics and tests)
        self.skipped = 0  # poison records skipped

    @classmethod
    def from_settings(cls, settings: AuthnSettings) -> RevocationList:
        return cls(
            settings.kafka_bootstrap_servers,
            topic=settings.revocation_topic,
            max_token_ttl_s=settings.access_token_max_ttl_s,
            leeway_s=settings.token_leeway_s,
        )

    # -- queries ---------------------------------------------------------------------------

    def is_revoked(self, session_id: str) -> bool:
        forget_at = self._revoked.get(session_id)
        return forget_at is not None and forget_at > self._clock()

    @property
    def ready(self) -> bool:
        """True once the records present at start (within the window) have been read."""
        return self._ready.is_set()

    async def check_ready(self) -> bool:
        """:attr:`ready` as a readiness check for ``install_observability``."""
        return self.ready

    async def wait_ready(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        return self.ready

    def __len__(self) -> int:
        return len(self._revoked)

    # -- updates ---------------------------------------------------------------------------

    def revoke(self, session_id: str, revoked_at: float | None = None) -> None:
        """Remember a revoked session until ``window_s`` after ``revoked_at`` (epoch s)."""
        at = self._clock() if revoked_at is None else revoked_at
        forget_at = at + self.window_s
        if forget_at > self._revoked.get(session_id, 0.0):
            self._revoked[session_id] = forget_at

    def apply_record(
        self, headers: Iterable[tuple[str, bytes | None]], value: bytes | None, timestamp_ms: int
    ) -> list[str]:
        """Apply one Kafka record of the auth topic; returns the session ids it revoked."""
        self.consumed += 1
        try:
            envelope = decode(headers, value)
            context, name, _version = parse_ce_type(envelope.type)
        except InvalidEnvelope as error:
            self._skip("not a Parley CloudEvent", error)
            return []
        if context != "auth":
            return []
        try:
            data = json.loads(envelope.data)
            sessions = _revoked_sessions(name, data)
        except (ValueError, TypeError) as error:
            self._skip(f"{envelope.type} {envelope.id}", error)
            return []
        # the later of event time and publish time, never in the future: entries are kept
        # long enough and a bad ce_time cannot pin one forever
        revoked_at = min(max(timestamp_ms / 1000, envelope.time.timestamp()), self._clock())
        for session_id in sessions:
            self.revoke(session_id, revoked_at)
        if sessions:
            log.info("%s revoked %d session(s)", envelope.type, len(sessions))
        return sessions

    def evict(self) -> int:
        """Forget the entries older than the window; returns how many went."""
        now = self._clock()
        expired = [sid for sid, forget_at in self._revoked.items() if forget_at <= now]
        for sid in expired:
            del self._revoked[sid]
        self._evicted_at = now
        return len(expired)

    def _skip(self, what: str, error: Exception) -> None:
        self.skipped += 1
        log.warning("auth event skipped (%s): %s", what, error)

    # -- the background task ---------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"revocations:{self.topic}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> RevocationList:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Consume until cancelled; restarts the consumer after any failure, backing off
        from ``retry_backoff_s`` up to 30 s while the failures go on."""
        # a supervision loop, not a retry of one operation: a consumer that got as far as
        # polling starts the pauses over, and one that ended without failing (topic missing)
        # counts as a failure; tenacity's attempt count cannot be reset mid-way, so it would
        # take two nested retry loops to say what these lines say
        failures = 0
        while True:
            self._polling = False
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("revocation consumer on %s failed; restarting", self.topic)
            failures = 1 if self._polling else failures + 1
            await asyncio.sleep(min(self.retry_backoff_s * 2 ** (failures - 1), MAX_BACKOFF_S))

    async def _consume(self) -> None:
        partitions = await partitions_of(self.bootstrap_servers, self.topic)
        if not partitions:
            log.warning("topic %s not found; revocation list not ready yet", self.topic)
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="parley-authn-revocations",
            **kafka_security(),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            since_ms = int((self._clock() - self.window_s) * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
            log.info("reading %s from %s (window %.0f s)", self.topic, since_ms, self.window_s)
            await self._poll(consumer, tps, ends)
        finally:
            await consumer.stop()

    async def _poll(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[Any, int]
    ) -> None:
        self._polling = True
        while True:
            if not self._ready.is_set() and await _reached(consumer, tps, ends):
                self._ready.set()
                log.info("revocation list ready: %d revoked session(s) known", len(self))
            batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=500)
            for records in batches.values():
                for record in records:
                    self.apply_record(record.headers, record.value, record.timestamp)
            if self._clock() - self._evicted_at >= EVICT_EVERY_S:
                self.evict()


async def _reached(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ends: dict[Any, int]
) -> bool:
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return False
    return True


def _revoked_sessions(name: str, data: Any) -> list[str]:
    """The session ids an auth event revokes (raises ValueError/TypeError on a bad shape)."""
    if not isinstance(data, dict):
        raise TypeError("event data is not a JSON object")
    sessions: list[str] = []
    if name in SESSION_EVENTS:
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("no session_id")
        sessions.append(session_id)
    listed = data.get("revoked_session_ids")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(s, str) and s for s in listed):
            raise ValueError("revoked_session_ids is not a list of session ids")
        sessions.extend(listed)
    return sessions
