"""JSON logs carry trace ids, traceparent survives a round trip, health and metrics answer."""

import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from parley_observability.http import install_observability
from parley_observability.logs import configure_logging
from parley_observability.tracing import (
    configure_tracing,
    context_from_traceparent,
    current_traceparent,
)

exporter = InMemorySpanExporter()
configure_tracing("test", exporter=exporter)
tracer = trace.get_tracer("test")


def test_traceparent_round_trip_continues_the_trace() -> None:
    with tracer.start_as_current_span("command"):
        traceparent = current_traceparent()
    assert traceparent is not None
    with tracer.start_as_current_span(
        "consume", context=context_from_traceparent(traceparent)
    ) as span:
        child = span.get_span_context()
    assert format(child.trace_id, "032x") == traceparent.split("-")[1]


def test_json_log_lines_have_trace_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("svc")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("parley.test").info("hello %s", "world")
        trace_id = format(span.get_span_context().trace_id, "032x")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "hello world"
    assert line["trace_id"] == trace_id
    assert line["service"] == "svc"
    assert line["level"] == "info"


def make_client(ready: bool) -> TestClient:
    app = FastAPI()

    async def check() -> bool:
        return ready

    install_observability(app, {"db": check})

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    return TestClient(app)


def test_readyz_reflects_checks() -> None:
    assert make_client(True).get("/readyz").status_code == 200
    response = make_client(False).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"db": False}


def test_metrics_label_route_templates_not_raw_paths() -> None:
    client = make_client(True)
    client.get("/items/abc")
    client.get("/items/def")
    text = client.get("/metrics").text
    assert 'route="/items/{item_id}"' in text
    assert "/items/abc" not in text
