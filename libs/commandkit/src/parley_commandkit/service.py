"""One command service's process, declared instead of hand-built: the kit owns the lifespan
(pool, event store, key owner and cipher, background consumers, shutdown), readiness, authn,
observability and the edge; a service declares its settings, how to wire its handlers'
dependencies, its bus, its error map and its routes.

    def bootstrap(settings: Settings | None = None) -> FastAPI:
        settings = settings or Settings()

        async def wire(kit: Kit) -> Wiring[Repository[User]]:
            return Wiring(kit.repository(User, EVENTS))

        return CommandService("users", "Parley users (commands)", settings, BUS, ERRORS,
                              wire, http.include_routes).app()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from fastapi import FastAPI
from parley_authn import RevocationList, Verifier, install_authn
from parley_eventstore.aggregate import A, Repository
from parley_eventstore.codec import EventCodec
from parley_eventstore.domain import Event
from parley_eventstore.outbox import pending
from parley_eventstore.pool import create_pool
from parley_eventstore.store import EventStore
from parley_http.edge import install_edge
from parley_http.openapi import document_problems
from parley_messaging.forgetting import ForgottenFollower
from parley_messaging.supervise import in_background
from parley_observability.http import install_observability
from parley_observability.metrics import outbox_refresher
from parley_privacy.fields import FieldCipher
from parley_privacy.keys import KeyOwner

from parley_commandkit.bus import CommandBus
from parley_commandkit.errors import ErrorMap
from parley_commandkit.http import Commands
from parley_commandkit.settings import BaseCommandSettings, CommandSettings

D = TypeVar("D")
S = TypeVar("S", bound=BaseCommandSettings)
Check = Callable[[], Awaitable[bool]]
log = logging.getLogger("parley.commandkit")
_DEFAULT = object()


@dataclass
class Kit:
    """What the kit opened for a service, to wire its handlers from."""

    settings: BaseCommandSettings
    pool: asyncpg.Pool
    store: EventStore
    keys: KeyOwner
    cipher: FieldCipher
    stop: asyncio.Event  # set at shutdown: background jobs finish their current work

    def repository(
        self,
        aggregate: type[A],
        events: tuple[type[Event], ...],
        *,
        codec: EventCodec | None = None,
        snapshot_every: Any = _DEFAULT,
        sealed: bool = True,
        serialize: bool = False,
        keep_warm: tuple[int, float] | None = None,
    ) -> Repository[A]:
        """A repository on the service's store; personal fields sealed unless `sealed=False`;
        snapshots every `settings.snapshot_every` events unless given (None: never);
        `serialize`: commands on one stream queue in this process; `keep_warm`: (size, ttl_s)
        of the states kept between its commands (parley_eventstore.warm)."""
        every = self.settings.snapshot_every if snapshot_every is _DEFAULT else snapshot_every
        return Repository(
            self.store,
            aggregate,
            codec or EventCodec(*events),
            snapshot_every=every,
            cipher=self.cipher if sealed else None,
            serialize=serialize,
            keep_warm=keep_warm,
        )


@dataclass
class Wiring(Generic[D]):
    """What a service wires over the kit."""

    deps: D  # the handlers' dependencies
    jobs: list[Coroutine[Any, Any, None]] = field(default_factory=list)  # background consumers
    state: Mapping[str, Any] = field(default_factory=dict)  # more app.state for its routes
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    ready: Mapping[str, Check] = field(default_factory=dict)


@dataclass
class CommandService(Generic[S, D]):
    context: str  # the bounded context: topic `<context>.events`, tokens, key scopes
    title: str
    settings: S
    bus: CommandBus[D]
    errors: ErrorMap
    wire: Callable[[Kit], Awaitable[Wiring[D]]]
    routes: Callable[[FastAPI], None]
    # the data-key owner; default auth's key endpoint through a short cache (tests: MemoryKeys)
    keys: KeyOwner | None = None
    # a service that owns the keys in its own database (auth) makes them from the pool
    own_keys: Callable[[asyncpg.Pool], KeyOwner] | None = None
    # verify bearer tokens with the auth service's keys and the revocation list (not auth)
    authenticate: bool = True
    before_start: Callable[[], Awaitable[None]] | None = None  # e.g. migrate on start

    def app(self) -> FastAPI:
        settings = self.settings
        if not settings.consistency_secret:
            log.warning(
                "no consistency secret (<PREFIX>_CONSISTENCY_SECRET): commands hand out no "
                "X-Consistency-Token, so clients cannot read their own writes at once"
            )
        revocations = None
        if self.authenticate:
            assert isinstance(settings, CommandSettings), "verifying tokens needs their settings"
            revocations = RevocationList.from_settings(settings)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            if self.before_start is not None:
                await self.before_start()
            pool = await create_pool(settings.postgres_dsn, min_size=2, max_size=settings.pool_size)
            store = EventStore(
                pool,
                topic=f"{self.context}.events",
                source=f"/parley/{self.context}",
                context=self.context,
                group_commit=settings.group_commit,
            )
            keys = self._keys(pool)
            kit = Kit(settings, pool, store, keys, FieldCipher(keys), asyncio.Event())
            wiring = await self.wire(kit)
            app.state.pool = pool
            app.state.keys = keys
            app.state.commands = Commands(
                self.context, self.bus, wiring.deps, self.errors, settings.consistency_secret
            )
            for name, value in wiring.state.items():
                setattr(app.state, name, value)
            app.state.wired_checks = dict(wiring.ready)
            forgetting = self._follow_forgotten(keys)
            # `is not None`: an empty RevocationList is falsy (it has a length)
            authn = revocations if revocations is not None else contextlib.nullcontext()
            try:
                async with in_background(kit.stop, wiring.jobs), authn:
                    yield
            finally:
                if forgetting is not None:
                    forgetting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await forgetting
                for close in reversed(wiring.closers):
                    await close()
                await store.close()
                close_keys = getattr(keys, "close", None)  # the key owner's own store has none
                if close_keys is not None:
                    await close_keys()
                await pool.close()

        app = FastAPI(title=self.title, version="1.0.0", lifespan=lifespan)
        install_edge(app, max_body_bytes=settings.max_body_bytes)
        if revocations is not None:
            assert isinstance(settings, CommandSettings)
            install_authn(app, Verifier.from_settings(settings), revocations)

        async def database_ready() -> bool:
            async with app.state.pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)

        async def wired_ready() -> bool:
            checks: dict[str, Check] = getattr(app.state, "wired_checks", {})
            return all([await check() for check in checks.values()])

        checks: dict[str, Check] = {"postgres": database_ready, "wired": wired_ready}
        if revocations is not None:
            checks["revocations"] = revocations.check_ready
        install_observability(
            app, checks, refresh=[outbox_refresher(self.context, lambda: pending(app.state.pool))]
        )
        self.routes(app)
        document_problems(app)
        return app

    def _follow_forgotten(self, keys: KeyOwner) -> asyncio.Task[None] | None:
        """Every replica drops a forgotten person's cached key at once (users.events, no
        consumer group: parley_messaging.forgetting), the key owner's own store included."""
        bootstrap = getattr(self.settings, "kafka_bootstrap_servers", "")
        if not bootstrap or not getattr(self.settings, "keys_follow_forgotten", True):
            return None
        follower = ForgottenFollower(bootstrap, forget=keys.evict, gap=keys.clear)
        return asyncio.create_task(follower.run(), name="key-evictions")

    def _keys(self, pool: asyncpg.Pool) -> KeyOwner:
        if self.keys is not None:
            return self.keys
        if self.own_keys is not None:
            return self.own_keys(pool)
        assert isinstance(self.settings, CommandSettings), "a key client needs its settings"
        return self.settings.key_client()
