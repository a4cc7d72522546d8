"""Fault injection on the push path (issue 17): 20 people hold streams through nginx while 500
messages flow into four conversations; the realtime gateway is SIGKILLed mid-flow and restarted
by the process manager. Each client reconnects with the last cursor it was given (its
Last-Event-ID), as a browser's EventSource does. In the end every client has every message of
its conversations exactly once, in per-conversation order.

A restarted replica starts its live feed at the topics' end: everything a client missed while
it was down comes from the replay of its cursor, so this is the test of "any replica can
resume any cursor" as much as of the crash. With `make up REPLICAS=2` one replica dies while
the other keeps its streams, and the dead one's clients resume on either.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import httpx
import pytest
from parley_testing import cluster
from parley_testing.accounts import Account, sign_up
from parley_testing.realtime import SseStream

pytestmark = pytest.mark.fault

CLIENTS = 20
MESSAGES = 500
CONVERSATIONS = 4
RATE = 100.0  # messages a second
KILLS = int(os.environ.get("PARLEY_FAULT_ROUNDS", "1"))


class Client:
    """One person's stream that always comes back: reconnects with its last cursor."""

    def __init__(self, http: httpx.AsyncClient, account: Account) -> None:
        self.http = http
        self.account = account
        self.cursor: str | None = None
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.reconnects = 0
        self.connected = False
        self.done = asyncio.Event()

    async def run(self, expected: dict[str, int]) -> None:
        while not self.done.is_set():
            stream = SseStream(self.http, headers=self.account.headers, last_event_id=self.cursor)
            try:
                async with stream:
                    if stream.status_code != 200:
                        await asyncio.sleep(0.2)  # the gateway is restarting: 503
                        continue
                    self.connected = True
                    while not stream.closed.is_set() or not stream.events.empty():
                        try:
                            pushed = await stream.next(0.5)
                        except TimeoutError:
                            if self._complete(expected):
                                self.done.set()
                                return
                            continue
                        if pushed.event == "message.sent":
                            self.seqs[pushed.data["conversation_id"]].append(pushed.data["seq"])
                        # what a browser keeps: the id of the last event it parsed
                        self.cursor = stream.last_id
            except (httpx.HTTPError, TimeoutError):
                pass
            self.connected = False
            self.cursor = stream.last_id or self.cursor
            self.reconnects += 1
            await asyncio.sleep(0.1)

    def _complete(self, expected: dict[str, int]) -> bool:
        return all(len(self.seqs.get(cid, ())) >= n for cid, n in expected.items())


async def test_a_killed_realtime_gateway_loses_and_duplicates_nothing(gateway_url: str) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, limits=limits) as http:
        accounts = list(
            await asyncio.gather(*(sign_up(http, f"Reader {i}") for i in range(CLIENTS + 1)))
        )
        sender, readers = accounts[0], accounts[1:]
        groups = [readers[i::CONVERSATIONS] for i in range(CONVERSATIONS)]
        conversations = []
        for i, group in enumerate(groups):
            created = await http.post(
                "/v1/conversations",
                json={"participant_ids": [a.user_id for a in group], "title": f"fault {i}"},
                headers=sender.headers,
            )
            assert created.status_code == 201, created.text
            conversations.append(created.json()["id"])
        member_of = {a.user_id: conversations[i] for i, g in enumerate(groups) for a in g}

        clients = [Client(http, account) for account in readers]
        per_conversation = MESSAGES // CONVERSATIONS
        expected_of = {
            c.account.user_id: {member_of[c.account.user_id]: per_conversation} for c in clients
        }
        watchers = [asyncio.create_task(c.run(expected_of[c.account.user_id])) for c in clients]
        while any(c.cursor is None for c in clients):  # every stream open before the flow
            await asyncio.sleep(0.05)

        killed = 0

        async def flow() -> None:
            started = time.perf_counter()
            for i in range(MESSAGES):
                # the k-th kill lands in the k-th stretch of the flow: sending waits for it
                while killed < min(KILLS, i * (KILLS + 1) // MESSAGES):
                    await asyncio.sleep(0.05)
                    started += 0.05
                await asyncio.sleep(max(0.0, started + i / RATE - time.perf_counter()))
                cid = conversations[i % CONVERSATIONS]
                key = f"fault-{cid}-{i}"
                while True:  # a careful client: retried with the same key until accepted
                    try:
                        sent = await http.post(
                            f"/v1/conversations/{cid}/messages",
                            json={"content": f"m{i}"},
                            headers={**sender.headers, "Idempotency-Key": key},
                        )
                        if sent.status_code == 201:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)

        # with `make up REPLICAS=N` the k-th kill takes replica k: its streams resume on
        # whichever replica nginx picks, with the cursor the dead one handed out
        replicas = await asyncio.to_thread(cluster.replicas, "realtime-gateway")

        async def kill() -> list[int]:
            nonlocal killed
            pids = []
            for k in range(KILLS):
                while not all(c.connected for c in clients):  # the last kill's reconnects
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0 if not pids else 0.3)
                victim = replicas[k % len(replicas)]
                old = await asyncio.to_thread(cluster.kill, victim)
                killed += 1
                pids.append(await asyncio.to_thread(cluster.wait_restarted, victim, old))
            return pids

        _, restarted = await asyncio.gather(flow(), kill())
        assert len(restarted) == KILLS
        try:
            await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), 90)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    for client in clients:
        cid = member_of[client.account.user_id]
        assert client.seqs[cid] == list(range(1, per_conversation + 1)), (
            f"{client.account.user_id}: {len(client.seqs[cid])} messages, first wrong at "
            f"{next((i for i, s in enumerate(client.seqs[cid]) if s != i + 1), None)}"
        )
        assert set(client.seqs) == {cid}  # nothing of the other conversations
    reconnects = sum(c.reconnects for c in clients)
    if len(replicas) == 1:
        # every kill cut every stream (a reconnect each), while messages still flowed
        assert reconnects >= CLIENTS * KILLS
    else:
        # each kill cut the streams the victim held (nginx spreads them over the replicas)
        assert reconnects >= KILLS
