"""Crash soak: a real Flask or FastAPI service under `leaktrace run`, under HTTP load, for a
bounded time, with the collector and Pyroscope down (nothing listens on their ports).

It answers one question: does the host survive the heap sampler? Every request carries a W3C
traceparent and opens spans (as auto-instrumented services do), with other context variables
present, which is what made the allocator hook crash hosts before (issue 20).

    python bench/soak_crash.py --app flask --sample-bytes 4096 --minutes 30
    python bench/soak_crash.py --app fastapi --python .venv312/bin/python --minutes 30

The result file (bench/results/soak_crash_<app>_py<ver>_<bytes>.json) records the server's exit
status, requests served and failed, the heap sampler's counters from /metrics, and RSS over time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, dead_port

APPS = Path(__file__).resolve().parent / "workloads" / "soak_apps"


def server_command(app: str, python: str, port: int) -> list[str]:
    if app == "flask":
        return [
            python,
            "-m",
            "leaktrace",
            "run",
            "--",
            python,
            str(APPS / "flask_app.py"),
            str(port),
        ]
    return [
        python,
        "-m",
        "leaktrace",
        "run",
        "--",
        python,
        "-m",
        "uvicorn",
        "fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited during start-up with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout} s")


def metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--app", choices=("flask", "fastapi"), required=True)
    ap.add_argument("--python", default=sys.executable, help="interpreter with leaktrace installed")
    ap.add_argument("--sample-bytes", type=int, default=512 * 1024)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument(
        "--rate", type=float, default=40.0, help="requests per second, all clients together"
    )
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    # the server runs with cwd=APPS, so a relative interpreter path must be resolved here
    python = args.python if os.sep not in args.python else str(Path(args.python).absolute())
    args.python = python
    if args.minutes <= 0 or args.rate <= 0 or args.clients < 1:
        ap.error("--minutes, --rate and --clients must be positive")

    port, mport = dead_port(), dead_port()  # free now; the server takes them
    dead_otlp, dead_pyro = dead_port(), dead_port()  # nothing listens there: the collector is down
    env = {
        **os.environ,
        "LEAKTRACE_HEAP_SAMPLE_BYTES": str(args.sample_bytes),
        "LEAKTRACE_METRICS_HOST": "127.0.0.1",
        "LEAKTRACE_METRICS_PORT": str(mport),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead_otlp}",
        "PYROSCOPE_SERVER_ADDRESS": f"http://127.0.0.1:{dead_pyro}",
        "OTEL_SERVICE_NAME": f"soak-{args.app}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH", "")])),
        "PYTHONFAULTHANDLER": "1",
    }
    version = subprocess.run(
        [args.python, "-c", "import sys;print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = args.out or RESULTS / f"soak_crash_{args.app}_py{version}_{args.sample_bytes}.json"
    log_path = Path(tempfile.gettempdir()) / (
        out.stem + ".log"
    )  # the server's output, for a post-mortem
    log = open(log_path, "wb")  # noqa: SIM115 - held open for the server's whole life
    proc = subprocess.Popen(
        server_command(args.app, args.python, port),
        env=env,
        cwd=str(APPS),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/work/1", proc, 60)

    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    interval = args.clients / args.rate

    def client(k: int) -> None:
        n = k
        next_at = time.monotonic()
        while not stop.is_set():
            n += args.clients
            path = f"/work/{n}" if args.app == "flask" or n % 3 else f"/sync/{n}"
            req = urllib.request.Request(
                base + path,
                headers={"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"},
            )
            try:
                urllib.request.urlopen(req, timeout=10).read()
                key = "ok"
            except (urllib.error.URLError, OSError):
                key = "failed"
            with lock:
                counts[key] += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    for t in threads:
        t.start()
    started = time.monotonic()
    deadline = started + args.minutes * 60
    series: list[dict[str, float | None]] = []
    crashed_at: float | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            crashed_at = time.monotonic() - started
            break
        try:
            text = (
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5)
                .read()
                .decode()
            )
        except (urllib.error.URLError, OSError):
            text = ""
        with lock:
            done = dict(counts)
        series.append(
            {
                "t": round(time.monotonic() - started, 1),
                "requests_ok": done["ok"],
                "rss_bytes": metric(text, "process_resident_memory_bytes"),
                "heap_live_bytes": metric(text, "leaktrace_heap_live_bytes"),
            }
        )
        print(
            f"[{series[-1]['t']:7.0f} s] ok={done['ok']} failed={done['failed']} "
            f"rss={series[-1]['rss_bytes']} heap={series[-1]['heap_live_bytes']}",
            flush=True,
        )
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
    stop.set()
    for t in threads:
        t.join(timeout=15)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    rc = proc.returncode
    crashed = crashed_at is not None or rc in (
        -signal.SIGSEGV,
        -signal.SIGABRT,
        -signal.SIGBUS,
        139,
        134,
    )
    result = {
        "benchmark": "soak_crash",
        "command": "python bench/soak_crash.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "app": args.app,
        "python": version,
        "sample_bytes": args.sample_bytes,
        "minutes": args.minutes,
        "rate": args.rate,
        "crashed": crashed,
        "crashed_after_s": crashed_at,
        "exit_status": rc,
        "server_log": str(log_path),
        "requests_ok": counts["ok"],
        "requests_failed": counts["failed"],
        "heap_sampler_seen": any(s["heap_live_bytes"] is not None for s in series),
        "series": series,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "series"}))
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
