"""The realtime gateway (`services/realtime`): how fast a sent message reaches the streams of
the people it is for, how far one replica fans out, what it costs to hold many idle streams,
and how fast a stream that was away catches up.

Four parts, in this order (each waits for a quiet box first):

- `deliver`: through nginx, a sender posts 100 messages a second for 10 s into a conversation
  with one other person, whose SSE stream (`GET /v1/stream`, also through nginx) is open.
  Latency: the moment the recipient's stream parsed the `message.sent` of that seq minus the
  moment the send's 201 arrived (chat-api's commit, relay-chat, Kafka, the gateway's live feed,
  its write, nginx).
- `resume`: the recipient's stream is closed, 1,000 messages are sent to it (4 concurrent
  senders), then it reconnects with `Last-Event-ID: <its last cursor>`. Time from the
  reconnect request to the receipt of the 1,000th missed `message.sent` (the gateway starts a
  Kafka consumer of its own and replays from the cursor), checking that exactly those 1,000
  arrived, in order. Before reconnecting, the sender's own stream has seen all 1,000 (so they
  are all in Kafka: the figure is the replay, not the relay) and the box is quiet again.
- `idle`: 2,000 people x 5 streams each = 10,000 SSE streams held open on the one replica
  (direct on its port, 8106: nginx's 1,024 worker connections would be the limit otherwise),
  opened 100 at a time on raw sockets; after every stream has had a heartbeat (15 s), count
  the streams still open and read the gateway process's resident memory (VmRSS).
- `fanout_1000`: one real account and 999 synthetic members in one group, 1,000 streams open
  directly on the replica; 12 messages 1.5 s apart, each timed from its 201 to the moment the
  LAST of the 1,000 streams parsed it.

The synthetic people are not registered: their access tokens are made here with the local
cluster's development signing key (`<state dir>/auth/signing-key.pem`) by the auth service's
own `KeySet.issue()` (same claims, kid, lifetime), and chat does not check that participant ids
are registered. Each message into the group still makes 999 notifications (notifications-api)
whose `notification.created` events are pushed to the members too: that load is part of what
a 1,000-member group costs and is not switched off.

Keys: `realtime.deliver.{p50_ms,p99_ms,messages,lost}`; `realtime.resume_ms`,
`realtime.resume_events`, `realtime.resume_exact` (1: exactly the 1,000 missed, in seq order),
`realtime.resume_replayed` (the `ready` event's count: the notifications of those messages
are replayed too); `realtime.idle_connections`, `realtime.idle_rss_mb` (and
`idle_rss_before_mb`: the same process before the streams opened; `idle_open_s`: how long the
10,000 took to open); `realtime.fanout_1000.{p50_ms,p99_ms,first_p50_ms,messages,streams}`
(`first_p50_ms`: to the FIRST of the 1,000 streams, so the difference to `p50_ms` is the
spread of the fan-out itself), and `realtime.fanout_1000.gateway_cpu_ms_per_push`: the
gateway process's CPU (/proc) from the first send until every stream had every message,
divided by the events it pushed meanwhile (the messages and the notifications already in).

`python -m bench.realtime [deliver resume idle fanout]` runs the stage (or some parts) and prints
the figures; `REALTIME_BENCH_IDLE_USERS` (2,000) and `REALTIME_BENCH_FANOUT_MESSAGES` (12)
change the sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from parley_auth.config import Settings as AuthSettings
from parley_auth.tokens import KEY_FILE, KeySet
from parley_messaging.security import kafka_security
from parley_messaging.topics import partitions_of
from parley_readmodel import aliases
from parley_testing.accounts import Account, sign_up
from parley_testing.infra import Server, locate
from parley_testing.projections import group_committed
from parley_testing.realtime import Pushed, SseStream
from pymongo import AsyncMongoClient

from bench.common import kafka_bootstrap, percentile
from bench.quiet import wait_until_quiet

KEY_PREFIX = "realtime."
ROOT = Path(__file__).resolve().parents[1]

DELIVER_RATE = 100.0
DELIVER_SECONDS = 10.0
RESUME_MESSAGES = 1_000
RESUME_SENDERS = 4
IDLE_USERS = int(os.environ.get("REALTIME_BENCH_IDLE_USERS", "2000"))
IDLE_STREAMS_PER_USER = 5  # the per-person cap is 10
OPEN_CONCURRENCY = 100
HEARTBEAT_S = 15.0  # the gateway's REALTIME_HEARTBEAT_S (its default)
FANOUT_MEMBERS = 1_000
FANOUT_MESSAGES = int(os.environ.get("REALTIME_BENCH_FANOUT_MESSAGES", "12"))
FANOUT_SPACING_S = 1.5
NOTIFICATIONS_WAIT_S = 90.0
PROJECTED_WAIT_S = 60.0
QUIET_S = 20.0  # the longest wait for a quiet box between the parts


def log(text: str) -> None:
    print(f"[realtime {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def state_dir() -> Path:
    return Path(os.environ.get("PARLEY_STATE_DIR", str(ROOT / ".local")))


def gateway() -> str:
    return f"http://127.0.0.1:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


def replica_port() -> int:
    """The realtime gateway's own port (the cluster's service port base + 6: 8106)."""
    return int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100")) + 6


async def quiet() -> None:
    """Wait (bounded) for a quiet box, in a thread: open streams keep being read meanwhile."""
    await asyncio.to_thread(wait_until_quiet, timeout_s=QUIET_S)


# -- tokens for synthetic people ------------------------------------------------------------


class Minter:
    """Access tokens as the auth service issues them (its own KeySet.issue: iss, aud, sub,
    role, sid, iat, exp, jti; kid = the key's RFC 7638 thumbprint), signed with the local
    cluster's development key, for people who never registered."""

    def __init__(self) -> None:
        path = state_dir() / "auth" / KEY_FILE
        if not path.exists():  # never create one: the cluster's auth-api would not know it
            raise RuntimeError(f"no development signing key at {path}: is the cluster up?")
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        self.keys = KeySet(key)
        self.ttl = timedelta(seconds=AuthSettings().access_ttl_s)

    def token(self, user_id: str) -> str:
        token, _ = self.keys.issue(user_id, "user", str(uuid.uuid4()), self.ttl, datetime.now(UTC))
        return token


# -- a light SSE client for thousands of streams ---------------------------------------------

OnEvent = Callable[["RawSse", bytes, bytes], None]  # (stream, event name, data)


class RawSse(asyncio.Protocol):
    """One `GET /v1/stream` on a raw socket: a hand-written HTTP/1.1 request, the chunked body
    decoded, SSE blocks split on blank lines. Per event it only finds the `event:`, `id:` and
    `data:` lines and hands (event, data) to `on_event`, with `received_at` set to the
    perf_counter of the read that completed it; heartbeats (comments) are counted."""

    def __init__(self, token: str, on_event: OnEvent | None = None, host: str = "") -> None:
        self.request = (
            f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.raw = b""
        self.text = b""
        self.status = 0
        self.error = b""
        self.head_done = False
        self.chunked = False
        self.heartbeats = 0
        self.last_id: bytes | None = None
        self.received_at = 0.0
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[bool] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def open(self) -> bool:
        return not self.closed.done()

    def data_received(self, data: bytes) -> None:
        self.received_at = time.perf_counter()
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.raw = self.raw[:end].lower(), self.raw[end + 4 :]
            self.status = int(head.split(b" ", 2)[1])
            self.chunked = b"transfer-encoding: chunked" in head
            self.head_done = True
        if self.chunked:
            raw, text = self.raw, self.text
            while True:
                nl = raw.find(b"\r\n")
                if nl < 0:
                    break
                size = int(raw[:nl].split(b";", 1)[0], 16)
                if len(raw) < nl + 4 + size:
                    break
                text += raw[nl + 2 : nl + 2 + size]
                raw = raw[nl + 4 + size :]
                if size == 0:
                    break
            self.raw, self.text = raw, text
        else:
            self.text += self.raw
            self.raw = b""
        if self.status != 200:
            self.error += self.text
            self.text = b""
            if not self.ready.done():
                self.ready.set_result(False)
            return
        if b"\n\n" not in self.text:
            return
        *blocks, self.text = self.text.split(b"\n\n")
        for block in blocks:
            self._block(block)

    def _block(self, block: bytes) -> None:
        event = data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.startswith(b"id: "):
                self.last_id = line[4:]
            elif line.startswith(b":"):
                self.heartbeats += 1
        if event == b"ready" and not self.ready.done():
            self.ready.set_result(True)
        if event and self.on_event is not None:
            self.on_event(self, event, data)


async def open_raw(
    token: str, on_event: OnEvent | None = None, port: int | None = None, timeout_s: float = 30
) -> RawSse:
    port = port or replica_port()
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(
        lambda: RawSse(token, on_event, f"127.0.0.1:{port}"), "127.0.0.1", port
    )
    try:
        await asyncio.wait_for(asyncio.shield(stream.ready), timeout_s)
    except TimeoutError:
        stream.close()
        raise
    return stream


async def open_many(
    tokens: list[str], on_event: OnEvent | None = None, concurrency: int = OPEN_CONCURRENCY
) -> tuple[list[RawSse], dict[str, int]]:
    """Open one stream per token, `concurrency` at a time; returns the ones that reached
    `ready` and a count of what went wrong with the others."""
    opened: list[RawSse] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(token: str) -> None:
        nonlocal done
        async with gate:
            try:
                stream = await open_raw(token, on_event)
            except (OSError, TimeoutError) as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                return
            finally:
                done += 1
                if done % 1000 == 0:
                    log(f"  {done}/{len(tokens)} streams opened")
            if stream.ready.result():
                opened.append(stream)
            else:
                why = f"http {stream.status}" if stream.status else "closed before ready"
                failures[why] = failures.get(why, 0) + 1
                stream.close()

    await asyncio.gather(*(one(t) for t in tokens))
    return opened, failures


# -- the replica ---------------------------------------------------------------------------


async def open_connections(client: httpx.AsyncClient) -> float:
    """The replica's `parley_realtime_connections` gauge."""
    text = (await client.get(f"http://127.0.0.1:{replica_port()}/metrics")).text
    found = re.search(r"^parley_realtime_connections (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


async def wait_connections_below(client: httpx.AsyncClient, limit: float, wait_s: float) -> float:
    deadline = time.monotonic() + wait_s
    while True:
        now = await open_connections(client)
        if now <= limit or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


def gateway_pid() -> int:
    """The realtime-gateway process: supervisord's record, else the one python running
    `-m parley_realtime`."""
    state = state_dir()
    ctl = ROOT / ".venv" / "bin" / "supervisorctl"
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        out = subprocess.run(
            [str(ctl), "-c", str(state / "supervisord.conf"), "pid", "realtime-gateway"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if int(out) > 0:
            return int(out)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if b"parley_realtime" in (proc / "cmdline").read_bytes():
                    return int(proc.name)
    raise RuntimeError("no realtime-gateway process found")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log(f"open-files limit {soft} -> {target}")
    if min(needed, hard if hard != resource.RLIM_INFINITY else needed) < needed:
        log(f"open-files hard limit {hard} is below the {needed} this part needs")


# -- leaving the read models as they were ----------------------------------------------------

# (consumer group, topic) pairs whose work on the group must be done before its documents go,
# in this order: the notification policy has made every notification (its outbox rows), then
# the projectors have applied the chat events and the notifications relay-notifications
# published meanwhile
PROJECTORS = (
    ("notifications-policy", "chat.events"),
    ("projector-chat", "chat.events"),
    ("projector-notifications", "notifications.events"),
)
RELAY_S = 2.0  # for relay-notifications to publish the policy's last outbox rows
# (projection, logical collection, field naming the conversation)
GROUP_DOCUMENTS = (
    ("projector-chat", "memberships", "conversation_id"),
    ("projector-notifications", "notifications", "conversation_id"),
    ("projector-chat", "messages", "conversation_id"),
    ("projector-chat", "conversations", "_id"),
)


async def projected(wait_s: float) -> bool:
    """True once the notification policy, projector-chat and projector-notifications have
    committed what the topics hold (False after `wait_s`)."""
    bootstrap = kafka_bootstrap()
    deadline = time.monotonic() + wait_s
    for group, topic in PROJECTORS:
        if topic == "notifications.events":
            await asyncio.sleep(RELAY_S)
        watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **kafka_security())
        await watcher.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
            ends = await watcher.end_offsets(tps)
            while not await group_committed(watcher, ends):
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.5)
        finally:
            await watcher.stop()
    return True


async def drop_group_documents(conversations: list[str]) -> dict[str, int]:
    """Delete the read-model documents of bench groups (memberships, notifications, messages,
    the conversation). A group of 1,000 leaves 1,000 memberships that each list the 1,000
    participants (~50 KB each, ~50 MB) and 999 notifications per message, and FerretDB 1.24
    reads a whole collection for any filter but `_id` equality: left behind, every run would
    make every later membership and notification query of the shared cluster slower (the
    realtime gateway's peer lookup has a 5 s socket timeout). Only after `projected()`: a
    projector still applying the group's events would upsert its documents back."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        locate(Server.MONGO).address, socketTimeoutMS=120_000
    )
    deleted: dict[str, int] = {}
    try:
        db = client["parley"]
        gate = asyncio.Semaphore(16)

        async def delete(collection: Any, doc_id: Any) -> int:
            # one `_id` at a time: FerretDB pushes `_id` equality down to SQLite, and a
            # delete_many of thousands of documents fails there ("too many SQL variables")
            async with gate:
                return int((await collection.delete_one({"_id": doc_id})).deleted_count)

        for projection, logical, field in GROUP_DOCUMENTS:
            collection = await aliases.collection(db, projection, logical)
            found = collection.find({field: {"$in": conversations}}, {"_id": 1})
            ids = [doc["_id"] async for doc in found]
            deleted[logical] = sum(await asyncio.gather(*(delete(collection, i) for i in ids)))
    finally:
        await client.close()
    return deleted


# -- the parts -----------------------------------------------------------------------------


async def _conversation(
    client: httpx.AsyncClient, owner: Account, others: list[str], title: str
) -> str:
    created = await client.post(
        "/v1/conversations",
        json={"participant_ids": others, "title": title},
        headers=owner.headers,
        timeout=60,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _sent_in(pushed: Pushed, conversation: str) -> int | None:
    """The seq of a `message.sent` of that conversation (None: any other event)."""
    if pushed.event == "message.sent" and pushed.data["conversation_id"] == conversation:
        return int(pushed.data["seq"])
    return None


async def _created_seen(stream: SseStream, conversation: str) -> None:
    await stream.first(
        lambda p: p.event == "conversation.created" and p.data["conversation_id"] == conversation,
        timeout_s=15,
    )


async def deliver(client: httpx.AsyncClient, sender: Account, reader: Account) -> dict[str, Any]:
    log(f"deliver: {DELIVER_RATE:.0f} messages/s for {DELIVER_SECONDS:.0f} s through nginx")
    accepted: dict[int, float] = {}
    received: dict[int, float] = {}
    async with (
        httpx.AsyncClient(base_url=gateway(), timeout=10) as streaming,
        SseStream(streaming, headers=reader.headers) as stream,
    ):
        assert stream.status_code == 200, stream.error_body
        await stream.first(lambda p: p.event == "ready")
        conversation = await _conversation(client, sender, [reader.user_id], "rt deliver")
        await _created_seen(stream, conversation)
        done = asyncio.Event()

        async def watch() -> None:
            while not (done.is_set() and received.keys() >= accepted.keys()):
                try:
                    pushed = await stream.next(timeout_s=0.5)
                except TimeoutError:
                    continue
                seq = _sent_in(pushed, conversation)
                if seq is not None:
                    received[seq] = pushed.received_at

        async def send() -> None:
            started = time.perf_counter()
            for i in range(int(DELIVER_RATE * DELIVER_SECONDS)):
                await asyncio.sleep(max(0.0, started + i / DELIVER_RATE - time.perf_counter()))
                r = await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"m{i}"},
                    headers=sender.headers,
                )
                if r.status_code == 201:
                    accepted[int(r.json()["seq"])] = time.perf_counter()
            done.set()

        watcher = asyncio.create_task(watch())
        await send()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher, 15)
        watcher.cancel()
    latencies = [(received[s] - t) * 1000 for s, t in accepted.items() if s in received]
    lost = len(accepted) - len(latencies)
    first = min(accepted.values(), default=0.0)
    slow = [
        f"{t - first:.2f}s:{(received[s] - t) * 1000:.0f}"
        for s, t in sorted(accepted.items())
        if s in received and received[s] - t > 0.1
    ]
    log(f"  {len(slow)} over 100 ms (sent at +s: ms): {' '.join(slow[:40])}")
    if lost:
        log(f"deliver: {lost} accepted messages never reached the stream")
    return {
        "realtime.deliver.p50_ms": round(percentile(latencies, 50), 1),
        "realtime.deliver.p99_ms": round(percentile(latencies, 99), 1),
        "realtime.deliver.messages": len(latencies),
        "realtime.deliver.lost": lost,
    }


async def resume(client: httpx.AsyncClient, sender: Account, reader: Account) -> dict[str, Any]:
    log(f"resume: {RESUME_MESSAGES} messages to a closed stream, then Last-Event-ID")
    async with (
        httpx.AsyncClient(base_url=gateway(), timeout=10) as streaming,
        SseStream(streaming, headers=sender.headers) as witness,
    ):
        await witness.first(lambda p: p.event == "ready")
        async with SseStream(streaming, headers=reader.headers) as away:
            await away.first(lambda p: p.event == "ready")
            conversation = await _conversation(client, sender, [reader.user_id], "rt resume")
            await _created_seen(away, conversation)
            cursor = away.last_id
        assert cursor, "no cursor to resume from"

        accepted: list[int] = []
        next_message = iter(range(RESUME_MESSAGES))
        sending = time.perf_counter()

        async def sender_task() -> None:
            for i in next_message:
                r = await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json={"content": f"missed {i}"},
                    headers=sender.headers,
                )
                assert r.status_code == 201, r.text
                accepted.append(int(r.json()["seq"]))

        await asyncio.gather(*(sender_task() for _ in range(RESUME_SENDERS)))
        log(f"  {len(accepted)} sent in {time.perf_counter() - sending:.1f} s")
        wanted = set(accepted)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while seen < wanted and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                seq = _sent_in(await witness.next(timeout_s=1), conversation)
                if seq is not None:
                    seen.add(seq)
        assert seen >= wanted, f"the sender's own stream saw {len(seen)} of {len(wanted)}"

    await quiet()  # the notifications of those messages are made meanwhile; then the box is quiet
    got: list[int] = []
    last_at = float("nan")
    replayed = -1
    started = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=gateway(), timeout=10) as streaming,
        SseStream(streaming, headers=reader.headers, last_event_id=cursor) as back,
    ):
        assert back.status_code == 200, back.error_body
        deadline = time.monotonic() + 60
        # everything missed comes before `ready` (it was all in the hub before the attach)
        while replayed < 0 or len(got) < len(accepted):
            try:
                pushed = await back.next(timeout_s=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            seq = _sent_in(pushed, conversation)
            if seq is not None:
                got.append(seq)
                if len(got) == len(accepted):
                    last_at = pushed.received_at
            elif pushed.event == "ready":
                replayed = int(pushed.data.get("replayed", -1))
            elif pushed.event == "reset":
                raise AssertionError(f"resume refused: {pushed.data}")
        resume_ms = (last_at - started) * 1000
    exact = got == sorted(accepted)
    if not exact:
        missing = len(set(accepted) - set(got))
        log(f"resume: {len(got)} messages back ({missing} missing), in order: {got == sorted(got)}")
    return {
        "realtime.resume_ms": round(resume_ms, 1),
        "realtime.resume_events": len(got),
        "realtime.resume_exact": int(exact),  # 1: exactly the messages missed, in order
        "realtime.resume_replayed": replayed,
    }


async def idle(client: httpx.AsyncClient, minter: Minter) -> dict[str, Any]:
    total = IDLE_USERS * IDLE_STREAMS_PER_USER
    log(f"idle: {IDLE_USERS} x {IDLE_STREAMS_PER_USER} streams = {total} on :{replica_port()}")
    raise_fd_limit(total + 1024)
    pid = gateway_pid()
    baseline = await open_connections(client)
    before = rss_mb(pid)
    tokens = [minter.token(str(uuid.uuid4())) for _ in range(IDLE_USERS)]
    started = time.perf_counter()
    streams, failures = await open_many([t for t in tokens for _ in range(IDLE_STREAMS_PER_USER)])
    open_s = time.perf_counter() - started
    log(f"  {len(streams)} open in {open_s:.1f} s; failed: {failures or 'none'}")
    # every stream's first heartbeat comes HEARTBEAT_S after its `ready`
    opened_at = time.monotonic()
    deadline = opened_at + HEARTBEAT_S + 15
    while time.monotonic() < deadline:
        beating = sum(1 for s in streams if s.open and s.heartbeats > 0)
        if time.monotonic() > opened_at + HEARTBEAT_S and beating == len(streams):
            break
        await asyncio.sleep(1)
    held = sum(1 for s in streams if s.open and s.heartbeats > 0)
    dropped = sum(1 for s in streams if not s.open)
    gauge = await open_connections(client)
    rss = rss_mb(pid)
    log(
        f"  {held} open through a heartbeat ({dropped} closed meanwhile; gauge {gauge:.0f}); "
        f"RSS {before:.0f} -> {rss:.0f} MiB"
    )
    for stream in streams:
        stream.close()
    left = await wait_connections_below(client, baseline + 10, 120)
    log(f"  closed: the replica's gauge is {left:.0f} (before: {baseline:.0f})")
    return {
        "realtime.idle_connections": held,
        "realtime.idle_rss_mb": round(rss, 1),
        "realtime.idle_rss_before_mb": round(before, 1),
        "realtime.idle_open_s": round(open_s, 1),
    }


async def fanout(client: httpx.AsyncClient, minter: Minter) -> dict[str, Any]:
    log(f"fanout: a group of {FANOUT_MEMBERS}, {FANOUT_MESSAGES} messages")
    raise_fd_limit(FANOUT_MEMBERS + 1024)
    sender = await sign_up(client, "rt fanout sender")
    pid = gateway_pid()
    members = [str(uuid.uuid4()) for _ in range(FANOUT_MEMBERS - 1)]
    baseline = await open_connections(client)
    conversation = ""
    created = notified = 0
    last_notified = 0.0
    arrivals: dict[int, list[float]] = {}  # seq -> [streams reached, first arrival, last]

    def on_event(stream: RawSse, event: bytes, data: bytes) -> None:
        nonlocal created, notified, last_notified
        if event == b"notification.created":
            if conversation_bytes in data:
                notified += 1
                last_notified = stream.received_at
        elif event == b"message.sent":
            body = json.loads(data)
            if body["conversation_id"] == conversation:
                seen = arrivals.setdefault(int(body["seq"]), [0, stream.received_at, 0.0])
                seen[0] += 1
                seen[2] = stream.received_at
        elif event == b"conversation.created":
            created += 1

    # the streams open before the group exists: nobody has peers yet, so coming online
    # pushes no presence to the others
    tokens = [sender.access_token, *(minter.token(m) for m in members)]
    streams, failures = await open_many(tokens, on_event)
    log(f"  {len(streams)} streams open; failed: {failures or 'none'}")
    conversation = await _conversation(client, sender, members, "rt fanout")
    conversation_bytes = f'"conversation_id":"{conversation}"'.encode()
    deadline = time.monotonic() + 30
    while created < len(streams) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    log(f"  conversation.created reached {created} streams")
    await quiet()

    accepted: dict[int, float] = {}
    cpu_before, mine_before = cpu_s(pid), time.process_time()
    started = time.perf_counter()
    for i in range(FANOUT_MESSAGES):
        await asyncio.sleep(max(0.0, started + i * FANOUT_SPACING_S - time.perf_counter()))
        r = await client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"content": f"to everyone {i}"},
            headers=sender.headers,
        )
        assert r.status_code == 201, r.text
        accepted[int(r.json()["seq"])] = time.perf_counter()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(
        arrivals.get(s, [0])[0] < len(streams) for s in accepted
    ):
        await asyncio.sleep(0.1)
    cpu = cpu_s(pid) - cpu_before
    took = time.perf_counter() - started
    mine = time.process_time() - mine_before
    # every event the gateway wrote to a stream in the window: the messages, and those of the
    # group's notifications that came in already (pushed to the members too)
    pushes = sum(arrivals.get(s, [0])[0] for s in accepted) + notified
    log(
        f"  CPU over {took:.1f} s: the gateway {cpu:.1f} s ({100 * cpu / took:.0f}% of a core), "
        f"this client {mine:.1f} s ({100 * mine / took:.0f}%); {pushes} events pushed"
    )
    open_now = sum(1 for s in streams if s.open)
    complete = {s: t for s, t in accepted.items() if arrivals.get(s, [0])[0] >= len(streams)}
    latencies = [(arrivals[s][2] - t) * 1000 for s, t in complete.items()]
    firsts = [(arrivals[s][1] - t) * 1000 for s, t in complete.items()]
    log(f"  first stream (ms): {' '.join(f'{v:.0f}' for v in firsts)}")
    log(f"  last stream (ms):  {' '.join(f'{v:.0f}' for v in latencies)}")
    reached = {s: arrivals.get(s, [0])[0] for s in accepted}
    log(
        f"  complete for {len(latencies)}/{len(accepted)} messages; streams reached: "
        f"min {min(reached.values())}, {open_now} still open"
    )
    # each message makes 999 notifications (notifications-api, one command each), pushed to
    # the members too: wait for them (bounded), then for the projectors, then tidy up
    wanted = (len(streams) - 1) * len(accepted)
    deadline = time.monotonic() + NOTIFICATIONS_WAIT_S
    while notified < wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    notifications_s = (last_notified - started) if notified >= wanted else float("nan")
    log(
        f"  notification.created of the group on the streams: {notified} of {wanted}"
        + (f", the last {notifications_s:.1f} s after the first send" if notified >= wanted else "")
    )
    if await projected(PROJECTED_WAIT_S):
        deleted = await drop_group_documents([conversation])
        log(f"  the group's read-model documents deleted: {deleted}")
    else:
        log(f"  projectors still busy after {PROJECTED_WAIT_S:.0f} s: conversation {conversation}")
        log("  keeps its documents (drop_group_documents() removes them later)")
    for stream in streams:
        stream.close()
    left = await wait_connections_below(client, baseline + 10, 60)
    log(f"  closed: the replica's gauge is {left:.0f} (before: {baseline:.0f})")
    return {
        "realtime.fanout_1000.p50_ms": round(percentile(latencies, 50), 1),
        "realtime.fanout_1000.p99_ms": round(percentile(latencies, 99), 1),
        "realtime.fanout_1000.first_p50_ms": round(percentile(firsts, 50), 1),
        "realtime.fanout_1000.messages": len(latencies),
        "realtime.fanout_1000.streams": len(streams),
        "realtime.fanout_1000.notifications_s": round(notifications_s, 1),
        # the gateway's CPU per event written to a stream, at a fan-out of 1,000 (its
        # per-message work, the Kafka record and the membership lookup, is shared by them)
        "realtime.fanout_1000.gateway_cpu_ms_per_push": round(1000 * cpu / max(pushes, 1), 4),
    }


PARTS = ("deliver", "resume", "idle", "fanout")


async def run(parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    figures: dict[str, Any] = {}
    minter = Minter()
    async with httpx.AsyncClient(base_url=gateway(), timeout=10) as client:
        sender = reader = None
        if "deliver" in parts or "resume" in parts:
            # tokens live 5 minutes: deliver and resume take well under that together
            sender = await sign_up(client, "rt sender")
            reader = await sign_up(client, "rt reader")
        for part in PARTS:
            if part not in parts:
                continue
            await quiet()
            started = time.monotonic()
            if part == "deliver":
                assert sender is not None and reader is not None
                figures.update(await deliver(client, sender, reader))
            elif part == "resume":
                assert sender is not None and reader is not None
                figures.update(await resume(client, sender, reader))
            elif part == "idle":
                figures.update(await idle(client, minter))
            else:
                figures.update(await fanout(client, minter))
            log(f"{part} took {time.monotonic() - started:.0f} s")
    return figures


if __name__ == "__main__":
    chosen = tuple(sys.argv[1:]) or PARTS
    print(json.dumps(asyncio.run(run(chosen)), indent=2))
