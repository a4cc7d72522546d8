"""The shared error map: what every command service answers for the errors all of them meet.
A database that is restarting or gone is a 503 the client retries, never a 500."""

from __future__ import annotations

import asyncpg
import pytest
from parley_commandkit.errors import SHARED
from parley_eventstore.records import ConcurrencyError
from parley_http.problems import Problem


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=["starting up", "shut down", "connection lost", "refused", "connection left mid-use"],
)
def test_a_database_that_is_away_is_a_503_to_retry(error: Exception) -> None:
    problem = SHARED.problem(error)
    assert problem is not None
    assert (problem.status, problem.headers) == (503, {"Retry-After": "1"})


def test_a_race_is_a_409_and_other_errors_stay_unmapped() -> None:
    race = SHARED.problem(ConcurrencyError("s", 1, 2))
    assert isinstance(race, Problem) and race.status == 409
    assert SHARED.problem(asyncpg.exceptions.UniqueViolationError("dup")) is None
    assert SHARED.problem(ValueError("a bug")) is None
