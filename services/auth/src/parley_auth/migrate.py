"""The auth database's schema: the event store's tables plus the auth secret tables and the
data-key table (parley_privacy: auth owns the keys).

`python -m parley_auth.migrate <dsn>` (what the local cluster and a deploy job run).
"""

from __future__ import annotations

from parley_commandkit.entry import migrate_main, migration

migrate = migration("parley_auth", "parley_privacy")


def main(argv: list[str] | None = None) -> int:
    return migrate_main("parley_auth", argv, "parley_privacy")


if __name__ == "__main__":
    raise SystemExit(main())
