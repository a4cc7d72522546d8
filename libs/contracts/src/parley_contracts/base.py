"""The base of every public event: a frozen pydantic model that knows its public name."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """A fact that happened. Subclasses set `context` and `schema_version`; the event name is
    the class name, so `ce_type` is `parley.<context>.<ClassName>.v<schema_version>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context: ClassVar[str]
    schema_version: ClassVar[int] = 1
    # a per-context base class sets this; concrete events inherit False from Event
    abstract: ClassVar[bool] = False

    @classmethod
    def event_name(cls) -> str:
        return cls.__name__

    @classmethod
    def event_type(cls) -> str:
        """The stored event type (the event store's name for `event_name`)."""
        return cls.__name__

    @classmethod
    def ce_type(cls) -> str:
        return f"parley.{cls.context}.{cls.event_name()}.v{cls.schema_version}"

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema(mode="serialization")
        schema["$id"] = f"https://parley.dev/schemas/{cls.ce_type()}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["x-parley-context"] = cls.context
        schema["x-parley-schema-version"] = cls.schema_version
        return schema


def event_type_of(event: Event) -> str:
    return type(event).event_name()
