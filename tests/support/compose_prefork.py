"""Run docker-compose.yml's prefork service (downstream under gunicorn) on 127.0.0.1.

The command line is the compose file's own; only the bind address and the metrics port are
rewritten to free local ports, and `leaktrace` / `gunicorn` resolve to this interpreter's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
BIN = Path(sys.executable).parent
PREFORK_SERVICE = "downstream"


@dataclass(frozen=True)
class PreforkService:
    proc: subprocess.Popen[bytes]
    app_port: int
    metrics_port: int
    log: Path


def compose_service(name: str = PREFORK_SERVICE) -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"][name])


def local_command(command: list[str], *, app_port: int) -> list[str]:
    """The compose command with this interpreter's scripts and a 127.0.0.1 bind."""
    if command[:2] != ["leaktrace", "run"]:
        raise AssertionError(f"not run under leaktrace run: {command}")
    out = [sys.executable, "-m", "leaktrace", *command[1:]]
    out = [str(BIN / "gunicorn") if arg == "gunicorn" else arg for arg in out]
    bind = out.index("--bind") + 1
    out[bind] = f"127.0.0.1:{app_port}"
    return out


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"exited ({proc.returncode}) before listening: {log.read_text()[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout} s: {log.read_text()[-3000:]}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.load(reply)


@contextmanager
def run_prefork_service(
    env: Mapping[str, str], log_dir: Path, *, start_timeout: float = 30.0
) -> Iterator[PreforkService]:
    """Start the compose service's command; stop it (SIGTERM, bounded) on exit."""
    app_port, metrics_port = _free_ports(2)
    svc = compose_service()
    command = local_command(list(svc["command"]), app_port=app_port)
    child_env = {**env, "LEAKTRACE_METRICS_PORT": str(metrics_port)}
    log = log_dir / f"{PREFORK_SERVICE}-gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_listening(app_port, proc, log, start_timeout)
        _wait_listening(metrics_port, proc, log, start_timeout)
        yield PreforkService(proc, app_port, metrics_port, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_for_targets(metrics_port: int, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """/targets once it lists `count` processes (or what it lists at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        groups = list(get_json(f"http://127.0.0.1:{metrics_port}/targets"))
        if len(groups) >= count or time.monotonic() > deadline:
            return groups
        time.sleep(0.2)


def parent_pid(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
