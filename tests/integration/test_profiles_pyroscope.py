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


def _run(
    script: Path, env: dict[str, str], seconds: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaktrace",
            "run",
            "--service-name",
            "hoarder",
            "--",
            sys.executable,
            str(script),
            seconds,
        ],
        env={
            "PATH": "/usr/bin:/bin",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "LEAKTRACE_METRICS_PORT": "0",
            "PYROSCOPE_UPLOAD_INTERVAL": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=90,
    )
    return proc, time.monotonic() - start


def test_pyroscope_io_memory_profile_of_a_program_under_leaktrace_run(tmp_path: Path) -> None:
    # GIVEN a program that keeps 256 KiB buffers alive in hoard_buffers(), run under leaktrace with
    # leaktrace's own heap sampler off, so pyroscope-io profiles memory too
    script = tmp_path / "hoarder.py"
    script.write_text(ALLOCATING_SCRIPT)
    with PyroscopeReceiver() as receiver:
        proc, _ = _run(
            script,
            {"PYROSCOPE_SERVER_ADDRESS": receiver.endpoint, "LEAKTRACE_HEAP_ENABLED": "false"},
            "3",
        )
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
                script,
                {"PYROSCOPE_SERVER_ADDRESS": receiver.endpoint, "LEAKTRACE_SHUTDOWN_TIMEOUT": "2"},
                "2.5",
            )
        finally:
            receiver.release()
    # THEN the program's own result and exit status are untouched, and exit is bounded
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout
    assert elapsed < 2.5 + 2 + 5, elapsed


SPAN_HEAP_SCRIPT = textwrap.dedent("""
    import json, sys
    from opentelemetry import trace
    tracer = trace.get_tracer("heap-e2e")
    keep = []

    def handle_request(i):
        with tracer.start_as_current_span(f"request-{i}") as span:
            keep.append([bytes(3000) for _ in range(700)])   # ~2 MB retained per request
            return format(span.get_span_context().trace_id, "032x")

    ids = [handle_request(i) for i in range(4)]
    print(json.dumps(ids))
""")


def test_leaktrace_run_pushes_span_linked_heap_profiles(tmp_path: Path) -> None:
    # GIVEN an unmodified OTel-API program whose requests each retain ~2 MB under their own span
    from leaktrace.profiling.heap import HeapProfiler

    if not HeapProfiler.is_supported():
        import pytest

        pytest.skip("heap sampler unsupported on this interpreter")
    script = tmp_path / "requests.py"
    script.write_text(SPAN_HEAP_SCRIPT)
    with PyroscopeReceiver() as receiver:
        proc, _ = _run(
            script,
            {"PYROSCOPE_SERVER_ADDRESS": receiver.endpoint, "LEAKTRACE_HEAP_SAMPLE_BYTES": "65536"},
            "0",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        import json

        trace_ids = json.loads(proc.stdout.strip().splitlines()[-1])
        # the final push at shutdown carries the program's heap: short programs are not lost
        heap = receiver.wait_for(
            lambda: [
                p for p in receiver.memory_profiles() if "handle_request" in p.function_names()
            ],
            timeout=10,
        )
        cpu = receiver.cpu_profiles()
    profile = heap[-1]
    # THEN it is leaktrace's profile (four memory types, alloc types not delta-computed by the server)
    assert profile.sample_type_names == (
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
    )
    assert profile.labels["service_name"] == "hoarder"
    assert profile.labels.get("__delta__") == "false"
    # AND pyroscope-io did CPU only: no second memory profile of the same heap
    assert all(p.sample_type_names == ("cpu",) for p in cpu)
    # AND each request's retained bytes carry that request's trace_id
    assert profile.profile is not None
    by_trace: dict[str, int] = {}
    idx = [t for t, _ in profile.profile.sample_types].index("inuse_space")
    for sample in profile.profile.samples:
        if any(f.function == "handle_request" or f.function == "<listcomp>" for f in sample.frames):
            by_trace[sample.labels.get("trace_id", "")] = (
                by_trace.get(sample.labels.get("trace_id", ""), 0) + sample.values[idx]
            )
    total = sum(by_trace.values())
    assert total > 4 * 2_000_000 * 0.7, by_trace
    for tid in trace_ids:
        assert by_trace.get(tid, 0) > 0.1 * total, (tid, by_trace)
    attributed = sum(v for k, v in by_trace.items() if k in trace_ids)
    assert attributed >= 0.95 * total
