"""The pieces of Parley's retry loops, on tenacity (one maintained retry library, with jitter).

A loop is written as tenacity's `AsyncRetrying` with what it retries (`retry=`), and from here:

- `doubling(first_s, max_s)`: the pause doubles from `first_s` up to `max_s`, plus up to
  `first_s` of random jitter but never beyond `max_s`: never shorter than the plain doubling the
  hand-written loops used, and replicas that failed together do not retry in lock-step;
- `until_set(event)`: the stop condition "give up (re-raise) once `event` is set" (shutdown);
- `log_retry(logger, message)`: the `before_sleep` hook logging each failure before its pause,
  `message` naming the exception as `%(error)s` and the pause as `%(pause)` (seconds);
- `retried(call, retrying)`: `call()` under `retrying()`, for hot paths (one call per Kafka
  record): the first try runs bare and tenacity only starts once it failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter
from tenacity.wait import wait_base

__all__ = ["doubling", "log_retry", "retried", "until_set"]

T = TypeVar("T")


def doubling(first_s: float, max_s: float = float("inf")) -> wait_base:
    """`first_s`, `2 * first_s`, `4 * first_s`... capped at `max_s`, each plus up to `first_s`
    of jitter (still capped)."""
    return wait_exponential_jitter(multiplier=first_s, max=max_s, jitter=first_s)


def until_set(event: asyncio.Event) -> Callable[[RetryCallState], bool]:
    """Stop retrying once `event` is set: the last failure is raised (with `reraise=True`)."""

    def stopping(_: RetryCallState) -> bool:
        return event.is_set()

    return stopping


def log_retry(
    logger: logging.Logger,
    message: str,
    *,
    level: int = logging.WARNING,
    traceback: bool = False,
    **fields: Any,
) -> Callable[[RetryCallState], None]:
    """A `before_sleep` hook: `logger.log(level, message % {error, pause, **fields})`, with the
    exception's traceback when `traceback` is set."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        logger.log(
            level,
            message,
            {"error": error, "pause": pause, **fields},
            exc_info=error if traceback else None,
        )

    return before_sleep


async def retried(call: Callable[[], Awaitable[T]], retrying: Callable[[], AsyncRetrying]) -> T:
    """`await call()`, retried as the `AsyncRetrying` that `retrying()` builds says. The first
    try runs outside tenacity, whose bookkeeping (~20 us a call, ~2 us just to build one) would
    add a tenth to a projector's cost per record, where nearly every first try succeeds; a
    failure of it counts as tenacity's first attempt (same pauses, logs, stop and last error)."""
    try:
        return await call()
    except Exception as error:
        first: Exception | None = error
    async for attempt in retrying():
        with attempt:
            if first is not None:
                failed, first = first, None
                raise failed
            return await call()
    raise AssertionError("tenacity ends with a result or an exception")
