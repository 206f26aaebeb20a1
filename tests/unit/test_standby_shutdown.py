"""Shutdown threads started before they are needed (leaktrace/_standby.py).

CPython 3.12 refuses to start a thread in an atexit function, which is where `leaktrace run`
shuts Telemetry down; there, shutdown used to fail on its first thread, leave pyroscope-io
running, and the process then waited 30 s on pyroscope-io's own exit upload to a hung server.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from leaktrace._standby import StandbyThreads


def test_jobs_run_side_by_side_and_a_hung_one_is_abandoned_at_the_deadline() -> None:
    crew = StandbyThreads(3)
    crew.start()
    release = threading.Event()
    ran: list[str] = []
    try:
        t0 = time.monotonic()
        finished = crew.run(
            [lambda: release.wait(30), lambda: ran.append("a"), lambda: ran.append("b")], 0.5
        )
        took = time.monotonic() - t0
        # THEN the quick jobs ran although the first never ends, and the wait was the deadline's
        assert finished is False
        assert sorted(ran) == ["a", "b"]
        assert 0.4 < took < 3.0
        # AND jobs beyond the idle threads still run (on a new thread here)
        assert crew.run([lambda: ran.append("c")], 5.0) is True and ran[-1] == "c"
    finally:
        release.set()
        crew.close()


@pytest.mark.subprocess
def test_shutdown_from_atexit_stops_every_part_on_this_interpreter() -> None:
    # GIVEN Telemetry with the heap sampler (heap chain), a profiler (CPU chain) and the
    # providers (OTel chain), shut down from an atexit function as `leaktrace run` does
    script = textwrap.dedent("""
        import atexit, sys
        from prometheus_client import CollectorRegistry
        from leaktrace import Settings, Telemetry

        class Profiler:
            running = False
            memory = False
            def start(self):
                self.running = True
                return True
            def stop(self):
                self.running = False

        settings = Settings.resolve({"PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9"}, service_name="exit",
                                    traces_enabled=False, logs_enabled=False)
        profiler = Profiler()
        tel = Telemetry(settings, profiler=profiler, registry=CollectorRegistry(), serve_metrics=False).start()
        heap = tel.heap_profiler

        def at_exit():
            finished = tel.shutdown(3.0)
            print("finished", finished, "profiler", profiler.running, "heap", heap is not None and heap.running,
                  flush=True)

        atexit.register(at_exit)
        print("heap sampler", heap is not None and heap.running, flush=True)
    """)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    took = time.monotonic() - t0
    # THEN every chain ran (nothing left running), within the deadline, with no thread refused
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "can't create new thread" not in proc.stderr
    assert "heap sampler True" in proc.stdout
    assert "finished True profiler False heap False" in proc.stdout, (
        proc.stdout,
        proc.stderr[-2000:],
    )
    assert took < 20
