"""Another team's afternoon, end to end: a fresh virtualenv with nothing but the example consumer
(examples/consumer: parley-events and aiokafka), run against the cluster's Kafka, decodes and
validates one event of every ce_type present on the four public topics, strictly (no unknown
type, no unknown field, no invalid record). The e2e suite has produced those events; the
types are listed from the topics first, so a type that appears later is covered then too."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from parley_messaging.access import OTHER_TEAMS
from parley_messaging.security import kafka_security
from parley_testing.kafka_access import principal_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "consumer"
TOPICS = ("auth.events", "users.events", "chat.events", "notifications.events")
# what the example may bring into its environment: itself, the contract and aiokafka, and
# what those two depend on; nothing else of Parley, no faststream, no platform packages
ALLOWED = {
    "parley-example-consumer",
    "parley-events",
    "aiokafka",
    "async-timeout",
    "packaging",
    "typing-extensions",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
}


def uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    python = sys.executable if importlib.util.find_spec("uv") else "python3"
    return [python, "-m", "uv"]


def clean_env() -> dict[str, str]:
    """The environment without the workspace's virtualenv (the example has its own)."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_INTERNAL__PARENT_INTERPRETER"}
    return {k: v for k, v in os.environ.items() if k not in drop}


async def types_on_topics(bootstrap: str) -> set[str]:
    """Every ce_type on the four topics, from the beginning up to their end as of now."""
    consumer = AIOKafkaConsumer(
        *TOPICS,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        **kafka_security(),
    )
    await consumer.start()
    found: set[str] = set()
    try:
        async with asyncio.timeout(30):
            while not consumer.assignment():
                await asyncio.sleep(0.05)
        parts: list[TopicPartition] = list(consumer.assignment())
        assert {tp.topic for tp in parts} == set(TOPICS)
        ends = await consumer.end_offsets(parts)
        pending = set(parts)
        async with asyncio.timeout(120):
            while pending:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batch.values():
                    for record in records:
                        headers = dict(record.headers)
                        if headers.get("ce_type"):
                            found.add(headers["ce_type"].decode())
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return found


@pytest.fixture(scope="module")
def example_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the example installed (uv's cache makes it a second or two)."""
    venv = tmp_path_factory.mktemp("consumer") / "venv"
    env = clean_env()
    subprocess.run([*uv(), "venv", "--quiet", str(venv)], check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        # the contract is built from this checkout: never a wheel cached from an older one
        [
            *uv(),
            "pip",
            "install",
            "--quiet",
            "--refresh-package",
            "parley-events",
            "--python",
            str(python),
            str(EXAMPLE),
        ],
        check=True,
        env=env,
        timeout=240,
    )
    return python


def test_the_example_installs_alone(example_python: Path) -> None:
    listed = subprocess.run(
        [*uv(), "pip", "list", "--python", str(example_python), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert {"parley-events", "parley-example-consumer", "aiokafka", "pydantic"} <= installed
    assert installed <= ALLOWED, f"more than the contract and aiokafka: {installed - ALLOWED}"
    probe = subprocess.run(
        [str(example_python), "-c", "import parley_messaging"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr


async def test_the_example_decodes_every_type_on_the_topics(
    example_python: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    present = await types_on_topics(kafka_bootstrap)
    assert present, "the event topics are empty: run the e2e suite (or use the cluster) first"
    summary_file = tmp_path / "summary.json"
    command = [
        str(example_python),
        "-m",
        "parley_example_consumer",
        "--bootstrap",
        kafka_bootstrap,
        "--types",
        ",".join(sorted(present)),
        "--all-seen",
        "--strict",
        "--timeout",
        "200",
        "--summary-json",
        str(summary_file),
    ]
    run = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # as another team: the read-only principal Parley gives them, not this test's admin
        env={**clean_env(), **principal_env(OTHER_TEAMS)},
    )
    out, err = await asyncio.wait_for(run.communicate(), timeout=260)
    report = f"exit {run.returncode}\n{out.decode()}\n{err.decode()[-3000:]}"
    assert run.returncode == 0, report
    summary = json.loads(summary_file.read_text())
    assert summary["invalid"] == 0, report
    assert summary["unknown_types"] == {}, report
    assert summary["unknown_fields"] == {}, report
    assert summary["reached_end"], report
    not_decoded = sorted(t for t in present if summary["decoded"].get(t, 0) < 1)
    assert not not_decoded, report
    assert summary["records"] >= len(present)
    # personal data arrives sealed: the example saw pe1. values where the contract says so
    sealed = summary["sealed_fields"]
    if "parley.auth.UserRegistered.v1" in present:
        assert set(sealed["parley.auth.UserRegistered.v1"]) == {"email", "name"}, report
