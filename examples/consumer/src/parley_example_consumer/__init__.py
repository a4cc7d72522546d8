"""Read Parley's public event topics the way another team would: plain aiokafka and the contract
package `parley-events`, nothing else of Parley.

    parley-example-consumer --bootstrap 127.0.0.1:9092 --all-seen
    parley-example-consumer --types parley.chat.MessageSent.v1,parley.users.UserCreated.v1

Parley's brokers require authentication: the consumer signs in with SASL/SCRAM-SHA-512 as the
read-only principal Parley gives other teams (`other-teams`: READ on the four event topics and
on consumer groups prefixed `ext-`; writing anywhere is refused), named by the environment
variables PARLEY_KAFKA_USERNAME and PARLEY_KAFKA_PASSWORD (PARLEY_KAFKA_SECURITY_PROTOCOL:
SASL_PLAINTEXT by default, SASL_SSL with PARLEY_KAFKA_CA_FILE where the brokers use TLS).
On the local cluster the password is in `.local/kafka/users/other-teams`.

Reads `auth.events`, `users.events`, `chat.events` and `notifications.events` from the
beginning without a consumer group (nothing is committed), decodes and validates every record
with `parley_contracts.decode`, and prints what it read. Exit status:

- 0: every type asked for was decoded at least once (`--types`: as soon as the last one is;
  `--all-seen`: every type found up to the topics' end when it started), no record was invalid;
- 1: the timeout passed, or the topics ended, before every type asked for was decoded;
- 2: a record was not a valid Parley event (an invalid envelope or data; with `--strict` also an
  unknown `ce_type` or an unknown field), or the arguments were wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.helpers import create_ssl_context
from parley_contracts import DecodeError, UnknownEventType, all_events, decode

TOPICS = ("auth.events", "users.events", "chat.events", "notifications.events")


@dataclass
class Summary:
    records: int = 0
    decoded: Counter[str] = field(default_factory=Counter)
    sealed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unknown_fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unknown_types: Counter[str] = field(default_factory=Counter)
    invalid: list[str] = field(default_factory=list)  # where and why, the first 20
    invalid_count: int = 0
    wanted: set[str] = field(default_factory=set)
    reached_end: bool = False
    seconds: float = 0.0

    def note_invalid(self, where: str, error: Exception) -> None:
        self.invalid_count += 1
        if len(self.invalid) < 20:
            self.invalid.append(f"{where}: {type(error).__name__}: {error}")

    @property
    def missing(self) -> list[str]:
        return sorted(t for t in self.wanted if not self.decoded[t])

    def as_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "decoded": dict(sorted(self.decoded.items())),
            "sealed_fields": {t: sorted(f) for t, f in sorted(self.sealed.items())},
            "unknown_fields": {t: sorted(f) for t, f in sorted(self.unknown_fields.items())},
            "unknown_types": dict(sorted(self.unknown_types.items())),
            "invalid": self.invalid_count,
            "invalid_examples": self.invalid,
            "wanted": sorted(self.wanted),
            "missing": self.missing,
            "reached_end": self.reached_end,
            "seconds": round(self.seconds, 3),
        }


def credentials(env: Mapping[str, str]) -> dict[str, Any]:
    """aiokafka's options for the principal in the environment (none: PLAINTEXT)."""
    username = env.get("PARLEY_KAFKA_USERNAME", "")
    if not username:
        return {}
    protocol = env.get("PARLEY_KAFKA_SECURITY_PROTOCOL") or "SASL_PLAINTEXT"
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": env.get("PARLEY_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512",
        "sasl_plain_username": username,
        "sasl_plain_password": env.get("PARLEY_KAFKA_PASSWORD", ""),
    }
    if protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cafile=env.get("PARLEY_KAFKA_CA_FILE"))
    return options


async def consume(
    bootstrap: str,
    types: set[str],
    all_seen: bool,
    seconds: float,
    strict: bool,
    topics: tuple[str, ...] = TOPICS,
) -> Summary:
    summary = Summary(wanted=set(types))
    started = time.monotonic()
    deadline = started + seconds
    # no group_id: every partition of the topics, from the beginning, nothing committed
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **credentials(os.environ),
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            if time.monotonic() > deadline:
                return summary
            await asyncio.sleep(0.05)
        partitions: list[TopicPartition] = sorted(
            consumer.assignment(), key=lambda tp: (tp.topic, tp.partition)
        )
        ends = await consumer.end_offsets(partitions)  # "the topics' end" as of now
        at_end: set[TopicPartition] = set()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    read(record, summary, strict)
            for tp in partitions:
                if tp not in at_end and await consumer.position(tp) >= ends[tp]:
                    at_end.add(tp)
            summary.reached_end = len(at_end) == len(partitions)
            if all_seen:
                if summary.reached_end:  # every type found up to the end is wanted
                    summary.wanted |= set(summary.decoded)
                    break
            elif not summary.missing:  # --types only: done at the last one, end or not
                break
    finally:
        await consumer.stop()
        summary.seconds = time.monotonic() - started
    return summary


def read(record: Any, summary: Summary, strict: bool) -> None:
    summary.records += 1
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    try:
        received = decode(record, strict=strict)
    except UnknownEventType as error:
        summary.unknown_types[error.envelope.type] += 1
        if strict:
            summary.note_invalid(where, error)
        return
    except DecodeError as error:
        summary.note_invalid(where, error)
        return
    summary.decoded[received.type] += 1
    summary.sealed[received.type].update(received.sealed)
    if received.unknown_fields:
        summary.unknown_fields[received.type].update(received.unknown_fields)


def report(summary: Summary, topics: tuple[str, ...], out: Any = sys.stdout) -> None:
    print(
        f"parley-events {version('parley-events')}: read {summary.records:,} records of "
        f"{', '.join(topics)} in {summary.seconds:.1f} s"
        + ("" if summary.reached_end else " (stopped before their end)"),
        file=out,
    )
    width = max([len(t) for t in summary.decoded] + [8])
    print(f"  {'ce_type':<{width}} {'decoded':>9}  sealed fields (pe1., unreadable here)", file=out)
    for type_, count in sorted(summary.decoded.items()):
        sealed = ", ".join(sorted(summary.sealed.get(type_, ()))) or "-"
        print(f"  {type_:<{width}} {count:>9,}  {sealed}", file=out)
    for type_, fields in sorted(summary.unknown_fields.items()):
        print(f"  {type_}: fields this parley-events does not know: {sorted(fields)}", file=out)
    for type_, count in sorted(summary.unknown_types.items()):
        print(f"  unknown ce_type {type_}: {count:,} (a newer parley-events knows it)", file=out)
    print(f"invalid records: {summary.invalid_count:,}", file=out)
    for line in summary.invalid:
        print(f"  {line}", file=out)
    if summary.wanted:
        missing = summary.missing
        state = "all decoded" if not missing else f"not decoded: {', '.join(missing)}"
        print(f"asked for {len(summary.wanted)} type(s): {state}", file=out)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="parley-example-consumer",
        description="Decode and validate Parley's public event topics with parley-events.",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument(
        "--types",
        default="",
        help="comma-separated ce_types that must each be decoded at least once",
    )
    parser.add_argument(
        "--all-seen",
        action="store_true",
        help="read to the topics' end and require every ce_type found there to decode",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an unknown ce_type or field is a failure (this package must match the producer)",
    )
    parser.add_argument("--topics", default=",".join(TOPICS), help=argparse.SUPPRESS)
    parser.add_argument("--summary-json", help="also write the summary as JSON to this file")
    args = parser.parse_args(argv)
    args.type_set = {t.strip() for t in args.types.split(",") if t.strip()}
    if not args.type_set and not args.all_seen:
        parser.error("give --types, --all-seen, or both")
    unknown = sorted(args.type_set - set(all_events()))
    if unknown:
        parser.error(f"this parley-events does not know {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    topics = tuple(t.strip() for t in args.topics.split(",") if t.strip())
    summary = asyncio.run(
        consume(args.bootstrap, args.type_set, args.all_seen, args.timeout, args.strict, topics)
    )
    report(summary, topics)
    if args.summary_json:
        with open(args.summary_json, "w") as out:
            json.dump(summary.as_json(), out, indent=2)
    if summary.invalid_count:
        return 2
    if summary.missing or (args.all_seen and not summary.reached_end) or not summary.wanted:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
