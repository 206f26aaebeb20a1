"""Allocation-heavy microbenchmark: heap sampling on vs off (and vs pyroscope-io's memory profiler),
on each supported CPython side by side.

Each configuration runs in its own fresh subprocess (the allocator hook is process-wide), the
configurations (and interpreters) are interleaved round by round so drift on a shared machine
hits all of them, and the median of the per-run times is compared within each interpreter:
ratio = median(on) / median(off), both measured by that interpreter in this run.

    .venv/bin/python bench/heap_overhead.py [--rounds 9] [--iterations 300000] [--no-pyroscope]
        [--python PATH ...]   (default: the venvs of `make test-all` that exist: .venv, .venv312, .venv313)

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

ROOT = Path(__file__).resolve().parent.parent
#: The venvs `make test-all` makes, one per supported CPython (Makefile SUPPORTED_PYTHONS).
VENVS = (".venv", ".venv312", ".venv313")
GOAL = 1.10  # issue 13: sampler on/off <= 1.10 on each version

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


def run_once(
    config: str, iterations: int, sample_bytes: int, python: str = sys.executable
) -> float:
    code = SETUP[config].replace("SAMPLE_BYTES", str(sample_bytes)) + WORKLOAD.replace(
        "N)", f"{iterations})"
    )
    out = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{config} run failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def default_pythons() -> list[str]:
    found = [
        str(ROOT / v / "bin" / "python") for v in VENVS if (ROOT / v / "bin" / "python").exists()
    ]
    return found or [sys.executable]


def python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def summarize(times: dict[str, list[float]]) -> dict[str, object]:
    """One interpreter's medians and ratios (each ratio within that interpreter's runs)."""
    med = {c: statistics.median(v) for c, v in times.items() if v}
    doc: dict[str, object] = {"median_s": med, "runs": {c: len(v) for c, v in times.items()}}
    if "off" in med and "leaktrace" in med:
        doc["ratio_leaktrace_vs_off"] = med["leaktrace"] / med["off"]
        doc["goal_status"] = "pass" if doc["ratio_leaktrace_vs_off"] <= GOAL else "fail"  # type: ignore[operator]
    if "off" in med and "pyroscope_mem" in med:
        doc["ratio_pyroscope_mem_vs_off"] = med["pyroscope_mem"] / med["off"]
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--iterations", type=int, default=300_000)
    ap.add_argument("--sample-bytes", type=int, default=512 * 1024)
    ap.add_argument(
        "--no-pyroscope",
        action="store_true",
        help="skip the pyroscope-io memory profiler comparison",
    )
    ap.add_argument(
        "--python",
        action="append",
        default=None,
        metavar="PATH",
        help="an interpreter with leaktrace installed (repeat for several)",
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "heap_overhead.json",
    )
    args = ap.parse_args()
    pythons = args.python or default_pythons()
    versions = {py: python_version(py) for py in pythons}
    configs = ["off", "leaktrace"] + ([] if args.no_pyroscope else ["pyroscope_mem"])
    times: dict[str, dict[str, list[float]]] = {py: {c: [] for c in configs} for py in pythons}
    for r in range(args.rounds):
        for py in pythons:
            # Rotate the order within a round so no configuration always runs first.
            for c in configs[r % len(configs) :] + configs[: r % len(configs)]:
                try:
                    times[py][c].append(run_once(c, args.iterations, args.sample_bytes, py))
                except RuntimeError as exc:
                    print(f"# {versions[py]}: {exc}", file=sys.stderr)
        print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr)
    per_version = {versions[py]: summarize(times[py]) for py in pythons}
    result: dict[str, object] = {
        "benchmark": "heap_overhead",
        "rounds": args.rounds,
        "iterations": args.iterations,
        "sample_bytes": args.sample_bytes,
        "goal": {"metric": "sampler on/off", "op": "<=", "limit": GOAL},
        "versions": per_version,
        "python": ", ".join(per_version),
        "command": "python bench/heap_overhead.py"
        + ("" if args.python is None else "".join(f" --python {p}" for p in args.python)),
    }
    # The worst version's ratios stand for the run (what a one-line summary can say).
    for key in ("ratio_leaktrace_vs_off", "ratio_pyroscope_mem_vs_off"):
        values = [v[key] for v in per_version.values() if key in v]
        if values:
            result[key] = max(values)  # type: ignore[type-var]
    line = json.dumps(result, sort_keys=True)
    print(line)
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
