"""One error map: which exception becomes which problem. The shared branches (a busy stream,
a forgotten person, the key service down) are here; a service extends the map with its
domain's errors instead of writing its own `try/except` ladder.

    ERRORS = SHARED.extend({UserNotFound: not_found("no user {}"), ...})
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from parley_eventstore.records import ConcurrencyError
from parley_http.problems import Problem, try_again_soon
from parley_privacy.keys import KeyUnavailable, SubjectForgotten

ToProblem = Callable[[Exception], Problem]
T = TypeVar("T")


class ErrorMap:
    def __init__(self, entries: Mapping[type[Exception], ToProblem] | None = None) -> None:
        self.entries: dict[type[Exception], ToProblem] = dict(entries or {})

    def extend(self, entries: Mapping[type[Exception], ToProblem]) -> ErrorMap:
        return ErrorMap({**self.entries, **entries})

    async def answer(self, work: Awaitable[T]) -> T:
        """`await work`, a mapped refusal raised as its problem (unmapped errors unchanged)."""
        try:
            return await work
        except Exception as error:
            problem = self.problem(error)
            if problem is None:
                raise
            raise problem from error

    def problem(self, error: Exception) -> Problem | None:
        """The problem for `error` (its most specific mapped class), None if unmapped."""
        for cls in type(error).__mro__:
            to_problem = self.entries.get(cls)
            if to_problem is not None:
                return to_problem(error)
        return None


def _detail(template: str, error: Exception) -> str:
    return template.format(error) if "{}" in template else template


def not_found(template: str) -> ToProblem:
    return lambda error: Problem(404, "Not Found", _detail(template, error))


def forbidden(template: str = "{}") -> ToProblem:
    return lambda error: Problem(403, "Forbidden", _detail(template, error))


def conflict(template: str = "{}") -> ToProblem:
    return lambda error: Problem(409, "Conflict", _detail(template, error))


def invalid(
    template: str = "{}", field: str | None = None, message: str | None = None
) -> ToProblem:
    """422 with the field errors listed (the same shape as a schema validation error)."""

    def to_problem(error: Exception) -> Problem:
        detail = _detail(template, error)
        entry: Any = detail
        if field is not None:
            entry = {"field": field, "message": message or detail, "type": "value_error"}
        return Problem(422, "Invalid request", detail, errors=[entry])

    return to_problem


def _busy(error: Exception) -> Problem:
    assert isinstance(error, ConcurrencyError)
    return Problem(
        409,
        "Conflict",
        "the target changed meanwhile; reload and retry",
        expected_version=error.expected,
        actual_version=error.actual,
    )


def _database_away(_: Exception) -> Problem:
    return try_again_soon("the database is not accepting connections; retry")


SHARED = ErrorMap(
    {
        ConcurrencyError: _busy,
        SubjectForgotten: lambda _: Problem(410, "Gone", "this person was forgotten"),
        KeyUnavailable: lambda _: try_again_soon("the key service did not answer; retry"),
        # PostgreSQL restarting (starting up, in recovery, shut down: class 57 errors such as
        # CannotConnectNowError) or its connection lost: the client retries, as for any
        # dependency that is away (a 500 here was a restart of the database, not a bug)
        asyncpg.exceptions.OperatorInterventionError: _database_away,
        asyncpg.exceptions.PostgresConnectionError: _database_away,
        # a pooled connection left mid-operation when PostgreSQL died ("cannot switch to
        # state ...; another operation is in progress"): seen once in ~1,800 commands while
        # the fault suite killed PostgreSQL; like a lost connection, the client retries (with
        # its Idempotency-Key where the outcome matters)
        asyncpg.exceptions.InternalClientError: _database_away,
        ConnectionError: lambda _: try_again_soon("a dependency is not reachable; retry"),
    }
)
