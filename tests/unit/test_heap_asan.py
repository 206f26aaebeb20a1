"""The native sampler rebuilt with AddressSanitizer + UBSan, run through a short stress program
(threads, asyncio tasks, fork, stop while allocating, dense sampling so the tables fill and
compact). PYTHONMALLOC=malloc routes the Python heap through ASan's malloc, so a block the
sampler touched after it was freed, or a table overrun, aborts the child."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

# Compiles the sampler with sanitizers and runs it in a child (tests/unit/conftest.py).
pytestmark = pytest.mark.subprocess

NATIVE = (
    Path(__file__).resolve().parents[2] / "instrumentation" / "leaktrace" / "profiling" / "_native"
)
SOURCES = sorted(str(p) for p in NATIVE.glob("*.c"))

STRESS = textwrap.dedent(
    """
    import asyncio, importlib.util, json, os, re, sys, threading
    from opentelemetry.sdk.trace import TracerProvider
    from leaktrace.profiling.heap import HeapProfiler
    spec = importlib.util.spec_from_file_location("leaktrace.profiling._heapsampler", sys.argv[1])
    native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native)
    tracer = TracerProvider().get_tracer("asan")

    def churn(stop, label):
        keep = []
        with tracer.start_as_current_span(label):
            for i in range(6000):
                if stop.is_set(): break
                d = {"i": i, "s": "x" * (i % 300)}; d["self"] = d
                json.dumps({"i": i}); re.sub(r"[0-9]", "-", "a1b2%d" % i)
                try: {}[i]
                except KeyError: pass
                if i % 20 == 0:
                    keep.append(bytearray(i % 5000))
                    if len(keep) > 300: del keep[:150]

    async def task(i):
        keep = []
        with tracer.start_as_current_span(f"task{i}"):
            for j in range(800):
                keep.append({"j": j, "b": bytes(j % 700)})
                if j % 10 == 0: await asyncio.sleep(0)

    sampled = 0
    for cycle in range(2):
        prof = HeapProfiler(sample_bytes=512, max_tracked=1024, max_stacks=128, native=native)
        assert prof.start()
        stop = threading.Event()
        threads = [threading.Thread(target=churn, args=(stop, f"t{i}")) for i in range(3)]
        for t in threads: t.start()
        async def main(): await asyncio.gather(*(task(i) for i in range(4)))
        asyncio.run(main())
        pid = os.fork()
        if pid == 0:
            # the child samples on from empty tables of its own
            junk = [bytearray(100) for _ in range(3000)]
            ok = prof.running and prof.snapshot().tracked > 0
            prof.stop()
            os._exit(0 if ok else 3)
        assert os.waitpid(pid, 0)[1] == 0
        for _ in range(3): prof.snapshot(reset_alloc=True)
        sampled += prof.stats()["sampled"]
        prof.stop()  # while the threads still allocate
        stop.set()
        for t in threads: t.join()
    print(json.dumps({"sampled": sampled}))
    """
)


def _runtime(name: str) -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run(
        [gcc, f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason()))
@pytest.mark.skipif(
    _runtime("libasan.so") is None or _runtime("libubsan.so") is None,
    reason="gcc ASan/UBSan runtime missing",
)
def test_stress_under_address_and_undefined_behaviour_sanitizers(tmp_path: Path) -> None:
    so = tmp_path / "_heapsampler_asan.so"
    build = subprocess.run(
        ["gcc", "-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=undefined", "-std=c11", f"-I{sysconfig.get_paths()['include']}", f"-I{NATIVE}", *SOURCES,
         "-o", str(so), "-lm"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    script = tmp_path / "stress.py"
    script.write_text(STRESS)
    env = {
        **os.environ,
        "LD_PRELOAD": f"{_runtime('libasan.so')} {_runtime('libubsan.so')}",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # CPython's own allocations are never freed
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONMALLOC": "malloc",
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(so)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error" not in proc.stderr
    assert '"sampled"' in proc.stdout and int(proc.stdout.split(":")[-1].strip(" }\n")) > 1000
