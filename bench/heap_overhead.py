"""Allocation-heavy microbenchmark: heap sampling on vs off (and vs pyroscope-io's memory profiler).

Each configuration runs in its own fresh subprocess (the allocator hook is process-wide), the
configurations are interleaved round by round so drift on a shared machine hits all of them,
and the median of the per-run times is compared. Ratio = median(on) / median(off).

    .venv/bin/python bench/heap_overhead.py [--rounds 7] [--iterations 300000] [--no-pyroscope]

Writes a JSON line to stdout (and bench/results/heap_overhead.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

# The workload: many short-lived small objects of mixed kinds (dicts, lists, strings, tuples),
# a slice retained, like a request handler building a response. Timed inside the child so
# interpreter start-up does not dilute the ratio.
WORKLOAD = textwrap.dedent(
    """
    import time, sys
    def work(n):
        keep = []
        for i in range(n):
            d = {"id": i, "name": "item-%d" % i, "tags": [i, i + 1, i + 2]}
            s = str(d)
            t = tuple(d["tags"])
            b = bytearray(64)
            if i % 64 == 0:
                keep.append((d, s, t, b))
        return keep
    work(20000)  # warm-up
    t0 = time.perf_counter()
    work(N)
    dt = time.perf_counter() - t0
    print(dt)
    """
)

# "off" imports and builds the same objects as "leaktrace" without starting it: importing
# OpenTelemetry/prometheus_client grows the GC-tracked heap, which alone slows an
# allocation-heavy loop through longer collections, and must not be charged to the sampler.
SETUP = {
    "off": textwrap.dedent(
        """
        from leaktrace.profiling.heap import HeapProfiler
        _p = HeapProfiler(sample_bytes=SAMPLE_BYTES)
        import pyroscope
        """
    ),
    "leaktrace": textwrap.dedent(
        """
        from leaktrace.profiling.heap import HeapProfiler
        _p = HeapProfiler(sample_bytes=SAMPLE_BYTES)
        import pyroscope
        assert _p.start()
        """
    ),
    "pyroscope_mem": textwrap.dedent(
        """
        from leaktrace.profiling.heap import HeapProfiler
        _p = HeapProfiler(sample_bytes=SAMPLE_BYTES)
        import pyroscope
        # Memory profiler only, pointed at a closed port: uploads fail in the background, the
        # allocator hook (what we measure) is active regardless.
        pyroscope.configure(application_name="bench", server_address="http://127.0.0.1:9",
                            cpu_enabled=False, oncpu=False, mem_enabled=True,
                            mem_heap_sample_size=SAMPLE_BYTES, upload_interval=3600)
        """
    ),
}


def run_once(config: str, iterations: int, sample_bytes: int) -> float:
    code = SETUP[config].replace("SAMPLE_BYTES", str(sample_bytes)) + WORKLOAD.replace(
        "N)", f"{iterations})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{config} run failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=300_000)
    ap.add_argument("--sample-bytes", type=int, default=512 * 1024)
    ap.add_argument(
        "--no-pyroscope",
        action="store_true",
        help="skip the pyroscope-io memory profiler comparison",
    )
    args = ap.parse_args()
    configs = ["off", "leaktrace"] + ([] if args.no_pyroscope else ["pyroscope_mem"])
    times: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            try:
                times[c].append(run_once(c, args.iterations, args.sample_bytes))
            except RuntimeError as exc:
                print(f"# {exc}", file=sys.stderr)
    med = {c: statistics.median(v) for c, v in times.items() if v}
    result = {
        "benchmark": "heap_overhead",
        "rounds": args.rounds,
        "iterations": args.iterations,
        "sample_bytes": args.sample_bytes,
        "median_s": med,
        "ratio_leaktrace_vs_off": med["leaktrace"] / med["off"],
        "python": sys.version.split()[0],
    }
    if "pyroscope_mem" in med:
        result["ratio_pyroscope_mem_vs_off"] = med["pyroscope_mem"] / med["off"]
    line = json.dumps(result, sort_keys=True)
    print(line)
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "heap_overhead.json").write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
