"""`at` of the history routes: a version or an ISO time with its zone; anything else, and a
time the driver cannot convert to UTC, is BadMoment (a 422), never a driver error (a 500)."""

from datetime import UTC, datetime

import pytest
from parley_eventstore.history import MAX_VERSION, BadMoment, parse_moment


def test_versions_and_times() -> None:
    assert parse_moment("3") == 3
    assert parse_moment("999999999") == 999_999_999 < MAX_VERSION
    assert parse_moment("2026-11-23T20:00Z") == datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "at",
    [
        "",
        "x",
        "-1",
        "9999999999",  # ten digits: beyond the integer column
        "2026-11-23T20:00",  # no zone
        "0001-01-01T00:00+14:00",  # before year 1 in UTC
        "9999-12-31T23:59-14:00",  # after year 9999 in UTC
    ],
)
def test_bad_moments(at: str) -> None:
    with pytest.raises(BadMoment):
        parse_moment(at)
