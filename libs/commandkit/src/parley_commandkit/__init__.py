"""The command-service kit: what auth, users, chat and notifications share, so a service
declares its settings, command table, error map and routes, and the kit owns the lifespan,
pools, store, consumers, readiness and entry points (the way `parley_readmodel.service` does
for projectors)."""

from parley_commandkit.bus import CommandBus
from parley_commandkit.context import Context, command_context, scoped_key
from parley_commandkit.errors import SHARED, ErrorMap, conflict, forbidden, invalid, not_found
from parley_commandkit.http import CommandAccepted, CommandCall, Commands, typed
from parley_commandkit.service import CommandService, Kit, Wiring
from parley_commandkit.settings import BaseCommandSettings, CommandSettings

__all__ = [
    "SHARED",
    "BaseCommandSettings",
    "CommandAccepted",
    "CommandBus",
    "CommandCall",
    "CommandService",
    "CommandSettings",
    "Commands",
    "Context",
    "ErrorMap",
    "Kit",
    "Wiring",
    "command_context",
    "conflict",
    "forbidden",
    "invalid",
    "not_found",
    "scoped_key",
    "typed",
]
