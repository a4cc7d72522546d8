"""Backward compatibility of one event version's JSON Schema: what a consumer written against
the committed schema may rely on must still hold for the new one.

Breaking (needs a new schema version): a removed field, a field whose type changed, a new
required field, an optional field that became required. Adding an optional field is fine.
A string field that becomes personal data (`x-parley-encrypted`, docs/decisions.md
"Crypto-shredding") stays a string; only its length constraints move to the plaintext.
"""

from __future__ import annotations

from typing import Any

ENCRYPTED = "x-parley-encrypted"
_PLAINTEXT_ONLY = ("maxLength", "minLength", "pattern")


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(schema.get("properties", {}))


def _shape(prop: dict[str, Any]) -> Any:
    """The parts of a property schema that define its type (not titles or descriptions)."""
    keys = ("type", "anyOf", "oneOf", "allOf", "$ref", "items", "enum", "const", "format")
    return {k: prop[k] for k in keys if k in prop}


def _without_lengths(prop: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in prop.items() if k not in _PLAINTEXT_ONLY}
    if "anyOf" in out:
        out["anyOf"] = [_without_lengths(p) for p in out["anyOf"]]
    return out


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems = []
    old_props, new_props = _properties(old), _properties(new)
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, prop in old_props.items():
        if name not in new_props:
            problems.append(f"field {name!r} was removed")
        elif ENCRYPTED in new_props[name] and ENCRYPTED not in prop:
            # a field that becomes encrypted keeps its type (string); its length constraints
            # move to `x-parley-plaintext` (they describe the plaintext, not the envelope)
            if _shape(_without_lengths(prop)) != _shape(_without_lengths(new_props[name])):
                problems.append(f"field {name!r} changed type while becoming encrypted")
        elif _shape(prop) != _shape(new_props[name]):
            problems.append(
                f"field {name!r} changed type: {_shape(prop)} -> {_shape(new_props[name])}"
            )
    for name in sorted(new_required - old_required):
        if name in old_props:
            problems.append(f"field {name!r} became required")
        else:
            problems.append(f"new required field {name!r}")
    if old.get("$defs") != new.get("$defs"):
        old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
        for name, definition in old_defs.items():
            if name in new_defs:
                problems += [f"{name}: {p}" for p in breaking_changes(definition, new_defs[name])]
            else:
                problems.append(f"definition {name!r} was removed")
    return problems
