"""A quick, quiet exit with backends unreachable (issue 16): refused connections fail at once,
one line sums up what was not sent, and /metrics stops without its poll interval."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from leaktrace._ratelimit import RateLimitedLogger
from leaktrace.config import Settings
from leaktrace.otlp import ExportGuard
from leaktrace.profiling.push import PyroscopePusher
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from leaktrace.quickstop import shutdown_now
from leaktrace.telemetry import Telemetry
from leaktrace.unsent import Reachability, UnsentLedger, host_port


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


class RecordingExporter:
    def __init__(self) -> None:
        self.calls = 0

    def export(self, batch: Sequence[Any]) -> str:
        self.calls += 1
        return "ok"

    def shutdown(self) -> None:
        return None


class Guard(ExportGuard):
    _noun = "spans"
    _success = "ok"
    _failure = "failed"


def test_endpoints_parse_for_http_and_grpc() -> None:
    assert host_port("http://collector:4318/v1/traces") == ("collector", 4318)
    assert host_port("https://otel.example") == ("otel.example", 443)
    assert host_port("localhost:4317") == ("localhost", 4317)
    assert host_port("") is None


def test_a_refused_endpoint_fails_the_export_at_once_without_the_exporter(
    dead_port: int, live_port: int
) -> None:
    ledger = UnsentLedger()
    inner = RecordingExporter()
    guard = Guard(
        inner,
        RateLimitedLogger(logging.getLogger("test.unsent")),
        reachability=Reachability(f"http://127.0.0.1:{dead_port}/v1/traces"),
        ledger=ledger,
    )
    started = time.monotonic()
    assert guard.export([1, 2, 3]) == "failed"
    assert guard.export([4]) == "failed"
    assert time.monotonic() - started < 1.0  # no back-off: a refused connect returns at once
    assert inner.calls == 0 and guard.failing
    assert ledger.counts() == {"spans": 4}
    assert ledger.summary() == (
        f"leaktrace: not sent, backends unreachable: 4 spans "
        f"(127.0.0.1:{dead_port}: connection refused)"
    )
    # An endpoint that answers is exported to, and not probed again while it works.
    probes: list[tuple[str, int]] = []
    reach = Reachability(f"http://127.0.0.1:{live_port}", connect=lambda a, t: probes.append(a))
    ok = Guard(
        inner,
        RateLimitedLogger(logging.getLogger("test.unsent")),
        reachability=reach,
        ledger=ledger,
    )
    assert ok.export([1]) == "ok" and ok.export([2]) == "ok"
    assert inner.calls == 2 and len(probes) == 1


def test_a_failed_heap_push_is_counted_once_per_profile(dead_port: int) -> None:
    ledger = UnsentLedger()
    pusher = PyroscopePusher(f"http://127.0.0.1:{dead_port}", timeout_s=1.0, ledger=ledger)
    snap = HeapSnapshot(
        2.0, 1.0, (HeapSample((Frame("f", "/app/x.py", 1),), 1, 100, 1, 100),), 16384
    )
    assert not pusher.push(snap, application_name="svc")
    summary = ledger.summary()
    assert (
        summary is not None
        and f"1 heap profile (127.0.0.1:{dead_port}: connection refused)" in summary
    )


def test_shutdown_with_every_backend_refusing_is_quick_and_says_one_line(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN traces and logs exported to a port that refuses, a span and a log record queued
    endpoint = f"http://127.0.0.1:{dead_port}"
    settings = Settings.resolve(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "LEAKTRACE_PROFILING_ENABLED": "false",
            "OTEL_SERVICE_NAME": "unsent-test",
        }
    )
    tel = Telemetry(settings, serve_metrics=False, install_log_handlers=True).start()
    with tel.tracer.start_as_current_span("work"):
        logging.getLogger("app").warning("one line")
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        assert tel.shutdown()
        took = time.monotonic() - started
    # THEN no retry back-off (the flush budget is 0.6 x 5 s: that was the wait before)
    assert took < 2.0, took
    # AND one warning says what was not sent; the exporters' own warnings are not shown
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in loud] == [
        f"leaktrace: not sent, backends unreachable: 1 log record (127.0.0.1:{dead_port}: connection refused), "
        f"1 span (127.0.0.1:{dead_port}: connection refused)"
    ]


def test_a_metrics_style_server_stops_without_waiting_for_its_poll_interval() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 30.0}, daemon=True
    )
    thread.start()
    # One answered request: serve_forever is running (and back in its select() after it).
    with socket.create_connection(server.server_address[:2], timeout=5) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := c.recv(4096):  # read to the end: the server closes an HTTP/1.0 exchange
            answer += chunk
        assert answer.startswith(b"HTTP/1.0 501")
    started = time.monotonic()
    assert shutdown_now(server, timeout_s=10.0)
    assert time.monotonic() - started < 5.0  # a plain shutdown() waits out the 30 s poll
    thread.join(5)
    assert not thread.is_alive()
    server.server_close()


def test_a_finalizing_interpreter_that_starts_no_thread_still_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()

    # GIVEN threads can no longer start (3.12+ after threading's shutdown, where atexit runs)
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    # THEN the server still stops, the plain way, with no error
    assert shutdown_now(server, timeout_s=10.0)
    monkeypatch.undo()
    thread.join(5)
    assert not thread.is_alive()
    server.server_close()


def test_quiet_silences_the_children_of_a_logger_name_too(caplog: pytest.LogCaptureFixture) -> None:
    from leaktrace.unsent import quiet

    child = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter.test_child")
    with caplog.at_level(logging.DEBUG), quiet(("opentelemetry.exporter",)):
        child.warning("Transient error, retrying")
        child.info("kept: below WARNING")
    child.warning("after: shown again")
    assert [r.getMessage() for r in caplog.records] == ["kept: below WARNING", "after: shown again"]
