"""An unmodified program with a multiprocessing pool whose workers leak; it imports no telemetry.

Each job a worker runs keeps its result in the worker's module-level RESULTS list (about 8 KiB
a job). The parent feeds jobs at a steady rate until --seconds pass. With --targets FILE it
writes what its /metrics endpoint's /targets lists (every process of the tree) before it ends.

    python pool_jobs.py --method spawn --seconds 20 --rate 40
"""

import argparse
import json
import multiprocessing
import os
import time
import urllib.request

RESULTS: list[bytearray] = []


def render(size: int) -> int:
    RESULTS.append(bytearray(size))  # LEAK-SITE
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=("fork", "spawn", "forkserver"), required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--targets", default="")
    args = parser.parse_args()
    ctx = multiprocessing.get_context(args.method)
    workers: dict[int, int] = {}
    with ctx.Pool(2) as pool:
        end = time.monotonic() + args.seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            pid = pool.apply(render, (8192,))
            workers[pid] = workers.get(pid, 0) + 1
            next_at += 1.0 / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        if args.targets:
            import leaktrace

            port = leaktrace.init().metrics_port  # under leaktrace run: the running Telemetry
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/targets", timeout=5) as reply:
                listed = json.load(reply)
            with open(args.targets, "w") as fh:
                json.dump({"parent": os.getpid(), "workers": workers, "targets": listed}, fh)
    print(f"jobs per worker: {workers}", flush=True)


if __name__ == "__main__":
    main()
