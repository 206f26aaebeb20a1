"""Real OTLP export from leaktrace.init() to a receiver built on opentelemetry-proto."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import leaktrace
import pytest

from tests.support.otlp_receiver import OTLPReceiver, poll_until


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    with OTLPReceiver() as r:
        yield r


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_and_logs_reach_the_collector_with_linked_ids(
    receiver: OTLPReceiver, protocol: str
) -> None:
    endpoint = receiver.endpoint if protocol == "grpc" else receiver.http_endpoint
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=2.0.1,deployment.environment=staging",
    }
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # GIVEN leaktrace configured from the environment only
    tel = leaktrace.init("wire-svc", environ=env, profiling_enabled=False, serve_metrics=False)
    try:
        # WHEN the service does traced work and logs inside it
        @tel.traced("checkout")
        def checkout(order: int) -> None:
            logging.getLogger("shop").warning("order %d placed", order)

        checkout(42)
    finally:
        tel.shutdown()
        root.handlers, _ = saved
        root.setLevel(saved[1])
    transport = "grpc" if protocol == "grpc" else "http"
    spans = poll_until(lambda: receiver.spans_named("checkout"), timeout=10)
    logs = poll_until(
        lambda: [rec for rec in receiver.logs() if rec.body == "order 42 placed"], timeout=10
    )
    # THEN the span arrived with the resource attributes leaktrace promises
    (span,) = spans
    assert span.transport == transport
    assert span.resource_attributes["service.name"] == "wire-svc"
    assert span.resource_attributes["service.version"] == "2.0.1"
    assert span.resource_attributes["deployment.environment"] == "staging"
    assert span.resource_attributes["service.instance.id"] == tel.settings.service_instance_id
    assert span.attributes["code.function.name"].endswith("checkout")
    # AND the log record links to that span
    (log,) = logs
    assert log.trace_id == span.trace_id and log.span_id == span.span_id
    assert log.severity_text == "WARN"
    assert log.resource_attributes["service.name"] == "wire-svc"


def test_leaktrace_run_traces_an_unmodified_otel_api_script(
    receiver: OTLPReceiver, tmp_path: Path
) -> None:
    # GIVEN a script that only uses the OpenTelemetry API (no SDK, no leaktrace import)
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent("""
        import logging, sys
        from opentelemetry import trace
        tracer = trace.get_tracer("unmodified")
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner") as span:
                span.set_attribute("items", 3)
                logging.getLogger("app").warning("working")
        sys.exit(7)
    """)
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
        "LEAKTRACE_PROFILING_ENABLED": "false",
        "LEAKTRACE_METRICS_PORT": "0",
    }
    # WHEN it runs under `leaktrace run`
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaktrace",
            "run",
            "--service-name",
            "unmodified-app",
            "--",
            sys.executable,
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # THEN its exit status passes through and its spans were exported, parent-linked
    assert proc.returncode == 7, proc.stderr
    spans = poll_until(lambda: receiver.spans() if len(receiver.spans()) >= 2 else None, timeout=10)
    by_name = {s.name: s for s in spans}
    assert by_name["inner"].parent_span_id == by_name["outer"].span_id
    assert by_name["inner"].attributes["items"] == 3
    assert by_name["inner"].resource_attributes["service.name"] == "unmodified-app"
    logs = poll_until(lambda: [rec for rec in receiver.logs() if rec.body == "working"], timeout=10)
    assert logs[0].trace_id == by_name["inner"].trace_id
    # AND the console line shows the trace id too
    assert f"trace_id={by_name['inner'].trace_id}" in proc.stderr


def test_leaktrace_run_passes_signals_through(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time, sys\nprint('ready', flush=True)\ntime.sleep(30)\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "LEAKTRACE_PROFILING_ENABLED": "false",
        "LEAKTRACE_METRICS_PORT": "0",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.terminate()
        rc = proc.wait(timeout=15)
    finally:
        proc.kill()
    # Killed by SIGTERM, as without leaktrace (after leaktrace flushed).
    assert rc == -15


def test_leaktrace_run_bad_usage_and_missing_program() -> None:
    usage = subprocess.run(
        [sys.executable, "-m", "leaktrace", "run"], capture_output=True, text=True, timeout=30
    )
    assert usage.returncode == 2 and "command to run is required" in usage.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--", "no-such-program-xyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "command not found" in missing.stderr
    assert "Traceback" not in usage.stderr + missing.stderr
