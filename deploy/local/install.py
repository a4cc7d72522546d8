"""Install what is missing (Debian packages, Kafka jars, the FerretDB build) and initialise
state once (PostgreSQL cluster, Kafka storage). Every step is idempotent and cached."""

from __future__ import annotations

import os
import pwd
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
