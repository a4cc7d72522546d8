"""The retry pieces: doubling pauses with jitter inside their bounds, the stop on an event, the
log line before each pause, and `retried` counting its bare first try as the first attempt."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from parley_messaging.retrying import doubling, log_retry, retried, until_set
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt


def state(attempt: int) -> RetryCallState:
    retry_state = RetryCallState(AsyncRetrying(), None, (), {})
    retry_state.attempt_number = attempt
    return retry_state


def test_doubling_is_never_below_the_plain_doubling_nor_above_the_cap() -> None:
    wait = doubling(0.5, 30.0)
    for attempt, floor in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (40, 30.0)]:
        for _ in range(50):
            pause = wait(state(attempt))
            assert floor <= pause <= min(floor + 0.5, 30.0)
    assert len({doubling(0.5, 30.0)(state(2)) for _ in range(20)}) > 1  # jittered


async def test_retried_counts_its_bare_first_try_and_raises_the_last_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    async def failing() -> int:
        calls.append(len(calls))
        raise ConnectionError(f"try {len(calls)}")

    def retrying() -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(ConnectionError),
            stop=stop_after_attempt(3),
            wait=doubling(0.001),
            before_sleep=log_retry(
                logging.getLogger("test.retrying"),
                "%(what)s: %(error)s; again in %(pause).3fs",
                what="op",
            ),
            reraise=True,
        )

    caplog.set_level(logging.WARNING, "test.retrying")
    with pytest.raises(ConnectionError, match="try 3"):
        await retried(failing, retrying)
    assert len(calls) == 3  # three tries in all, the bare one included
    assert [r.getMessage().split(";")[0] for r in caplog.records] == ["op: try 1", "op: try 2"]


async def test_retried_returns_the_first_success_and_never_builds_a_retrying_for_it() -> None:
    outcomes: list[Any] = [ValueError("once"), 7]

    async def flaky() -> int:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    def no_retrying() -> AsyncRetrying:
        raise AssertionError("built for a call that succeeded at once")

    async def fine() -> int:
        return 3

    assert await retried(fine, no_retrying) == 3
    assert await retried(flaky, lambda: AsyncRetrying(wait=doubling(0.001))) == 7


async def test_until_set_gives_up_with_the_last_error_once_the_event_is_set() -> None:
    stop = asyncio.Event()
    tries = 0

    async def down() -> None:
        nonlocal tries
        tries += 1
        if tries == 2:
            stop.set()
        raise OSError("store down")

    with pytest.raises(OSError, match="store down"):
        await retried(
            down, lambda: AsyncRetrying(stop=until_set(stop), wait=doubling(0.001), reraise=True)
        )
    assert tries == 2
