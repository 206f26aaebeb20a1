"""Telemetry never breaks or stalls the host: every failure is contained and logged, rate-limited."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence

import leaktrace
import pytest
from leaktrace import Settings, Telemetry
from leaktrace._ratelimit import RateLimitedLogger, RateLimiter
from leaktrace.resource import build_resource
from leaktrace.tracing import build_tracer_provider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        pass


class BlockingExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def _warnings(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(prefix)
    ]


def test_exporter_that_raises_is_contained_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a tracer provider whose exporter raises on every batch
    settings = Settings.resolve({}, service_name="s", span_queue_size=64)
    warn = RateLimitedLogger(logging.getLogger("leaktrace.export"), RateLimiter(60.0))
    exporter = RaisingExporter()
    provider, _ = build_tracer_provider(
        settings.trace_export,
        resource=build_resource(settings.service),
        warn=warn,
        exporter=exporter,
    )
    tracer = provider.get_tracer("t")
    # WHEN the host makes spans and flushes many batches
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            with tracer.start_as_current_span("work"):
                pass
            provider.force_flush(2000)
        provider.shutdown()
    # THEN every batch reached the exporter, the host never saw the error, and it was logged once
    assert exporter.calls == 20
    assert len(_warnings(caplog, "leaktrace.export")) == 1
    assert not [m for m in _warnings(caplog, "opentelemetry") if "exporter bug" in m]


def test_full_queue_drops_instead_of_growing_or_blocking() -> None:
    # GIVEN an exporter stuck on its first batch and a queue of 32 spans
    settings = Settings.resolve({}, service_name="s", span_queue_size=32)
    warn = RateLimitedLogger(logging.getLogger("leaktrace.export"))
    exporter = BlockingExporter()
    provider, _ = build_tracer_provider(
        settings.trace_export,
        resource=build_resource(settings.service),
        warn=warn,
        exporter=exporter,
    )
    tracer = provider.get_tracer("t")
    # WHEN the host makes 20,000 spans
    start = time.monotonic()
    for _ in range(20_000):
        with tracer.start_as_current_span("work"):
            pass
    elapsed = time.monotonic() - start
    exporter.release.set()
    provider.shutdown()
    # THEN the host was not blocked and at most one queue's worth (plus the batch in flight) was kept
    assert elapsed < 5.0
    assert 0 < exporter.exported <= 32 + 32


def test_dead_collector_does_not_stall_the_host_and_shutdown_is_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _dead_port()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "20000",
    }
    with caplog.at_level(logging.WARNING):
        tel = leaktrace.init(
            "dead-collector",
            environ=env,
            profiling_enabled=False,
            serve_metrics=False,
            shutdown_timeout_s=2.0,
            install_log_handlers=True,
        )
        start = time.monotonic()
        for i in range(500):
            with tel.tracer.start_as_current_span("req"):
                logging.getLogger("app").info("request %d", i)
        host_time = time.monotonic() - start
        t0 = time.monotonic()
        tel.shutdown()
        shutdown_time = time.monotonic() - t0
    assert host_time < 3.0
    # Even with a 20 s exporter timeout, shutdown aborts the retries within its own deadline.
    assert shutdown_time < 2.0 + 0.5
    # The OTel exporters' per-batch complaints are rate-limited: a handful, not one per batch.
    otel_warnings = _warnings(caplog, "opentelemetry")
    assert len(otel_warnings) <= 6, otel_warnings


def test_metrics_port_taken_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with caplog.at_level(logging.WARNING):
            tel = leaktrace.init(
                "busy-port",
                environ={},
                metrics_port=port,
                metrics_host="127.0.0.1",
                profiling_enabled=False,
                traces_enabled=False,
                logs_enabled=False,
            )
        try:
            assert tel.metrics_port is None
            assert any(f":{port}" in m and "metrics" in m for m in _warnings(caplog, "leaktrace"))
            # The rest of telemetry still works.
            with tel.tracer.start_as_current_span("still-works") as span:
                assert span.get_span_context().is_valid
            assert tel.registry.get_sample_value("process_resident_memory_bytes") > 0
        finally:
            tel.shutdown()
    finally:
        blocker.close()


class _FailingAgent:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.shutdowns = 0

    def configure(self, **kwargs: object) -> bool:
        if self.error is not None:
            raise self.error
        return False

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.mark.parametrize("error", [RuntimeError("no ptrace here"), None], ids=["raises", "refuses"])
def test_profiler_that_cannot_start_degrades_to_a_warning(
    error: Exception | None, caplog: pytest.LogCaptureFixture
) -> None:
    from leaktrace.profiling.pyroscope_agent import PyroscopeProfiler

    settings = Settings.resolve(
        {}, service_name="p", metrics_port=0, traces_enabled=False, logs_enabled=False
    )
    agent = _FailingAgent(error)
    profiler = PyroscopeProfiler(settings.pyroscope, memory=True, agent=agent)
    with caplog.at_level(logging.WARNING):
        tel = Telemetry(
            settings, profiler=profiler, registry=CollectorRegistry(), serve_metrics=False
        ).start()
    with tel.tracer.start_as_current_span("root"):
        pass  # the guarded pyroscope span processor stays out of the way
    tel.shutdown()
    assert profiler.running is False and agent.shutdowns == 0
    assert any("profiler" in m or "pyroscope" in m for m in _warnings(caplog, "leaktrace"))


@pytest.mark.subprocess
def test_dead_pyroscope_does_not_affect_the_program(tmp_path: pytest.TempPathFactory) -> None:
    # GIVEN a program run under leaktrace with pyroscope-io pushing to a dead address
    script = tmp_path / "work.py"  # type: ignore[operator]
    script.write_text(
        textwrap.dedent("""
        import time
        total = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            total += sum(range(1000))
        print("result", total > 0)
    """)
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYROSCOPE_SERVER_ADDRESS": f"http://127.0.0.1:{_dead_port()}",
        "PYROSCOPE_UPLOAD_INTERVAL": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_dead_port()}",
        "LEAKTRACE_METRICS_PORT": "0",
        "LEAKTRACE_SHUTDOWN_TIMEOUT": "3",
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    # THEN it prints its result, exits 0, and exits within its run time + the shutdown bound
    assert proc.returncode == 0, proc.stderr
    assert "result True" in proc.stdout
    assert elapsed < 1.5 + 3.0 + 4.0, (elapsed, proc.stderr[-2000:])
