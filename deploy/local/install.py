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
    for path in sorted(source.rglob("*")):  # with the build-time replacements of _patches/
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            content = path.read_bytes()
            relative = path.relative_to(source).as_posix()
            digest.update(f"{relative}\0{len(content)}\0".encode() + content)
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
        go_build(source, package, partial)
        partial.rename(binary)  # atomic: never a half-written binary under the final name
    # older builds, except one the current supervisord configuration may still restart
    conf = s.state / "supervisord.conf"
    in_use = set(re.split(r"[\s=]+", conf.read_text())) if conf.exists() else set()
    prefix = binary.name.rsplit("-", 1)[0]
    for old in binary.parent.glob(f"{prefix}-*"):
        if old != binary and str(old) not in in_use:
            old.unlink(missing_ok=True)
    return binary


# Files of a dependency that a wrapper replaces at build time: module, the file's path inside
# the module, our replacement under <wrapper>/_patches/. Why each one exists is written at
# the top of the replacement. (`go build -overlay` cannot do it: Go refuses to overlay files
# of the module cache.)
PATCHES = {
    FERRETDB_SOURCE: [
        (
            "github.com/FerretDB/FerretDB",
            "internal/backends/sqlite/metadata/pool/opendb.go",
            "sqlite_pool_opendb.go",
        )
    ],
}


def go_output(source: Path, *args: str) -> str:
    done = subprocess.run(["go", *args], cwd=source, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def patched_modules(source: Path, workdir: Path) -> list[str]:
    """The `go build` flags that build a wrapper with its patched dependencies: each module is
    copied from the module cache into workdir with our files in place of its own, and a
    go.mod beside it (-modfile) adds a `replace` to the copy; the wrapper's own go.mod and
    go.sum are left as they are. A file that no longer exists in the module (another
    version) stops the build rather than building the dependency unpatched."""
    patches = PATCHES.get(source)
    if not patches:
        return []
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    replaces = []
    for module, inside, ours in patches:
        run(["go", "mod", "download", module], cwd=source)
        original = Path(go_output(source, "list", "-m", "-f", "{{.Dir}}", module))
        if not (original / inside).is_file():
            sys.exit(f"{module} has no {inside} to replace: update {source / '_patches'}")
        copy = workdir / original.name
        # copyfile, not copy2: the module cache is read-only, the copy must not be
        shutil.copytree(original, copy, copy_function=shutil.copyfile)
        for directory, _, _ in os.walk(copy):
            os.chmod(directory, 0o700)
        shutil.copyfile(source / "_patches" / ours, copy / inside)
        replaces.append(f"replace {module} => {copy}\n")
    (workdir / "go.mod").write_text((source / "go.mod").read_text() + "\n" + "".join(replaces))
    shutil.copyfile(source / "go.sum", workdir / "go.sum")
    return [f"-modfile={workdir / 'go.mod'}"]


def go_build(source: Path, package: str, target: Path) -> None:
    """Build a wrapper module's package into target, with its patched dependencies."""
    workdir = target.with_name(target.name + ".modules")
    flags = patched_modules(source, workdir)
    run(["go", "build", "-trimpath", *flags, "-o", str(target), package], cwd=source)
    shutil.rmtree(workdir, ignore_errors=True)


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
