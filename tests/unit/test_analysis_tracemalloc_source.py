"""The tracemalloc fallback source: same HeapSnapshot type, real sites, function names."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from leaktrace.analysis.tracemalloc_source import FunctionNamer, TracemallocSource


class Loader:
    def load(self) -> list[bytearray]:
        return [bytearray(50_000) for _ in range(20)]  # SITE


def site_line() -> int:
    return next(
        i + 1
        for i, line in enumerate(Path(__file__).read_text().splitlines())
        if "# SITE" in line and "def" not in line
    )


@pytest.fixture
def source() -> Iterator[TracemallocSource]:
    was = tracemalloc.is_tracing()
    src = TracemallocSource()
    src.start()
    yield src
    src.stop()
    assert tracemalloc.is_tracing() == was  # only stops what it started


def test_snapshot_attributes_bytes_to_the_allocating_line(source: TracemallocSource) -> None:
    data = Loader().load()
    snap = source()
    ours = [
        s
        for s in snap.samples
        if any(f.file == __file__ and f.line == site_line() for f in s.frames[:2])
    ]
    assert ours
    assert sum(s.inuse_bytes for s in ours) >= 20 * 50_000
    top = max(ours, key=lambda s: s.inuse_bytes)
    assert top.frames[0].function.startswith("Loader.load")
    assert top.trace_id == 0  # the documented limitation of this fallback
    assert snap.sample_interval_bytes == 1 and snap.timestamp >= snap.start
    site = source.object_site(data[0])
    assert site is not None and site[0].line == site_line()
    del data


def test_freed_memory_leaves_the_snapshot(source: TracemallocSource) -> None:
    data = Loader().load()
    del data
    snap = source()
    assert (
        sum(
            s.inuse_bytes
            for s in snap.samples
            if s.frames[0].line == site_line() and s.frames[0].file == __file__
        )
        < 50_000
    )


def test_not_tracing_is_a_clear_error() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc already on in this process")
    with pytest.raises(RuntimeError, match="start"):
        TracemallocSource()()


def test_function_namer_qualnames(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        "class A:\n"
        "    def m(self):\n"
        "        def inner():\n"
        "            return 1\n"
        "        return inner\n"
        "if True:\n"
        "    @staticmethod\n"
        "    def top():\n"
        "        pass\n"
        "x = 1\n"
    )
    namer = FunctionNamer()
    assert namer(str(src), 2) == "A.m"
    assert namer(str(src), 4) == "A.m.<locals>.inner"
    assert namer(str(src), 5) == "A.m"
    assert namer(str(src), 9) == "top"
    assert namer(str(src), 10) == "<module>"
    library = FunctionNamer(is_user=lambda f: False)
    assert library(str(src), 4) == "inner"
    assert library(str(src), 10) == "<module>"
