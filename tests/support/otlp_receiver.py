"""An in-process OTLP receiver (gRPC and HTTP/protobuf) for wire-level tests and benchmarks.

It decodes what real OpenTelemetry exporters send into small frozen records, so a test can assert
on names, ids and attributes without touching protobuf. It can also misbehave on purpose
(UNAVAILABLE / 503, slow answers) to exercise exporter retry and timeout handling.

The first section holds plumbing shared with ``pyroscope_receiver`` (bounded storage, polling,
an HTTP server that can be stopped while clients hold keep-alive connections).
"""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Generic, Self, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "BoundedRecords",
    "OTLPReceiver",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedMetricPoint",
    "ReceivedSpan",
    "ReceivedSpanEvent",
    "ReceiverHTTPServer",
    "poll_until",
]

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
MAX_BODY_BYTES = 64 * 1024 * 1024


# --- shared plumbing --------------------------------------------------------------------------
def poll_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something truthy or ``timeout`` seconds pass.

    Returns the last value, so ``assert poll_until(...)`` fails on timeout and the caller can
    also use a returned list/record directly. Never sleeps past the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        remaining = deadline - time.monotonic()
        if value or remaining <= 0:
            return value
        time.sleep(min(interval, remaining))


class BoundedRecords(Generic[T]):
    """Thread-safe append-only store keeping the newest ``capacity`` items and counting the rest."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._items: deque[T] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._dropped = 0

    def extend(self, items: Iterable[T]) -> None:
        with self._lock:
            for item in items:
                if len(self._items) == self._items.maxlen:
                    self._dropped += 1
                self._items.append(item)

    def snapshot(self) -> tuple[T, ...]:
        with self._lock:
            return tuple(self._items)

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._dropped = 0


class ReceiverHTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that can close the keep-alive connections it holds when stopped.

    Without this, ``stop()`` leaves handler threads blocked on idle client sockets.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__((LOOPBACK, 0), handler)
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def track(self, conn: socket.socket, open_: bool) -> None:
        with self._conn_lock:
            (self._connections.add if open_ else self._connections.discard)(conn)

    def start_background(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.shutdown()
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout)


class TrackedHandler(http.server.BaseHTTPRequestHandler):
    """Request handler base: registers its socket with the server, stays quiet, bounds idle time."""

    protocol_version = "HTTP/1.1"  # keep-alive, as real exporters expect
    timeout = 15  # an idle keep-alive connection frees its thread after this
    server: ReceiverHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read assertions, not access logs

    def read_body(self) -> bytes | None:
        """Read the request body; answers 411/413 itself and returns None when it did."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.send_plain(411, "Content-Length required")
            return None
        try:
            length = int(length_header)
        except ValueError:
            self.send_plain(400, "bad Content-Length")
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self.send_plain(413, f"body larger than {MAX_BODY_BYTES} bytes")
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def send_plain(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_bytes(status, text.encode(), "text/plain; charset=utf-8", headers)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def decompress(body: bytes, encoding: str | None) -> bytes:
    """Undo a Content-Encoding; raises ValueError for unknown encodings or corrupt data."""
    enc = (encoding or "identity").strip().lower()
    try:
        if enc in ("", "identity"):
            return body
        if enc == "gzip":
            return gzip.decompress(body)
        if enc == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"corrupt {enc} body: {exc}") from exc
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


@dataclass
class _FaultState:
    failures_left: int = 0  # -1: fail until recover()
    http_status: int = 503
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    retry_after_s: float | None = None
    delay_s: float = 0.0


# --- decoded records --------------------------------------------------------------------------
Attributes = Mapping[str, Any]


@dataclass(frozen=True)
class ReceivedSpanEvent:
    name: str
    time_unix_nano: int
    attributes: Attributes


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    parent_span_id: str  # 16 hex, or "" for a root span
    name: str
    kind: str  # "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER" or "UNSPECIFIED"
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str  # "UNSET", "OK", "ERROR"
    status_message: str
    attributes: Attributes
    resource_attributes: Attributes
    scope_name: str
    events: tuple[ReceivedSpanEvent, ...]
    transport: str  # "grpc" or "http"


@dataclass(frozen=True)
class ReceivedLog:
    body: str  # string bodies as-is, other AnyValue kinds rendered with repr()
    severity_number: int
    severity_text: str
    trace_id: str  # 32 hex, or "" when the record carries no trace context
    span_id: str
    time_unix_nano: int
    observed_time_unix_nano: int
    attributes: Attributes
    resource_attributes: Attributes
    scope_name: str
    transport: str


@dataclass(frozen=True)
class ReceivedMetricPoint:
    attributes: Attributes
    time_unix_nano: int
    value: float | int | None  # gauge / sum points
    count: int | None  # histogram-like points
    sum: float | None


@dataclass(frozen=True)
class ReceivedMetric:
    name: str
    description: str
    unit: str
    data_type: str  # "gauge", "sum", "histogram", "exponential_histogram", "summary"
    points: tuple[ReceivedMetricPoint, ...]
    resource_attributes: Attributes
    scope_name: str
    transport: str


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain (immutable) Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, which)


def attributes_dict(kvs: Iterable[KeyValue]) -> Attributes:
    return MappingProxyType({kv.key: any_value(kv.value) for kv in kvs})


def _enum_suffix(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def flatten_spans(
    request: trace_service_pb2.ExportTraceServiceRequest, transport: str
) -> list[ReceivedSpan]:
    out = []
    for rs in request.resource_spans:
        resource = attributes_dict(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=_enum_suffix(trace_pb2.Span.SpanKind.Name(span.kind), "SPAN_KIND_"),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        status_code=_enum_suffix(
                            trace_pb2.Status.StatusCode.Name(span.status.code), "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        attributes=attributes_dict(span.attributes),
                        resource_attributes=resource,
                        scope_name=ss.scope.name,
                        events=tuple(
                            ReceivedSpanEvent(
                                e.name, e.time_unix_nano, attributes_dict(e.attributes)
                            )
                            for e in span.events
                        ),
                        transport=transport,
                    )
                )
    return out


def flatten_logs(
    request: logs_service_pb2.ExportLogsServiceRequest, transport: str
) -> list[ReceivedLog]:
    out = []
    for rl in request.resource_logs:
        resource = attributes_dict(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                body = any_value(rec.body)
                out.append(
                    ReceivedLog(
                        body=body if isinstance(body, str) else repr(body),
                        severity_number=int(rec.severity_number),
                        severity_text=rec.severity_text,
                        trace_id=rec.trace_id.hex(),
                        span_id=rec.span_id.hex(),
                        time_unix_nano=rec.time_unix_nano,
                        observed_time_unix_nano=rec.observed_time_unix_nano,
                        attributes=attributes_dict(rec.attributes),
                        resource_attributes=resource,
                        scope_name=sl.scope.name,
                        transport=transport,
                    )
                )
    return out


def _metric_points(metric: Any, data_type: str) -> tuple[ReceivedMetricPoint, ...]:
    points = []
    for dp in getattr(metric, data_type).data_points:
        attrs = attributes_dict(dp.attributes)
        if data_type in ("gauge", "sum"):
            which = dp.WhichOneof("value")
            value = getattr(dp, which) if which else None
            points.append(ReceivedMetricPoint(attrs, dp.time_unix_nano, value, None, None))
        else:
            total = dp.sum if data_type == "summary" or dp.HasField("sum") else None
            points.append(ReceivedMetricPoint(attrs, dp.time_unix_nano, None, int(dp.count), total))
    return tuple(points)


def flatten_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest, transport: str
) -> list[ReceivedMetric]:
    out = []
    for rm in request.resource_metrics:
        resource = attributes_dict(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data_type = metric.WhichOneof("data") or ""
                out.append(
                    ReceivedMetric(
                        name=metric.name,
                        description=metric.description,
                        unit=metric.unit,
                        data_type=data_type,
                        points=_metric_points(metric, data_type) if data_type else (),
                        resource_attributes=resource,
                        scope_name=sm.scope.name,
                        transport=transport,
                    )
                )
    return out


# --- the receiver -----------------------------------------------------------------------------
_SIGNALS: dict[str, tuple[type[Message], type[Message]]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}
_HTTP_PATHS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}


class OTLPReceiver:
    """OTLP/gRPC and OTLP/HTTP (protobuf) receiver on 127.0.0.1, free ports.

    ``endpoint``/``port`` are the gRPC side (``http://127.0.0.1:<port>``, what ``OTLPSpanExporter``
    from the grpc package takes); ``http_endpoint``/``http_port`` and ``traces_url``/``logs_url``/
    ``metrics_url`` are the HTTP side. Either transport can be disabled.

    Stores the newest ``max_items`` spans, logs and metrics each; older ones are dropped and
    counted (``dropped_spans`` ...), so a soak run cannot grow memory without bound.
    """

    def __init__(
        self, *, grpc_enabled: bool = True, http_enabled: bool = True, max_items: int = 10_000
    ) -> None:
        if not (grpc_enabled or http_enabled):
            raise ValueError("enable at least one transport")
        self._grpc_enabled = grpc_enabled
        self._http_enabled = http_enabled
        self._spans: BoundedRecords[ReceivedSpan] = BoundedRecords(max_items)
        self._logs: BoundedRecords[ReceivedLog] = BoundedRecords(max_items)
        self._metrics: BoundedRecords[ReceivedMetric] = BoundedRecords(max_items)
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()  # (transport, signal) -> accepted
        self._rejected: Counter[tuple[str, str]] = Counter()  # answered with an injected failure
        self._bytes = 0
        self._content_encodings: Counter[str] = Counter()
        self._faults = _FaultState()
        self._stopping = threading.Event()
        self._grpc_server: grpc.Server | None = None
        self._grpc_port: int | None = None
        self._http_server: ReceiverHTTPServer | None = None

    # lifecycle
    def start(self) -> Self:
        if self._grpc_server is not None or self._http_server is not None:
            raise RuntimeError("receiver already started")
        self._stopping.clear()
        try:
            if self._grpc_enabled:
                self._start_grpc()
            if self._http_enabled:
                self._http_server = ReceiverHTTPServer(_make_otlp_http_handler(self))
                self._http_server.start_background("otlp-receiver-http")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_grpc(self) -> None:
        server = grpc.server(
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-receiver-grpc")
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), server)  # type: ignore[no-untyped-call]
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _MetricsServicer(self), server
        )
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        if port == 0:
            raise RuntimeError("could not bind a gRPC port on 127.0.0.1")
        server.start()
        self._grpc_server, self._grpc_port = server, port

    def stop(self) -> None:
        """Stop both servers; bounded to a few seconds even with slow/failing requests in flight."""
        self._stopping.set()  # wakes handlers sleeping in slow mode
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0.5).wait(timeout=3.0)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.stop()
            self._http_server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        if self._grpc_port is None:
            raise RuntimeError("gRPC side not running")
        return self._grpc_port

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def http_port(self) -> int:
        if self._http_server is None:
            raise RuntimeError("HTTP side not running")
        return self._http_server.port

    @property
    def http_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def traces_url(self) -> str:
        return f"{self.http_endpoint}/v1/traces"

    @property
    def logs_url(self) -> str:
        return f"{self.http_endpoint}/v1/logs"

    @property
    def metrics_url(self) -> str:
        return f"{self.http_endpoint}/v1/metrics"

    # fault injection
    def fail(
        self,
        count: int | None = None,
        *,
        http_status: int = 503,
        grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        retry_after_s: float | None = None,
    ) -> None:
        """Answer the next ``count`` export requests (all of them if None) with an error.

        ``retry_after_s`` is sent as ``Retry-After`` (HTTP) and as a ``google.rpc.RetryInfo``
        trailer (gRPC); both OTel exporters honour it, which keeps retry tests fast.
        """
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 or None")
        with self._lock:
            self._faults.failures_left = -1 if count is None else count
            self._faults.http_status = http_status
            self._faults.grpc_code = grpc_code
            self._faults.retry_after_s = retry_after_s

    def slow(self, delay_s: float) -> None:
        """Delay every answer by ``delay_s`` seconds (0 turns it off); stop() cuts the wait short."""
        if delay_s < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._faults.delay_s = delay_s

    def recover(self) -> None:
        with self._lock:
            self._faults = _FaultState()

    def _admit(self, transport: str, signal: str) -> _FaultState | None:
        """Apply the delay, then return the fault to answer with (None: accept the request)."""
        with self._lock:
            delay = self._faults.delay_s
        if delay:
            self._stopping.wait(delay)
        with self._lock:
            faults = self._faults
            if faults.failures_left == 0:
                return None
            if faults.failures_left > 0:
                faults.failures_left -= 1
            self._rejected[(transport, signal)] += 1
            return _FaultState(
                0, faults.http_status, faults.grpc_code, faults.retry_after_s, faults.delay_s
            )

    def _record(self, transport: str, signal: str, request: Message, wire_bytes: int) -> None:
        with self._lock:
            self._requests[(transport, signal)] += 1
            self._bytes += wire_bytes
        if signal == "traces":
            self._spans.extend(flatten_spans(request, transport))
        elif signal == "logs":
            self._logs.extend(flatten_logs(request, transport))
        else:
            self._metrics.extend(flatten_metrics(request, transport))

    def _note_encoding(self, encoding: str) -> None:
        with self._lock:
            self._content_encodings[encoding] += 1

    # what was received
    def spans(self) -> tuple[ReceivedSpan, ...]:
        return self._spans.snapshot()

    def logs(self) -> tuple[ReceivedLog, ...]:
        return self._logs.snapshot()

    def metrics(self) -> tuple[ReceivedMetric, ...]:
        return self._metrics.snapshot()

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans() if s.name == name]

    @property
    def dropped_spans(self) -> int:
        return self._spans.dropped

    @property
    def dropped_logs(self) -> int:
        return self._logs.dropped

    @property
    def dropped_metrics(self) -> int:
        return self._metrics.dropped

    def request_count(self, signal: str | None = None, transport: str | None = None) -> int:
        """Accepted export requests, optionally filtered by signal and/or transport."""
        with self._lock:
            return sum(
                n
                for (t, s), n in self._requests.items()
                if signal in (None, s) and transport in (None, t)
            )

    def rejected_count(self, signal: str | None = None, transport: str | None = None) -> int:
        """Requests answered with an injected failure."""
        with self._lock:
            return sum(
                n
                for (t, s), n in self._rejected.items()
                if signal in (None, s) and transport in (None, t)
            )

    @property
    def bytes_received(self) -> int:
        """Accepted payload bytes: HTTP bodies as sent on the wire, gRPC messages uncompressed."""
        with self._lock:
            return self._bytes

    def content_encodings(self) -> dict[str, int]:
        """HTTP Content-Encoding values seen on accepted requests ("identity" when absent)."""
        with self._lock:
            return dict(self._content_encodings)

    def clear(self) -> None:
        self._spans.clear()
        self._logs.clear()
        self._metrics.clear()
        with self._lock:
            self._requests.clear()
            self._rejected.clear()
            self._content_encodings.clear()
            self._bytes = 0

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll ``predicate`` (bounded); returns its last value, falsy on timeout."""
        return poll_until(predicate, timeout)


# --- gRPC side --------------------------------------------------------------------------------
def _grpc_export(
    receiver: OTLPReceiver, signal: str, request: Message, context: grpc.ServicerContext
) -> Message:
    fault = receiver._admit("grpc", signal)
    if fault is not None:
        if fault.retry_after_s is not None:
            info = RetryInfo()
            info.retry_delay.FromNanoseconds(int(fault.retry_after_s * 1e9))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
        context.abort(fault.grpc_code, "injected failure (OTLPReceiver.fail)")
    receiver._record("grpc", signal, request, request.ByteSize())
    return _SIGNALS[signal][1]()


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        return _grpc_export(self._receiver, "traces", request, context)


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        return _grpc_export(self._receiver, "logs", request, context)


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:
        return _grpc_export(self._receiver, "metrics", request, context)


# --- HTTP side --------------------------------------------------------------------------------
def _make_otlp_http_handler(receiver: OTLPReceiver) -> type[TrackedHandler]:
    class Handler(TrackedHandler):
        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            signal = _HTTP_PATHS.get(path)
            if signal is None:
                self.send_plain(
                    404, f"unknown OTLP path {path!r}; use /v1/traces, /v1/logs or /v1/metrics"
                )
                return
            body = self.read_body()
            if body is None:
                return
            content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type != "application/x-protobuf":
                self.send_plain(
                    415, f"Content-Type {content_type!r} not supported; send application/x-protobuf"
                )
                return
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            try:
                request = _SIGNALS[signal][0].FromString(decompress(body, encoding))
            except (ValueError, DecodeError) as exc:
                self.send_plain(400, f"cannot decode {signal} request: {exc}")
                return
            fault = receiver._admit("http", signal)
            if fault is not None:
                headers = (
                    {}
                    if fault.retry_after_s is None
                    else {"Retry-After": f"{fault.retry_after_s:g}"}
                )
                self.send_plain(fault.http_status, "injected failure (OTLPReceiver.fail)", headers)
                return
            receiver._note_encoding(encoding)
            receiver._record("http", signal, request, len(body))
            self.send_bytes(
                200, _SIGNALS[signal][1]().SerializeToString(), "application/x-protobuf"
            )

        def do_GET(self) -> None:
            self.send_plain(405, "OTLP/HTTP accepts POST only")

    return Handler
