"""Gauges that more than one service sets, declared once (a Prometheus registry refuses a name
twice)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

OUTBOX_PENDING = Gauge(
    "parley_outbox_pending_rows",
    "Outbox rows not yet published, counted in the owning database at scrape time",
    ["database"],
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "parley_outbox_oldest_pending_seconds",
    "Age of the oldest unpublished outbox row (0 when none), at scrape time",
    ["database"],
)


def outbox_refresher(
    database: str, measure: Callable[[], Awaitable[tuple[int, float]]]
) -> Callable[[], Awaitable[None]]:
    """A /metrics refresher (install_observability) that sets the outbox gauges from
    `measure()`: (pending rows, oldest age in seconds), e.g. parley_eventstore.outbox.pending."""

    async def refresh() -> None:
        rows, oldest = await measure()
        OUTBOX_PENDING.labels(database).set(rows)
        OUTBOX_OLDEST_SECONDS.labels(database).set(oldest)

    return refresh
