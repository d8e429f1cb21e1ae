"""Keeps the spans this test session finishes, while a test asks for them: the in-memory
exporter, switched on only inside `recording()` so the rest of the suite keeps none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class SpanRecorder(SimpleSpanProcessor):
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.active = False
        super().__init__(self.exporter)

    def on_end(self, span) -> None:
        if self.active:
            super().on_end(span)

    @contextmanager
    def recording(self) -> Iterator[InMemorySpanExporter]:
        self.exporter.clear()
        self.active = True
        try:
            yield self.exporter
        finally:
            self.active = False


SPANS = SpanRecorder()
