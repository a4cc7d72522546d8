"""keep_running restarts a failing consumer with growing pauses and ends with `stop`;
in_background stops its jobs (and waits for them) when the block ends."""

from __future__ import annotations

import asyncio
import itertools

from parley_messaging.supervise import in_background, keep_running


async def test_a_failing_run_is_restarted_with_doubling_pauses_until_stop() -> None:
    stop = asyncio.Event()
    started: list[float] = []

    async def run() -> None:
        started.append(asyncio.get_running_loop().time())
        if len(started) == 4:
            stop.set()
            return
        raise ConnectionError("kafka away")

    await asyncio.wait_for(
        keep_running("test", run, stop, first_pause_s=0.01, max_pause_s=0.02), timeout=5
    )
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert len(started) == 4
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02 and gaps[2] >= 0.02  # doubled, then capped


async def test_leaving_the_block_sets_stop_and_waits_for_the_jobs() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def job(name: str) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)  # its current work
        finished.append(name)

    async with in_background(stop, [job("a"), job("b")]):
        assert not stop.is_set()
    assert stop.is_set() and sorted(finished) == ["a", "b"]


async def test_a_job_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        await asyncio.sleep(60)

    loop = asyncio.get_running_loop()
    began = loop.time()
    async with in_background(stop, [stubborn()], grace_s=0.05):
        pass
    assert loop.time() - began < 5
