"""Start a service as a subprocess on a free port and learn its URL (for the benchmark and tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.common.web import READY_PREFIX

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _drain(stream: IO[str], sink: IO[str]) -> None:
    for line in stream:
        sink.write(line)
        sink.flush()


@contextmanager
def running(
    module: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    args: tuple[str, ...] = (),
    start_timeout_s: float = 30.0,
    stop_timeout_s: float = 15.0,
    launcher: Sequence[str] = (),
) -> Iterator[ServiceProcess]:
    """``python -m services.<module> --host 127.0.0.1 --port 0``; SIGTERM (then SIGKILL) on exit.

    stdout and stderr go to ``<log_dir>/<module>.log`` once the ready line has been read.
    `launcher` goes before the command: ``leaktrace run --`` or ``opentelemetry-instrument``
    (both exec the program, so the pid stays the service's).
    """
    log_path = log_dir / f"{module}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            *launcher,
            sys.executable,
            "-m",
            f"services.{module}",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = _await_ready(proc, proc.stdout, start_timeout_s)
        if url is None:
            raise RuntimeError(
                f"{module} did not start within {start_timeout_s:.0f}s; see {log_path}"
            )
        threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
        yield ServiceProcess(module, url, proc, log_path)
    finally:
        stop(proc, stop_timeout_s)
        log.close()


def stop(proc: subprocess.Popen[str], timeout_s: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def _await_ready(proc: subprocess.Popen[str], stdout: IO[str], timeout_s: float) -> str | None:
    found: list[str] = []

    def read() -> None:
        for line in stdout:
            if line.startswith(READY_PREFIX):
                found.append(line[len(READY_PREFIX) :].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found:
        proc.kill()
        return None
    return found[0]
