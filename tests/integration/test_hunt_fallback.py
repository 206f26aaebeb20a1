"""`leaktrace hunt` on an unmodified FastAPI service under real load, on this interpreter (issue 13).

Before: on CPython 3.13 the sampler refused, the tracemalloc fallback took over, the service
answered 173 requests in 30 s instead of about 3,000 and the hunter thread died with
TypeError("'<' not supported between instances of 'Frame' and 'Frame'"). Now:

- with the native sampler (3.11, 3.12, 3.13) the service keeps >= 2/3 of its throughput while
  hunted and the leak is named;
- without it, `leaktrace hunt` refuses at once (exit 2, one message naming why and the opt-in)
  rather than leave the service unusable;
- with the tracemalloc opt-in (LEAKTRACE_HUNT_TRACEMALLOC=true) it hunts, slowly, through the run.

Every server binds 127.0.0.1; every load is bounded in time and count.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.integration._autoinstrument_support import (
    APPS,
    BASE_ENV,
    ROOT,
    free_port,
    hunted,
    read_report,
    suspect_at,
    tail,
    wait_for_port,
)

APP = APPS / "fastapi_sessions.py"
RATE = 60.0  # requests/s offered, by WORKERS paced clients
WORKERS = 4
WINDOW_S = 8.0  # throughput is counted over this long, from the moment the service listens
ENV = {**BASE_ENV, "OTEL_TRACES_EXPORTER": "none"}


class PacedLoad:
    """WORKERS threads each sending GET /login at RATE/WORKERS per second until stopped or
    `max_s` or `max_requests` (each); the completion times of 2xx answers are kept."""

    def __init__(self, port: int, *, max_s: float, max_requests: int = 5000) -> None:
        self._url = f"http://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._end = time.monotonic() + max_s
        self._max = max_requests
        self.ok: list[float] = []
        self.sent = 0
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(WORKERS)
        ]

    def _work(self, i: int) -> None:
        period = WORKERS / RATE
        next_at = time.monotonic() + i * period / WORKERS
        with httpx.Client(base_url=self._url, timeout=2.0) as client:
            for n in range(self._max):
                if self._stop.is_set() or time.monotonic() >= self._end:
                    return
                try:
                    good = client.get(f"/login/u{i}-{n}").status_code == 200
                except httpx.HTTPError:
                    good = False
                with self._lock:
                    self.sent += 1
                    if good:
                        self.ok.append(time.monotonic())
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> PacedLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def served_within(self, start: float, seconds: float) -> int:
        with self._lock:
            return sum(1 for t in self.ok if start <= t < start + seconds)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _bare_throughput(tmp_path: Path) -> int:
    port = free_port()
    log = tmp_path / "bare.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(APP), "--port", str(port)],
            cwd=ROOT,
            env=dict(ENV),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, 60, log)
        ready = time.monotonic()
        load = PacedLoad(port, max_s=WINDOW_S + 2).start()
        time.sleep(WINDOW_S + 0.5)
        load.stop()
        return load.served_within(ready, WINDOW_S)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _hunt_under_load(
    tmp_path: Path, name: str, duration: float, env: Mapping[str, str]
) -> tuple[int, int, dict[str, Any], str]:
    """(requests served in WINDOW_S once listening, the hunt's exit code, its report, its log)."""
    port = free_port()
    log, report = tmp_path / f"{name}.log", tmp_path / f"{name}.json"
    with hunted(
        [sys.executable, str(APP), "--port", str(port)],
        duration=duration,
        env=env,
        cwd=ROOT,
        log=log,
        report=report,
        extra_args=("--service-name", "sessions"),
    ) as proc:
        wait_for_port(port, proc, duration, log)
        ready = time.monotonic()
        # Load until the hunt stops the service: a leak that stopped before the end would read
        # as a plateau.
        load = PacedLoad(port, max_s=duration + 5).start()
        proc.wait(timeout=duration + 60)
        load.stop()
    return (
        load.served_within(ready, WINDOW_S),
        proc.returncode,
        read_report(report, log),
        tail(log, 20000),
    )


def test_native_hunt_keeps_two_thirds_of_the_throughput_and_names_the_leak(tmp_path: Path) -> None:
    # GIVEN the service's throughput under the paced load, bare
    bare = _bare_throughput(tmp_path)
    assert bare >= 0.8 * RATE * WINDOW_S, f"the bare service served {bare} (machine overloaded?)"
    # WHEN it runs under `leaktrace hunt` with the same load
    served, code, doc, log = _hunt_under_load(tmp_path, "native", 22.0, ENV)
    # THEN it kept serving, the hunt ran on the span-linked sampler and named the leak
    assert code == 0, log
    assert served >= 2 / 3 * bare, f"served {served} while hunted against {bare} bare"
    assert not doc["notes"], doc["notes"]  # no fallback note
    assert doc["verdict"] == "leak", log
    leak = suspect_at(doc, "remember_session")
    assert leak is not None, doc["suspects"]
    assert "SESSIONS" in (leak["retained_by"] or "")
    assert leak["trace_ids"], "the native sampler ties the leak to requests"
    assert "Traceback" not in log


def test_without_the_sampler_hunt_refuses_at_once_and_stops_the_service(tmp_path: Path) -> None:
    # GIVEN the sampler off (as where it cannot load) and no tracemalloc opt-in
    port = free_port()
    env = {**ENV, "LEAKTRACE_HEAP_ENABLED": "false"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaktrace",
            "hunt",
            "--duration",
            "120",
            "--",
            sys.executable,
            str(APP),
            "--port",
            str(port),
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    took = time.monotonic() - t0
    # THEN it exits 2 at once with one message that says why and what would hunt anyway
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert took < 60, took
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("leaktrace hunt:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "cannot hunt in this program" in lines[0]
    assert (
        "LEAKTRACE_HEAP_ENABLED=false" in lines[0] and "LEAKTRACE_HUNT_TRACEMALLOC=true" in lines[0]
    )
    assert "Traceback" not in proc.stderr
    # AND the service it started is gone
    assert not _listening(port)


def test_tracemalloc_opt_in_hunts_without_the_frame_sort_crash(tmp_path: Path) -> None:
    # GIVEN the sampler off and the documented opt-in to the (much slower) tracemalloc fallback
    env = {**ENV, "LEAKTRACE_HEAP_ENABLED": "false", "LEAKTRACE_HUNT_TRACEMALLOC": "true"}
    served, code, doc, log = _hunt_under_load(tmp_path, "tracemalloc", 20.0, env)
    # THEN the hunt ran to its end and reported, saying the fallback was used, with no crash in
    # the hunter. How far it got is the fallback's cost: every snapshot walks every traced block,
    # and a FastAPI process holds ~180,000 of them once its instrumentors are imported, so one
    # snapshot takes seconds (tens on 3.11 under load) and 20 s may give it one or two. That is
    # why `leaktrace hunt` refuses without the opt-in; the leak corpus checks the fallback's
    # verdicts on small programs.
    assert code == 0, log
    assert "TypeError" not in log and "Traceback" not in log
    assert doc["snapshots"] >= 1 and any("tracemalloc" in n for n in doc["notes"]), doc
    print(
        f"tracemalloc fallback: {served} requests served in {WINDOW_S:g} s at {RATE:g}/s offered, "
        f"{doc['snapshots']} snapshots in {doc['duration_s']:.1f} s, verdict {doc['verdict']}"
    )
    assert served > 0


def test_the_app_imports_no_telemetry() -> None:
    source = APP.read_text()
    assert "leaktrace" not in source.split('"""', 2)[2] and "opentelemetry" not in source
