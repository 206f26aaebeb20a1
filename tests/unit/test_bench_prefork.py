"""A short run of bench/prefork.py's fork stress, so the command cannot rot (the figure comes from
`python bench/prefork.py forks --forks 1000`, bench/results/prefork_forks.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.subprocess
def test_fork_stress_runs_and_counts_no_hang(tmp_path: Path) -> None:
    out = tmp_path / "forks.json"
    run = subprocess.run(
        [sys.executable, "bench/prefork.py", "forks", "--forks", "5", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["forks"] == 5 and doc["completed"] == 5 and doc["hangs"] == 0
