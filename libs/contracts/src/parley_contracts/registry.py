"""Every public event class, found by walking the contract modules (no registration to forget)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import parley_contracts
from parley_contracts.base import Event

# modules that hold event classes: one per bounded context
CONTEXT_MODULES = ("auth", "users", "chat", "notifications")


def _subclasses(cls: type[Event]) -> list[type[Event]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


@cache
def all_events() -> dict[str, type[Event]]:
    """ce_type -> event class, for every contract module that exists."""
    names = {m.name for m in pkgutil.iter_modules(parley_contracts.__path__)}
    for module in CONTEXT_MODULES:
        if module in names:
            importlib.import_module(f"parley_contracts.{module}")
    events: dict[str, type[Event]] = {}
    for cls in _subclasses(Event):
        if cls.__dict__.get("abstract", False) or not hasattr(cls, "context"):
            continue
        ce_type = cls.ce_type()
        if ce_type in events and events[ce_type] is not cls:
            raise RuntimeError(f"two classes claim {ce_type}")
        events[ce_type] = cls
    return dict(sorted(events.items()))


def lookup(ce_type: str) -> type[Event] | None:
    return all_events().get(ce_type)
