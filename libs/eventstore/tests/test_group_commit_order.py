"""Group commit keeps one stream's appends in submission order across groups in flight
(no database: the committer's scheduling only, with functions that record what ran when)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from parley_eventstore.groupcommit import GroupCommitter, Outcome
from parley_eventstore.records import AppendResult


class FakePool:
    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


def append(stream: str, key: str | None = None) -> Any:
    return SimpleNamespace(stream_id=stream, idempotency_key=key)


def result(pending: Any) -> AppendResult:
    return AppendResult(stream_id=pending.stream_id, version=1, result={})


class Recorder:
    """Commits that log (start, streams) and (end, streams); the first one waits for `release`."""

    def __init__(self) -> None:
        self.log: list[tuple[str, tuple[str, ...]]] = []
        self.release = asyncio.Event()
        self.first = True

    async def _run(self, batch: Sequence[Any]) -> list[Outcome]:
        streams = tuple(p.stream_id for p in batch)
        self.log.append(("start", streams))
        if self.first:
            self.first = False
            await self.release.wait()
        await asyncio.sleep(0)
        self.log.append(("end", streams))
        return [result(p) for p in batch]

    async def one(self, _conn: object, pending: Any) -> Outcome:
        return (await self._run([pending]))[0]

    async def group(self, _conn: object, batch: Sequence[Any]) -> list[Outcome]:
        return await self._run(batch)


def committer(recorder: Recorder) -> GroupCommitter:
    return GroupCommitter(FakePool(), recorder.one, recorder.group)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_streams_next_append_waits_for_the_group_in_flight() -> None:
    recorder = Recorder()
    commits = committer(recorder)
    first = asyncio.create_task(commits.submit(append("s")))
    await settle()  # group 1 = [s], held in flight
    others = [asyncio.create_task(commits.submit(append(x))) for x in ("t", "s", "u")]
    await settle()
    # the second group in flight took t and u, not s: s's first append is not committed yet
    assert recorder.log == [("start", ("s",)), ("start", ("t", "u")), ("end", ("t", "u"))]
    recorder.release.set()
    await asyncio.gather(first, *others)
    assert recorder.log[3:] == [("end", ("s",)), ("start", ("s",)), ("end", ("s",))]


async def test_an_idempotency_key_in_flight_holds_its_repeat_back() -> None:
    recorder = Recorder()
    commits = committer(recorder)
    first = asyncio.create_task(commits.submit(append("a", key="k")))
    await settle()
    repeat = asyncio.create_task(commits.submit(append("b", key="k")))
    await settle()
    assert recorder.log == [("start", ("a",))]  # b waits: its key is in flight
    recorder.release.set()
    await asyncio.gather(first, repeat)
    assert recorder.log[1:] == [("end", ("a",)), ("start", ("b",)), ("end", ("b",))]
