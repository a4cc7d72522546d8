"""Addresses, sizes and small process helpers shared by the local-cluster modules."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "3.9.1"  # keep in step with deploy/local/kafka/pom.xml


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
    # SeaweedFS: its S3 API (attachments), and its master; volume and filer take the next two
    # ports, and each of the four also listens on its port + 10000 (gRPC)
    s3_port: int = 8333
    seaweedfs_port: int = 9333
    s3_bucket: str = "parley-attachments"
    partitions: int = 6
    service_port_base: int = 8100  # Parley's HTTP services take consecutive ports from here
    # chat's per-person send limit per 10 s: the product's default is 20 (compose, k8s); the
    # local cluster also runs the test suites' and benchmarks' load from a few accounts
    chat_send_limit: int = 600
    # how many of each stateless process (issue 22): replica k > 1 is `<name>-<k>` on its
    # port + 100 * (k - 1); relays run one standby beside their leader when this is above 1.
    # PARLEY_REPLICAS (make up REPLICAS=N) wins; otherwise the number the last `up` used
    # (kept in <state>/replicas), so `make kill`/`make test` keep the cluster's shape.
    replicas: int = 1

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
            s3_port=int(get("PARLEY_S3_PORT", d.s3_port)),
            seaweedfs_port=int(get("PARLEY_SEAWEEDFS_PORT", d.seaweedfs_port)),
            s3_bucket=get("PARLEY_S3_BUCKET", d.s3_bucket),
            partitions=int(get("PARLEY_TOPIC_PARTITIONS", d.partitions)),
            service_port_base=int(get("PARLEY_SERVICE_PORT_BASE", d.service_port_base)),
            chat_send_limit=int(get("PARLEY_CHAT_SEND_LIMIT", d.chat_send_limit)),
            replicas=replicas_from(env),
        )

    def remember_replicas(self) -> None:
        """Keep this cluster's replica count for later commands without PARLEY_REPLICAS."""
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "replicas").write_text(f"{self.replicas}\n")

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
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def sock(self) -> Path:
        return self.state / "supervisor.sock"


def replicas_from(env: dict[str, str]) -> int:
    """PARLEY_REPLICAS, else what the state directory's last `up` used, else 1."""
    given = env.get("PARLEY_REPLICAS", "").strip()
    if not given:
        kept = Path(env.get("PARLEY_STATE_DIR", Settings.state)).resolve() / "replicas"
        given = kept.read_text().strip() if kept.exists() else "1"
    count = int(given)
    if not 1 <= count <= 9:
        raise SystemExit(f"[parley] PARLEY_REPLICAS must be 1..9, not {count}")
    return count


def log(message: str) -> None:
    print(f"[parley] {message}", flush=True)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(cmd, check=True, text=True, **kwargs)
    return done


def is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class Program:
    """One supervisord [program:...] section."""

    name: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 20
    priority: int = 500
    directory: str = str(ROOT)
    autostart: bool = True
