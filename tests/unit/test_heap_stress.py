"""Stress the native sampler where it can crash: fork, stop/start and interpreter shutdown while
other threads allocate. Each scenario runs in its own interpreter (the hook is process-wide and a
crash must fail the test, not kill pytest) and reports what it observed as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

pytestmark = [
    pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason())),
    pytest.mark.subprocess,  # each case runs in a child interpreter (tests/unit/conftest.py)
]

PRELUDE = textwrap.dedent(
    """
    import asyncio, gc, json, os, re, sys, threading, time
    from opentelemetry.sdk.trace import TracerProvider
    from leaktrace.profiling.heap import HeapProfiler
    tracer = TracerProvider().get_tracer("stress")

    def churn(stop, keep, label):
        # Mixed allocation kinds, GC-tracked cycles, exceptions, all inside a span.
        i = 0
        with tracer.start_as_current_span(label):
            while not stop.is_set() and i < 200_000:
                d = {"i": i, "s": "x" * (i % 300), "l": [i] * (i % 17)}
                d["self"] = d  # a cycle for the GC
                json.dumps({"i": i, "t": [1, 2, 3]})
                re.sub(r"\\d", "-", "a1b2c3%d" % i)
                try:
                    {}[i]
                except KeyError:
                    pass
                if i % 50 == 0:
                    keep.append(bytearray(i % 5000))
                    if len(keep) > 500:
                        del keep[:250]
                i += 1
    """
)


def run(script: str, timeout: float = 60.0) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", PRELUDE + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_fork_while_threads_allocate_keeps_sampling_in_child_from_empty_tables() -> None:
    result = run(
        """
        from leaktrace.profiling.heap import HeapProfilerBusy
        def names(snap, fn):
            return sum(s.inuse_bytes for s in snap.samples if any(f.function == fn for f in s.frames))
        def parent_alloc(): return [bytearray(4096) for _ in range(1000)]
        def child_alloc(): return [bytearray(4096) for _ in range(1000)]
        prof = HeapProfiler(sample_bytes=4096)
        assert prof.start()
        parent_kept = parent_alloc()
        stop = threading.Event()
        threads = [threading.Thread(target=churn, args=(stop, [], f"t{i}")) for i in range(3)]
        for t in threads: t.start()
        children = []
        for _ in range(5):
            time.sleep(0.05)
            pid = os.fork()
            if pid == 0:
                # child: the hook stays, the parent's samples are gone, the child's own are taken
                # with the child's trace ids, and a second sampler still cannot hook
                code = 0
                if not prof.running: code = 3
                elif names(prof.snapshot(), "parent_alloc") != 0: code = 4
                else:
                    with tracer.start_as_current_span("in-child") as span:
                        kept = child_alloc()
                    snap = prof.snapshot()
                    mine = [s for s in snap.samples if any(f.function == "child_alloc" for f in s.frames)]
                    if sum(s.inuse_bytes for s in mine) < 1_000_000: code = 5
                    elif any(s.trace_id != span.get_span_context().trace_id for s in mine): code = 6
                    else:
                        try:
                            HeapProfiler(sample_bytes=4096).start()
                            code = 7
                        except HeapProfilerBusy:
                            pass
                prof.stop()
                os._exit(code)
            children.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        snap = prof.snapshot()
        stop.set()
        for t in threads: t.join()
        prof.stop()
        print(json.dumps({"codes": codes, "parent_running": snap.tracked > 0,
                          "parent_alloc_bytes": names(snap, "parent_alloc")}))
        """
    )
    assert result["codes"] == [0] * 5
    # the parent's own samples survive its children
    assert result["parent_running"] and 2_000_000 < result["parent_alloc_bytes"] < 8_000_000


def test_stop_and_restart_while_threads_allocate() -> None:
    result = run(
        """
        stop = threading.Event()
        keeps = [[] for _ in range(3)]
        threads = [threading.Thread(target=churn, args=(stop, keeps[i], f"t{i}")) for i in range(3)]
        for t in threads: t.start()
        cycles = []
        for c in range(15):
            prof = HeapProfiler(sample_bytes=2048, max_tracked=2000)
            assert prof.start()
            time.sleep(0.02)
            snap = prof.snapshot(reset_alloc=True)
            cycles.append(len(snap.samples))
            prof.stop()
            time.sleep(0.005)
        stop.set()
        for t in threads: t.join()
        from leaktrace.profiling import _heapsampler
        print(json.dumps({"cycles": cycles, "installed": _heapsampler.stats()["installed"]}))
        """
    )
    assert len(result["cycles"]) == 15
    assert sum(1 for c in result["cycles"] if c > 0) >= 12  # sampling really ran in the cycles
    assert result["installed"] is False


def test_asyncio_threads_and_gc_under_dense_sampling() -> None:
    result = run(
        """
        prof = HeapProfiler(sample_bytes=256, max_tracked=4096, max_stacks=512)
        assert prof.start()
        stop = threading.Event()
        threads = [threading.Thread(target=churn, args=(stop, [], f"t{i}")) for i in range(2)]
        for t in threads: t.start()

        async def task(i):
            keep = []
            with tracer.start_as_current_span(f"task{i}"):
                for j in range(3000):
                    keep.append({"j": j, "b": bytes(j % 700)})
                    if j % 10 == 0:
                        await asyncio.sleep(0)
                    if j % 500 == 0:
                        gc.collect(0)
            return len(keep)

        async def main():
            return await asyncio.gather(*(task(i) for i in range(6)))

        counts = asyncio.run(main())
        snaps = [prof.snapshot(reset_alloc=True) for _ in range(3)]
        stop.set()
        for t in threads: t.join()
        stats = prof.stats()
        prof.stop()
        print(json.dumps({"counts": counts, "sampled": stats["sampled"], "dropped": stats["dropped"],
                          "samples": len(snaps[0].samples)}))
        """
    )
    assert result["counts"] == [3000] * 6
    assert result["sampled"] > 1000 and result["samples"] > 0


def test_interpreter_exit_without_stop_while_daemon_threads_allocate() -> None:
    # The host forgets stop(): atexit unhooks before finalization; daemon threads still allocate.
    result = run(
        """
        prof = HeapProfiler(sample_bytes=1024)
        assert prof.start()
        stop = threading.Event()
        for i in range(3):
            threading.Thread(target=churn, args=(stop, [], f"d{i}"), daemon=True).start()
        time.sleep(0.2)
        print(json.dumps({"running": prof.running}))
        sys.stdout.flush()
        """
    )
    assert result["running"] is True
