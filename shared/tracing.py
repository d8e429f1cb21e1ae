"""OpenTelemetry tracing: one trace from an HTTP request through the queue to the worker's
database commands and its calls to Monnify.

Every request and task has a trace id (on its log lines, and carried to the worker in the
task's headers). Spans are recorded, a `sample_ratio` of traces, only when they have
somewhere to go (OTEL_EXPORTER_OTLP_ENDPOINT, or a test's processor): an unrecorded span
costs a third of a recorded one, and a read makes four or five.
Call `configure_tracing` once per process before it creates its MongoDB and Redis
clients: pymongo's instrumentation only sees clients made after it.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased

_INSTRUMENTORS = (CeleryInstrumentor, PymongoInstrumentor, RedisInstrumentor, RequestsInstrumentor)


def configure_tracing(
    service_name: str,
    otlp_endpoint: str,
    sample_ratio: float = 1.0,
    *,
    processor: SpanProcessor | None = None,
) -> None:
    """Install the tracer provider and instrument the libraries; a second call (an app
    factory run twice in one process) changes nothing. `processor` is for tests."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    exporting = bool(otlp_endpoint) or processor is not None
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=_sampler(sample_ratio if exporting else 0.0),
    )
    if otlp_endpoint:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(otlp_endpoint)))
    if processor is not None:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    for instrumentor in _INSTRUMENTORS:
        instrumentor().instrument()


def _sampler(ratio: float) -> Sampler:
    # Parent-based: a task is recorded when the request that sent it was.
    return ParentBased(ALWAYS_OFF if ratio <= 0 else TraceIdRatioBased(ratio))


def _otlp_exporter(endpoint: str) -> Any:
    # Imported only when exporting: the exporter pulls in protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")


def trace_ids() -> dict[str, str]:
    """The current trace and span ids, in the hex form tracing back ends show."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
