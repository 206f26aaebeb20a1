"""The span-linked sampling heap profiler: Python side of `leaktrace.profiling._heapsampler`.

The native module hooks the CPython allocator and records Poisson-sampled blocks with their
stack and the trace_id/span_id current in the allocating context (docs/heap-profiler.md).
This class owns it: start/stop, fork handling, snapshots as `HeapSnapshot`, and the two
Prometheus metrics. Only one sampler can hook the allocator per process; that fact lives in
the native module, this side keeps no module-global state.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import sysconfig
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import CodeType, ModuleType
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .samples import Frame, HeapSample, HeapSnapshot
from .span_record import SpanRecorder

_log = logging.getLogger("leaktrace.profiling.heap")

DEFAULT_SAMPLE_BYTES = 512 * 1024
DEFAULT_MAX_FRAMES = 64
DEFAULT_MAX_TRACKED = 65536
DEFAULT_MAX_STACKS = 16384
FRAME_CACHE_MAX = 16384  # distinct (code, line) pairs kept resolved; a service has a few thousand

# Synthetic frames so that nothing the bounded tables could not hold disappears from a profile.
STACK_TABLE_FULL = Frame("[leaktrace: stack table full]", "<leaktrace>", 0)
ALLOC_TABLE_FULL = Frame("[leaktrace: alloc table full]", "<leaktrace>", 0)
TRUNCATED = Frame("[leaktrace: truncated stack]", "<leaktrace>", 0)
NO_PYTHON_FRAME = Frame("[no Python frame]", "<native>", 0)

_Key = tuple[int, int, int]  # (stack id, trace id, span id)


class HeapProfilerBusy(RuntimeError):
    """Another heap sampler already hooks this process's allocator."""


def unsupported_reason(native: ModuleType | None = None) -> str | None:
    """Why the native sampler cannot run on this interpreter, or None when it can."""
    if platform.python_implementation() != "CPython":
        return (
            f"needs CPython, this is {platform.python_implementation()} {platform.python_version()}"
        )
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return f"CPython {platform.python_version()} is a free-threaded build: the allocator hooks rely on the GIL"
    if native is None:
        try:
            from . import _heapsampler

            native = _heapsampler
        except ImportError as exc:
            return f"native extension not built: {exc}"
    if not getattr(native, "SUPPORTED", 0):
        return f"CPython {platform.python_version()} is not supported (the sampler reads CPython 3.11 to 3.13 frames)"
    return None


class _HeapCollector(Collector):
    def __init__(self, profiler: HeapProfiler) -> None:
        self._profiler = weakref.ref(profiler)

    def collect(self) -> Iterator[Metric]:
        prof = self._profiler()
        if prof is None or not prof.running:
            return
        stats = prof.stats()
        if prof._live_bytes_metric:
            yield GaugeMetricFamily(
                "leaktrace_heap_live_bytes",
                "Estimated live heap bytes from the span-linked heap sampler",
                value=float(stats["live_bytes"]),
            )
        yield CounterMetricFamily(
            "leaktrace_heap_samples_dropped",
            "Sampled blocks the heap sampler's live table could not track (table full)",
            value=float(stats["dropped"]),
        )


def _after_fork_in_child(ref: weakref.ReferenceType[HeapProfiler]) -> None:
    prof = ref()
    if prof is not None:
        prof._forked_child()


class HeapProfiler:
    """Poisson-by-bytes heap sampler with span attribution. See docs/heap-profiler.md."""

    def __init__(
        self,
        *,
        sample_bytes: int = DEFAULT_SAMPLE_BYTES,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_tracked: int = DEFAULT_MAX_TRACKED,
        max_stacks: int = DEFAULT_MAX_STACKS,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        live_bytes_metric: bool = True,
        native: ModuleType | None = None,
        span_recorder: SpanRecorder | None = None,
    ) -> None:
        """`registry` gets leaktrace_heap_samples_dropped_total and, unless live_bytes_metric is
        False (when another collector already reports it from live_bytes()), leaktrace_heap_live_bytes.
        `native` replaces the extension module (tests). `span_recorder` keeps the record of the
        current span that the allocator hook reads (span_record.py); one is made at start()."""
        if sample_bytes < 1:
            raise ValueError("sample_bytes must be >= 1")
        if not 1 <= max_frames <= 512:
            raise ValueError("max_frames must be within 1..512")
        if max_tracked < 1 or max_stacks < 2:
            raise ValueError("max_tracked must be >= 1 and max_stacks >= 2")
        self.sample_bytes = int(sample_bytes)
        self.max_frames = int(max_frames)
        self.max_tracked = int(max_tracked)
        self.max_stacks = int(max_stacks)
        self._clock = clock
        self._registry = registry
        self._native = native
        self._span_recorder = span_recorder
        self._live_bytes_metric = live_bytes_metric
        self._collector: _HeapCollector | None = None
        self._lock = threading.Lock()
        self._running = False
        self._alloc_start = clock()
        self._stack_cache: dict[int, tuple[Frame, ...]] = {}
        # One Frame per (code, line), shared by every stack through it: a service's stacks are
        # 30-60 frames deep and differ in a few, so this holds most of their memory once.
        self._frame_cache: dict[tuple[CodeType, int], Frame] = {}
        self._stack_epoch = -1
        self._fork_hook_registered = False
        self._pid = os.getpid()

    # --- capability ---------------------------------------------------------------------------
    @staticmethod
    def is_supported() -> bool:
        return unsupported_reason() is None

    def _load_native(self) -> ModuleType | None:
        if self._native is None:
            try:
                from . import _heapsampler

                self._native = _heapsampler
            except ImportError:
                return None
        return self._native

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> bool:
        """Hook the allocator. False (with a warning) on an interpreter the sampler cannot support,
        so the caller can fall back to pyroscope-io's memory profiler. Raises HeapProfilerBusy if
        another sampler already runs in this process."""
        with self._lock:
            if self._running:
                return True
            native = self._load_native()
            reason = unsupported_reason(native)
            if reason is not None or native is None:
                # One logged warning, not a Python warning as well: a refusal is a degraded mode.
                _log.warning(
                    "leaktrace heap sampler disabled: %s; falling back to pyroscope-io memory profiling",
                    reason,
                )
                return False
            if self._span_recorder is None:
                self._span_recorder = SpanRecorder(spanref=native.SpanRef)
            var = self._span_recorder.install()
            try:
                native.start(
                    sample_bytes=self.sample_bytes,
                    max_frames=self.max_frames,
                    max_tracked=self.max_tracked,
                    max_stacks=self.max_stacks,
                    context_var=var,
                )
            except RuntimeError as exc:
                self._span_recorder.uninstall()
                if "already running" in str(exc):
                    raise HeapProfilerBusy(str(exc)) from None
                _log.warning(
                    "leaktrace heap sampler disabled: %s; falling back to pyroscope-io memory profiling",
                    exc,
                )
                return False
            self._running = True
            self._pid = os.getpid()
            self._alloc_start = self._clock()
            self._stack_cache.clear()
            self._frame_cache.clear()
            self._stack_epoch = -1
            if not self._fork_hook_registered:
                # At-fork hooks cannot be unregistered: a weakref keeps this harmless once we are gone.
                ref = weakref.ref(self)
                os.register_at_fork(after_in_child=lambda: _after_fork_in_child(ref))
                self._fork_hook_registered = True
            # Unhook before interpreter finalization: the hook skips finalizing interpreters, but
            # the tables hold code objects that should be released while the interpreter is whole.
            atexit.register(self.stop)
            if self._registry is not None and self._collector is None:
                self._collector = _HeapCollector(self)
                self._registry.register(self._collector)
            return True

    def stop(self) -> None:
        """Unhook and free the native tables. Idempotent; safe while other threads allocate."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            native = self._native
            if native is not None and os.getpid() == self._pid:
                native.stop()
            if self._span_recorder is not None:
                self._span_recorder.uninstall()
            atexit.unregister(self.stop)
            self._stack_cache.clear()
            self._frame_cache.clear()
            if self._collector is not None and self._registry is not None:
                try:
                    self._registry.unregister(self._collector)
                except KeyError:
                    pass
                self._collector = None

    def _forked_child(self) -> None:
        # Only the forking thread exists in the child and it held the GIL across fork, so the
        # native tables are consistent. The child keeps sampling from empty tables: the parent's
        # samples are the parent's memory (a prefork worker's own leak is what a hunt is after).
        # A lock another thread held at fork time would never be released: replace it.
        self._lock = threading.Lock()
        if self._running and self._native is not None:
            self._running = bool(self._native.after_fork_child())
            if not self._running:
                _log.warning(
                    "leaktrace heap sampler: stopped in forked child %d (no memory for its tables)",
                    os.getpid(),
                )
        self._pid = os.getpid()
        self._alloc_start = self._clock()
        self._stack_cache.clear()
        self._frame_cache.clear()
        self._stack_epoch = -1

    # --- reading ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        native = self._native
        if native is None or not self._running:
            return {"running": False, "live_bytes": 0.0, "dropped": 0, "live_count": 0}
        return dict(native.stats())

    def live_bytes(self) -> float | None:
        """Estimated live heap bytes, or None when not sampling (the gauge is then absent)."""
        if not self._running:
            return None
        return float(self.stats()["live_bytes"])

    @property
    def dropped(self) -> int:
        return int(self.stats()["dropped"])

    def live_snapshot(self) -> HeapSnapshot:
        """The live heap only (inuse_*; alloc_* are 0 and the alloc window is left running).

        What the leak hunter reads every tick: the alloc aggregates hold one entry per sampled
        (stack, trace, span) since the last export, thousands per tick at a hunting sample
        interval, and building them only to drop them was most of the hunter's cost."""
        return self.snapshot(include_alloc=False)

    def snapshot(self, reset_alloc: bool = False, *, include_alloc: bool = True) -> HeapSnapshot:
        """Live heap (inuse_*) and allocations since the last reset (alloc_*), aggregated by
        (call path, trace_id, span_id). With reset_alloc the next snapshot's alloc_* start now,
        which is what a delta export wants; include_alloc=False skips alloc_* (see live_snapshot)."""
        reset_alloc = reset_alloc and include_alloc
        with self._lock:
            now = self._clock()
            start = self._alloc_start
            native = self._native
            if native is None or not self._running:
                return HeapSnapshot(
                    timestamp=now, start=start, samples=(), sample_interval_bytes=self.sample_bytes
                )
            if include_alloc:
                live, alloc, (over_objects, over_bytes), epoch = native.snapshot(reset_alloc)
            else:
                live, alloc, (over_objects, over_bytes), epoch = native.snapshot(False, False)
            stats = native.stats()
            if reset_alloc:
                self._alloc_start = now
            if epoch != self._stack_epoch:
                self._stack_cache.clear()
                self._stack_epoch = epoch
            if len(self._frame_cache) > FRAME_CACHE_MAX:
                self._frame_cache.clear()  # bound: code objects of unloaded modules go with it
            acc: dict[_Key, list[float]] = {}
            for sid, thi, tlo, span, size, weight in live:
                a = acc.setdefault((sid, (thi << 64) | tlo, span), [0.0, 0.0, 0.0, 0.0])
                a[2] += weight
                a[3] += size * weight
            for sid, thi, tlo, span, objects, nbytes in alloc:
                a = acc.setdefault((sid, (thi << 64) | tlo, span), [0.0, 0.0, 0.0, 0.0])
                a[0] += objects
                a[1] += nbytes
            samples = [
                HeapSample(
                    frames=self._frames(native, sid),
                    alloc_objects=v[0],
                    alloc_bytes=v[1],
                    inuse_objects=v[2],
                    inuse_bytes=v[3],
                    trace_id=trace_id,
                    span_id=span_id,
                )
                for (sid, trace_id, span_id), v in acc.items()
            ]
            if over_objects or over_bytes:
                samples.append(HeapSample((ALLOC_TABLE_FULL,), over_objects, over_bytes, 0.0, 0.0))
            # Stack ids are resolved above, so freeing unreferenced stacks now cannot orphan any.
            if stats["stacks"] * 4 >= self.max_stacks * 3:
                native.compact_stacks()
            return HeapSnapshot(
                timestamp=now,
                start=start,
                samples=tuple(samples),
                sample_interval_bytes=self.sample_bytes,
                dropped=int(stats["dropped"]),
                tracked=int(stats["live_count"]),
            )

    def _frames(self, native: ModuleType, stack_id: int) -> tuple[Frame, ...]:
        cached = self._stack_cache.get(stack_id)
        if cached is not None:
            return cached
        raw = native.stack(stack_id)
        if raw is None:
            frames: tuple[Frame, ...] = (STACK_TABLE_FULL,)
        else:
            pairs, truncated = raw
            cache = self._frame_cache
            out = []
            for pair in pairs:
                f = cache.get(pair)
                if f is None:
                    f = cache[pair] = _frame(*pair)
                out.append(f)
            if truncated:
                out.append(TRUNCATED)
            frames = tuple(out) or (NO_PYTHON_FRAME,)
        self._stack_cache[stack_id] = frames
        return frames


def _frame(code: CodeType, line: int) -> Frame:
    return Frame(getattr(code, "co_qualname", code.co_name), code.co_filename, max(line, 0))
