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
import functools
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from services_catalog import Program, service_programs  # noqa: E402

KAFKA_VERSION = "3.9.1"  # keep in step with deploy/local/kafka/pom.xml
APT_PACKAGES = {"postgres": "postgresql", "nginx": "nginx-light"}


@dataclass(frozen=True)
class Settings:
    """Addresses and sizes of the local cluster; `from_env` applies the PARLEY_* overrides."""

    host: str = "127.0.0.1"
    state: Path = ROOT / ".local"
    pg_port: int = 5432
    pg_user: str = "parley"
    pg_password: str = "parley"  # noqa: S105 - local development cluster on loopback only
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    mongo_port: int = 27017
    gateway_port: int = 8080
    smtp_port: int = 1025
    partitions: int = 6

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        def get(name: str, default: object) -> str:
            return env.get(name, str(default))

        d = cls()
        return cls(
            host=get("PARLEY_HOST", d.host),
            state=Path(get("PARLEY_STATE_DIR", d.state)).resolve(),
            pg_port=int(get("PARLEY_PG_PORT", d.pg_port)),
            pg_user=get("PARLEY_PG_USER", d.pg_user),
            pg_password=get("PARLEY_PG_PASSWORD", d.pg_password),
            kafka_port=int(get("PARLEY_KAFKA_PORT", d.kafka_port)),
            kafka_controller_port=int(get("PARLEY_KAFKA_CONTROLLER_PORT", d.kafka_controller_port)),
            kafka_heap=get("PARLEY_KAFKA_HEAP", d.kafka_heap),
            mongo_port=int(get("PARLEY_MONGO_PORT", d.mongo_port)),
            gateway_port=int(get("PARLEY_GATEWAY_PORT", d.gateway_port)),
            smtp_port=int(get("PARLEY_SMTP_PORT", d.smtp_port)),
            partitions=int(get("PARLEY_TOPIC_PARTITIONS", d.partitions)),
        )

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pg_data(self) -> Path:
        return self.state / "pg" / "data"

    @property
    def pg_dsn(self) -> str:
        auth = f"{self.pg_user}:{self.pg_password}"
        return f"postgresql://{auth}@{self.host}:{self.pg_port}/postgres"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{self.host}:{self.mongo_port}/"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def sock(self) -> Path:
        return self.state / "supervisor.sock"


def log(message: str) -> None:
    print(f"[parley] {message}", flush=True)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(cmd, check=True, text=True, **kwargs)
    return done


def is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------- install (idempotent, cached)


def pg_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return candidates[0].parent if candidates else None


def ensure_apt() -> None:
    missing = []
    if pg_bindir() is None:
        missing.append(APT_PACKAGES["postgres"])
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        missing.append(APT_PACKAGES["nginx"])
    if not missing:
        return
    if not is_root():
        sys.exit(
            f"missing Debian packages {missing}: run `sudo apt-get install -y {' '.join(missing)}`"
        )
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    # policy-rc.d 101 keeps Debian from starting its own postgres/nginx on our ports
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "-qq", *missing], env=env)
    finally:
        if created:
            policy.unlink()


def ensure_kafka_jars(s: Settings) -> Path:
    libs = s.state / "kafka" / f"libs-{KAFKA_VERSION}"
    if libs.exists() and any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        return libs
    log(f"resolving Kafka {KAFKA_VERSION} jars from Maven Central (cached in ~/.m2)")
    tmp = libs.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "kafka" / "pom.xml"),
            "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
    )
    tmp.rename(libs)
    return libs


def ensure_ferretdb(s: Settings) -> Path:
    binary = s.state / "bin" / "ferretdb"
    source = HERE / "ferretdb"
    newest = max(p.stat().st_mtime for p in source.iterdir())
    if binary.exists() and binary.stat().st_mtime >= newest:
        return binary
    log("building FerretDB 1.24 from the Go module proxy (cached in ~/go/pkg/mod)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=source)
    return binary


def install(s: Settings) -> None:
    ensure_apt()
    ensure_kafka_jars(s)
    ensure_ferretdb(s)


# ---------------------------------------------------------------- one-time state initialisation


def chown_to(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)


def init_postgres(s: Settings) -> None:
    if (s.pg_data / "PG_VERSION").exists():
        return
    bindir = pg_bindir()
    assert bindir is not None
    log(f"initialising PostgreSQL in {s.pg_data}")
    s.pg_data.parent.mkdir(parents=True, exist_ok=True)
    pwfile = s.pg_data.parent / "pwfile"
    pwfile.write_text(s.pg_password + "\n")
    cmd = [
        str(bindir / "initdb"),
        "-D",
        str(s.pg_data),
        "-U",
        s.pg_user,
        "--pwfile",
        str(pwfile),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
    ]
    if is_root():  # PostgreSQL refuses to run as root: the Debian package's postgres user owns it
        chown_to(s.pg_data.parent, "postgres")
        run(["runuser", "-u", "postgres", "--", *cmd], stdout=subprocess.DEVNULL)
    else:
        run(cmd, stdout=subprocess.DEVNULL)
    pwfile.unlink()


def kafka_properties(s: Settings) -> Path:
    path = s.state / "kafka" / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}",
                # explicit: transaction markers must not go to the controller listener
                "inter.broker.listener.name=PLAINTEXT",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={s.state / 'kafka' / 'data'}",
                f"num.partitions={s.partitions}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=-1",
                "",
            ]
        )
    )
    return path


def init_kafka(s: Settings, libs: Path, props: Path) -> None:
    data = s.state / "kafka" / "data"
    if (data / "meta.properties").exists():
        return
    log("formatting Kafka KRaft storage")
    classpath = f"{libs}/*"
    cluster_id = (
        run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    run(
        [
            "java",
            "-cp",
            classpath,
            f"-Dlog4j.configuration=file:{HERE / 'kafka' / 'log4j.properties'}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            "-g",
        ],
        stdout=subprocess.DEVNULL,
    )


def nginx_conf(s: Settings) -> Path:
    prefix = s.state / "nginx"
    for sub in ("temp", "logs"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    upstreams = "\n".join(
        f"upstream {name} {{ server {address}; keepalive 32; }}"
        for name, address in gateway_upstreams(s).items()
    )
    temp = prefix / "temp"
    conf.write_text(f"""# generated by deploy/local/cluster.py; routes: deploy/nginx/routes.conf
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {s.logs}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {s.logs}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 64k;
    {upstreams}
    server {{
        listen {s.host}:{s.gateway_port};
        include {ROOT / "deploy" / "nginx" / "routes.conf"};
    }}
}}
""")
    if is_root():  # workers run as nobody and must write their temp files
        chown_to(temp, "nobody")
    return conf


def gateway_upstreams(s: Settings) -> dict[str, str]:
    """Upstream name -> address for every HTTP service in the catalog."""
    return {p.upstream: f"{s.host}:{p.port}" for p in service_programs(s) if p.upstream}


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


# ---------------------------------------------------------------- supervisord


def programs(s: Settings, kafka_libs: Path) -> list[Program]:
    bindir = pg_bindir()
    assert bindir is not None
    python = sys.executable
    infra = [
        Program(
            "postgres",
            f"{bindir / 'postgres'} -D {s.pg_data} -c listen_addresses={s.host} -c port={s.pg_port}"
            f" -c unix_socket_directories={s.pg_data.parent} -c max_connections=400"
            " -c shared_buffers=512MB -c wal_buffers=16MB -c max_wal_size=2GB"
            " -c logging_collector=off",
            user="postgres" if is_root() else None,
            stopsignal="INT",
            priority=10,
        ),
        Program(
            "kafka",
            f"java -Xms{s.kafka_heap} -Xmx{s.kafka_heap} -XX:+UseG1GC -cp {kafka_libs}/*"
            f" -Dlog4j.configuration=file:{HERE / 'kafka' / 'log4j.properties'}"
            f" kafka.Kafka {s.state / 'kafka' / 'server.properties'}",
            stopwaitsecs=30,
            priority=10,
        ),
        Program(
            "ferretdb",
            f"{s.state / 'bin' / 'ferretdb'} -listen-addr {s.host}:{s.mongo_port}"
            f" -sqlite-dir {s.state / 'ferretdb'}/",
            priority=20,
        ),
        Program(
            "nginx",
            f"{nginx_bin()} -p {s.state / 'nginx'} -c {s.state / 'nginx' / 'nginx.conf'}"
            " -g 'daemon off;'",
            stopsignal="QUIT",
            priority=30,
        ),
        Program(
            "smtp-sink",
            f"{python} {HERE / 'smtp_sink.py'} --host {s.host} --port {s.smtp_port}"
            f" --dir {s.state / 'mail'}",
            priority=30,
        ),
    ]
    return infra + [p.program for p in service_programs(s)]


def supervisord_conf(s: Settings, progs: list[Program]) -> Path:
    conf = s.state / "supervisord.conf"
    lines = [
        "; generated by deploy/local/cluster.py",
        "[unix_http_server]",
        f"file={s.sock}",
        "[supervisord]",
        f"logfile={s.logs / 'supervisord.log'}",
        f"pidfile={s.state / 'supervisord.pid'}",
        f"directory={ROOT}",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{s.sock}",
    ]
    for p in progs:
        env = ",".join(f'{k}="{v}"' for k, v in p.env.items())
        lines += [
            f"[program:{p.name}]",
            f"command={p.command}",
            f"directory={p.directory}",
            f"priority={p.priority}",
            "autostart=true",
            "autorestart=true",
            "startsecs=2",
            "startretries=1000",  # a crashed dependency must not leave a service FATAL
            f"stopsignal={p.stopsignal}",
            f"stopwaitsecs={p.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={s.logs / (p.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
        ]
        if p.user:
            lines.append(f"user={p.user}")
        if env:
            lines.append(f"environment={env}")
    conf.write_text("\n".join(lines) + "\n")
    return conf


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


# ---------------------------------------------------------------- health


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not ready yet; retried until the deadline
            pass
        time.sleep(0.3)
    sys.exit(f"[parley] {what} did not become healthy in {timeout:.0f}s: see `make logs S=...`")


async def _pg_ok(dsn: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    finally:
        await conn.close()


async def _kafka_produces(bootstrap: str) -> bool:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000)
    await producer.start()
    try:
        await producer.send_and_wait("_parley.health", b"ping")
        return True
    finally:
        await producer.stop()


async def _mongo_ok(url: str) -> bool:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=2000
    )
    try:
        await client.admin.command("ping")
        return True
    finally:
        await client.close()


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return bool(response.status == 200)


async def _create_topics(s: Settings) -> list[str]:
    from parley_messaging.topics import Topic, declared_topics, ensure_topics

    topics = [
        *declared_topics(s.partitions),
        Topic("_parley.health", 1, {"retention.ms": "3600000"}),
    ]
    return await ensure_topics(s.kafka_bootstrap, topics)


def wait_healthy(s: Settings) -> None:
    wait_for("postgres", lambda: asyncio.run(_pg_ok(s.pg_dsn)))
    wait_for("kafka (port)", lambda: port_open(s.host, s.kafka_port))
    created = asyncio.run(_create_topics(s))
    if created:
        log(f"created topics: {', '.join(created)}")
    wait_for("kafka (produce)", lambda: asyncio.run(_kafka_produces(s.kafka_bootstrap)))
    wait_for("ferretdb", lambda: asyncio.run(_mongo_ok(s.mongo_url)))
    wait_for("nginx", lambda: http_ok(f"{s.gateway_url}/healthz"))
    for svc in service_programs(s):
        if svc.health_url:
            wait_for(svc.program.name, functools.partial(http_ok, svc.health_url))


# ---------------------------------------------------------------- commands


def up(s: Settings) -> None:
    started = time.monotonic()
    for sub in ("logs", "mail", "ferretdb", "bin"):
        (s.state / sub).mkdir(parents=True, exist_ok=True)
    install(s)
    kafka_libs = ensure_kafka_jars(s)
    init_postgres(s)
    init_kafka(s, kafka_libs, kafka_properties(s))
    nginx_conf(s)
    supervisord_conf(s, programs(s, kafka_libs))
    if supervisord_running(s):
        supervisorctl(s, "update")  # picks up added/changed programs
        supervisorctl(s, "start", "all", check=False)
    else:
        check_ports_free(s)
        run(
            [
                str(Path(sys.executable).parent / "supervisord"),
                "-c",
                str(s.state / "supervisord.conf"),
            ]
        )
    wait_healthy(s)
    from services_catalog import prepare_services

    prepare_services(s)
    log(f"healthy in {time.monotonic() - started:.1f}s")
    endpoints(s)


def check_ports_free(s: Settings) -> None:
    taken = [
        f"{name}:{port}"
        for name, port in (
            ("postgres", s.pg_port),
            ("kafka", s.kafka_port),
            ("ferretdb", s.mongo_port),
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
        print(f"{name:<24} {state:<10} {pid}")


def kill(s: Settings, name: str) -> None:
    pid = supervisorctl(s, "pid", name, check=False).stdout.strip()
    if not pid.isdigit() or pid == "0":
        sys.exit(f"[parley] {name} is not running (make ps)")
    os.kill(int(pid), signal.SIGKILL)
    log(f"SIGKILL sent to {name} (pid {pid}); supervisord restarts it")


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
        "command", choices=["up", "down", "ps", "kill", "logs", "clean", "install", "endpoints"]
    )
    parser.add_argument("name", nargs="?")
    parser.add_argument("-n", type=int, default=100, help="log lines")
    args = parser.parse_args()
    # aiokafka logs every retry while a fresh broker elects leaders; only errors matter here
    logging.basicConfig(level=logging.ERROR)
    s = Settings.from_env(dict(os.environ))
    if args.command in ("kill", "logs") and not args.name:
        sys.exit(f"usage: make {args.command} S=<process name>")
    actions: dict[str, Callable[[], None]] = {
        "up": lambda: up(s),
        "down": lambda: down(s),
        "ps": lambda: ps(s),
        "kill": lambda: kill(s, args.name),
        "logs": lambda: logs(s, args.name, args.n),
        "clean": lambda: clean(s),
        "install": lambda: install(s),
        "endpoints": lambda: endpoints(s),
    }
    actions[args.command]()


if __name__ == "__main__":
    main()
