"""The saga's Prometheus metrics: sagas by state, step latency, compensations, timeouts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

SAGAS = Gauge(
    "parley_saga_sagas", "Registration sagas by status, counted at scrape time", ["status"]
)
STEP_SECONDS = Histogram(
    "parley_saga_step_seconds",
    "From a step's first command to its successful reply",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSITIONS = Counter(
    "parley_saga_transitions_total",
    "Saga history entries by step and event (sent, succeeded, failed, rejected, timed_out, "
    "compensation_started, gave_up, completed, compensated, failed)",
    ["step", "event"],
)
COMPENSATIONS = Counter("parley_saga_compensations_total", "Sagas that started compensating")
TIMEOUTS = Counter("parley_saga_timeouts_total", "Step attempts whose reply did not come in time")


def observe(entries: Iterable[Mapping[str, Any]]) -> None:
    """Count the history entries one transition added (after its transaction committed)."""
    for entry in entries:
        step, event = str(entry["step"]), str(entry["event"])
        TRANSITIONS.labels(step, event).inc()
        if event == "succeeded" and "latency" in entry:
            STEP_SECONDS.labels(step).observe(float(entry["latency"]) / 1000)
        elif event == "timed_out":
            TIMEOUTS.inc()
        elif event == "compensation_started":
            COMPENSATIONS.inc()


def set_counts(counts: Mapping[str, int], statuses: Iterable[str]) -> None:
    for status in statuses:
        SAGAS.labels(status).set(counts.get(status, 0))
