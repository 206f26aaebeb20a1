"""A run without the Debian `prometheus` package says so at its end, naming the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Starts processes (tests/unit/conftest.py): deselected by the quick loop, -m "not subprocess".
pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = "tests/integration/test_stack_promtool.py"


def run_pytest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", PROMTOOL_TESTS, "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_prometheus_is_named_at_the_end_of_the_run() -> None:
    # No promtool anywhere: the override points nowhere and PATH holds no binaries.
    env = {**os.environ, "LEAKTRACE_TEST_PROMTOOL": "/nonexistent/promtool", "PATH": "/nonexistent"}
    proc = run_pytest(env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = proc.stdout.strip().splitlines()
    counts, summary = lines[-1], lines[-2]
    assert "skipped" in counts
    skipped = int(counts.split(" skipped")[0].split()[-1])
    assert summary.startswith(f"{skipped} tests SKIPPED: the Debian package 'prometheus'")
    assert "apt-get install prometheus" in summary


def test_no_such_line_when_promtool_is_there(tmp_path: Path) -> None:
    # A stand-in promtool that answers like a real one would be needed to pass the tests; one that
    # exists but fails is enough to show the summary line depends on the skip, not on the tests.
    fake = tmp_path / "promtool"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    proc = run_pytest({**os.environ, "LEAKTRACE_TEST_PROMTOOL": str(fake)})
    assert "skipped" not in proc.stdout.strip().splitlines()[-1]
    assert "Debian package 'prometheus'" not in proc.stdout
