"""Wire tests of the protocol test receivers, driven by the real client libraries.

OTLP: the OTel SDK with the grpc and http/protobuf exporters. Pyroscope: pyroscope-io 1.4 (its
native Rust agent) in a subprocess, plus hand-made /ingest and JSON push requests.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from leaktrace.profiling.pprof import ProfileBuilder
from leaktrace.profiling.samples import Frame
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from opentelemetry.util.types import AttributeValue

from tests.support.otlp_receiver import OTLPReceiver
from tests.support.pyroscope_receiver import PUSH_PATH, PyroscopeReceiver, parse_app_name

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


def _span_exporter(receiver: OTLPReceiver, transport: str, timeout: float = 5.0) -> SpanExporter:
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=timeout)
    return HttpSpanExporter(
        endpoint=receiver.traces_url, timeout=timeout, compression=Compression.Gzip
    )


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 5.0
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# --- OTLP traces --------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_spans_from_sdk_decode_with_ids_names_attributes_and_resource(
    otlp: OTLPReceiver, transport: str
) -> None:
    # GIVEN a real TracerProvider exporting synchronously to the receiver
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"svc-{transport}", "deployment.environment": "t"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(otlp, transport)))
    tracer = provider.get_tracer("receiver-test")
    # WHEN a server span with a child, attributes and an event is recorded
    attrs: dict[str, AttributeValue] = {"http.route": "/items", "retries": 3, "tags": ["a", "b"]}
    with (
        tracer.start_as_current_span(
            "GET /items", kind=SpanKind.SERVER, attributes=attrs
        ) as parent,
        tracer.start_as_current_span("load-items") as child,
    ):
        child.add_event("cache-miss", {"key": "items:42"})
    provider.shutdown()
    # THEN both spans arrive with the SDK's ids, parentage, kinds and plain-dict attributes
    assert otlp.wait_for(lambda: len(otlp.spans()) >= 2, timeout=5)
    by_name = {s.name: s for s in otlp.spans()}
    root, leaf = by_name["GET /items"], by_name["load-items"]
    assert root.trace_id == format_trace_id(parent.get_span_context().trace_id)
    assert root.span_id == format_span_id(parent.get_span_context().span_id)
    assert len(root.trace_id) == 32 and len(root.span_id) == 16
    assert root.parent_span_id == ""
    assert leaf.trace_id == root.trace_id
    assert leaf.parent_span_id == root.span_id
    assert leaf.span_id == format_span_id(child.get_span_context().span_id)
    assert (root.kind, leaf.kind) == ("SERVER", "INTERNAL")
    assert dict(root.attributes) == {"http.route": "/items", "retries": 3, "tags": ("a", "b")}
    assert root.resource_attributes["service.name"] == f"svc-{transport}"
    assert root.resource_attributes["deployment.environment"] == "t"
    assert [(e.name, dict(e.attributes)) for e in leaf.events] == [
        ("cache-miss", {"key": "items:42"})
    ]
    assert root.scope_name == "receiver-test"
    assert root.end_time_unix_nano >= root.start_time_unix_nano > 0
    assert {s.transport for s in otlp.spans()} == {transport}
    assert otlp.request_count("traces", transport) == 2  # SimpleSpanProcessor: one request per span
    assert otlp.bytes_received > 0


def test_batch_processor_over_gzip_http_batches_spans_into_one_request(otlp: OTLPReceiver) -> None:
    # GIVEN a BatchSpanProcessor with gzip compression over OTLP/HTTP
    provider = TracerProvider(resource=Resource.create({"service.name": "batcher"}))
    provider.add_span_processor(
        BatchSpanProcessor(_span_exporter(otlp, "http"), schedule_delay_millis=60_000)
    )
    tracer = provider.get_tracer("t")
    # WHEN 25 spans are recorded and flushed once
    for i in range(25):
        with tracer.start_as_current_span(f"op-{i}", attributes={"i": i}):
            pass
    assert provider.force_flush(5_000)
    provider.shutdown()
    # THEN all spans arrived, decoded from a gzip body, in a single export request
    assert sorted(s.attributes["i"] for s in otlp.spans()) == list(range(25))
    assert otlp.request_count("traces", "http") == 1
    assert otlp.content_encodings() == {"gzip": 1}


# --- OTLP logs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_log_emitted_inside_span_carries_that_spans_ids(otlp: OTLPReceiver, transport: str) -> None:
    # GIVEN a TracerProvider and a LoggerProvider both exporting to the receiver
    resource = Resource.create({"service.name": "logsvc"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(_span_exporter(otlp, transport)))
    log_exporter = (
        GrpcLogExporter(endpoint=otlp.endpoint, insecure=True, timeout=5)
        if transport == "grpc"
        else HttpLogExporter(endpoint=otlp.logs_url, timeout=5)
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=60_000)
    )
    otel_logger = logger_provider.get_logger("app.logger")
    # WHEN a warning is emitted in the current context of a span, and another outside any span
    with tracer_provider.get_tracer("t").start_as_current_span("handle-request") as span:
        otel_logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARNING",
            body="cache grew to 5000 entries",
            attributes={"cache.size": 5000},
        )
    otel_logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="outside")
    assert logger_provider.force_flush(5_000)
    logger_provider.shutdown()
    tracer_provider.shutdown()
    # THEN the log record carries the span's trace and span ids, its body, severity and attributes
    assert otlp.wait_for(
        lambda: len(otlp.logs()) >= 2 and otlp.spans_named("handle-request"), timeout=5
    )
    (received_span,) = otlp.spans_named("handle-request")
    logs = {rec.body: rec for rec in otlp.logs()}
    warn = logs["cache grew to 5000 entries"]
    assert (
        warn.trace_id == received_span.trace_id == format_trace_id(span.get_span_context().trace_id)
    )
    assert warn.span_id == received_span.span_id
    assert (warn.severity_number, warn.severity_text) == (SeverityNumber.WARN.value, "WARNING")
    assert warn.attributes["cache.size"] == 5000
    assert warn.resource_attributes["service.name"] == "logsvc"
    assert warn.scope_name == "app.logger"
    assert logs["outside"].trace_id == "" and logs["outside"].span_id == ""
    assert otlp.request_count("logs", transport) == 1


# --- OTLP metrics -------------------------------------------------------------------------------
def test_metrics_over_grpc_decode_sum_points_with_attributes(otlp: OTLPReceiver) -> None:
    # GIVEN a MeterProvider with a periodic reader exporting over OTLP/gRPC
    reader = PeriodicExportingMetricReader(
        GrpcMetricExporter(endpoint=otlp.endpoint, insecure=True, timeout=5),
        export_interval_millis=60_000,
    )
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": "metersvc"})
    )
    counter = provider.get_meter("m").create_counter("jobs_done", unit="1", description="jobs")
    # WHEN a counter is incremented for two label sets and flushed
    counter.add(3, {"queue": "a"})
    counter.add(4, {"queue": "b"})
    counter.add(1, {"queue": "a"})
    assert provider.force_flush(5_000)
    provider.shutdown()
    # THEN the sum arrives with one point per attribute set
    metric = otlp.wait_for(
        lambda: next((m for m in otlp.metrics() if m.name == "jobs_done"), None), timeout=5
    )
    assert metric is not None
    assert metric.data_type == "sum" and metric.unit == "1"
    assert {p.attributes["queue"]: p.value for p in metric.points} == {"a": 4, "b": 4}
    assert metric.resource_attributes["service.name"] == "metersvc"


# --- OTLP fault injection -----------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_failing_receiver_makes_export_fail_then_recovery_succeeds(
    otlp: OTLPReceiver, transport: str
) -> None:
    # GIVEN a receiver that answers every export with UNAVAILABLE / 503 (retry hint 0.2 s)
    otlp.fail(retry_after_s=0.2)
    provider = TracerProvider()
    exporter = _span_exporter(otlp, transport, timeout=1.0)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    # WHEN a span is exported
    started = time.monotonic()
    with tracer.start_as_current_span("doomed"):
        pass
    elapsed = time.monotonic() - started
    # THEN the exporter retried, gave up within its timeout, and nothing was stored
    assert otlp.rejected_count("traces", transport) >= 2
    assert otlp.spans() == ()
    assert elapsed < 3.0
    # WHEN the receiver recovers THEN the next export goes through
    otlp.recover()
    with tracer.start_as_current_span("survivor"):
        pass
    assert [s.name for s in otlp.spans()] == ["survivor"]
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_one_injected_failure_is_retried_by_the_exporter(
    otlp: OTLPReceiver, transport: str
) -> None:
    # GIVEN a receiver that fails exactly one request, asking for a 0.1 s backoff
    otlp.fail(1, retry_after_s=0.1)
    exporter = _span_exporter(otlp, transport, timeout=5.0)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # WHEN one span is exported
    with provider.get_tracer("t").start_as_current_span("retried"):
        pass
    provider.shutdown()
    # THEN the exporter's retry delivered it exactly once
    assert otlp.rejected_count("traces", transport) == 1
    assert [s.name for s in otlp.spans()] == ["retried"]
    assert otlp.request_count("traces", transport) == 1


def test_slow_receiver_is_cut_off_by_exporter_timeout(otlp: OTLPReceiver) -> None:
    # GIVEN a receiver that takes 3 s to answer and an exporter with a 0.5 s timeout
    otlp.slow(3.0)
    exporter = GrpcSpanExporter(endpoint=otlp.endpoint, insecure=True, timeout=0.5)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # WHEN a span is exported
    started = time.monotonic()
    with provider.get_tracer("t").start_as_current_span("slow"):
        pass
    elapsed = time.monotonic() - started
    # THEN the caller was blocked for about the exporter timeout, not the server delay
    assert 0.4 <= elapsed < 2.0
    # AND stopping the receiver does not wait out the remaining delay
    stop_started = time.monotonic()
    otlp.stop()
    assert time.monotonic() - stop_started < 2.5
    provider.shutdown()


def test_http_bad_input_gets_clear_4xx(otlp: OTLPReceiver) -> None:
    good = ExportTraceServiceRequest().SerializeToString()
    proto = {"Content-Type": "application/x-protobuf"}
    status, body = _post(otlp.traces_url, b"\xff\xff\xff", proto)
    assert status == 400 and b"cannot decode traces" in body
    status, body = _post(otlp.traces_url, b"not gzip", {**proto, "Content-Encoding": "gzip"})
    assert status == 400 and b"gzip" in body
    status, body = _post(otlp.traces_url, good, {"Content-Type": "application/json"})
    assert status == 415 and b"application/x-protobuf" in body
    status, body = _post(f"{otlp.http_endpoint}/v1/profiles", good, proto)
    assert status == 404 and b"/v1/traces" in body
    status, _ = _post(otlp.traces_url, good, proto)
    assert status == 200
    assert otlp.request_count() == 1  # rejected inputs are not counted as accepted requests


def test_storage_is_capped_and_overflow_counted() -> None:
    with OTLPReceiver(grpc_enabled=False, max_items=3) as receiver:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(HttpSpanExporter(endpoint=receiver.traces_url, timeout=5))
        )
        for i in range(5):
            with provider.get_tracer("t").start_as_current_span(f"s{i}"):
                pass
        provider.shutdown()
        assert [s.name for s in receiver.spans()] == ["s2", "s3", "s4"]  # newest kept
        assert receiver.dropped_spans == 2
        with pytest.raises(RuntimeError):
            _ = receiver.port  # gRPC side disabled


def test_wait_for_is_bounded_and_returns_last_value(otlp: OTLPReceiver) -> None:
    started = time.monotonic()
    assert otlp.wait_for(lambda: otlp.spans(), timeout=0.3) == ()
    assert 0.25 <= time.monotonic() - started < 1.0


# --- Pyroscope: the real pyroscope-io agent -----------------------------------------------------
PYROSCOPE_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import pyroscope

    keep = []

    def leaky_allocator():
        # 20 x 64 KiB per call, kept alive (bounded to ~48 MiB so the test stays light).
        for _ in range(20):
            keep.append(bytearray(64 * 1024))
        del keep[:-768]

    def spin_cpu():
        total = 0
        for i in range(60_000):
            total += i * i
        return total

    ok = pyroscope.configure(
        application_name="receiver-test-app",
        server_address=sys.argv[1],
        tags={"suite": "receivers"},
        tenant_id="tenant-a",
        mem_enabled=True,
        upload_interval=1,
    )
    started = time.monotonic()
    while time.monotonic() - started < float(sys.argv[2]):
        leaky_allocator()
        spin_cpu()
    t0 = time.monotonic()
    dropped = pyroscope.shutdown()
    print(json.dumps({"configured": ok, "shutdown": dropped, "shutdown_s": time.monotonic() - t0}))
    """
)


@pytest.fixture(scope="module")
def pyroscope_run() -> Iterator[tuple[PyroscopeReceiver, dict[str, Any]]]:
    # The agent is process-global native code, so it runs in its own interpreter. The receiver
    # rejects the first push with 500 so the same run also shows how the agent handles errors.
    with PyroscopeReceiver() as receiver:
        receiver.fail(1, status=500)
        proc = subprocess.run(
            [sys.executable, "-c", PYROSCOPE_CLIENT, receiver.endpoint, "3.2"],
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        yield receiver, result


def test_pyroscope_io_memory_profile_names_the_leaking_function(
    pyroscope_run: tuple[PyroscopeReceiver, dict[str, Any]],
) -> None:
    receiver, result = pyroscope_run
    assert result["configured"] is True
    memory = receiver.memory_profiles()
    assert memory, [p.labels for p in receiver.profiles()]
    # The memalloc-based profile carries the four Go-heap-style sample types.
    assert memory[0].sample_type_names == (
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    )
    assert memory[0].profile is not None and memory[0].profile.period_type == ("space", "bytes")
    # Live (inuse) bytes are attributed to leaky_allocator, and they dominate the heap.
    latest = memory[-1]
    assert "leaky_allocator" in latest.function_names()
    leaked = latest.value_in("leaky_allocator", "inuse_space")
    assert leaked >= 8 * 1024 * 1024
    assert leaked >= 0.5 * latest.total("inuse_space")


def test_pyroscope_io_cpu_profile_and_labels(
    pyroscope_run: tuple[PyroscopeReceiver, dict[str, Any]],
) -> None:
    receiver, _ = pyroscope_run
    cpu = receiver.cpu_profiles()
    assert cpu
    assert all(p.sample_type_names == ("cpu",) for p in cpu)
    assert any("spin_cpu" in p.function_names() for p in cpu)
    assert sum(p.total("cpu") for p in cpu) > 0
    for p in receiver.profiles():
        assert p.api == "push" and p.format == "pprof"
        assert p.app_name == "receiver-test-app"
        assert p.labels["service_name"] == "receiver-test-app"
        assert p.labels["__name__"] in ("memory", "process_cpu")
        assert p.labels["suite"] == "receivers"
        assert p.tenant_id == "tenant-a"
        assert p.spy_name == "pyspy"
        assert uuid.UUID(p.profile_id)
        assert p.from_ts is not None and p.until_ts is not None and p.until_ts >= p.from_ts
        # raw_profile inside the (gzipped) PushRequest is a plain, uncompressed pprof
        assert p.raw[:2] != b"\x1f\x8b"


def test_pyroscope_io_wire_format_and_error_handling(
    pyroscope_run: tuple[PyroscopeReceiver, dict[str, Any]],
) -> None:
    receiver, result = pyroscope_run
    reqs = receiver.requests()
    assert reqs and all(r.path == PUSH_PATH for r in reqs)
    assert all(r.content_type == "application/proto" and r.content_encoding == "gzip" for r in reqs)
    assert all(r.user_agent.startswith("pyroscope-rs/pyspy/") for r in reqs)
    assert all(r.headers["x-scope-orgid"] == "tenant-a" for r in reqs)
    # The first push was answered 500: the agent neither crashed nor re-sent it; later pushes
    # (one per upload interval) were accepted. A push carries the memory and the cpu series,
    # or only one of them when the other had no sample in its interval (a starved process).
    assert reqs[0].status == 500
    assert [r.status for r in reqs[1:]] == [200] * (len(reqs) - 1) and len(reqs) >= 3
    accepted = receiver.profiles()
    assert len(reqs) - 1 <= len(accepted) <= 2 * (len(reqs) - 1)
    assert {p.labels["__name__"] for p in accepted} == {"memory", "process_cpu"}
    assert result["shutdown_s"] < 5.0


# --- Pyroscope: hand-made requests for the other API shapes -------------------------------------
def _pprof(function: str = "leaky_handler") -> bytes:
    builder = ProfileBuilder(sample_types=[("inuse_space", "bytes")], period=512 * 1024)
    builder.add([Frame(function, "app.py", 10), Frame("main", "app.py", 1)], [4096])
    return bytes(builder.encode_gzip())


def _multipart(fields: dict[str, bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    parts = []
    for name, data in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def pyro() -> Iterator[PyroscopeReceiver]:
    with PyroscopeReceiver() as receiver:
        yield receiver


def test_ingest_multipart_with_sample_type_config(pyro: PyroscopeReceiver) -> None:
    # GIVEN a multipart /ingest body with the profile and sample_type_config fields
    config = {"inuse_space": {"units": "bytes", "aggregation": "average"}}
    fields = {"profile": _pprof(), "sample_type_config": json.dumps(config).encode()}
    body, ctype = _multipart(fields)
    query = "name=shop.inuse_space%7Benv%3Dprod%2Cregion%3Deu%7D&from=1700000000&until=1700000010"
    query += "&sampleRate=100&spyName=leaktrace"
    # WHEN it is posted without format= (as the server requires for multipart)
    status, _ = _post(f"{pyro.endpoint}/ingest?{query}", body, {"Content-Type": ctype})
    # THEN name, labels, times, config and the decoded pprof are all recovered
    assert status == 200
    (p,) = pyro.profiles()
    assert (p.api, p.app_name, p.format) == ("ingest", "shop.inuse_space", "multipart")
    assert (p.spy_name, p.sample_rate) == ("leaktrace", 100)
    assert dict(p.labels) == {
        "env": "prod",
        "region": "eu",
        "__name__": "shop.inuse_space",
        "service_name": "shop",
    }
    assert (p.from_ts, p.until_ts) == (1700000000.0, 1700000010.0)
    assert p.sample_type_config == config
    assert p.value_in("leaky_handler", "inuse_space") == 4096
    # AND multipart with format=pprof is read as a raw pprof, like the server's switch does
    status, _ = _post(f"{pyro.endpoint}/ingest?{query}&format=pprof", body, {"Content-Type": ctype})
    assert status == 200
    wrong = pyro.profiles()[-1]
    assert wrong.format == "pprof" and wrong.profile is None and wrong.decode_error


def test_ingest_raw_pprof_body_and_bad_name(pyro: PyroscopeReceiver) -> None:
    status, _ = _post(
        f"{pyro.endpoint}/ingest?name=svc&format=pprof&from=1700000000000", _pprof("f1"), {}
    )
    assert status == 200
    (p,) = pyro.profiles()
    assert p.function_names() == {"f1", "main"} and p.from_ts == 1700000000.0  # ms recognised
    status, body = _post(f"{pyro.endpoint}/ingest?name=svc%7Bbroken&format=pprof", _pprof(), {})
    assert status == 400 and b"unterminated" in body
    assert len(pyro.profiles()) == 1


def test_push_json_codec_and_binary_errors(pyro: PyroscopeReceiver) -> None:
    doc = {
        "series": [
            {
                "labels": [
                    {"name": "__name__", "value": "memory"},
                    {"name": "service_name", "value": "js"},
                ],
                "samples": [
                    {"ID": "id-1", "rawProfile": base64.b64encode(_pprof("json_fn")).decode()}
                ],
            }
        ]
    }
    status, body = _post(
        pyro.endpoint + PUSH_PATH, json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and body == b"{}"
    (p,) = pyro.profiles()
    assert (p.app_name, p.profile_id, p.is_memory) == ("js", "id-1", True)
    assert "json_fn" in p.function_names()
    status, body = _post(
        pyro.endpoint + PUSH_PATH,
        gzip.compress(b"\x0a\xff"),
        {"Content-Type": "application/proto", "Content-Encoding": "gzip"},
    )
    assert status == 400 and json.loads(body)["code"] == "invalid_argument"
    status, _ = _post(pyro.endpoint + PUSH_PATH, b"x", {"Content-Type": "text/plain"})
    assert status == 415


def test_hang_mode_blocks_clients_and_stop_is_bounded() -> None:
    receiver = PyroscopeReceiver().start()
    try:
        receiver.hang()
        started = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            _post(f"{receiver.endpoint}/ingest?name=a&format=pprof", _pprof(), {}, timeout=0.5)
        assert 0.4 <= time.monotonic() - started < 2.0
        receiver.release()
        status, _ = _post(f"{receiver.endpoint}/ingest?name=a&format=pprof", _pprof(), {})
        assert status == 200
        receiver.hang()
    finally:
        stop_started = time.monotonic()
        receiver.stop()
        assert time.monotonic() - stop_started < 3.0


def test_parse_app_name() -> None:
    assert parse_app_name("app") == ("app", {})
    assert parse_app_name('app.cpu{a=1, b="x y"}') == ("app.cpu", {"a": "1", "b": "x y"})
    with pytest.raises(ValueError):
        parse_app_name("{a=1}")
    with pytest.raises(ValueError):
        parse_app_name("app{a}")


def test_grpc_status_code_is_configurable(otlp: OTLPReceiver) -> None:
    # A non-retryable code makes the exporter give up at once (no retry loop).
    otlp.fail(grpc_code=grpc.StatusCode.INVALID_ARGUMENT)
    exporter = GrpcSpanExporter(endpoint=otlp.endpoint, insecure=True, timeout=5)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    provider.shutdown()
    assert otlp.rejected_count("traces", "grpc") == 1
    assert otlp.spans() == ()
