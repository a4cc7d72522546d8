"""The realtime gateway's Prometheus metrics (served at /metrics with every other service's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "parley_realtime_connections", "Streams (SSE and WebSocket) open on this replica"
)
PUSHED = Counter("parley_realtime_pushed_total", "Frames written to streams", ["event"])
PUSH_LAG = Histogram(
    "parley_realtime_push_lag_seconds",
    "From the event's time (ce_time) to its write to the client's socket",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RESUMES = Counter("parley_realtime_resumes_total", "Streams opened with a resume cursor")
REPLAYED = Counter(
    "parley_realtime_replayed_total", "Frames replayed from Kafka to resuming streams"
)
RESETS = Counter("parley_realtime_resets_total", "Resumes refused with a reset event", ["reason"])
SLOW_DISCONNECTS = Counter(
    "parley_realtime_slow_disconnects_total", "Streams closed because the client read too slowly"
)
CLOSED = Counter("parley_realtime_closed_total", "Streams closed by the server", ["reason"])
SKIPPED = Counter(
    "parley_realtime_skipped_records_total", "Records that could not be read", ["why"]
)
SIGNALS = Counter("parley_realtime_signals_total", "Typing and presence signals received", ["kind"])
FEED_LAG = Gauge(
    "parley_realtime_feed_lag_records",
    "Records between the live feed's position and the topics' end",
)
