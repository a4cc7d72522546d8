"""A Server-Sent Events client for tests and benchmarks of the realtime gateway: parses the
stream as a browser's EventSource would (event, id, data; an `id:` without data still moves
the last event id, as the WHATWG rules say) and keeps the events in a queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Pushed:
    event: str
    id: str | None
    data: Any
    received_at: float  # time.perf_counter() when parsed


class SseStream:
    """`async with SseStream(client, "/v1/stream", headers=...) as stream:` then
    `await stream.next()`; `stream.last_id` is what a reconnect sends as Last-Event-ID."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        path: str = "/v1/stream",
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        last_event_id: str | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.headers = dict(headers or {})
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.params = params
        self.last_id = last_event_id
        self.status_code = 0
        self.error_body = b""
        self.events: asyncio.Queue[Pushed] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    async def __aenter__(self) -> SseStream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._opened.wait(), 30)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self) -> None:
        try:
            async with self.client.stream(
                "GET",
                self.path,
                headers=self.headers,
                params=self.params,
                timeout=httpx.Timeout(10, read=None),
            ) as response:
                self.status_code = response.status_code
                if response.status_code != 200:
                    self.error_body = await response.aread()
                    self._opened.set()
                    return
                self._opened.set()
                event, event_id = "message", None
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line == "":
                        if event_id is not None:
                            self.last_id = event_id
                        if data:
                            payload = json.loads("\n".join(data))
                            self.events.put_nowait(
                                Pushed(event, event_id, payload, time.perf_counter())
                            )
                        event, event_id = "message", None
                        data = []
                    elif line.startswith(":"):
                        continue
                    else:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "event":
                            event = value
                        elif name == "data":
                            data.append(value)
                        elif name == "id":
                            event_id = value
        except (httpx.HTTPError, asyncio.IncompleteReadError):
            pass
        finally:
            self._opened.set()
            self.closed.set()

    async def next(self, timeout_s: float = 5.0) -> Pushed:
        return await asyncio.wait_for(self.events.get(), timeout_s)

    async def first(self, predicate: Callable[[Pushed], bool], timeout_s: float = 5.0) -> Pushed:
        """The first event matching `predicate` (earlier ones are consumed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching event")
            pushed = await self.next(remaining)
            if predicate(pushed):
                return pushed

    def drain(self) -> list[Pushed]:
        found = []
        while not self.events.empty():
            found.append(self.events.get_nowait())
        return found

    async def collect(self, seconds: float) -> list[Pushed]:
        """Every event that arrives within `seconds`."""
        found = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                found.append(await self.next(remaining))
            except TimeoutError:
                break
        return found
