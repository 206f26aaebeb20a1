"""Tracer provider with a bounded, failure-contained OTLP export path, and `traced()`."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from ._ratelimit import RateLimitedLogger
from .otlp import ExportGuard, make_exporter
from .setting_groups import OtlpExportConfig
from .unsent import Reachability, UnsentLedger

F = TypeVar("F", bound=Callable[..., Any])

_log = logging.getLogger("leaktrace.tracing")


def make_span_exporter(export: OtlpExportConfig) -> SpanExporter:
    """The OTLP span exporter for the configured protocol (grpc or http/protobuf)."""
    exporter: SpanExporter = make_exporter(
        "traces", export.protocol, export.endpoint, export.headers, export.timeout_s
    )
    return exporter


class GuardedSpanExporter(ExportGuard, SpanExporter):
    _noun = "spans"
    _success = SpanExportResult.SUCCESS
    _failure = SpanExportResult.FAILURE


def build_tracer_provider(
    export: OtlpExportConfig,
    *,
    resource: Resource,
    warn: RateLimitedLogger,
    ledger: UnsentLedger | None = None,
    exporter: SpanExporter | None = None,
    processors: Sequence[SpanProcessor] = (),
) -> tuple[TracerProvider, GuardedSpanExporter | None]:
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    guarded = None
    built = False
    for processor in processors:
        provider.add_span_processor(processor)
    if exporter is None and export.enabled:
        try:
            exporter = make_span_exporter(export)
            built = True
        except Exception as exc:  # noqa: BLE001 - no exporter is one warning, not a crash
            warn.warning(
                "span-exporter-init",
                "leaktrace: cannot build the OTLP span exporter (%r); traces are not exported",
                exc,
            )
    if exporter is not None:
        # The endpoint is known only for the exporter built here from the settings.
        reach = Reachability(export.endpoint) if built else None
        guarded = GuardedSpanExporter(exporter, warn, reachability=reach, ledger=ledger)
        provider.add_span_processor(
            BatchSpanProcessor(
                guarded,
                max_queue_size=export.queue_size,
                # the SDK refuses a batch larger than the queue; a small queue is a valid setting
                max_export_batch_size=min(512, export.queue_size),
                export_timeout_millis=int(export.timeout_s * 1000),
            )
        )
    return provider, guarded


def traced(tracer: Tracer, name: str | None = None) -> Callable[[F], F]:
    """Decorate a sync or async function so each call runs in its own span."""

    def decorate(func: F) -> F:
        span_name = name or func.__qualname__
        attrs = {"code.function.name": func.__qualname__, "code.namespace": func.__module__}
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with tracer.start_as_current_span(span_name, attributes=attrs):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(span_name, attributes=attrs):
                return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
