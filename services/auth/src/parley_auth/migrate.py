"""The auth database's schema: the event store's tables plus the auth secret tables.

`python -m parley_auth.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

import asyncio
import sys
from importlib import resources
from pathlib import Path

from parley_eventstore import migrate as eventstore
from parley_privacy import store as privacy


def migrations_dir() -> Path:
    return Path(str(resources.files("parley_auth") / "migrations"))


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir(), privacy.migrations_dir())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m parley_auth.migrate <postgresql-dsn>", file=sys.stderr)
        return 2
    try:
        asyncio.run(migrate(args[0]))
    except eventstore.MigrationError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
