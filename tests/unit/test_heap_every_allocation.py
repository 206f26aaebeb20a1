"""Stress mode: the heap sampler samples every allocation (sample_bytes=1) through each place an
allocator hook can break CPython's invariants (issue 20). Each scenario runs in its own
interpreter (tests/support/every_allocation.py): a crash fails the test instead of killing
pytest. The same scenarios run again under AddressSanitizer and UBSan with PYTHONMALLOC=malloc,
so a block the sampler read after it was freed aborts the child even where a plain run is lucky.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "support" / "every_allocation.py"
NATIVE = ROOT / "instrumentation" / "leaktrace" / "profiling" / "_native"

pytestmark = [
    pytest.mark.native,
    pytest.mark.subprocess,  # each case runs in a child interpreter (tests/unit/conftest.py)
    pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason())),
]

# scenario -> scale of its loop counts in a plain run (an ASan run takes a fifth of that)
SCENARIOS = {
    "contextvars": 0.5,
    "context_run_and_tasks": 1.0,
    "exceptions": 0.25,
    "finalizers_and_weakrefs": 1.0,
    "threads_and_gc": 0.5,
    "fork": 1.0,
    "greenlets": 0.5,
    "libraries": 0.5,
    "shutdown": 1.0,
}
NEEDS = {"greenlets": ("gevent",), "libraries": ("numpy", "pandas", "flask")}


def missing(scenario: str) -> list[str]:
    import importlib.util

    return [m for m in NEEDS.get(scenario, ()) if importlib.util.find_spec(m) is None]


def run_child(
    scenario: str, scale: float, env: dict[str, str] | None = None, timeout: float = 240
) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(CHILD), scenario, str(scale)],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(lines[-1])
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error:" not in proc.stderr
    return result


def check(result: dict[str, Any], scenario: str) -> None:
    assert result["scenario"] == scenario
    assert result["sampled"] > 5_000  # every allocation: at least this many at the smallest scale
    if scenario == "context_run_and_tasks":
        # the hook reads, at every await, the span the interleaved task itself has current
        assert result["hook_reads_right_span"] == 1.0
    if scenario == "fork":
        assert result["children_ok"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_allocation_sampled(scenario: str) -> None:
    if missing(scenario):
        pytest.skip(f"needs {', '.join(missing(scenario))}")
    check(run_child(scenario, SCENARIOS[scenario]), scenario)


def _runtime(name: str) -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run(
        [gcc, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="module")
def asan_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _runtime("libasan.so") is None or _runtime("libubsan.so") is None:
        pytest.skip("gcc ASan/UBSan runtime missing")
    so = tmp_path_factory.mktemp("asan") / "_heapsampler_asan.so"
    build = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=undefined", "-std=c11", f"-I{sysconfig.get_paths()['include']}",
         f"-I{NATIVE}", *sorted(str(p) for p in NATIVE.glob("*.c")), "-o", str(so), "-lm"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    return so


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_allocation_sampled_under_sanitizers(scenario: str, asan_build: Path) -> None:
    if missing(scenario):
        pytest.skip(f"needs {', '.join(missing(scenario))}")
    env = {
        "LT_NATIVE_SO": str(asan_build),
        "LD_PRELOAD": f"{_runtime('libasan.so')} {_runtime('libubsan.so')}",
        # CPython never frees some of its own allocations; greenlet switches C stacks, which
        # ASan's fake-stack and stack-use-after-return checks do not follow
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONMALLOC": "malloc",
    }
    check(run_child(scenario, SCENARIOS[scenario] / 5, env=env, timeout=300), scenario)


GUNICORN_CONF = textwrap.dedent(
    """
    # Every allocation sampled in the gevent worker itself: the hook runs across greenlet switches.
    def post_fork(server, worker):
        from leaktrace.profiling.heap import HeapProfiler
        worker.leaktrace_heap = HeapProfiler(sample_bytes=1, max_tracked=1 << 17)
        assert worker.leaktrace_heap.start()
    """
)
GEVENT_APP = textwrap.dedent(
    """
    import gevent
    from flask import Flask
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from leaktrace.profiling.heap import HeapProfiler

    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("gevent-app")
    app = Flask(__name__)

    @app.get("/r/<int:i>")
    def r(i):
        with tracer.start_as_current_span("request"):
            parts = []
            for k in range(5):
                gevent.sleep(0)  # switch to another request's greenlet mid-span
                parts.append([str(k)] * 10)
            return {"i": i, "n": len(parts)}

    @app.get("/stats")
    def stats():
        import gc
        prof = next(o for o in gc.get_objects() if isinstance(o, HeapProfiler))
        return prof.stats()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_allocation_sampled_in_gunicorns_gevent_worker(tmp_path: Path) -> None:
    for mod in ("gevent", "gunicorn", "flask"):
        if missing_mod(mod):
            pytest.skip(f"needs {mod}")
    (tmp_path / "gconf.py").write_text(GUNICORN_CONF)
    (tmp_path / "gapp.py").write_text(GEVENT_APP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "50",
         "-b", f"127.0.0.1:{port}", "-c", str(tmp_path / "gconf.py"), "gapp:app"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0].decode()[-4000:]
            try:
                urllib.request.urlopen(f"{base}/r/0", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.2)
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(8) as pool:  # concurrent: greenlets interleave
            bodies = list(
                pool.map(
                    lambda i: json.loads(
                        urllib.request.urlopen(f"{base}/r/{i}", timeout=30).read()
                    ),
                    range(200),
                )
            )
        assert [b["i"] for b in bodies] == list(range(200))
        stats = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=30).read())
        assert stats["running"] and stats["sampled"] > 10_000
        assert server.poll() is None
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode()
    assert "Segmentation fault" not in out and "Fatal Python error" not in out, out[-4000:]
    # a worker that died and was replaced would say so in the arbiter's log
    assert "Worker (pid" not in out or "was sent" not in out, out[-4000:]


def missing_mod(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None
