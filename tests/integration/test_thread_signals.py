"""Telemetry's threads leave the program's signals to the program's own threads (leaktrace/_signals.py).

A signal the kernel hands to an exporter thread leaves a main thread blocked in a lock or
semaphore wait unwoken: its Python handler waits. Which thread gets a process-directed signal
is the kernel's choice, so this checks the cause, deterministically: under `leaktrace run`, in
the process and in a forked child, every thread but the main one blocks the signals a program
handles, and the main thread blocks none of them.

And SIGTERM itself (leaktrace/_sigterm.py): a multiprocessing pool worker, whatever its start
method, keeps SIGTERM's default under `leaktrace run`, where its parent flushes on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.integration._autoinstrument_support import APPS, BASE_ENV

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task"),
    pytest.mark.timeout(120),
]

PROGRAM_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGCHLD,
    signal.SIGUSR1,
    signal.SIGQUIT,
)


def blocked(mask: int, sig: signal.Signals) -> bool:
    return bool(mask >> (int(sig) - 1) & 1)


def run_masks(env: dict[str, str]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "leaktrace", "run", "--", sys.executable, "thread_masks.py"],
        cwd=APPS,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [d["tag"] for d in docs] == ["parent", "child"], proc.stdout
    return docs


@pytest.mark.parametrize("cpu", ["off", "on"])
def test_every_telemetry_thread_blocks_the_programs_signals_in_parent_and_forked_child(
    cpu: str,
) -> None:
    env = {
        **BASE_ENV,
        "LEAKTRACE_HUNT_ENABLED": "true",
        "OTEL_LOGS_EXPORTER": "otlp",
        "LEAKTRACE_CPU_PROFILING_ENABLED": "true" if cpu == "on" else "false",
    }
    if cpu == "on":
        pytest.importorskip("pyroscope")
    for doc in run_masks(env):
        tasks = {int(tid): t for tid, t in doc["tasks"].items()}
        main = tasks.pop(doc["main"])
        # hunter, heap push, /metrics, shutdown standbys, the SDK's span and log batch threads
        assert len(tasks) >= 6, (doc["tag"], tasks)
        for tid, task in tasks.items():
            open_to = [s.name for s in PROGRAM_SIGNALS if not blocked(task["blocked"], s)]
            assert not open_to, f"{doc['tag']}: thread {tid} ({task['name']}) takes {open_to}"
        taken = [s.name for s in PROGRAM_SIGNALS if blocked(main["blocked"], s)]
        assert not taken, f"{doc['tag']}: the main thread was left blocking {taken}"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_keep_sigterms_default_while_their_parent_flushes_on_it(method: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "leaktrace",
            "run",
            "--",
            sys.executable,
            "pool_sigterm.py",
            "--method",
            method,
        ],
        cwd=APPS,
        env=dict(BASE_ENV),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["parent"] == "FlushThenDie", doc
    assert doc["workers"] == ["SIG_DFL"], doc
