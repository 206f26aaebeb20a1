"""Subinterpreters (3.12+): the allocator hook is process-wide, and an interpreter with its own
GIL calls it concurrently with the main one. The sampler samples the main interpreter only,
never touches its tables from another interpreter's threads, can be stopped while another
interpreter allocates, and refuses to start anywhere but the main interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

CHILD = Path(__file__).resolve().parents[1] / "support" / "subinterpreters.py"

pytestmark = [
    pytest.mark.native,
    pytest.mark.subprocess,  # runs tests/support/subinterpreters.py in a child (tests/unit/conftest.py)
    pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason())),
    pytest.mark.skipif(
        sys.version_info < (3, 12), reason="interpreters with their own GIL came in 3.12"
    ),
]


def test_own_gil_interpreter_passes_through_and_start_is_main_only() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(CHILD)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["main_sampled"] and not result["sub_sampled"]
    assert result["restarted"] and result["stopped"]
    # an isolated interpreter cannot even import the module; a legacy one imports it, start() refuses
    assert "does not support loading in subinterpreters" in result["sub_start"]
    assert "only start in the main interpreter" in result["legacy_start"]
