"""Install what is missing (Debian packages, Kafka jars, the FerretDB and SeaweedFS builds) and
initialise state once (PostgreSQL cluster, Kafka storage). Every step is idempotent and cached."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

from settings import HERE, KAFKA_VERSION, Settings, is_root, log, run

APT_PACKAGES = {"postgres": "postgresql", "nginx": "nginx-light"}


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
            "-Dstyle.color=never",
            "-f",
            str(HERE / "kafka" / "pom.xml"),
            "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
    )
    tmp.rename(libs)
    return libs


FERRETDB_SOURCE = HERE / "ferretdb"
# SeaweedFS (Apache-2.0), the S3 server of attachments: `go install weed@<version>` is refused
# (its go.mod has a replace directive), so a wrapper module pins it and repeats the replace
SEAWEEDFS_SOURCE = HERE / "seaweedfs"
SEAWEEDFS_PACKAGE = "github.com/seaweedfs/seaweedfs/weed"


def wrapper_binary(s: Settings, name: str, source: Path) -> Path:
    """A Go wrapper module's binary for its current source. Its name carries a hash of the
    module's files: a changed .go file, go.mod or go.sum gets its own build (modification
    times are not trusted: a checkout or a copy can make the source look older than a stale
    binary) and a new supervisord command line, so `make up` on a running cluster restarts
    the program on it."""
    digest = hashlib.sha256()
    for path in sorted(source.iterdir()):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            content = path.read_bytes()
            digest.update(f"{path.name}\0{len(content)}\0".encode() + content)
    return s.state / "bin" / f"{name}-{digest.hexdigest()[:16]}"


def ferretdb_binary(s: Settings) -> Path:
    return wrapper_binary(s, "ferretdb", FERRETDB_SOURCE)


def seaweedfs_binary(s: Settings) -> Path:
    return wrapper_binary(s, "weed", SEAWEEDFS_SOURCE)


def ensure_built(s: Settings, binary: Path, source: Path, package: str, what: str) -> Path:
    if not binary.exists():
        log(f"building {what} from the Go module proxy (cached in ~/go/pkg/mod)")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        run(["go", "build", "-trimpath", "-o", str(partial), package], cwd=source)
        partial.rename(binary)  # atomic: never a half-written binary under the final name
    # older builds, except one the current supervisord configuration may still restart
    conf = s.state / "supervisord.conf"
    in_use = set(re.split(r"[\s=]+", conf.read_text())) if conf.exists() else set()
    prefix = binary.name.rsplit("-", 1)[0]
    for old in binary.parent.glob(f"{prefix}-*"):
        if old != binary and str(old) not in in_use:
            old.unlink(missing_ok=True)
    return binary


def ensure_ferretdb(s: Settings) -> Path:
    return ensure_built(s, ferretdb_binary(s), FERRETDB_SOURCE, ".", "FerretDB 1.24")


def ensure_seaweedfs(s: Settings) -> Path:
    """SeaweedFS's `weed` (a cold build takes about 4 minutes on 2 cores; cached by digest)."""
    binary = seaweedfs_binary(s)
    return ensure_built(s, binary, SEAWEEDFS_SOURCE, SEAWEEDFS_PACKAGE, "SeaweedFS")


def install(s: Settings) -> None:
    ensure_apt()
    ensure_kafka_jars(s)
    ensure_ferretdb(s)
    ensure_seaweedfs(s)


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


def init_kafka(s: Settings, libs: Path, props: Path, passwords: dict[str, str]) -> None:
    """Format the KRaft storage once, with `passwords` (the super users') as SCRAM users."""
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
            # the super users' SCRAM credentials, in the metadata before the broker first
            # starts (KIP-900): the broker needs its own to talk to itself over CLIENT
            *(
                arg
                for name, password in passwords.items()
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
            ),
        ],
        stdout=subprocess.DEVNULL,
    )
