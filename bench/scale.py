"""Scale-out (issue 22): what replicas cost and whether they conflict.

- `scale.group_send.conflict_ratio`: 32 senders write one group conversation at once through
  nginx while two chat-api replicas run; the share of sends answered 409 (target 0: nginx
  hashes the conversation id onto one replica, whose per-conversation queue serialises them).
  `scale.group_send.direct_conflict_ratio` is the same load sent straight to the replicas'
  ports in turn (no affinity), so the two figures show what the hash is worth.
- `scale.cpu_ms_per_message`: the whole pipeline's CPU per message sent and projected: the CPU
  time (user + system, /proc) of every process supervisord runs (Parley's and the
  infrastructure's: PostgreSQL with its backends, Kafka, FerretDB, nginx, ...) over a run of
  `MESSAGES` sends, from the first send until the read model shows the last message plus
  `SETTLE_S`, divided by the messages. `...net_ms` subtracts each process's idle burn
  (measured over 10 s just before; `scale.idle_cpu_ms_per_s` is their sum) over the same time;
  `scale.cpu_ms_per_message.<process>` is that net figure by process (replicas summed under
  their first's name). `scale.group_send.busiest_replica_share`: the share of the gateway
  run's sends the busiest chat-api replica served (1.0: the hash kept them on one).
  `scale.bytes_per_message.*`: PostgreSQL WAL, Kafka's chat.events log and FerretDB's files
  grown per message over the same run. A process whose CPU over the run stayed below its idle
  rate counts 0 (idle burn is noisy: heartbeats, polls, garbage collection).

Needs a cluster started with `make up REPLICAS=2` (chat-api-2 answering); with one replica
the stage says so and measures nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from parley_testing.accounts import Account, sign_up

from bench.common import server_dsn
from bench.quiet import wait_until_quiet

KEY_PREFIX = "scale."  # every figure of this stage (run.py replaces them all on a rerun)
SENDERS = 32
SENDS_EACH = 20  # the conflict run: 640 sends
MESSAGES = 1920  # the CPU run: 60 per sender
SETTLE_S = 5.0  # after the read model shows the last message: notifications, search, pushes
HZ = os.sysconf("SC_CLK_TCK")


def state_dir() -> Path:
    root = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("PARLEY_STATE_DIR", root / ".local")).resolve()


def host() -> str:
    return os.environ.get("PARLEY_HOST", "127.0.0.1")


def gateway() -> str:
    return f"http://{host()}:{os.environ.get('PARLEY_GATEWAY_PORT', '8080')}"


def chat_replicas() -> list[str]:
    """The chat-api replicas' own addresses (base + 3, + 100 per further replica) that
    answer /readyz."""
    base = int(os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100")) + 3
    found = []
    for k in range(9):
        url = f"http://{host()}:{base + 100 * k}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                found.append(url)
                continue
        except httpx.HTTPError:
            pass
        break
    return found


# -- CPU of the cluster's processes (/proc) -------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree[ppid].append(int(entry.name))
    return tree


def _ticks(pid: int) -> int:
    """utime + stime of `pid`, and of its children that ended and were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # after the ")": state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def _programs() -> dict[int, str]:
    """supervisord's children: pid -> program name (replicas under their first's name)."""
    import subprocess
    import sys

    ctl = str(Path(sys.executable).parent / "supervisorctl")
    conf = str(state_dir() / "supervisord.conf")
    out = subprocess.run([ctl, "-c", conf, "status"], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == "pid":
            name = parts[0]
            if name[-2] == "-" and name[-1].isdigit():
                name = name[:-2]
            found[int(parts[3].rstrip(","))] = name
    return found


def cpu_ms_by_program() -> dict[str, float]:
    """CPU milliseconds so far of each program's whole process tree."""
    tree = _children()
    totals: dict[str, float] = defaultdict(float)
    for pid, name in _programs().items():
        todo = [pid]
        while todo:
            current = todo.pop()
            totals[name] += _ticks(current) * 1000 / HZ
            todo += tree.get(current, [])
    return totals


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


# -- bytes written ---------------------------------------------------------------------------


def _size(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if path.is_file():
                total += path.stat().st_size
    return total


def kafka_chat_bytes() -> int:
    return _size(list((state_dir() / "kafka" / "data").glob("chat.events-*")))


def ferretdb_bytes() -> int:
    return _size([state_dir() / "ferretdb"])


async def wal_lsn() -> int:
    conn = await asyncpg.connect(server_dsn())
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


# -- the load ----------------------------------------------------------------------------------


async def group(client: httpx.AsyncClient) -> tuple[list[Account], str]:
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> Account:
        async with gate:
            return await sign_up(client, f"scale sender {i}")

    people = await asyncio.gather(*(one(i) for i in range(SENDERS)))
    created = await client.post(
        "/v1/conversations",
        json={"participant_ids": [p.user_id for p in people[1:]], "title": "scale"},
        headers=people[0].headers,
    )
    assert created.status_code == 201, created.text
    return list(people), str(created.json()["id"])


async def send_all(
    people: list[Account], conversation: str, each: int, targets: list[str]
) -> tuple[dict[int, int], int]:
    """Every person sends `each` messages back to back, all at once; each send goes to
    targets[i % len(targets)] (the gateway, or the replicas in turn). -> statuses, top seq."""
    statuses: dict[int, int] = defaultdict(int)
    top = 0
    clients = [httpx.AsyncClient(base_url=t, timeout=30) for t in targets]

    async def sender(person: Account) -> None:
        nonlocal top
        for i in range(each):
            client = clients[i % len(clients)]
            r = await client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"content": f"scale {i}", "client_message_id": str(uuid.uuid4())},
                headers=person.headers,
            )
            statuses[r.status_code] += 1
            if r.status_code == 201:
                top = max(top, int(r.json()["seq"]))

    try:
        await asyncio.gather(*(sender(p) for p in people))
    finally:
        for c in clients:
            await c.aclose()
    return dict(statuses), top


async def projected(
    client: httpx.AsyncClient, reader: Account, conversation: str, seq: int
) -> None:
    """Until the reader's conversation list shows message `seq` (the read model has it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = await client.get("/v1/conversations", headers=reader.headers)
        if r.status_code == 200:
            for item in r.json()["items"]:
                last = item.get("last_message") or {}
                if item["id"] == conversation and int(last.get("seq", 0)) >= seq:
                    return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"message {seq} of {conversation} never reached the read model")


SEND_ROUTE = 'route="/v1/conversations/{conversation_id}/messages"'


def sends_served(replica: str) -> float:
    """How many sends replica `replica` has answered (its parley_http request counter)."""
    text = httpx.get(f"{replica}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("parley_http_request_seconds_count{")
        and 'method="POST"' in line
        and SEND_ROUTE in line
    )


def ratio(statuses: dict[int, int]) -> float:
    return round(statuses.get(409, 0) / max(1, sum(statuses.values())), 4)


async def run() -> dict[str, Any]:
    replicas = chat_replicas()
    if len(replicas) < 2:
        print(
            f"[bench] skip bench.scale: {len(replicas)} chat-api replica(s) answer; it needs a"
            " cluster started with `make up REPLICAS=2`",
            flush=True,
        )
        return {}
    figures: dict[str, Any] = {"scale.chat_api_replicas": len(replicas)}
    async with httpx.AsyncClient(base_url=gateway(), timeout=30) as client:
        people, conversation = await group(client)
        # affinity: through nginx; then without it, each sender alternating replicas
        served = [sends_served(r) for r in replicas]
        via_gateway, _ = await send_all(people, conversation, SENDS_EACH, [gateway()])
        served = [sends_served(r) - n for r, n in zip(replicas, served, strict=True)]
        # 1.0: every send of the conversation reached one replica (the hash held)
        figures["scale.group_send.busiest_replica_share"] = round(
            max(served) / max(1.0, sum(served)), 3
        )
        direct, _ = await send_all(people, conversation, SENDS_EACH, replicas)
        figures["scale.group_send.sends"] = sum(via_gateway.values())
        figures["scale.group_send.conflict_ratio"] = ratio(via_gateway)
        figures["scale.group_send.errors"] = sum(
            n for code, n in via_gateway.items() if code not in (201, 409)
        )
        figures["scale.group_send.direct_conflict_ratio"] = ratio(direct)

        # CPU per message: each process's idle burn first, then the run until projected,
        # plus a settle for what follows the read model (notifications, search, pushes)
        wait_until_quiet()
        idle_s = 10.0
        before = cpu_ms_by_program()
        await asyncio.sleep(idle_s)
        idle = {k: v / idle_s for k, v in _diff(cpu_ms_by_program(), before).items()}
        before, wal0 = cpu_ms_by_program(), await wal_lsn()
        kafka0, ferret0 = kafka_chat_bytes(), ferretdb_bytes()
        started = time.monotonic()
        statuses, top = await send_all(people, conversation, MESSAGES // SENDERS, [gateway()])
        sent_s = time.monotonic() - started
        await projected(client, people[-1], conversation, top)
        projected_s = time.monotonic() - started
        await asyncio.sleep(SETTLE_S)
        elapsed = time.monotonic() - started
        spent = _diff(cpu_ms_by_program(), before)
        wal1, kafka1, ferret1 = await wal_lsn(), kafka_chat_bytes(), ferretdb_bytes()
    sent = statuses.get(201, 0)
    if not sent:
        raise RuntimeError(f"no send accepted: {statuses}")
    total = sum(spent.values())
    net = {k: max(0.0, ms - idle.get(k, 0.0) * elapsed) for k, ms in spent.items()}
    figures.update(
        {
            "scale.messages": sent,
            "scale.send_s": round(sent_s, 1),
            "scale.projected_s": round(projected_s, 1),
            "scale.run_s": round(elapsed, 1),
            "scale.idle_cpu_ms_per_s": round(sum(idle.values()), 1),
            "scale.cpu_ms_per_message": round(total / sent, 3),
            "scale.cpu_ms_per_message.net_ms": round(sum(net.values()) / sent, 3),
            "scale.bytes_per_message.postgres_wal": round((wal1 - wal0) / sent),
            "scale.bytes_per_message.kafka_chat_events": round((kafka1 - kafka0) / sent),
            "scale.bytes_per_message.ferretdb": round((ferret1 - ferret0) / sent),
        }
    )
    for name, ms in sorted(net.items()):
        if ms / sent >= 0.005:
            figures[f"scale.cpu_ms_per_message.{name}"] = round(ms / sent, 3)
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
