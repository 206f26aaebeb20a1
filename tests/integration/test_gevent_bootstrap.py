"""gevent programs under `leaktrace run` (leaktrace/_bootstrap/gevent_first.py): with
OpenTelemetry's OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all the
bootstrap patches before leaktrace's threads start, and the
program that crashed at exit in 3 runs of 6 (heap sampler on or off) ends cleanly; without it, a
program that patches late gets one warning naming the variable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("gevent")
pytestmark = pytest.mark.native

PROGRAM = textwrap.dedent(
    """
    from gevent import monkey; monkey.patch_all()
    import gevent, threading
    from opentelemetry import trace
    tr = trace.get_tracer("g")
    def worker(i):
        for j in range(50):
            with tr.start_as_current_span(f"g{i}.{j}"):
                x = [str(k) for k in range(10)]
                gevent.sleep(0)
    for _ in range(3):
        gevent.joinall([gevent.spawn(worker, i) for i in range(200)])
    print("patched-first" if monkey.is_module_patched("threading") else "unpatched",
          type(trace.get_tracer_provider()).__name__)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "greenlets.py"
    script.write_text(PROGRAM)
    env = {
        **os.environ,
        "LEAKTRACE_METRICS_PORT": str(free_port()),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "PYROSCOPE_SERVER_ADDRESS": f"http://127.0.0.1:{free_port()}",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, "-X", "faulthandler", str(script)],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip


def test_patch_first_ends_cleanly(tmp_path: Path) -> None:
    for _ in range(4):
        proc = run(tmp_path, OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH="patch_all")
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "patched-first TracerProvider" in proc.stdout
        assert "gevent is patching after leaktrace" not in proc.stderr


def test_late_patch_is_named_once(tmp_path: Path) -> None:
    proc = run(tmp_path)
    # this run may or may not crash at exit (that is the point of the warning); it must say why
    assert proc.stderr.count("gevent is patching after leaktrace started threads") == 1, (
        proc.stderr[-4000:]
    )
    assert "OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all" in proc.stderr
