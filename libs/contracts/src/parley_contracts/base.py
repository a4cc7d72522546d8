"""The base of every public event: a frozen pydantic model that knows its public name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

FORGOTTEN_NAME = "Forgotten user"  # what a forgotten person's name reads as
REDACTED_TEXT = "[redacted]"  # a forgotten person's message text, where a value is required
ENCRYPTED = "x-parley-encrypted"  # the JSON Schema annotation of a personal-data field
ENVELOPE_FORMAT = "parley-field-envelope-v1"
_LENGTHS = ("maxLength", "minLength", "pattern")


@dataclass(frozen=True)
class PersonalField:
    """A field holding personal data: encrypted with the data key of the person whose id is
    in field `subject` of the same event; `placeholder` stands in for it once that key is
    gone (a value the field's own validation accepts). `scope`, when set, makes the key's id
    `<scope>:<subject value>`: data that belongs to a thing rather than to one person (a
    conversation's title) has a key of its own, which forgetting a person never destroys."""

    name: str
    subject: str
    placeholder: str
    scope: str = ""

    def key_subject(self, data: Mapping[str, Any]) -> str:
        """The id of the key that seals this field in `data` (an event's data)."""
        value = str(data[self.subject])
        return f"{self.scope}:{value}" if self.scope else value


def personal(subject: str, placeholder: str = "", *, scope: str = "", **kwargs: Any) -> Any:
    """A pydantic Field marked as personal data (see PersonalField). On the wire (PostgreSQL,
    Kafka) the value is an encrypted envelope string; the model itself holds the plaintext,
    and its length constraints apply to the plaintext."""
    mark: dict[str, Any] = {
        "subject": subject,
        "placeholder": placeholder,
        "format": ENVELOPE_FORMAT,
    }
    if scope:
        mark["scope"] = scope  # the key is `<scope>:<subject value>` (PersonalField.scope)
    return Field(json_schema_extra={ENCRYPTED: mark}, **kwargs)


def _plaintext_constraints(prop: dict[str, Any]) -> None:
    """Length constraints of an encrypted field describe the plaintext, not the envelope on
    the wire: move them under `x-parley-plaintext`."""
    moved: dict[str, Any] = {}
    for holder in [prop, *prop.get("anyOf", [])]:
        for key in _LENGTHS:
            if key in holder:
                moved[key] = holder.pop(key)
    if moved:
        prop["x-parley-plaintext"] = moved


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
        for prop in schema.get("properties", {}).values():
            if ENCRYPTED in prop:
                _plaintext_constraints(prop)
        return schema

    @classmethod
    def personal_fields(cls) -> tuple[PersonalField, ...]:
        """The fields marked with `personal(...)`, in declaration order."""
        found = []
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            mark = extra.get(ENCRYPTED) if isinstance(extra, dict) else None
            if isinstance(mark, dict):
                scope = str(mark.get("scope", ""))
                subject, placeholder = str(mark["subject"]), str(mark["placeholder"])
                found.append(PersonalField(name, subject, placeholder, scope))
        return tuple(found)


def event_type_of(event: Event) -> str:
    return type(event).event_name()
