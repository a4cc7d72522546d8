"""Projector metrics (DESIGN.md 8: consumer lag, projection lag, DLQ size)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

APPLIED = Counter("parley_projection_events_total", "Events consumed", ["projection", "outcome"])
DEAD_LETTERS = Counter("parley_projection_dlq_total", "Records parked on the DLQ", ["projection"])
CONSUMER_LAG = Gauge(
    "parley_projection_consumer_lag",
    "Records behind the end of the partition",
    ["projection", "topic", "partition"],
)
POSITION = Gauge(
    "parley_projection_position", "Next offset to apply", ["projection", "topic", "partition"]
)
LAG_SECONDS = Histogram(
    "parley_projection_lag_seconds",
    "From the event's time to its application",
    ["projection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300),
)
