"""Running a service's Kafka consumers next to its HTTP app: each restarted with backoff when
it fails (Kafka or a store away), all stopped together when the app's lifespan ends.

One place for what every command service and the saga orchestrator need, instead of a copy of
the restart loop and the shutdown loop in each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type

from parley_messaging.retrying import doubling, log_retry

log = logging.getLogger("parley.supervise")


async def keep_running(
    name: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    first_pause_s: float = 0.5,
    max_pause_s: float = 30.0,
) -> None:
    """Call `run()` until `stop` is set; a failure is logged and retried after a pause that
    doubles up to `max_pause_s` (with jitter; it starts over after a run that ended cleanly)."""
    while not stop.is_set():
        # a fresh AsyncRetrying per clean run: the pauses start over after one
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),  # logged, never swallowed silently
            wait=doubling(first_pause_s, max_pause_s),
            before_sleep=log_retry(
                log,
                "%(name)s failed; restarting in %(pause).1fs",
                level=logging.ERROR,
                traceback=True,
                name=name,
            ),
        ):
            if stop.is_set():
                return  # stopped during the pause
            with attempt:
                await run()


@contextlib.asynccontextmanager
async def in_background(
    stop: asyncio.Event, jobs: Iterable[Coroutine[Any, Any, None]], grace_s: float = 5.0
) -> AsyncIterator[None]:
    """Run `jobs` as tasks for the body of the `async with`; on exit set `stop` and give each
    `grace_s` to finish its current work (then it is cancelled)."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=grace_s)
