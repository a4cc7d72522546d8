"""The local cluster's FerretDB wrapper as a throwaway process for the tests that check it:
the binary `make up` builds (built into a temp directory when absent), started on a free port
with a temp SQLite directory, so nothing shared is touched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from deploy_workspace import ROOT
from pymongo import MongoClient

sys.path.insert(0, str(ROOT / "deploy" / "local"))
from install import FERRETDB_SOURCE, ferretdb_binary, go_build
from settings import Settings

Client = MongoClient[dict[str, Any]]


def built_binary(scratch: Path) -> Path:
    """The cluster's build of the wrapper for the current source, else a fresh one in scratch
    (with the same patched dependencies: install.go_build)."""
    built: Path = ferretdb_binary(Settings.from_env(dict(os.environ)))
    if built.exists():
        return built
    target = scratch / "ferretdb"
    go_build(FERRETDB_SOURCE, ".", target)
    return target


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def wrapper(
    binary: Path, data: Path, *flags: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Client, subprocess.Popen[bytes], str]]:
    """A wrapper process on a free port; yields a client, the process and its MongoDB URL
    (for clients of its own, e.g. asynchronous ones). Fails the
    test if the wrapper logged an error (the index goroutine logs its failures at ERROR)."""
    port = free_port()
    log = data.parent / f"{data.name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                str(binary),
                "-listen-addr",
                f"127.0.0.1:{port}",
                "-sqlite-dir",
                str(data),
                "-log-level",
                "info",
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            # the wrapper's defaults, not whatever FERRETDB_* the caller's shell has
            env={
                **{k: v for k, v in os.environ.items() if "FERRETDB_" not in k},
                **(env or {}),
            },
        )
    url = f"mongodb://127.0.0.1:{port}/"
    # a wedged store fails the test (NetworkTimeout) instead of hanging it
    client = Client(url, serverSelectionTimeoutMS=10_000, socketTimeoutMS=60_000)
    try:
        client.admin.command("ping")
        yield client, process, url
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a wedged store may not stop gracefully
                process.kill()
                process.wait(timeout=10)
    errors = [line for line in log.read_text().splitlines() if "level=ERROR" in line]
    assert not errors, errors
