"""`opentelemetry-instrument` with leaktrace's distro and configurator, instrumentor failures and
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS under `leaktrace run`, and `leaktrace bootstrap`.

Every program here is a subprocess started the way a user starts it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

from tests.integration._autoinstrument_support import (
    APPS,
    BASE_ENV,
    BIN,
    ROOT,
    Downstream,
    drive,
    free_port,
    precision,
    suspect_at,
    tail,
    wait_for_port,
)
from tests.support.otlp_receiver import OTLPReceiver, poll_until
from tests.support.pyroscope_receiver import PyroscopeReceiver

LEAKTRACE_DISTRO = {"OTEL_PYTHON_DISTRO": "leaktrace", "OTEL_PYTHON_CONFIGURATOR": "leaktrace"}


def test_opentelemetry_instrument_gets_leaktraces_gauges_heap_profiles_and_hunter(
    tmp_path: Path,
) -> None:
    # GIVEN the unmodified Flask app under plain `opentelemetry-instrument`, leaktrace chosen as
    # distro and configurator (opentelemetry-distro is installed too), hunting in-process
    port, metrics_port = free_port(), free_port()
    report, log = tmp_path / "hunt.json", tmp_path / "app.log"
    with (
        OTLPReceiver(grpc_enabled=False) as otlp,
        PyroscopeReceiver() as pyroscope,
        Downstream() as downstream,
    ):
        env = {
            **BASE_ENV,
            **LEAKTRACE_DISTRO,
            "OTEL_SERVICE_NAME": "reports",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.http_endpoint,
            "PYROSCOPE_SERVER_ADDRESS": pyroscope.endpoint,
            "LEAKTRACE_METRICS_PORT": str(metrics_port),
            "LEAKTRACE_HEAP_EXPORT_INTERVAL": "2",
            "LEAKTRACE_HUNT_ENABLED": "true",
            "LEAKTRACE_HUNT_REPORT": str(report),
            "LEAKTRACE_HUNT_INTERVAL": "1",
            "LEAKTRACE_HUNT_MAX_DUTY": "0.25",
            "LEAKTRACE_HEAP_SAMPLE_BYTES": "16384",
        }
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    str(BIN / "opentelemetry-instrument"),
                    sys.executable,
                    "flask_reports.py",
                    "--port",
                    str(port),
                    "--downstream",
                    downstream.url,
                ],
                env=env,
                cwd=APPS,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                wait_for_port(port, proc, timeout=20, log=log)
                sent = drive(
                    f"http://127.0.0.1:{port}",
                    [("POST", "/reports", {})],
                    rate=12,
                    until=time.monotonic() + 16,
                    max_requests=200,
                )
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
                ) as resp:
                    metrics = resp.read().decode()
                heap = pyroscope.wait_for(
                    lambda: [
                        p
                        for p in pyroscope.memory_profiles()
                        if "render_report" in p.function_names()
                    ],
                    timeout=10,
                )
            finally:
                proc.send_signal(signal.SIGTERM)  # werkzeug has no handler: leaktrace's flushes
                proc.wait(timeout=20)
    # THEN leaktrace's memory gauges were served
    for name in (
        "process_resident_memory_bytes",
        "leaktrace_heap_live_bytes",
        "leaktrace_leak_suspects",
    ):
        assert name in metrics, name
    traces = {s.trace_id for s in sent if s.status == 202}
    assert len(traces) == len(sent) >= 100, tail(log)
    # AND span-linked heap profiles reached Pyroscope, the leak's bytes under the load's trace ids
    profile = heap[-1].profile
    assert profile is not None and heap[-1].labels["service_name"] == "reports"
    labelled = [
        s.labels.get("trace_id", "")
        for s in profile.samples
        if any(f.function == "render_report" for f in s.frames)
    ]
    assert labelled and precision(labelled, traces) >= 0.9, labelled[:10]
    # AND the hunter names the leak and the requests behind it
    doc = json.loads(report.read_text())
    suspect = suspect_at(doc, "render_report")
    assert suspect is not None, doc
    assert len(suspect["trace_ids"]) >= 5 and precision(suspect["trace_ids"], traces) >= 0.9
    # AND Flask's server spans continued the callers' traces through leaktrace's exporter
    spans = poll_until(
        lambda: [s for s in otlp.spans() if s.kind == "SERVER" and s.trace_id in traces], timeout=10
    )
    assert spans and all(s.resource_attributes["service.name"] == "reports" for s in spans)


BROKEN_DIST = {
    "broken_instrumentation-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: broken-instrumentation\nVersion: 1.0\n",
    "broken_instrumentation-1.0.dist-info/entry_points.txt": "[opentelemetry_instrumentor]\nbroken = broken_instrumentation:BrokenInstrumentor\n",
    "broken_instrumentation.py": textwrap.dedent("""
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        class BrokenInstrumentor(BaseInstrumentor):
            def instrumentation_dependencies(self):
                return ()

            def _instrument(self, **kwargs):
                raise RuntimeError("this instrumentor is broken")

            def _uninstrument(self, **kwargs):
                pass
    """),
}

REPORT_SCRIPT = textwrap.dedent("""
    import json, threading
    from opentelemetry import trace
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    seen = []
    with trace.get_tracer("script").start_as_current_span("work") as span:
        t = threading.Thread(target=lambda: seen.append(trace.get_current_span().get_span_context().trace_id))
        t.start(); t.join()
    print(json.dumps({
        "flask": FlaskInstrumentor().is_instrumented_by_opentelemetry,
        "requests": RequestsInstrumentor().is_instrumented_by_opentelemetry,
        "thread_in_trace": seen == [span.get_span_context().trace_id] and seen[0] != 0,
    }))
""")


def _run_with_broken_instrumentor(
    tmp_path: Path, launcher: list[str], **env_extra: str
) -> tuple[dict[str, bool], str]:
    for rel, text in BROKEN_DIST.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    script = tmp_path / "report.py"
    script.write_text(REPORT_SCRIPT)
    env = {
        **BASE_ENV,
        "OTEL_TRACES_EXPORTER": "none",
        "LEAKTRACE_PROFILING_ENABLED": "false",
        "PYTHONPATH": str(tmp_path),
        **env_extra,
    }
    proc = subprocess.run(
        [*launcher, sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_broken_instrumentor_is_one_warning_and_the_rest_load(tmp_path: Path) -> None:
    launchers = {
        "leaktrace run": [sys.executable, "-m", "leaktrace", "run", "--"],
        "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument")],
    }
    for name, launcher in launchers.items():
        state, stderr = _run_with_broken_instrumentor(tmp_path, launcher, **LEAKTRACE_DISTRO)
        broken = [line for line in stderr.splitlines() if "broken" in line]
        assert len(broken) == 2, (name, stderr)  # the warning, and the summary's "failed: broken"
        assert (
            "failed and is skipped" in broken[0] and "this instrumentor is broken" in broken[0]
        ), stderr
        assert "failed: broken" in broken[1], stderr
        assert state == {"flask": True, "requests": True, "thread_in_trace": True}, (
            name,
            state,
            stderr,
        )


def test_disabled_instrumentations_are_left_out(tmp_path: Path) -> None:
    launcher = [sys.executable, "-m", "leaktrace", "run", "--"]
    state, stderr = _run_with_broken_instrumentor(
        tmp_path, launcher, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flask, broken"
    )
    assert state == {"flask": False, "requests": True, "thread_in_trace": True}, state
    assert "broken" not in stderr
    state, stderr = _run_with_broken_instrumentor(
        tmp_path, launcher, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*"
    )
    assert state == {"flask": False, "requests": False, "thread_in_trace": False}, state
    assert "instrumented nothing" in stderr


def test_bootstrap_lists_the_instrumentations_of_the_installed_libraries() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "leaktrace", "bootstrap"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    release = version("opentelemetry-instrumentation")
    lines = set(proc.stdout.split())
    for lib in ("flask", "django", "fastapi", "starlette", "requests", "httpx", "threading"):
        assert f"opentelemetry-instrumentation-{lib}=={release}" in lines, (lib, proc.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "leaktrace", "bootstrap", "-a", "uninstall"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


def test_logging_instrumentation_leaves_log_export_to_leaktrace(tmp_path: Path) -> None:
    # opentelemetry-instrumentation-logging (an opentelemetry-bootstrap default) puts its own
    # OpenTelemetry handler on the root logger unless told not to; leaktrace's distro tells it.
    script = tmp_path / "logs.py"
    script.write_text(
        "import logging\nlogging.getLogger('app').warning('exported once')\n"
        "logging.getLogger('app').info('an info line')\n"
    )
    with OTLPReceiver(grpc_enabled=False) as receiver:
        env = {
            **BASE_ENV,
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
            "LEAKTRACE_PROFILING_ENABLED": "false",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, str(script)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        poll_until(lambda: [r for r in receiver.logs() if r.body == "an info line"], timeout=10)
        exported = [r for r in receiver.logs() if r.body == "exported once"]
    assert "logging" in proc.stderr.split("leaktrace: instrumented ", 1)[1].split("\n", 1)[0].split(
        ", "
    )
    assert len(exported) == 1, exported
    # the root logger was still unconfigured when leaktrace started: console handler, INFO kept
    assert "an info line" in proc.stderr
