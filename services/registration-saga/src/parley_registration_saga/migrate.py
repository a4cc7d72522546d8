"""The saga database: the event store's tables (its outbox) plus the sagas table.

`python -m parley_registration_saga.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

import asyncio
import sys
from importlib import resources
from pathlib import Path

from parley_eventstore import migrate as eventstore


def migrations_dir() -> Path:
    return Path(str(resources.files("parley_registration_saga") / "migrations"))


async def migrate(dsn: str) -> None:
    await eventstore.migrate(dsn, migrations_dir())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m parley_registration_saga.migrate <postgresql-dsn>", file=sys.stderr)
        return 2
    try:
        asyncio.run(migrate(args[0]))
    except eventstore.MigrationError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
