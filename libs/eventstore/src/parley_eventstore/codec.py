"""Domain events <-> stored events: class name = event type, fields = JSON data.

pydantic's TypeAdapter (cached per class) turns dataclass fields such as UUID or datetime into
JSON and validates them back, so domain events stay plain dataclasses.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from parley_eventstore.domain import Event
from parley_eventstore.records import NewEvent, RecordedEvent


class UnknownEvent(LookupError):
    pass


class EventCodec:
    def __init__(self, *classes: type[Event]) -> None:
        self._classes = {cls.event_type(): cls for cls in classes}
        self._adapters: dict[type[Event], TypeAdapter[Any]] = {
            cls: TypeAdapter(cls) for cls in classes
        }

    def encode(self, event: Event) -> NewEvent:
        cls = type(event)
        if cls not in self._adapters:
            raise UnknownEvent(f"{cls.__name__} is not registered with this codec")
        data = self._adapters[cls].dump_python(event, mode="json")
        return NewEvent(cls.event_type(), data, cls.schema_version)

    def decode(self, recorded: RecordedEvent) -> Event:
        cls = self._classes.get(recorded.event_type)
        if cls is None:
            raise UnknownEvent(f"no class for event type {recorded.event_type!r}")
        if recorded.schema_version != cls.schema_version:
            # the upcaster chain ends below the class's version: a missing registration
            raise UnknownEvent(
                f"{recorded.event_type} read as v{recorded.schema_version}, "
                f"class is v{cls.schema_version}: register the missing upcaster"
            )
        event: Event = self._adapters[cls].validate_python(recorded.data)
        return event
