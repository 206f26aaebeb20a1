"""The native heap sampler in-process: estimates, frees, attribution, bounds, metrics, fallback.

Ground truth comes from the test itself: sys.getsizeof of what it retains, and which function
(distinct code object per thread/task) allocated under which span.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from leaktrace.profiling import heap as heap_mod
from leaktrace.profiling.heap import (
    STACK_TABLE_FULL,
    HeapProfiler,
    HeapProfilerBusy,
    unsupported_reason,
)
from leaktrace.profiling.samples import HeapSnapshot
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason()))


@pytest.fixture
def tracer() -> Any:
    return TracerProvider().get_tracer("test-heap")


@pytest.fixture
def make_profiler() -> Iterator[Callable[..., HeapProfiler]]:
    made: list[HeapProfiler] = []

    def make(**kw: Any) -> HeapProfiler:
        p = HeapProfiler(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def inuse_in(snap: HeapSnapshot, function: str) -> float:
    return sum(s.inuse_bytes for s in snap.samples if any(f.function == function for f in s.frames))


def alloc_in(snap: HeapSnapshot, function: str) -> float:
    return sum(s.alloc_bytes for s in snap.samples if any(f.function == function for f in s.frames))


def retain_known(n: int, size: int) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(bytes(size))  # one block of exactly sys.getsizeof(b) bytes each
    return out


def truth_of(kept: list[bytes]) -> int:
    return sum(sys.getsizeof(b) for b in kept) + sys.getsizeof(kept)


def named_allocator(name: str) -> Callable[[list[bytes], int], None]:
    """A distinct code object per caller, so a sample's stack names who allocated it."""
    ns: dict[str, Any] = {}
    exec(f"def {name}(keep, size):\n    keep.append(bytes(size))\n", ns)  # test-only codegen
    fn = ns[name]
    assert isinstance(fn, types.FunctionType)
    return fn


# --- estimates ----------------------------------------------------------------------------
def test_retained_bytes_estimated_within_ten_percent(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    # GIVEN a sampler at 16 KiB (about 2500 samples over 40 MB: ~2% standard error)
    prof = make_profiler(sample_bytes=16 * 1024)
    assert prof.start()
    # WHEN a known function retains ~40 MB
    kept = retain_known(10_000, 4096)
    snap = prof.snapshot()
    # THEN inuse_space attributed to it is within 10% of what it really holds
    truth = truth_of(kept)
    est = inuse_in(snap, "retain_known")
    assert abs(est - truth) / truth < 0.10, (est, truth)
    assert snap.tracked > 0 and snap.sample_interval_bytes == 16 * 1024
    assert abs(prof.live_bytes() - sum(s.inuse_bytes for s in snap.samples)) / truth < 0.05  # type: ignore[operator]


def test_large_blocks_are_not_under_counted(make_profiler: Callable[..., HeapProfiler]) -> None:
    # Blocks far above the interval are sampled almost surely and must weigh their own size.
    prof = make_profiler(sample_bytes=64 * 1024)
    assert prof.start()
    kept = retain_known(40, 1 << 20)
    snap = prof.snapshot()
    truth = truth_of(kept)
    assert abs(inuse_in(snap, "retain_known") - truth) / truth < 0.05


def test_freed_blocks_leave_the_live_heap_but_stay_in_alloc(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    prof = make_profiler(sample_bytes=16 * 1024)
    assert prof.start()
    kept = retain_known(5_000, 4096)
    truth = truth_of(kept)
    assert inuse_in(prof.snapshot(), "retain_known") > 0.8 * truth
    # WHEN the memory is released
    del kept
    snap = prof.snapshot()
    # THEN nothing of it is live any more, while alloc_* still remembers the allocations
    assert inuse_in(snap, "retain_known") == 0
    assert alloc_in(snap, "retain_known") > 0.8 * truth


def test_reset_alloc_starts_a_new_delta_window(make_profiler: Callable[..., HeapProfiler]) -> None:
    ticks = iter(range(100, 200))
    prof = make_profiler(sample_bytes=16 * 1024, clock=lambda: float(next(ticks)))
    assert prof.start()  # clock 101 (100 went to the constructor)
    kept = retain_known(3_000, 4096)
    first = prof.snapshot(reset_alloc=True)  # clock 102: window (101, 102]
    second = prof.snapshot()  # clock 103: window (102, 103], nothing allocated in it
    assert (first.start, first.timestamp) == (101.0, 102.0)
    assert (second.start, second.timestamp) == (102.0, 103.0)
    assert alloc_in(first, "retain_known") > 0.8 * truth_of(kept)
    assert alloc_in(second, "retain_known") == 0
    # inuse is a level, not a delta: still all there
    assert inuse_in(second, "retain_known") > 0.8 * truth_of(kept)


def test_live_snapshot_reads_the_live_heap_and_leaves_the_export_window_alone(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    # GIVEN a sampler whose alloc window has seen a known function retain ~12 MB
    prof = make_profiler(sample_bytes=16 * 1024)
    assert prof.start()

    def via_a() -> list[bytes]:
        return retain_known(1_500, 4096)

    def via_b() -> list[bytes]:
        return retain_known(1_500, 4096)

    kept = via_a() + via_b()  # two stacks through one allocating line
    truth = truth_of(kept)
    # WHEN the hunter reads the live heap (as it does every tick)
    live = prof.live_snapshot()
    # THEN it gets the same inuse estimate a full snapshot gives, and no alloc_* entries
    full = prof.snapshot()
    assert inuse_in(live, "retain_known") == pytest.approx(inuse_in(full, "retain_known"))
    assert inuse_in(live, "retain_known") > 0.8 * truth
    assert all(s.alloc_bytes == 0 and s.alloc_objects == 0 for s in live.samples)
    # AND the exporter's alloc window was neither read away nor reset by it
    exported = prof.snapshot(reset_alloc=True)
    assert alloc_in(exported, "retain_known") > 0.8 * truth
    # AND the two stacks share one Frame object for that line (memory: a stack is 30-60 frames)
    stacks = {s.frames for s in live.samples if s.frames[0].function == "retain_known"}
    assert {f[1].function.rsplit(".", 1)[-1] for f in stacks} >= {"via_a", "via_b"}
    assert len({id(f[0]) for f in stacks}) == 1


# --- attribution --------------------------------------------------------------------------
def attribution(snap: HeapSnapshot, owners: dict[str, tuple[int, int]]) -> tuple[float, float]:
    """(bytes carrying the allocating function's own trace/span, all bytes in those functions)."""
    right = total = 0.0
    for s in snap.samples:
        names = {f.function for f in s.frames}
        for fn, (trace_id, span_id) in owners.items():
            if fn in names:
                total += s.inuse_bytes
                if (s.trace_id, s.span_id) == (trace_id, span_id):
                    right += s.inuse_bytes
    return right, total


def test_threads_attribute_bytes_to_their_own_span(
    make_profiler: Callable[..., HeapProfiler], tracer: Any
) -> None:
    prof = make_profiler(sample_bytes=8 * 1024)
    assert prof.start()
    owners: dict[str, tuple[int, int]] = {}
    keeps: list[list[bytes]] = []
    barrier = threading.Barrier(4)
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # force threads to interleave inside their spans

    def worker(i: int) -> None:
        fn = named_allocator(f"thread_alloc_{i}")
        keep: list[bytes] = []
        keeps.append(keep)
        with tracer.start_as_current_span(f"request-{i}") as span:
            ctx = span.get_span_context()
            owners[fn.__name__] = (ctx.trace_id, ctx.span_id)
            barrier.wait(5)
            for _ in range(2_000):
                fn(keep, 1024 * (i + 1))

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(old_switch)
    right, total = attribution(prof.snapshot(), owners)
    assert len(owners) == 4 and total > 0
    assert right / total >= 0.95, (right, total)
    assert len({o[0] for o in owners.values()}) == 4  # four distinct traces really were in play


def test_interleaved_asyncio_tasks_attribute_bytes_to_their_own_span(
    make_profiler: Callable[..., HeapProfiler], tracer: Any
) -> None:
    prof = make_profiler(sample_bytes=8 * 1024)
    assert prof.start()
    owners: dict[str, tuple[int, int]] = {}
    keeps: list[list[bytes]] = []

    async def request(i: int) -> None:
        fn = named_allocator(f"task_alloc_{i}")
        keep: list[bytes] = []
        keeps.append(keep)
        with tracer.start_as_current_span(f"request-{i}") as span:
            ctx = span.get_span_context()
            owners[fn.__name__] = (ctx.trace_id, ctx.span_id)
            for _ in range(1_500):
                fn(keep, 2048)
                await asyncio.sleep(0)  # every allocation interleaves with the other tasks

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(5)))

    asyncio.run(main())
    right, total = attribution(prof.snapshot(), owners)
    assert len(owners) == 5 and total > 0
    assert right / total >= 0.95, (right, total)


def test_allocations_outside_any_span_carry_no_ids(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    prof = make_profiler(sample_bytes=8 * 1024)
    assert prof.start()
    kept = retain_known(2_000, 2048)
    samples = [
        s for s in prof.snapshot().samples if any(f.function == "retain_known" for f in s.frames)
    ]
    assert samples and kept
    assert all(s.trace_id == 0 and s.span_id == 0 for s in samples)


# --- bounds and metrics -------------------------------------------------------------------
def test_full_live_table_counts_drops_and_reports_them(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    registry = CollectorRegistry()
    prof = make_profiler(sample_bytes=4096, max_tracked=50, registry=registry)
    assert prof.start()
    kept = retain_known(2_000, 4096)  # ~8 MB at 4 KiB: far more than 50 sampled blocks
    snap = prof.snapshot()
    assert kept and 40 <= snap.tracked <= 50  # bounded; a few tracked blocks may have been freed
    # (pytest itself keeps allocating, so the counters can only have grown since the snapshot)
    assert snap.dropped > 0 and prof.dropped >= snap.dropped
    dropped_metric = registry.get_sample_value("leaktrace_heap_samples_dropped_total")
    assert dropped_metric is not None and dropped_metric >= snap.dropped
    live = registry.get_sample_value("leaktrace_heap_live_bytes")
    assert live is not None and live > 0
    # WHEN stopped THEN the sampler's metrics are absent, not stale
    prof.stop()
    assert registry.get_sample_value("leaktrace_heap_live_bytes") is None
    assert prof.live_bytes() is None


def test_full_stack_table_keeps_bytes_under_a_synthetic_frame(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    # id 0 is reserved for the overflow bucket, so exactly one real stack fits
    prof = make_profiler(sample_bytes=8 * 1024, max_stacks=2)
    assert prof.start()
    a = retain_known(2_000, 4096)
    b = [bytes(4096) for _ in range(2_000)]
    snap = prof.snapshot()
    overflow = sum(s.inuse_bytes for s in snap.samples if s.frames == (STACK_TABLE_FULL,))
    assert overflow > 0  # not silently lost
    total = sum(s.inuse_bytes for s in snap.samples)
    truth = truth_of(a) + truth_of(b)
    assert abs(total - truth) / truth < 0.15


def test_stack_compaction_frees_unreferenced_stacks(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    prof = make_profiler(sample_bytes=1024, max_stacks=64)
    assert prof.start()
    fns = [named_allocator(f"site_{i}") for i in range(80)]
    keep: list[bytes] = []
    for fn in fns:
        for _ in range(20):
            fn(keep, 4096)
    del keep
    prof.snapshot(reset_alloc=True)  # resolves ids, then compacts: nothing is live any more
    used_after = prof.stats()["stacks"]
    kept = retain_known(1_000, 4096)
    snap = prof.snapshot()
    assert used_after < 48  # freed, so new stacks can be interned again
    assert inuse_in(snap, "retain_known") > 0.8 * truth_of(kept)


def test_second_sampler_in_the_process_is_refused(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    first = make_profiler(sample_bytes=64 * 1024)
    second = make_profiler(sample_bytes=64 * 1024)
    assert first.start()
    with pytest.raises(HeapProfilerBusy, match="already running"):
        second.start()
    first.stop()
    assert second.start()  # the hook is free again


def test_stop_unhooks_and_restart_works(make_profiler: Callable[..., HeapProfiler]) -> None:
    prof = make_profiler(sample_bytes=16 * 1024)
    assert prof.start()
    assert prof.stats()["installed"] is True
    prof.stop()
    assert prof.running is False and prof.snapshot().samples == ()
    from leaktrace.profiling import _heapsampler

    assert _heapsampler.stats()["installed"] is False
    assert prof.start()
    kept = retain_known(2_000, 4096)
    assert inuse_in(prof.snapshot(), "retain_known") > 0.8 * truth_of(kept)


def test_pending_exception_survives_sampling(make_profiler: Callable[..., HeapProfiler]) -> None:
    # Sampling every allocation maximises the chance the hook runs while an exception is set.
    prof = make_profiler(sample_bytes=1)
    assert prof.start()
    caught = 0
    for i in range(2_000):
        try:
            {}[f"missing-{i}"]  # the failing lookup is the point
        except KeyError as exc:
            assert exc.args == (f"missing-{i}",)
            caught += 1
    prof.stop()
    assert caught == 2_000


# --- fallback -----------------------------------------------------------------------------
def test_unsupported_interpreter_refuses_with_one_logged_warning_naming_the_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = types.SimpleNamespace(SUPPORTED=0)
    prof = HeapProfiler(native=fake)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Python warning as well would be a second message
        with caplog.at_level(logging.WARNING, logger="leaktrace.profiling.heap"):
            assert prof.start() is False
    assert prof.running is False
    [record] = caplog.records
    assert "falling back to pyroscope-io" in record.getMessage()
    assert f"CPython {platform.python_version()} is not supported" in record.getMessage()


def test_free_threaded_build_is_reported_unsupported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        heap_mod.sysconfig, "get_config_var", lambda name: 1 if name == "Py_GIL_DISABLED" else None
    )
    reason = unsupported_reason()
    assert reason is not None and "free-threaded" in reason and platform.python_version() in reason
    assert HeapProfiler.is_supported() is False
    with caplog.at_level(logging.WARNING, logger="leaktrace.profiling.heap"):
        assert HeapProfiler().start() is False
    assert [r.getMessage().count("free-threaded") for r in caplog.records] == [1]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        HeapProfiler(sample_bytes=0)
    with pytest.raises(ValueError):
        HeapProfiler(max_frames=0)
    with pytest.raises(ValueError):
        HeapProfiler(max_tracked=0)


def test_span_with_python_level_context_is_never_called_from_the_hook(
    make_profiler: Callable[..., HeapProfiler],
) -> None:
    # GIVEN current "spans" whose attributes are Python code (a property, a __getattr__)
    from opentelemetry import context as otel_context
    from opentelemetry.trace import set_span_in_context

    phase = ["attach"]
    calls: list[str] = []

    class PropertySpan:
        @property
        def get_span_context(self) -> object:
            calls.append(phase[0])
            raise AttributeError("no context")

    class GetattrSpan:
        def __getattr__(self, name: str) -> tuple[int, int]:
            calls.append(phase[0])
            return (1, 2)

    prof = make_profiler(sample_bytes=4 * 1024)
    assert prof.start()
    kept: list[bytes] = []
    for span in (PropertySpan(), GetattrSpan()):
        phase[0] = "attach"
        token = otel_context.attach(set_span_in_context(span))  # type: ignore[arg-type]
        try:
            phase[0] = "allocating"
            kept += retain_known(1_000, 2048)
        finally:
            phase[0] = "detach"
            otel_context.detach(token)
    samples = [
        s for s in prof.snapshot().samples if any(f.function == "retain_known" for f in s.frames)
    ]
    # THEN their code ran where the span became current, never while the program allocated, and
    # spans without usable ids give samples without ids (and no error in attach)
    assert calls and "allocating" not in calls
    assert samples and all((s.trace_id, s.span_id) == (0, 0) for s in samples)
