"""OpenTelemetry tracing, configured by the standard OTEL_* environment variables.

Off unless asked: `OTEL_TRACES_EXPORTER=otlp` (with `OTEL_EXPORTER_OTLP_ENDPOINT`) or
`console`; tests pass their own in-memory exporter. The W3C `traceparent` travels in event
metadata, outbox rows and Kafka headers, so one trace follows a write end to end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """True when OTEL_TRACES_EXPORTER names an exporter (off by default: no span costs)."""
    env = os.environ if env is None else env
    names = {n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",")}
    return bool(names - {"none", ""})


def tracing_enabled() -> bool:
    """True once an SDK provider is installed (configure_tracing with an exporter)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def configure_tracing(
    service: str,
    exporter: SpanExporter | None = None,
    env: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Install an SDK provider exporting to `exporter` (tests) or to what OTEL_* asks for, and
    the asyncpg and PyMongo client instrumentations. Nothing when tracing is not requested:
    the API's no-op provider then makes every span free, and traceparents still travel."""
    env = os.environ if env is None else env
    if exporter is None and not tracing_requested(env):
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in env.get("OTEL_TRACES_EXPORTER", "none").split(","):
            chosen = _exporter(name.strip())
            if chosen is not None:
                provider.add_span_processor(BatchSpanProcessor(chosen))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    return provider


def _instrument_clients() -> None:
    """Client spans for PostgreSQL (asyncpg) and MongoDB (PyMongo's command monitoring, which
    the asyncio client shares), for the services that use them."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    for instrumentor in (AsyncPGInstrumentor(), PymongoInstrumentor()):  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def child_span(
    name: str, traceparent: str | None, kind: trace.SpanKind, attributes: Mapping[str, str]
) -> trace.Span:
    """A span continuing `traceparent` (a record's or an event's); end it with span.end().
    Non-recording and nearly free when tracing is off."""
    tracer = trace.get_tracer("parley")
    return tracer.start_span(
        name, context=context_from_traceparent(traceparent), kind=kind, attributes=attributes
    )


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent naming `span` itself (to pass on as the next hop's parent)."""
    carrier: dict[str, str] = {}
    inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    return None


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to store in event metadata."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is the given traceparent (or an empty one)."""
    return extract({"traceparent": traceparent} if traceparent else {})


@contextmanager
def command_span(service: str, command: object) -> Iterator[str | None]:
    """A span around one command (`<service> <CommandName>`); yields its traceparent, for the
    events the command appends to carry (the relay's publish and every consumer continue it).
    None when tracing is off and no trace came in."""
    tracer = trace.get_tracer(f"parley.{service}")
    with tracer.start_as_current_span(f"{service} {type(command).__name__}"):
        yield current_traceparent()
