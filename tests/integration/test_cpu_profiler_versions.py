"""pyroscope-io's CPU profiler on this interpreter (issue 13; `make test-all` runs it on each).

GIVEN a CPU-bound program under `leaktrace run` with leaktrace's heap sampler on, so pyroscope-io
      profiles CPU only,
THEN  pyroscope-io's CPU profiles of that program reach a Pyroscope push endpoint, naming the
      function that burns the CPU.
And where the CPU profiler cannot start (an interpreter it does not support): one warning, and
the heap sampler, the spans and the hunter go on.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from leaktrace import Settings, Telemetry
from leaktrace.profiling.pyroscope_agent import PyroscopeProfiler
from leaktrace.testing import in_memory_telemetry
from prometheus_client import CollectorRegistry

from tests.support.pyroscope_receiver import PyroscopeReceiver

BURNER = textwrap.dedent("""
    import sys, time

    def burn_cpu():
        return sum(i * i for i in range(50_000))

    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        burn_cpu()
    print("burned", flush=True)
""")


def test_pyroscope_io_cpu_profiles_arrive_from_this_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "burner.py"
    script.write_text(BURNER)
    with PyroscopeReceiver() as receiver:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "leaktrace",
                "run",
                "--service-name",
                "burner",
                "--",
                sys.executable,
                str(script),
                "4",
            ],
            env={
                "PATH": "/usr/bin:/bin",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "LEAKTRACE_METRICS_PORT": "0",
                "PYROSCOPE_UPLOAD_INTERVAL": "1",
                "PYROSCOPE_SERVER_ADDRESS": receiver.endpoint,
            },
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        cpu = receiver.wait_for(
            lambda: [
                p
                for p in receiver.cpu_profiles()
                if "burn_cpu" in p.function_names() or "<genexpr>" in p.function_names()
            ],
            timeout=15,
        )
    assert "burned" in proc.stdout
    assert (
        "CPU profiler could not start" not in proc.stderr and "refused to start" not in proc.stderr
    )
    assert {p.labels["service_name"] for p in cpu} == {"burner"}
    assert sum(p.total("cpu") for p in cpu) > 0


class _AgentThatCannotStart:
    """pyroscope-io's module as seen on an interpreter it cannot profile."""

    def __init__(self) -> None:
        self.configured = 0

    def configure(self, **kwargs: object) -> bool:
        self.configured += 1
        raise RuntimeError(
            f"unsupported Python version {sys.version_info[0]}.{sys.version_info[1]}"
        )

    def shutdown(self) -> None:
        raise AssertionError("never started, never shut down")


def test_a_cpu_profiler_that_cannot_start_is_one_warning_and_the_rest_goes_on(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # GIVEN hunting on and pyroscope-io unable to start on this interpreter
    settings = Settings.resolve(
        {},
        service_name="cpu-less",
        traces_enabled=False,
        logs_enabled=False,
        hunt_enabled=True,
        hunt_report_path=str(tmp_path / "report.json"),
    )
    agent = _AgentThatCannotStart()
    profiler = PyroscopeProfiler(settings.pyroscope, memory=False, agent=agent)
    with caplog.at_level(logging.WARNING), in_memory_telemetry(registry=CollectorRegistry()) as t:
        tel = Telemetry(
            settings,
            tracer_provider=t.telemetry.tracer_provider,
            profiler=profiler,
            registry=CollectorRegistry(),
            serve_metrics=False,
            install_log_handlers=False,
        ).start()
        try:
            with tel.tracer.start_as_current_span("request"):
                keep = [bytearray(4096) for _ in range(256)]
            report = tel.hunter.tick() if tel.hunter is not None else None
            heap_running = tel.heap_profiler is not None and tel.heap_profiler.running
        finally:
            tel.shutdown(3.0)
    # THEN exactly one warning says the CPU profiler is off
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    about_cpu = [m for m in warnings if "CPU profiler" in m or "pyroscope-io" in m]
    assert agent.configured == 1 and len(about_cpu) == 1, warnings
    assert "unsupported Python version" in about_cpu[0]
    # AND the heap sampler ran, the span was recorded, and the hunter reported
    assert heap_running and len(keep) == 256
    assert [s.name for s in t.spans()] == ["request"]
    assert report is not None and report.snapshots >= 1
