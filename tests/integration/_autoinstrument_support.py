"""Helpers for the auto-instrumentation tests: a downstream that records traceparent, a paced
load whose every request carries its own W3C trace context, and a `leaktrace hunt` child."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent

#: The environment of every child: nothing from the developer's shell, no Pyroscope or CPU agent.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/bin:/bin",
    "OTEL_LOGS_EXPORTER": "none",
    "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
    "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
    "LEAKTRACE_METRICS_PORT": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[Any], timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"the program exited ({proc.returncode}) before listening: {tail(log)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(
        f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s: {tail(log)}"
    )


def tail(path: Path | None, n: int = 4000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-n:]


class Downstream:
    """GET /echo on 127.0.0.1 that remembers the traceparent header of each call."""

    def __init__(self) -> None:
        seen: list[str] = []
        self.seen = seen
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    seen.append(self.headers.get("traceparent", ""))
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    trace_id: str  # 32 hex, the caller's
    span_id: str  # 16 hex, the caller's span: the server span's parent
    status: int


def traceparent() -> tuple[str, str, dict[str, str]]:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def drive(
    base_url: str,
    plan: Sequence[tuple[str, str, Mapping[str, Any] | None]],
    *,
    rate: float,
    until: float,
    max_requests: int,
    keep_alive: bool = True,
) -> list[Sent]:
    """Cycle through `plan` (method, path, JSON body) at `rate` per second until the monotonic
    time `until` or `max_requests`, each request with a fresh traceparent. `keep_alive=False`
    opens a connection per request: a kept-alive connection stays with one prefork worker, and
    a load must reach all of them, as many clients do."""
    sent: list[Sent] = []
    next_at = time.monotonic()
    limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, timeout=10, limits=limits) as client:
        while len(sent) < max_requests and time.monotonic() < until:
            method, path, body = plan[len(sent) % len(plan)]
            trace_id, span_id, headers = traceparent()
            try:
                status = client.request(method, path, json=body, headers=headers).status_code
            except httpx.HTTPError:
                status = 0
            sent.append(Sent(method, path, trace_id, span_id, status))
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    return sent


def precision(reported: Sequence[str], truth: set[str]) -> float:
    return sum(1 for t in reported if t in truth) / len(reported) if reported else 0.0


def suspect_at(doc: Mapping[str, Any], function: str) -> dict[str, Any] | None:
    """The suspect whose allocation site (first frame) is `function`."""
    for suspect in doc.get("suspects") or []:
        frames = suspect.get("frames") or []
        if frames and frames[0]["function"] == function:
            return dict(suspect)
    return None


@contextmanager
def hunted(
    command: Sequence[str],
    *,
    duration: float,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    report: Path,
    extra_args: Sequence[str] = (),
) -> Iterator[subprocess.Popen[str]]:
    """`leaktrace hunt --duration D --json REPORT -- COMMAND`, its output in `log`."""
    out = log.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leaktrace",
            "hunt",
            "--duration",
            str(duration),
            "--json",
            str(report),
            *extra_args,
            "--",
            *command,
        ],
        env=dict(env),
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        try:
            proc.wait(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()


def read_report(path: Path, log: Path) -> dict[str, Any]:
    assert path.exists(), f"no hunt report: {tail(log)}"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc
