"""leaktrace's profiler wiring against an endpoint that speaks Pyroscope's push API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.pyroscope_receiver import PyroscopeReceiver

ALLOCATING_SCRIPT = textwrap.dedent("""
    import time
    keep = []

    def hoard_buffers():
        keep.append(bytearray(256 * 1024))

    def spin():
        return sum(i * i for i in range(20000))

    end = time.monotonic() + float(__import__("sys").argv[1])
    while time.monotonic() < end:
        if len(keep) < 200:
            hoard_buffers()
        spin()
    print("done", len(keep))
""")


def _run(script: Path, env: dict[str, str], seconds: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--service-name", "hoarder", "--", sys.executable, str(script), seconds],
        env={"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
             "LEAKTRACE_METRICS_PORT": "0", "PYROSCOPE_UPLOAD_INTERVAL": "1", **env},
        capture_output=True, text=True, timeout=90,
    )
    return proc, time.monotonic() - start


def test_pyroscope_io_memory_profile_of_a_program_under_leaktrace_run(tmp_path: Path) -> None:
    # GIVEN a program that keeps 256 KiB buffers alive in hoard_buffers(), run under leaktrace with
    # leaktrace's own heap sampler off, so pyroscope-io profiles memory too
    script = tmp_path / "hoarder.py"
    script.write_text(ALLOCATING_SCRIPT)
    with PyroscopeReceiver() as receiver:
        proc, _ = _run(script, {"PYROSCOPE_SERVER_ADDRESS": receiver.endpoint, "LEAKTRACE_HEAP_ENABLED": "false"}, "3")
        assert proc.returncode == 0, proc.stderr[-2000:]
        memory = receiver.wait_for(lambda: receiver.memory_profiles(), timeout=10)
        cpu = receiver.cpu_profiles()
    # THEN the pushed pprof, decoded, attributes the live bytes to hoard_buffers
    assert {p.labels["service_name"] for p in memory + cpu} == {"hoarder"}
    latest = memory[-1]
    assert latest.value_in("hoard_buffers", "inuse_space") >= 0.5 * 200 * 256 * 1024
    assert any("spin" in p.function_names() or "<genexpr>" in p.function_names() for p in cpu)


def test_hung_pyroscope_does_not_hold_the_program_past_the_shutdown_bound(tmp_path: Path) -> None:
    # GIVEN a Pyroscope that accepts connections and never answers
    script = tmp_path / "hoarder.py"
    script.write_text(ALLOCATING_SCRIPT)
    with PyroscopeReceiver() as receiver:
        receiver.hang()
        try:
            proc, elapsed = _run(
                script, {"PYROSCOPE_SERVER_ADDRESS": receiver.endpoint, "LEAKTRACE_SHUTDOWN_TIMEOUT": "2"}, "2.5"
            )
        finally:
            receiver.release()
    # THEN the program's own result and exit status are untouched, and exit is bounded
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout
    assert elapsed < 2.5 + 2 + 5, elapsed
