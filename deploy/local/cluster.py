"""The local Parley cluster without Docker: install, start, check, stop.

Everything runs under supervisord (a real process manager: restart on crash, one log file per
process under .local/logs). This script only installs what is missing, writes the
configuration, asks supervisord to start or stop things and waits for health.

    python deploy/local/cluster.py up|down|ps|kill NAME|logs NAME|clean|install|endpoints

Every address can be moved with an environment variable (see Settings and the README).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from health import port_open, wait_healthy, wait_infrastructure, wait_services
from install import ensure_kafka_jars, init_kafka, init_postgres, install
from parley_messaging.access import SUPER_USERS
from render import kafka_properties, nginx_conf, programs, supervisord_conf
from services_catalog import kafka_passwords, prepare_services, service_programs
from settings import Settings, log, run


def supervisorctl(s: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ctl = str(Path(sys.executable).parent / "supervisorctl")
    return subprocess.run(
        [ctl, "-c", str(s.state / "supervisord.conf"), *args],
        check=check,
        text=True,
        capture_output=True,
    )


def supervisord_running(s: Settings) -> bool:
    if not s.sock.exists():
        return False
    return supervisorctl(s, "pid", check=False).stdout.strip().isdigit()


def up(s: Settings) -> None:
    started = time.monotonic()
    for sub in ("logs", "mail", "ferretdb", "bin"):
        (s.state / sub).mkdir(parents=True, exist_ok=True)
    s.remember_replicas()
    install(s)
    kafka_libs = ensure_kafka_jars(s)
    init_postgres(s)
    passwords = kafka_passwords(s)
    supers = {name: passwords[name] for name in SUPER_USERS}
    props = kafka_properties(s)
    if supervisord_running(s):
        migrate_kafka_to_sasl(s, supers)  # before `update` restarts the broker on `props`
    init_kafka(s, kafka_libs, props, supers)
    nginx_conf(s)
    supervisord_conf(s, programs(s, kafka_libs))
    if supervisord_running(s):
        # picks up added/changed programs, and removes replicas a smaller REPLICAS dropped
        supervisorctl(s, "update")
        supervisorctl(s, "start", "all", check=False)
        supervisorctl(s, "signal", "HUP", "nginx", check=False)  # re-read generated routes
    else:
        check_ports_free(s)
        run(
            [
                str(Path(sys.executable).parent / "supervisord"),
                "-c",
                str(s.state / "supervisord.conf"),
            ]
        )
    wait_infrastructure(s)
    prepare_services(s)  # databases and migrations before any service starts
    names = [p.program.name for p in service_programs(s)]
    if names:
        supervisorctl(s, "start", *names, check=False)
    wait_services(s)
    log(f"healthy in {time.monotonic() - started:.1f}s ({s.replicas} replica(s) per process)")
    endpoints(s)


def migrate_kafka_to_sasl(s: Settings, supers: dict[str, str]) -> None:
    """A cluster initialised before Kafka required authentication: while its broker still
    serves PLAINTEXT without an authorizer, give the super users their SCRAM credentials
    (the broker needs its own to start on the new configuration). Nothing to do on a broker
    already secured (or stopped): a plaintext client cannot even connect to it."""
    from aiokafka.admin import AIOKafkaAdminClient
    from parley_messaging.access import provision

    async def plaintext() -> bool:
        # a secured broker closes the connection: expected, not worth aiokafka's error line
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
        except Exception:
            return False
        await admin.close()
        return True

    level = logging.getLogger("aiokafka").level
    try:
        still_plaintext = port_open(s.host, s.kafka_port) and asyncio.run(plaintext())
    finally:
        logging.getLogger("aiokafka").setLevel(level)
    if still_plaintext:
        log("Kafka still runs without authentication: adding the super users' SCRAM credentials")
        asyncio.run(provision(s.kafka_bootstrap, supers, declared=[], acls=False))


def check_ports_free(s: Settings) -> None:
    taken = [
        f"{name}:{port}"
        for name, port in (
            ("postgres", s.pg_port),
            ("kafka", s.kafka_port),
            ("ferretdb", s.mongo_port),
            ("seaweedfs", s.seaweedfs_port),
            ("s3", s.s3_port),
            ("gateway", s.gateway_port),
            ("smtp", s.smtp_port),
        )
        if port_open(s.host, port)
    ]
    if taken:
        sys.exit(
            f"[parley] ports already in use by something else: {', '.join(taken)}"
            " (set PARLEY_*_PORT to move ours)"
        )


def endpoints(s: Settings) -> None:
    print(f"""
  API gateway     {s.gateway_url}            (GET /healthz)
  PostgreSQL      {s.pg_dsn}
  Kafka           {s.kafka_bootstrap}
  Mongo wire      {s.mongo_url}  (FerretDB 1.24, SQLite backend)
  S3              {s.s3_url}  (SeaweedFS, bucket {s.s3_bucket}; keys: {s.state}/s3-credentials)
  SMTP sink       {s.host}:{s.smtp_port}  -> {s.state / "mail"}/*.eml
  logs            {s.logs}/<process>.log   (make logs S=<process>)
""")


def down(s: Settings) -> None:
    if not supervisord_running(s):
        log("not running")
        return
    supervisorctl(s, "shutdown")
    ports = [
        s.pg_port,
        s.kafka_port,
        s.kafka_controller_port,
        s.mongo_port,
        s.s3_port,
        s.seaweedfs_port,
        s.gateway_port,
        s.smtp_port,
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        s.sock.exists() or any(port_open(s.host, p) for p in ports)
    ):
        time.sleep(0.3)
    log("stopped (data kept in .local/)")


def ps(s: Settings) -> None:
    if not supervisord_running(s):
        log("not running")
        return
    out = supervisorctl(s, "status", check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        name, state = parts[0], parts[1]
        pid = parts[3].rstrip(",") if len(parts) > 3 and parts[2] == "pid" else "-"
        print(f"{name:<26} {state:<10} {pid}")


def kill(s: Settings, name: str) -> None:
    pid = supervisorctl(s, "pid", name, check=False).stdout.strip()
    if not pid.isdigit() or pid == "0":
        sys.exit(f"[parley] {name} is not running (make ps)")
    os.kill(int(pid), signal.SIGKILL)
    log(f"SIGKILL sent to {name} (pid {pid}); supervisord restarts it")


def pause(s: Settings, name: str) -> None:
    """Stop one process until `resume` (supervisord does not restart a stopped process)."""
    supervisorctl(s, "stop", name)
    log(f"{name} stopped; `make resume S={name}` starts it again")


def resume(s: Settings, name: str) -> None:
    supervisorctl(s, "start", name)
    log(f"{name} started")


def logs(s: Settings, name: str, lines: int) -> None:
    path = s.logs / f"{name}.log"
    if not path.exists():
        sys.exit(f"[parley] no log for {name}: {sorted(p.stem for p in s.logs.glob('*.log'))}")
    run(["tail", "-n", str(lines), str(path)])


def clean(s: Settings) -> None:
    down(s)
    shutil.rmtree(s.state, ignore_errors=True)
    log(f"removed {s.state}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=[
            "up",
            "down",
            "ps",
            "kill",
            "pause",
            "resume",
            "logs",
            "clean",
            "install",
            "endpoints",
            "wait",
        ],
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument("-n", type=int, default=100, help="log lines")
    args = parser.parse_args()
    # aiokafka logs every retry while a fresh broker elects leaders; only errors matter here
    logging.basicConfig(level=logging.ERROR)
    s = Settings.from_env(dict(os.environ))
    if args.command in ("kill", "pause", "resume", "logs") and not args.name:
        sys.exit(f"usage: make {args.command} S=<process name>")
    actions: dict[str, Callable[[], None]] = {
        "up": lambda: up(s),
        "down": lambda: down(s),
        "ps": lambda: ps(s),
        "kill": lambda: kill(s, args.name),
        "pause": lambda: pause(s, args.name),
        "resume": lambda: resume(s, args.name),
        "logs": lambda: logs(s, args.name, args.n),
        "clean": lambda: clean(s),
        "install": lambda: install(s),
        "endpoints": lambda: endpoints(s),
        "wait": lambda: wait_healthy(s),
    }
    actions[args.command]()


if __name__ == "__main__":
    main()
