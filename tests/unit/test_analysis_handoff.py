"""The hunt handshake with a real child process: the child keeps LEAKTRACE_HUNT_REPORT
current, a graceful stop (SIGINT) writes the final report, and even SIGKILL leaves the
last periodic one. The bootstrap below stands in for `leaktrace run`'s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leaktrace.analysis.handoff import LEAKTRACE_HUNT_REPORT, read_report

# Starts processes (tests/unit/conftest.py): deselected by the quick loop, -m "not subprocess".
pytestmark = pytest.mark.subprocess

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

BOOTSTRAP = """
import atexit, os, runpy, sys
from leaktrace.analysis.hunter import HunterConfig
from leaktrace.analysis.session import HuntSession
session = HuntSession(report_path=os.environ["LEAKTRACE_HUNT_REPORT"],
                      config=HunterConfig(interval_s=0.25, max_duty=0.5))
session.start()
atexit.register(session.stop)
case = sys.argv[1]
sys.argv = [case, "--duration", "60"]
sys.path.insert(0, os.path.dirname(case))  # as `python case.py` would
runpy.run_path(case, run_name="__main__")
"""


def start_child(report: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        LEAKTRACE_HUNT_REPORT: str(report),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    return subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, str(CORPUS / "global_dict.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # The test stops it with SIGINT: heard even when pytest runs as a background job
        # (SIGINT ignored, and inherited as ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _peek(path: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        return read_report(str(path))
    except (OSError, ValueError):
        return None


def test_graceful_stop_writes_the_final_report_and_kill_leaves_the_last_one(tmp_path: Path) -> None:
    # GIVEN two hunted children leaking ~100 KB/s, one to be interrupted, one killed
    graceful, killed = tmp_path / "graceful.json", tmp_path / "killed.json"
    a, b = start_child(graceful), start_child(killed)
    try:
        # Wait for evidence, not for a fixed time: on a loaded machine the fallback's ticks are
        # slower. What is under test is the handshake, so both must have judged before the stop.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            docs = [_peek(graceful), _peek(killed)]
            if all(
                d is not None and d["verdict"] == "leak" and d["duration_s"] > 4.0 for d in docs
            ):
                break
            time.sleep(0.5)
        a.send_signal(signal.SIGINT)
        b.kill()
        a.wait(10)
        b.wait(10)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    # THEN both left a complete report that names the leak and its holder
    for path in (graceful, killed):
        doc = read_report(str(path))
        assert doc["verdict"] == "leak", path
        top = doc["suspects"][0]
        assert top["frames"][0]["function"] == "make_session"
        assert top["retained_by"].startswith("global_dict.SESSION_CACHE (dict, +")
        assert doc["duration_s"] > 4.0
    # AND no temp files are left next to it (the writes were atomic renames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graceful.json", "killed.json"]
