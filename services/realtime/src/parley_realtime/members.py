"""Who is in a conversation, and who shares one with a person: what typing and presence are
authorised against.

The freshest source is the live feed itself: every chat event states the conversation's
participants as of that event (mappings.Rule.members), and the hub remembers them here. A
conversation this replica has not seen an event of since it started is looked up in the chat
read model (`conversations` by `_id`, one key read). Peers, the people who share a
conversation with someone (who gets their presence), come from `memberships` (their
`participant_ids`); lookups for many people are batched into one query, with one query in
flight at a time, so a burst of sign-ins costs a few queries, not one per person.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from parley_readmodel import aliases
from pymongo.asynchronous.database import AsyncDatabase

log = logging.getLogger("parley.realtime.members")
CHAT_PROJECTION = "projector-chat"
REMEMBERED = 100_000  # conversations kept from the live feed
PEERS_TTL_S = 10.0
PEERS_KEPT = 20_000  # people whose peers are cached (least recently asked dropped first)
# presence is shared in conversations of at most this many people: in a 1,000-member channel
# every sign-in would otherwise push 999 presence frames (a million when all come online, as
# after a replica restart); members of big rooms ask GET /v1/users/{id}/presence instead
PRESENCE_GROUP_MAX = 100
# one reply for most lookups: fewer round trips than the default 101 documents per reply
MEMBERSHIPS_PER_REPLY = 1000
PEERS_QUERY_TIMEOUT_S = 30.0  # the memberships filter is a scan on FerretDB


class Members:
    def __init__(self, db: AsyncDatabase[dict[str, Any]] | None) -> None:
        self.db = db
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._peers: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._wanted: dict[str, asyncio.Future[frozenset[str]]] = {}
        self._batch: asyncio.Task[None] | None = None

    # -- conversations ----------------------------------------------------------------------

    def remember(self, conversation_id: str, participants: Iterable[str]) -> None:
        self._known[conversation_id] = frozenset(participants)
        self._known.move_to_end(conversation_id)
        while len(self._known) > REMEMBERED:
            self._known.popitem(last=False)
        # a membership change makes cached peer sets of these people stale
        for user in self._known[conversation_id]:
            self._peers.pop(user, None)

    async def participants(self, conversation_id: str) -> frozenset[str]:
        """The conversation's participants now (empty: no such conversation)."""
        known = self._known.get(conversation_id)
        if known is not None:
            return known
        if self.db is None:
            return frozenset()
        collection = await aliases.collection(self.db, CHAT_PROJECTION, "conversations")
        doc = await collection.find_one({"_id": conversation_id}, {"participant_ids": 1})
        if doc is None:
            return frozenset()
        return frozenset(str(u) for u in doc.get("participant_ids") or ())

    # -- peers ------------------------------------------------------------------------------

    async def peers(self, user_id: str) -> frozenset[str]:
        """Everyone who shares a conversation of at most PRESENCE_GROUP_MAX people with
        `user_id` (not themself)."""
        cached = self._peers.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < PEERS_TTL_S:
            self._peers.move_to_end(user_id)
            return cached[1]
        future = self._wanted.get(user_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._wanted[user_id] = future
            if self._batch is None or self._batch.done():
                self._batch = asyncio.create_task(self._look_up_batches())
        return await asyncio.shield(future)

    async def _look_up_batches(self) -> None:
        while self._wanted:
            wanted, self._wanted = self._wanted, {}
            try:
                found = await asyncio.wait_for(
                    self._query_peers(list(wanted)), PEERS_QUERY_TIMEOUT_S
                )
            except Exception as error:
                log.warning("peers of %d people not found: %r", len(wanted), error)
                for future in wanted.values():
                    if not future.done():
                        future.set_exception(error)
                        future.exception()
                continue
            now = time.monotonic()
            for user, future in wanted.items():
                # interned: the same ids in many people's peer sets are one string each
                peers = frozenset(sys.intern(p) for p in found.get(user, set()))
                self._peers[user] = (now, peers)
                self._peers.move_to_end(user)
                if not future.done():
                    future.set_result(peers)
            while len(self._peers) > PEERS_KEPT:
                self._peers.popitem(last=False)

    async def _query_peers(self, users: list[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {user: set() for user in users}
        if self.db is None:
            for participants in self._known.values():
                if len(participants) > PRESENCE_GROUP_MAX:
                    continue
                for user in users:
                    if user in participants:
                        found[user] |= participants
        else:
            collection = await aliases.collection(self.db, CHAT_PROJECTION, "memberships")
            cursor = collection.find(
                {"user_id": {"$in": users}, "removed": False},
                {"user_id": 1, "participant_ids": 1},
                batch_size=MEMBERSHIPS_PER_REPLY,
            )
            async for doc in cursor:
                listed = doc.get("participant_ids") or ()
                if len(listed) <= PRESENCE_GROUP_MAX:
                    found[str(doc["user_id"])] |= {str(u) for u in listed}
        for user in users:
            found[user].discard(user)
        return found
