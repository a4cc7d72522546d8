"""The relay's Prometheus metrics (DESIGN.md 8: outbox backlog, relay lag)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BACKLOG = Gauge("parley_outbox_backlog_rows", "Outbox rows not yet published", ["relay"])
LEADER = Gauge("parley_relay_leader", "1 while this process holds the relay lock", ["relay"])
PUBLISHED = Counter("parley_relay_published_total", "Records acknowledged by Kafka", ["relay"])
BATCH_SIZE = Histogram(
    "parley_relay_batch_rows",
    "Rows per published batch",
    ["relay"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000),
)
LAG_SECONDS = Histogram(
    "parley_relay_lag_seconds",
    "From the outbox row's commit to Kafka's acknowledgement",
    ["relay"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
FAILURES = Counter(
    "parley_relay_publish_failures_total", "Batches Kafka did not acknowledge", ["relay"]
)
