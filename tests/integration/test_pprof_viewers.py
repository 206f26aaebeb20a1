"""The heap pprof (`leaktrace hunt --pprof`, the pushed encoding) opened by the viewers people use.

Optional: CI decodes the profile with an independent decoder (tests/unit/test_hunt_profile.py,
tests/integration/test_report_browser.py); these run where the viewers are installed and skip
otherwise, saying what to install:
- `go tool pprof` (Debian: apt-get install golang-go);
- speedscope, in headless Chromium: `npm install speedscope` and
  LEAKTRACE_SPEEDSCOPE_DIR=<node_modules/speedscope/dist/release>.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

LEAK = (
    Frame("make_session", "/srv/app.py", 14),
    Frame("handle", "/srv/app.py", 20),
    Frame("main", "/srv/app.py", 30),
)
STATIC = (Frame("load_table", "/srv/app.py", 50), Frame("main", "/srv/app.py", 31))


def heap_pprof(tmp_path: Path) -> Path:
    samples = tuple(
        HeapSample(LEAK, 0.0, 0.0, 4.0, 65536.0, trace_id=(7 << 64) + i, span_id=100 + i)
        for i in range(8)
    )
    samples += (HeapSample(STATIC, 0.0, 0.0, 10.0, 1 << 20),)
    path = tmp_path / "heap.pb.gz"
    path.write_bytes(
        snapshot_to_pprof(HeapSnapshot(1_700_000_010.0, 1_700_000_000.0, samples, 16384))
    )
    return path


@pytest.mark.skipif(
    shutil.which("go") is None, reason="go tool pprof not installed (apt-get install golang-go)"
)
def test_go_tool_pprof_reads_it(tmp_path: Path) -> None:
    path = heap_pprof(tmp_path)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PPROF_TMPDIR": str(tmp_path),
        "GOFLAGS": "-mod=mod",
    }

    def pprof(*args: str) -> str:
        done = subprocess.run(
            ["go", "tool", "pprof", "-symbolize=none", *args, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    top = pprof("-top", "-sample_index=inuse_space")
    assert "Type: inuse_space" in top and "make_session" in top and "load_table" in top
    raw = pprof("-raw")
    assert "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes" in raw
    assert "Period: 16384" in raw
    tags = pprof("-tags")
    assert "trace_id" in tags and "span_id" in tags


SPEEDSCOPE = os.environ.get("LEAKTRACE_SPEEDSCOPE_DIR", "")


@pytest.mark.skipif(
    not (SPEEDSCOPE and Path(SPEEDSCOPE, "index.html").is_file()),
    reason="speedscope not given (npm install speedscope; LEAKTRACE_SPEEDSCOPE_DIR=.../dist/release)",
)
def test_speedscope_imports_it(tmp_path: Path) -> None:
    from tests.support.browser import Chromium, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium not installed")
    path = heap_pprof(tmp_path)
    with Chromium() as browser:
        page = browser.open(Path(SPEEDSCOPE, "index.html").as_uri())
        root = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", {"nodeId": root, "selector": "input[type=file]"})[
            "nodeId"
        ]
        page.call(
            "DOM.setFileInputFiles", {"nodeId": node, "files": [str(path)]}
        )  # as "Browse" would
        page.wait_for("document.title.indexOf('heap.pb.gz') === 0", timeout=30)
        assert page.dialogs == []  # speedscope alerts when it cannot import a file
        assert (
            page.evaluate("document.querySelectorAll('canvas').length") >= 2
        )  # the flame chart is drawn
        # The sandwich view lists the functions with their weight, in bytes: inuse_space was read.
        page.evaluate(
            "Array.from(document.querySelectorAll('div')).find(e => e.children.length <= 1 && "
            "e.textContent.trim().endsWith('Sandwich')).click()"
        )
        text = page.wait_for(
            "document.body.innerText.indexOf('make_session') >= 0 && document.body.innerText",
            timeout=10,
        )
        assert "load_table" in text and "MB" in text, text[:500]
        assert page.non_local_requests() == []
