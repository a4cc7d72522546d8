"""The committed contract is what the code generates, and no committed event version changed
in a way that breaks a consumer written against it."""

import json

import pytest
from parley_contracts.compat import breaking_changes
from parley_contracts.generate import ASYNCAPI, SCHEMAS, expected_files
from parley_contracts.registry import all_events

COMMITTED = sorted(SCHEMAS.glob("parley.*.json"))


def test_every_event_has_a_committed_schema_and_artefacts_are_fresh() -> None:
    stale = [
        str(path.name)
        for path, text in expected_files().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"regenerate with `uv run python -m parley_contracts.generate`: {stale}"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_versions_stay_backward_compatible(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    ce_type = path.stem
    cls = all_events().get(ce_type)
    assert cls is not None, f"{ce_type} was published once; keep its class (other teams read it)"
    problems = breaking_changes(json.loads(path.read_text()), cls.json_schema())
    assert not problems, f"{ce_type}: bump schema_version instead: {problems}"


def test_asyncapi_lists_every_event_type() -> None:
    document = json.loads(ASYNCAPI.read_text())
    listed = {
        t
        for name, ch in document["channels"].items()
        if name.endswith(".events")
        for t in ch.get("x-parley-ce-types", [])
    }
    assert listed == set(all_events())


def schema(required: list[str], **types: str) -> dict[str, object]:
    return {"properties": {name: {"type": t} for name, t in types.items()}, "required": required}


OLD = schema(["a"], a="string", b="integer")


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (schema(["a"], a="string", b="integer"), []),
        (schema(["a"], a="string", b="integer", c="string"), []),
        (schema(["a"], a="string"), ["field 'b' was removed"]),
        (schema(["a"], a="integer", b="integer"), ["field 'a' changed type"]),
        (schema(["a", "c"], a="string", b="integer", c="string"), ["new required field 'c'"]),
        (schema(["a", "b"], a="string", b="integer"), ["field 'b' became required"]),
    ],
)
def test_breaking_change_rules(new: dict[str, object], expected: list[str]) -> None:
    problems = breaking_changes(OLD, new)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_a_field_becoming_encrypted_may_only_lose_its_length_constraints() -> None:
    old = {"properties": {"a": {"type": "string", "maxLength": 10}}, "required": ["a"]}
    mark = {"x-parley-encrypted": {"subject": "id"}}
    sealed = {"type": "string", **mark, "x-parley-plaintext": {"maxLength": 10}}
    assert breaking_changes(old, {"properties": {"a": sealed}, "required": ["a"]}) == []
    retyped = {"type": "integer", **mark}
    assert breaking_changes(old, {"properties": {"a": retyped}, "required": ["a"]})
    plain = {"properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, plain) == []  # top-level lengths were never compared
