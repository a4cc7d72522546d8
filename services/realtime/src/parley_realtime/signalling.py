"""Typing and presence between the signal channel and the hub (what each replica does with a
signal, and the typing rule: participants only, one signal per second per person per
conversation across all replicas)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from parley_realtime import metrics
from parley_realtime.hub import Hub
from parley_realtime.mappings import PRESENCE, TYPING
from parley_realtime.members import Members
from parley_realtime.signals import Signals

log = logging.getLogger("parley.realtime.signalling")


class NotAParticipant(Exception):
    pass


class TooSoon(Exception):
    pass


class TypingLimiter:
    """At most one typing signal per `interval_s` per (person, conversation). Signals seen
    from other replicas count too, so the limit holds however requests are balanced (up to the
    channel's delay, a few milliseconds)."""

    def __init__(self, interval_s: float = 1.0, max_entries: int = 100_000) -> None:
        self.interval_s = interval_s
        self.max_entries = max_entries
        self._last: dict[tuple[str, str], float] = {}

    def allow(self, user_id: str, conversation_id: str) -> bool:
        now = time.monotonic()
        key = (user_id, conversation_id)
        if now - self._last.get(key, -1e9) < self.interval_s:
            return False
        self._note(key, now)
        return True

    def note(self, user_id: str, conversation_id: str) -> None:
        key = (user_id, conversation_id)
        self._note(key, max(time.monotonic(), self._last.get(key, 0.0)))

    def _note(self, key: tuple[str, str], at: float) -> None:
        if len(self._last) >= self.max_entries:
            horizon = time.monotonic() - self.interval_s
            self._last = {k: t for k, t in self._last.items() if t > horizon}
        self._last[key] = at


class Signalling:
    def __init__(
        self,
        hub: Hub,
        members: Members,
        limiter: TypingLimiter,
        typing_ttl_s: float = 5.0,
    ) -> None:
        self.hub = hub
        self.members = members
        self.limiter = limiter
        self.typing_ttl = timedelta(seconds=typing_ttl_s)
        self.signals: Signals | None = (
            None  # set by the composition root (they refer to each other)
        )
        self._tasks: set[asyncio.Task[None]] = set()

    # -- outgoing ---------------------------------------------------------------------------

    async def typing(self, user_id: str, conversation_id: str) -> None:
        """Announce that `user_id` is typing in the conversation; raises NotAParticipant or
        TooSoon."""
        if user_id not in await self.members.participants(conversation_id):
            raise NotAParticipant(conversation_id)
        if not self.limiter.allow(user_id, conversation_id):
            raise TooSoon(conversation_id)
        assert self.signals is not None
        await self.signals.typing(conversation_id, user_id, self.typing_ttl)

    # -- incoming (from the channel: every replica, the sender's own included) --------------

    def on_typing(self, payload: dict[str, Any]) -> None:
        metrics.SIGNALS.labels("typing").inc()
        self.limiter.note(str(payload["user_id"]), str(payload["conversation_id"]))
        self._spawn(self._push_typing(payload))

    def on_presence(self, payload: dict[str, Any]) -> None:
        metrics.SIGNALS.labels("presence").inc()
        if self.hub.by_user:  # nobody here, nobody to tell
            self._spawn(self._push_presence(payload))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("signal not pushed: %r", task.exception())

    async def _push_typing(self, payload: dict[str, Any]) -> None:
        typist = str(payload["user_id"])
        conversation_id = str(payload["conversation_id"])
        participants = await self.members.participants(conversation_id)
        if typist not in participants:
            return
        self.hub.push_ephemeral(
            (u for u in participants if u != typist),
            TYPING,
            {
                "conversation_id": conversation_id,
                "user_id": typist,
                "expires_at": payload.get("expires_at"),
            },
        )

    async def _push_presence(self, payload: dict[str, Any]) -> None:
        user = str(payload["user_id"])
        peers = await self.members.peers(user)
        here = [p for p in peers if p in self.hub.by_user]
        if here:
            self.hub.push_ephemeral(
                here,
                PRESENCE,
                {
                    "user_id": user,
                    "status": payload.get("status"),
                    "last_seen": payload.get("last_seen"),
                },
            )
