"""The programs that crashed their hosts before the allocator hook stopped calling CPython's
context-variable API (issue 20), run as a user ran them: under `leaktrace run`, collector and
Pyroscope down. Before the fix the first crashed 3 runs in 3, the pandas one 4 in 4 at 4 KiB, the
Flask service after 33 requests at 4 KiB."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason())),
]

NINE_LINES = textwrap.dedent(
    """
    import contextvars
    from opentelemetry import trace
    other = contextvars.ContextVar("other")
    other.set("present")
    tr = trace.get_tracer("t")
    for i in range(200_000):
        with tr.start_as_current_span("s"):
            x = [str(j) for j in range(20)]
    print("finished", trace.get_tracer_provider().__class__.__name__)
    """
)

PANDAS = textwrap.dedent(
    """
    import numpy, pandas
    from opentelemetry import trace
    tr = trace.get_tracer("t")
    for i in range(100):
        with tr.start_as_current_span("describe"):
            pandas.DataFrame(numpy.random.rand(2000, 50)).describe()
    print("finished")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(sample_bytes: int) -> dict[str, str]:
    return {
        **os.environ,
        "LEAKTRACE_HEAP_SAMPLE_BYTES": str(sample_bytes),
        "LEAKTRACE_METRICS_PORT": str(free_port()),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "PYROSCOPE_SERVER_ADDRESS": f"http://127.0.0.1:{free_port()}",
        "LEAKTRACE_SHUTDOWN_TIMEOUT": "2",
    }


def leaktrace_run(script: Path, sample_bytes: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, "-X", "faulthandler", str(script)],
        capture_output=True, text=True, timeout=240, env=env(sample_bytes), check=False,
    )  # fmt: skip


@pytest.mark.parametrize("sample_bytes", [512 * 1024, 4096])
def test_spans_beside_another_context_variable(tmp_path: Path, sample_bytes: int) -> None:
    script = tmp_path / "nine_lines.py"
    script.write_text(NINE_LINES)
    proc = leaktrace_run(script, sample_bytes)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # leaktrace really ran: the SDK's provider, not the API's proxy
    assert "finished TracerProvider" in proc.stdout, proc.stdout


def test_pandas_describe_in_spans(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    script = tmp_path / "frames.py"
    script.write_text(PANDAS)
    proc = leaktrace_run(script, 4096)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "finished" in proc.stdout


def test_flask_threaded_server_under_load(tmp_path: Path) -> None:
    pytest.importorskip("flask")
    app = Path(__file__).resolve().parents[2] / "bench" / "workloads" / "soak_apps" / "flask_app.py"
    port = free_port()
    log = tmp_path / "server.log"  # a file, not a pipe: werkzeug logs every request
    server = subprocess.Popen(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, "-X", "faulthandler", str(app), str(port)],
        env=env(4096), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        served = 0
        while served < 600:  # 18x the 33 requests that used to kill it
            assert server.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/work/{served}", timeout=10).read()
                served += 1
            except OSError:
                assert served == 0 and time.monotonic() < deadline, "server stopped answering"
                time.sleep(0.2)
        assert server.poll() is None
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
    out = log.read_text(errors="replace")
    assert "Segmentation fault" not in out and "Fatal Python error" not in out, out[-4000:]
