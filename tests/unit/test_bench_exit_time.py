"""bench/exit_time.py, bounded: a short program under `leaktrace run` with every backend refusing
exits quickly and says one line at exit; the command keeps working (issue 16). The side-by-side
ratio against opentelemetry-instrument is the benchmark's (its exit waits out retries: seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]


def test_leaktrace_run_exits_quietly_with_backends_unreachable(tmp_path: Path) -> None:
    out = tmp_path / "exit.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "LEAKTRACE_", "PYROSCOPE_"))
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "exit_time.py"),
            "--runs",
            "2",
            "--modes",
            "bare,leaktrace",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["modes"] == ["bare", "leaktrace"]
    # One line at exit: what was not sent (the program's own log line comes before it).
    assert doc["stderr_lines"]["leaktrace"] == [1, 1], doc["stderr_tail"]
    [summary] = doc["stderr_tail"]["leaktrace"][-1:]
    assert summary.startswith("leaktrace: not sent, backends unreachable: "), summary
    assert "connection refused" in summary and "span" in summary and "log record" in summary
    # No retry back-off at exit: the flush budget alone was 3 s before; leave room for load.
    assert all(e is not None and e < 2.5 for e in doc["exit_s"]["leaktrace"]), doc["exit_s"]
