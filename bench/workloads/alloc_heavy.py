"""Allocation-heavy microbenchmark: many short-lived small objects of mixed kinds, a slice retained.

    python bench/workloads/alloc_heavy.py [--iterations 1000000] [--warmup 100000]

Per iteration: a dict with a list inside, a formatted string, a tuple, a 64-byte bytearray, and
every 64th iteration a ~1-4 KiB buffer. One in 32 results is kept in a ring of 4096 slots, so
the live heap stays flat (what a steady-state handler looks like) while the allocator is busy.
No telemetry API is called: whatever it costs here is the cost of hooks, samplers and threads.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import emit, measure

RING = 4096


def make_work() -> Callable[[int], None]:
    ring: list[object] = [None] * RING
    slot = [0]

    def work(n: int) -> None:
        pos = slot[0]
        for i in range(n):
            d = {"id": i, "name": "item-%d" % i, "tags": [i, i + 1, i + 2]}  # noqa: UP031 - measured work
            s = str(d)
            t = tuple(d["tags"])
            b = bytearray(64)
            if i % 64 == 0:
                b = bytearray(1024 + (i % 4) * 1024)
            if i % 32 == 0:
                ring[pos] = (d, s, t, b)
                pos = (pos + 1) % RING
        slot[0] = pos

    return work


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=100_000)
    a = p.parse_args(argv)
    emit(measure(make_work(), units=a.iterations, warmup=a.warmup, label="alloc_heavy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
