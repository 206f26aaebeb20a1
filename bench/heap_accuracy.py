"""Accuracy of the heap sampler's inuse_space estimate on a known retained pattern.

Known functions retain a known number of bytes (small, medium and large blocks, ~100 MB in
total by default); each trial starts a fresh sampler, retains, snapshots, and compares the
estimated inuse_space of each function with the truth measured by sys.getsizeof. Also prints
the standard error the Poisson scheme predicts, sqrt(sum s^2 (1-p)/p) / B with p = 1-exp(-s/I),
so a reader can tell whether a miss is bad luck or a bias.

    .venv/bin/python bench/heap_accuracy.py [--trials 10] [--mb 100] [--sample-bytes 524288]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
from pathlib import Path

from leaktrace.profiling.heap import HeapProfiler

PATTERN = {  # function -> block payload size; each gets a third of the bytes
    "hold_small": 1_000,
    "hold_medium": 64 * 1024,
    "hold_large": 4 * 1024 * 1024,
}


def hold_small(n: int) -> list[bytes]:
    return [bytes(PATTERN["hold_small"]) for _ in range(n)]


def hold_medium(n: int) -> list[bytes]:
    return [bytes(PATTERN["hold_medium"]) for _ in range(n)]


def hold_large(n: int) -> list[bytes]:
    return [bytes(PATTERN["hold_large"]) for _ in range(n)]


FUNCS = {"hold_small": hold_small, "hold_medium": hold_medium, "hold_large": hold_large}


def predicted_rel_stderr(sizes: list[int], interval: int) -> float:
    var = 0.0
    for s in sizes:
        p = -math.expm1(-s / interval)
        var += s * s * (1 - p) / p
    return math.sqrt(var) / sum(sizes)


def trial(total_mb: float, interval: int) -> dict[str, float]:
    per_fn = total_mb * 1e6 / len(FUNCS)
    prof = HeapProfiler(sample_bytes=interval)
    assert prof.start()
    kept = {name: fn(max(1, int(per_fn // PATTERN[name]))) for name, fn in FUNCS.items()}
    snap = prof.snapshot()
    prof.stop()
    out: dict[str, float] = {}
    total_est = total_truth = 0.0
    for name, blocks in kept.items():
        # the list comprehension's frame sits under the named function
        est = sum(
            s.inuse_bytes
            for s in snap.samples
            if any(f.function.startswith(name) for f in s.frames)
        )
        truth = sum(sys.getsizeof(b) for b in blocks) + sys.getsizeof(blocks)
        out[name] = est / truth - 1
        total_est += est
        total_truth += truth
    out["total"] = total_est / total_truth - 1
    del kept
    gc.collect()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--sample-bytes", type=int, default=512 * 1024)
    args = ap.parse_args()
    errors: dict[str, list[float]] = {}
    for _ in range(args.trials):
        for k, v in trial(args.mb, args.sample_bytes).items():
            errors.setdefault(k, []).append(v)
    per_fn = args.mb * 1e6 / len(FUNCS)
    predicted = {}
    all_sizes: list[int] = []
    for name, size in PATTERN.items():
        sizes = [size + 33] * max(1, int(per_fn // size))
        predicted[name] = predicted_rel_stderr(sizes, args.sample_bytes)
        all_sizes += sizes
    predicted["total"] = predicted_rel_stderr(all_sizes, args.sample_bytes)
    summary = {
        name: {
            "mean_rel_error": statistics.fmean(v),
            "stdev_rel_error": statistics.stdev(v) if len(v) > 1 else 0.0,
            "max_abs_rel_error": max(abs(x) for x in v),
            "within_10pct": sum(abs(x) <= 0.10 for x in v) / len(v),
            "predicted_rel_stderr": predicted[name],
        }
        for name, v in errors.items()
    }
    result = {
        "benchmark": "heap_accuracy",
        "trials": args.trials,
        "mb": args.mb,
        "sample_bytes": args.sample_bytes,
        "python": sys.version.split()[0],
        "summary": summary,
    }
    line = json.dumps(result, sort_keys=True)
    print(json.dumps(result, indent=2, sort_keys=True))
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "heap_accuracy.json").write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
