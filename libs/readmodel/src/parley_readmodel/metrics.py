"""Projector metrics (DESIGN.md 8). Names are `parley_readmodel_*` so they never collide with
another library's in the same process registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter(
    "parley_readmodel_events_total",
    "Records consumed, by outcome (applied, duplicate-or-ignored, parked)",
    ["projection", "outcome"],
)
DLQ = Counter("parley_readmodel_dlq_total", "Records parked on the DLQ", ["projection"])
REDRIVEN = Counter("parley_readmodel_redriven_total", "Records taken off the DLQ", ["projection"])
UPDATES = Counter("parley_readmodel_updates_total", "Document updates sent", ["projection"])
CONSUMER_LAG = Gauge(
    "parley_readmodel_consumer_lag",
    "Records between the committed offset and the end of the partition",
    ["projection", "topic", "partition"],
)
POSITION = Gauge(
    "parley_readmodel_position",
    "Next offset to apply (last applied + 1)",
    ["projection", "topic", "partition"],
)
LAG_SECONDS = Gauge(
    "parley_readmodel_lag_seconds",
    "Now minus ce_time of the last event applied",
    ["projection"],
)
GENERATION = Gauge("parley_readmodel_generation", "Active generation", ["projection"])
GROUP_LAG = Gauge(
    "parley_consumer_group_lag",
    "End offset minus the group's committed offset, measured from outside the consumer",
    ["group", "topic", "partition"],
)
