"""Telemetry's own memory is never a suspect, whoever called it (issue 16).

Stacks as the heap sampler records them (allocation first), with the paths of a real install:
OpenTelemetry's namespace package, the standard library, site-packages and user code.
"""

from __future__ import annotations

import io
import os

from leaktrace.analysis.analyzer import LeakAnalyzer
from leaktrace.analysis.callpath import FrameFilter, call_path_key, is_telemetry
from leaktrace.analysis.model import Report
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from leaktrace.report.text import render_text

SITE = "/venv/lib/python3.11/site-packages/"
STDLIB = "/usr/lib/python3.11/"
OTEL = SITE + "opentelemetry/"
FF = FrameFilter(
    library_prefixes=(STDLIB, SITE),
    own_prefix="/venv/lib/python3.11/site-packages/leaktrace/",
    telemetry_prefixes=(OTEL, SITE + "leaktrace/", SITE + "pyroscope/"),
)


def f(function: str, file: str, line: int = 1) -> Frame:
    return Frame(function, file, line)


# Spans an instrumentor's ASGI middleware starts, on an event loop thread with no user frame
# (uvicorn app:app): what was reported as three leaks in the issue.
FASTAPI_SPAN = (
    f("Span.__init__", OTEL + "sdk/trace/__init__.py"),
    f("Tracer.start_span", OTEL + "sdk/trace/__init__.py"),
    f("OpenTelemetryMiddleware.__call__", OTEL + "instrumentation/asgi/__init__.py"),
    f("ServerErrorMiddleware.__call__", SITE + "starlette/middleware/errors.py"),
    f("Starlette.__call__", SITE + "starlette/applications.py"),
    f("_run_once", STDLIB + "asyncio/base_events.py"),
    f("run_forever", STDLIB + "asyncio/base_events.py"),
    f("Server.run", SITE + "uvicorn/server.py"),
)
BOUNDED_LIST = (f("BoundedList.__init__", OTEL + "sdk/util/__init__.py"), *FASTAPI_SPAN[1:])
READABLE = (
    f("Span._readable_span", OTEL + "sdk/trace/__init__.py"),
    f("Span.end", OTEL + "sdk/trace/__init__.py"),
    f("OpenTelemetryMiddleware.__call__", OTEL + "instrumentation/asgi/__init__.py"),
    *FASTAPI_SPAN[3:],
)
# A framework with OpenTelemetry support of its own calls the API directly.
NATIVE_SPAN = (
    f("SpanContext.__new__", OTEL + "trace/span.py"),
    f("Tracer.start_span", OTEL + "sdk/trace/__init__.py"),
    f("Router.handle", SITE + "someframework/routing.py"),
    f("Server.run", SITE + "uvicorn/server.py"),
)
# The exporter thread encodes a batch: protobuf called by the exporter, no user code.
EXPORTER_THREAD = (
    f("Message.SerializeToString", SITE + "google/protobuf/message.py"),
    f("OTLPSpanExporter.export", OTEL + "exporter/otlp/proto/http/trace_exporter/__init__.py"),
    f("BatchProcessor.worker", OTEL + "sdk/_shared_internal/__init__.py"),
    f("Thread.run", STDLIB + "threading.py"),
)
# The user's handler under the instrumentor's middleware: the handler's memory is the user's.
USER_HANDLER = (
    f("JSONDecoder.decode", STDLIB + "json/decoder.py"),
    f("remember", "/app/service.py", 12),
    f("login", "/app/service.py", 30),
    f("run_endpoint_function", SITE + "fastapi/routing.py"),
    f("OpenTelemetryMiddleware.__call__", OTEL + "instrumentation/asgi/__init__.py"),
    f("Server.run", SITE + "uvicorn/server.py"),
)
USER_SPAN_LINE = (
    f("Span.__init__", OTEL + "sdk/trace/__init__.py"),
    f("Tracer.start_as_current_span", OTEL + "sdk/trace/__init__.py"),
    f("handle", "/app/service.py", 40),
)
STARLETTE_ONLY = (
    f("Request.__init__", SITE + "starlette/requests.py"),
    f("Router.__call__", SITE + "starlette/routing.py"),
    f("Server.run", SITE + "uvicorn/server.py"),
)


def test_spans_started_by_instrumentors_and_frameworks_are_telemetry_whoever_called_them() -> None:
    for stack in (
        FASTAPI_SPAN,
        BOUNDED_LIST,
        READABLE,
        NATIVE_SPAN,
        EXPORTER_THREAD,
        USER_SPAN_LINE,
    ):
        assert is_telemetry(stack, FF), stack[0]
        assert call_path_key(stack, FF) == (), stack[0]


def test_user_and_library_memory_is_not_telemetry() -> None:
    assert not is_telemetry(USER_HANDLER, FF)
    assert call_path_key(USER_HANDLER, FF) == (USER_HANDLER[1], USER_HANDLER[2])
    # A library's own allocation with no telemetry frame stays a (library-keyed) path.
    assert not is_telemetry(STARLETTE_ONLY, FF)
    assert call_path_key(STARLETTE_ONLY, FF) != ()


def test_the_default_filter_knows_every_opentelemetry_package_installed_here() -> None:
    import opentelemetry.exporter.otlp.proto.http.trace_exporter as http_exporter
    import opentelemetry.instrumentation.asgi as asgi
    import opentelemetry.sdk.trace as sdk
    import opentelemetry.trace as api

    ff = FrameFilter.default()
    for module in (sdk, api, asgi, http_exporter):
        assert module.__file__ is not None
        assert ff.is_telemetry(module.__file__), module.__name__
    assert not ff.is_telemetry(os.__file__)


def snapshot(t: float, samples: list[HeapSample]) -> HeapSnapshot:
    return HeapSnapshot(timestamp=t, start=0.0, samples=tuple(samples), sample_interval_bytes=16384)


def test_a_filling_export_queue_is_reported_on_its_own_line_not_as_a_suspect() -> None:
    # GIVEN the SDK's span queue growing 40 KiB/s for 20 s with no user frame on the stack
    analyzer = LeakAnalyzer(frame_filter=FF)
    for i in range(40):
        queue = HeapSample(FASTAPI_SPAN, 0, 0, 10 + i, 20_000.0 + 20_480.0 * i)
        analyzer.observe(snapshot(100.0 + i * 0.5, [queue]))
    report = analyzer.report()
    # THEN no suspect, and the queue's bytes are telemetry's
    assert report.suspects == ()
    assert report.telemetry_bytes == 20_000.0 + 20_480.0 * 39
    out = io.StringIO()
    render_text(report, out)
    assert "telemetry (export queues): 0.8 MiB" in out.getvalue()
    doc = report.to_json_dict()
    assert doc["telemetry_bytes"] == int(report.telemetry_bytes)
    assert Report.from_json_dict(doc).telemetry_bytes == report.telemetry_bytes
