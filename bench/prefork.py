"""Prefork benchmarks (issue 14).

    python bench/prefork.py forks --forks 1000 --json bench/results/prefork_forks.json
    python bench/prefork.py overhead --runs 3 --json bench/results/prefork_overhead.json

`forks`: a Telemetry with the heap sampler, hunter, metrics server and OTLP exporters (to a
closed port) runs while 3 threads allocate, open spans and log; the process forks N times and
each child opens a span, allocates, scrapes its registry and exits (every 50th shuts down in
full). A child that does not finish within 30 s is a hang: killed, counted, and the run fails.

`overhead`: the unmodified Flask app of tests/integration/apps/orders_wsgi.py (orders not kept,
size 0, so nothing leaks) under gunicorn with 1 and with 2 sync workers, bare and under
`leaktrace run`, each driven at the same paced rate; the figure is the CPU seconds of the whole
process tree per request. Goal: the 2-worker ratio (leaktrace/bare) equals the 1-worker one,
i.e. per-worker overhead equals single-process overhead (their quotient within 1 +/- 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "integration" / "apps"
sys.path.insert(0, str(ROOT))


def fork_stress(forks: int) -> dict[str, Any]:
    import logging

    import leaktrace

    from tests.support.forks import ChildHung, run_in_fork

    tel = leaktrace.init(
        "fork-stress",
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
        },
        metrics_port=0,
        cpu_profiling_enabled=False,
        hunt_enabled=True,
        hunt_interval_s=0.2,
    )
    stop = threading.Event()

    def churn(n: int) -> None:
        keep: list[bytes] = []
        log = logging.getLogger(f"churn{n}")
        while not stop.is_set():
            with tel.tracer.start_as_current_span(f"work-{n}"):
                keep.extend(bytes(512) for _ in range(20))
                log.info("step")
            if len(keep) > 20000:
                keep.clear()

    threads = [threading.Thread(target=churn, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    hangs, durations = 0, []
    started = time.monotonic()
    try:
        for i in range(forks):

            def child(i: int = i) -> float:
                t0 = time.monotonic()
                with tel.tracer.start_as_current_span("child"):
                    junk = [bytearray(1024) for _ in range(100)]
                from prometheus_client import generate_latest

                generate_latest(tel.registry)
                if i % 50 == 0:
                    tel.shutdown(timeout=10)
                del junk
                return time.monotonic() - t0

            try:
                durations.append(run_in_fork(child, timeout=30.0))
            except ChildHung:
                hangs += 1
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        tel.shutdown()
    wall = time.monotonic() - started
    return {
        "forks": forks,
        "hangs": hangs,
        "completed": len(durations),
        "wall_s": round(wall, 1),
        "child_ms_median": round(statistics.median(durations) * 1000, 2) if durations else None,
        "child_ms_max": round(max(durations) * 1000, 2) if durations else None,
        "heap_sampler": tel.heap_profiler is not None,
    }


def _tree_cpu(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def _serve_and_drive(
    workers: int, traced: bool, *, rate: float, seconds: float
) -> dict[str, float]:
    import httpx

    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "-w", str(workers), "-b", f"127.0.0.1:{port}", "orders_wsgi:app"]
    env = {
        "PATH": "/usr/bin:/bin",
        "LEAKTRACE_METRICS_PORT": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
    }
    if traced:
        command = [sys.executable, "-m", "leaktrace", "run", "--", *command]
    proc = subprocess.Popen(
        command, cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=10,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            for _ in range(int(rate * 2)):  # warm-up
                client.post("/orders", json={"size": 0})
            cpu0, served, t0 = _tree_cpu(proc.pid), 0, time.monotonic()
            next_at = t0
            while time.monotonic() - t0 < seconds:
                client.post("/orders", json={"size": 0})
                served += 1
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.monotonic()))
            cpu = _tree_cpu(proc.pid) - cpu0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"cpu_ms_per_request": cpu / served * 1000, "requests": served}


def overhead(runs: int, rate: float, seconds: float) -> dict[str, Any]:
    rounds = []
    for _ in range(runs):  # interleaved: one of each configuration per round
        r = {
            f"{w}w_{'lt' if t else 'bare'}": _serve_and_drive(w, t, rate=rate, seconds=seconds)
            for w in (1, 2)
            for t in (False, True)
        }
        one = r["1w_lt"]["cpu_ms_per_request"] / r["1w_bare"]["cpu_ms_per_request"]
        two = r["2w_lt"]["cpu_ms_per_request"] / r["2w_bare"]["cpu_ms_per_request"]
        rounds.append(
            {
                "runs": r,
                "ratio_1_worker": one,
                "ratio_2_workers": two,
                "per_worker_vs_single": two / one,
            }
        )
    return {
        "rate": rate,
        "seconds": seconds,
        "rounds": rounds,
        "median_ratio_1_worker": statistics.median(x["ratio_1_worker"] for x in rounds),
        "median_ratio_2_workers": statistics.median(x["ratio_2_workers"] for x in rounds),
        "median_per_worker_vs_single": statistics.median(x["per_worker_vs_single"] for x in rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("forks")
    f.add_argument("--forks", type=int, default=1000)
    o = sub.add_parser("overhead")
    o.add_argument("--runs", type=int, default=3)
    o.add_argument("--rate", type=float, default=60.0)
    o.add_argument("--seconds", type=float, default=20.0)
    for p in (f, o):
        p.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = (
        fork_stress(args.forks)
        if args.what == "forks"
        else overhead(args.runs, args.rate, args.seconds)
    )
    result["command"] = " ".join(["python", "bench/prefork.py", *sys.argv[1:]])
    result["python"] = sys.version.split()[0]
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 1 if result.get("hangs") else 0


if __name__ == "__main__":
    sys.exit(main())
