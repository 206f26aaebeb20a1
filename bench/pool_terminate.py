"""Does a multiprocessing pool under `leaktrace run` end when its `with Pool()` block does?

`Pool.__exit__` SIGTERMs its workers and joins them. A worker idles in a semaphore wait on the
job queue; had it a Python SIGTERM handler (leaktrace's flush-then-die), a SIGTERM landing just
before that wait would be a lost wakeup and the worker, and the program, would wait forever
(see leaktrace/_sigterm.py). This runs `tests/integration/apps/pool_jobs.py` with a start
method under `leaktrace run`, with dead backends, `--runs` times, and counts the runs still
alive `--limit` seconds after their jobs ended. Each run is bounded; a hung one is killed with its process group.

    .venv/bin/python bench/pool_terminate.py [--runs 60] [--json bench/results/pool_terminate.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

APP = _common.ROOT / "tests" / "integration" / "apps" / "pool_jobs.py"


def one_run(method: str, seconds: float, limit: float) -> tuple[bool, float]:
    env = _common.child_env(
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_common.dead_port()}",
        LEAKTRACE_CPU_PROFILING_ENABLED="false",
        PYROSCOPE_SERVER_ADDRESS=f"http://127.0.0.1:{_common.dead_port()}",
        LEAKTRACE_METRICS_PORT="0",
        LEAKTRACE_HUNT_ENABLED="true",
    )
    cmd = [
        sys.executable,
        "-m",
        "leaktrace",
        "run",
        "--",
        sys.executable,
        str(APP),
        "--method",
        method,
        "--seconds",
        str(seconds),
        "--rate",
        "40",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=APP.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=seconds + limit)
        return True, time.monotonic() - started
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--method", choices=("fork", "spawn", "forkserver"), default="forkserver")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each run feeds jobs")
    parser.add_argument(
        "--limit", type=float, default=15.0, help="seconds after the jobs before a run is hung"
    )
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    machine = _common.machine_info()
    walls: list[float] = []
    hung = 0
    for i in range(args.runs):
        ended, wall = one_run(args.method, args.seconds, args.limit)
        hung += not ended
        walls.append(wall)
        _common.progress(
            f"run {i + 1}/{args.runs}: {'ended' if ended else 'HUNG'} in {wall:.1f} s ({hung} hung)"
        )
    print(
        f"{args.method} pool under leaktrace run: {hung} of {args.runs} runs hung at exit; "
        f"median wall {_common.median(walls):.1f} s for {args.seconds:.0f} s of jobs"
    )
    if args.json:
        _common.write_json(
            args.json,
            _common.result_doc(
                "pool_terminate",
                argv=sys.argv[1:],
                quick=False,
                machine=machine,
                method=args.method,
                runs=args.runs,
                hung=hung,
                seconds_of_jobs=args.seconds,
                median_wall_s=_common.median(walls),
                python=sys.version.split()[0],
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
