"""Timing inside a workload child: warm up, time a fixed amount of work, report one result line."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

RESULT_MARKER = (
    "BENCH_RESULT "  # same as bench/_common.py; children do not import the bench package
)


def measure(work: Callable[[int], Any], *, units: int, warmup: int, label: str) -> dict[str, Any]:
    """Run `work(warmup)`, then time `work(units)` with perf_counter and process CPU time.

    Start-up and telemetry init happened before this is called, so they are excluded; the
    exporters' background threads run during the timed section, so their cost is included.
    """
    work(warmup)
    cpu0 = time.process_time()
    main0 = time.thread_time()
    t0 = time.perf_counter()
    work(units)
    wall = time.perf_counter() - t0
    main_cpu = time.thread_time() - main0
    cpu = time.process_time() - cpu0
    from _signals import active_signals  # after timing: gc walk and imports are not timed

    return {
        "workload": label,
        "units": units,
        "seconds": wall,
        "cpu_seconds": cpu,  # whole process: includes exporter and profiler threads
        "main_cpu_seconds": main_cpu,  # the workload's thread only: robust to a busy machine
        "units_per_s": units / wall if wall > 0 else None,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "pid": os.getpid(),
        "signals": active_signals(),
    }


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_MARKER + json.dumps(doc, sort_keys=True) + "\n")
    sys.stdout.flush()
    if os.environ.get("BENCH_FAST_EXIT") == "1":
        # The measurement is done; a dead exporter's shutdown retries would only cost wall time.
        sys.stderr.flush()
        os._exit(0)
