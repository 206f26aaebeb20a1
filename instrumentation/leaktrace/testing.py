"""Test helpers shipped with leaktrace: a Telemetry whose spans and logs stay in memory.

with leaktrace.testing.in_memory_telemetry(service_name="svc") as t:
    ...
    assert t.spans()[0].name == "GET /items/{id}"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from .config import Settings
from .resource import build_resource
from .telemetry import Telemetry


@dataclass
class InMemoryTelemetry:
    telemetry: Telemetry
    span_exporter: InMemorySpanExporter
    log_exporter: InMemoryLogRecordExporter

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.span_exporter.get_finished_spans())

    def logs(self) -> tuple[ReadableLogRecord, ...]:
        return tuple(self.log_exporter.get_finished_logs())

    def __enter__(self) -> InMemoryTelemetry:
        self.telemetry.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.telemetry.shutdown()


def in_memory_telemetry(
    service_name: str = "test-service", *, environ: dict[str, str] | None = None, **overrides: Any
) -> InMemoryTelemetry:
    """A Telemetry with in-memory span/log exporters, a fresh registry, and no profiler.

    Nothing is served unless `metrics_port` is passed; no global provider is touched.
    """
    collaborators = {
        k: overrides.pop(k)
        for k in ("registry", "profiler", "heap_profiler", "clock")
        if k in overrides
    }
    overrides.setdefault("profiling_enabled", False)
    serve = "metrics_port" in overrides
    settings = Settings.resolve(
        environ if environ is not None else {}, service_name=service_name, **overrides
    )
    resource = build_resource(settings.service)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    collaborators.setdefault("registry", CollectorRegistry(auto_describe=True))
    telemetry = Telemetry(
        settings,
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        serve_metrics=serve,
        **collaborators,
    )
    return InMemoryTelemetry(telemetry, spans, logs)
