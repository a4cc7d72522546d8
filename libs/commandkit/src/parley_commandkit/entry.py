"""The entry points every command service offers: `python -m <service>` serves it, and
`python -m <service>.migrate <dsn>` applies its database's migrations (the event store's plus
the service's own `migrations/`, if it has one)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any, TypeVar

from fastapi import FastAPI
from parley_eventstore import migrate as eventstore
from parley_observability.ops import serve_http

from parley_commandkit.settings import BaseCommandSettings

S = TypeVar("S", bound=BaseCommandSettings)


def serve(name: str, settings_type: type[S], bootstrap: Callable[[S], FastAPI]) -> None:
    settings = settings_type()
    serve_http(bootstrap(settings), name, settings.host, settings.port, settings.log_level)


def migration(package: str, *also: str) -> Callable[[str], Coroutine[Any, Any, None]]:
    """`migrate(dsn)` for a service: the event store's migrations plus the `migrations/`
    folders of the package (when it has one) and of the `also` packages (a library whose
    tables live in this service's database, say)."""
    extra = [
        eventstore.package_migrations(name)
        for name in (package, *also)
        if (resources.files(name) / "migrations").is_dir()
    ]

    async def migrate(dsn: str) -> None:
        await eventstore.migrate(dsn, *extra)

    return migrate


def migrate_main(package: str, argv: list[str] | None = None, *also: str) -> int:
    """The body of `<package>/migrate.py`'s `main`."""
    return eventstore.service_main(f"{package}.migrate", migration(package, *also), argv)
