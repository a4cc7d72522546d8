"""Query gateway GET-by-id under 50 concurrent connections (wrk, a separate process, loopback)
against the running local cluster's gateway, and FastAPI's hello world served the same way
(one uvicorn process) as the anchor."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from parley_testing.accounts import Account, sign_up

from bench.quiet import wait_until_quiet

CONNECTIONS = 50
SECONDS = 8
HERE = Path(__file__).resolve().parent


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is missing: apt-get install wrk")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "/usr/bin/wrk"


WARM_UP_S = 2


def wrk(url: str, *headers: str) -> tuple[float, float]:
    """(requests per second, p99 in ms) of one wrk run, after a discarded warm-up run (the
    first requests of a fresh token and document fill the server's caches); fails on any
    non-2xx response."""
    extra = [arg for header in headers for arg in ("-H", header)]
    warm = [ensure_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{WARM_UP_S}s", *extra, url]
    subprocess.run(warm, check=True, capture_output=True)
    out = subprocess.run(
        [ensure_wrk(), "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", *extra, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_url() -> str:
    port = os.environ.get("PARLEY_SERVICE_PORT_BASE", "8100")  # the gateway itself, not nginx
    return f"http://127.0.0.1:{port}"


async def signed_in_user() -> Account:
    """A real account (register, mailed code, verify, login through nginx): the gateway
    verifies its access token on every request, as in production."""
    port = os.environ.get("PARLEY_GATEWAY_PORT", "8080")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        return await sign_up(client, "bench")


def hello_figures() -> tuple[float, float]:
    port = free_port()
    hello = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.hello_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=HERE.parent,
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # until it answers (a loaded 2-core box can take a few seconds)
            try:
                httpx.get(f"http://127.0.0.1:{port}/hello/x", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return wrk(f"http://127.0.0.1:{port}/hello/x")
    finally:
        hello.terminate()
        hello.wait(10)


async def run() -> dict[str, Any]:
    account = await signed_in_user()
    # the sign-up's own aftermath (projectors, the saga's last replies, its mail) is not
    # the gateway's: start on a quiet box
    await asyncio.to_thread(wait_until_quiet)
    url = f"{gateway_url()}/v1/users/{account.user_id}"
    auth = f"Authorization: Bearer {account.access_token}"
    rps, p99 = await asyncio.to_thread(wrk, url, auth)
    hello_rps, hello_p99 = await asyncio.to_thread(hello_figures)
    return {
        "query.get_by_id.rps": round(rps, 1),
        "query.get_by_id.p99_ms": round(p99, 2),
        "query.hello.rps": round(hello_rps, 1),
        "query.hello.p99_ms": round(hello_p99, 2),
        "query.vs_hello.ratio": round(rps / hello_rps, 3),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run()), indent=2))
