"""A heap snapshot source built on the standard library's tracemalloc: the documented fallback.

Use it when the native span-linked sampler (`leaktrace.profiling.heap.HeapProfiler`) is
unavailable. It produces the same `HeapSnapshot` type, with three differences to know:

- **No trace ids.** tracemalloc cannot tag an allocation with the span that was current,
  so every sample has trace_id 0 and suspects carry no trace_ids.
- **Cost.** tracemalloc records every allocation (no sampling): expect 2-4x slower
  allocation-heavy code and ~1.5x RSS (pyperformance: 3.3x geomean). A snapshot copies
  every live trace while holding the GIL: milliseconds for small programs, longer
  for heaps with millions of blocks. Fine for `leaktrace hunt` on a test run, not for
  production.
- **Exact counts.** Values are not estimates (sample_interval_bytes is 1).

Only allocations made after `start()` are seen. leaktrace's analysis package and
tracemalloc itself are filtered out, so the hunter does not find itself.
"""

from __future__ import annotations

import ast
import collections
import linecache
import operator
import os
import re
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

_ANALYSIS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MISSING = object()


class FunctionNamer:
    """(file, line) -> function name. tracemalloc frames carry none.

    User files (`is_user`) are parsed once into qualified names (`Class.method`,
    `outer.<locals>.inner`); library files, which are many and large, get the nearest
    enclosing `def` found by scanning lines upwards, which is cheap and good enough for
    frames that are never the reported allocation site. At most `max_files` are indexed.
    """

    def __init__(
        self, is_user: Callable[[str], bool] = lambda f: True, max_files: int = 512
    ) -> None:
        self._is_user = is_user
        self._max_files = max_files
        self._index: dict[str, list[tuple[int, int, str]] | None] = {}

    def __call__(self, file: str, line: int) -> str:
        if file not in self._index:
            if len(self._index) >= self._max_files:
                self._index.clear()
            self._index[file] = self._build(file) if self._is_user(file) else None
        spans = self._index[file]
        if spans is None:
            return _scan_def(file, line)
        best = "<module>"
        best_len = -1
        for start, end, name in spans:
            if start <= line <= end and (best_len < 0 or end - start < best_len):
                best, best_len = name, end - start
        return best

    @staticmethod
    def _build(file: str) -> list[tuple[int, int, str]]:
        source = "".join(linecache.getlines(file))
        if not source:
            return []
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
        spans: list[tuple[int, int, str]] = []

        def visit(body: list[ast.stmt], prefix: str) -> None:
            # Statements only: defs can hide in if/try/with/for bodies, never in expressions.
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qual = f"{prefix}{node.name}"
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    spans.append((first, node.end_lineno or node.lineno, qual))
                    visit(node.body, qual + ".<locals>.")
                elif isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
                else:
                    for attr in ("body", "orelse", "finalbody"):
                        inner = getattr(node, attr, None)
                        if isinstance(inner, list):
                            visit(inner, prefix)
                    for handler in getattr(node, "handlers", None) or ():
                        visit(handler.body, prefix)
                    for case in getattr(node, "cases", None) or ():
                        visit(case.body, prefix)

        visit(tree.body, "")
        return spans


_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")


def _scan_def(file: str, line: int, max_lines: int = 1000) -> str:
    lines = linecache.getlines(file)
    if not lines or line < 1:
        return "?"
    target = lines[min(line, len(lines)) - 1]
    indent = len(target) - len(target.lstrip())
    if indent == 0:
        return "<module>"
    for i in range(min(line, len(lines)) - 1, max(-1, line - 1 - max_lines), -1):
        text = lines[i]
        if "def" not in text:
            continue
        m = _DEF.match(text)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    return "<module>"


@dataclass(frozen=True, slots=True)
class TracemallocConfig:
    nframe: int = 16  # frames recorded per allocation (cost grows with it)
    max_samples: int = 20000  # largest call paths kept per snapshot
    cache_size: int = 65536  # tracebacks and frames remembered between snapshots (each)


class TracemallocSource:
    """Callable snapshot source: `source()` -> HeapSnapshot. Call `start()` first."""

    def __init__(
        self,
        config: TracemallocConfig = TracemallocConfig(),
        *,
        clock: Callable[[], float] = time.time,
        namer: FunctionNamer | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        if namer is None:
            from leaktrace.analysis.callpath import FrameFilter

            namer = FunctionNamer(FrameFilter.default().is_user)
        self._namer = namer
        self._started_here = False
        self._start_t = 0.0
        self._excluded_top = frozenset({tracemalloc.__file__, linecache.__file__, "<unknown>"})
        self._tb_cache: dict[tuple[tuple[str, int], ...], tuple[Frame, ...] | None] = {}
        self._frame_cache: dict[tuple[str, int], Frame] = {}

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self._config.nframe)
            self._started_here = True
        self._start_t = self._clock()

    def stop(self) -> None:
        """Stop tracing, only if this source started it (someone else's tracemalloc is left alone)."""
        if self._started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._started_here = False

    def __call__(self) -> HeapSnapshot:
        if not tracemalloc.is_tracing():
            raise RuntimeError("tracemalloc is not tracing; call start() first")
        now = self._clock()
        # Group the raw traces ourselves: Snapshot.statistics() and filter_traces() are pure
        # Python and cost ~10 us per trace; this loop is ~20x cheaper. The raw form,
        # (domain, size, frames most recent first, total_nframe), is what take_snapshot()
        # wraps; fall back to the public API if a future Python changes it.
        getter = getattr(tracemalloc, "_get_traces", None)
        raw = getter() if getter is not None else tracemalloc.take_snapshot().traces._traces  # type: ignore[attr-defined]
        # This loop's own allocations are traced too (at ~1-2 us each), so it allocates as
        # little as possible per trace: no per-trace lists, no id() ints.
        sizes: collections.defaultdict[Any, int] = collections.defaultdict(int)
        counts: collections.Counter[Any] = collections.Counter(map(operator.itemgetter(2), raw))
        for trace in raw:
            sizes[trace[2]] += trace[1]
        del raw
        top = sorted(sizes.items(), key=operator.itemgetter(1), reverse=True)
        samples = []
        tracked = 0
        for tb, size in top:
            count = counts[tb]
            frames = self._frames(tb)
            if frames is None:
                continue
            tracked += count
            samples.append(
                HeapSample(
                    frames=frames,
                    alloc_objects=float(count),
                    alloc_bytes=float(size),
                    inuse_objects=float(count),
                    inuse_bytes=float(size),
                )
            )
            if len(samples) >= self._config.max_samples:
                break
        return HeapSnapshot(
            timestamp=now,
            start=self._start_t,
            samples=tuple(samples),
            sample_interval_bytes=1,
            tracked=tracked,
        )

    def _frames(self, tb: tuple[tuple[str, int], ...]) -> tuple[Frame, ...] | None:
        """Frames of a raw traceback (allocation site first), or None if it is excluded."""
        hit = self._tb_cache.get(tb, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]
        frames: tuple[Frame, ...] | None
        if (
            not tb
            or tb[0][0] in self._excluded_top
            or any(f[0].startswith(_ANALYSIS_DIR) for f in tb)
        ):
            frames = None
        else:
            frames = tuple(self._frame(file, line) for file, line in tb)
        if len(self._tb_cache) >= self._config.cache_size:
            self._tb_cache.clear()
        self._tb_cache[tb] = frames
        return frames

    def _frame(self, file: str, line: int) -> Frame:
        key = (file, line)
        frame = self._frame_cache.get(key)
        if frame is None:
            if len(self._frame_cache) >= self._config.cache_size:
                self._frame_cache.clear()
            frame = self._frame_cache[key] = Frame(self._namer(file, line), file, line)
        return frame

    def object_site(self, obj: object) -> tuple[Frame, ...] | None:
        """Where `obj` was allocated (allocation site first), or None if it was not traced."""
        tb = tracemalloc.get_object_traceback(obj)
        if tb is None:
            return None
        return tuple(self._frame(f.filename, f.lineno) for f in reversed(tb))
