"""The upcaster chain, pure (the Kafka consumers reuse exactly this function)."""

from typing import Any

import pytest
from parley_eventstore.upcasting import UpcastError, Upcasters


def evolution() -> Upcasters:
    upcasters = Upcasters()

    @upcasters.register("ProfileCreated", 1)
    def split_name(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

    @upcasters.register("ProfileCreated", 2)
    def add_locale(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "locale": "en"}

    return upcasters


def test_chain_runs_every_step_in_order() -> None:
    assert evolution().upcast("ProfileCreated", 1, {"name": "Ada Lovelace"}) == (
        3,
        {"first_name": "Ada", "last_name": "Lovelace", "locale": "en"},
    )


def test_middle_of_chain_and_latest_are_handled() -> None:
    upcasters = evolution()
    two = {"first_name": "Ada", "last_name": "L"}
    assert upcasters.upcast("ProfileCreated", 2, two) == (3, {**two, "locale": "en"})
    three = {**two, "locale": "fr"}
    assert upcasters.upcast("ProfileCreated", 3, three) == (3, three)


def test_unknown_types_pass_through_and_input_is_not_mutated() -> None:
    upcasters = evolution()
    data = {"name": "Ada Lovelace"}
    upcasters.upcast("ProfileCreated", 1, data)
    assert data == {"name": "Ada Lovelace"}
    assert upcasters.upcast("Other", 1, {"x": 1}) == (1, {"x": 1})
    assert upcasters.latest("Other") == 1


def test_a_gap_or_a_future_version_is_an_error() -> None:
    upcasters = Upcasters()
    upcasters.add("E", 2, lambda d: d)  # v1 -> v2 missing
    with pytest.raises(UpcastError, match="v1 -> v2"):
        upcasters.upcast("E", 1, {})
    with pytest.raises(UpcastError, match="newer"):
        upcasters.upcast("E", 4, {})
    with pytest.raises(UpcastError, match="already"):
        upcasters.add("E", 2, lambda d: d)
