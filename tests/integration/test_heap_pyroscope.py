"""End to end: real sampler -> exporter -> pusher -> PyroscopeReceiver, pprof decoded and checked
against ground truth the test records itself (sizes it retains, spans it allocated under)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from leaktrace.profiling.exporter import HeapExporter
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason
from leaktrace.profiling.pprof import MEMORY_SAMPLE_TYPES
from leaktrace.profiling.push import PyroscopePusher
from opentelemetry.sdk.trace import TracerProvider

from tests.support.pyroscope_receiver import PyroscopeReceiver, ReceivedProfile

needs_sampler = pytest.mark.skipif(
    not HeapProfiler.is_supported(), reason=str(unsupported_reason())
)


@pytest.fixture
def receiver() -> Iterator[PyroscopeReceiver]:
    with PyroscopeReceiver() as r:
        yield r


@pytest.fixture
def profiler() -> Iterator[HeapProfiler]:
    p = HeapProfiler(sample_bytes=16 * 1024)
    yield p
    p.stop()


def retain_in_request(n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(bytes(4000))
    return out


def second_request(n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        out.append(bytes(3000))
    return out


def truth_of(kept: list[bytes]) -> int:
    return sum(sys.getsizeof(b) for b in kept) + sys.getsizeof(kept)


def bytes_by_trace(p: ReceivedProfile, function: str, sample_type: str) -> dict[str, int]:
    assert p.profile is not None
    out: dict[str, int] = {}
    for s in p.profile.samples:
        if any(f.function == function for f in s.frames):
            key = s.labels.get("trace_id", "")
            out[key] = out.get(key, 0) + p.profile.value(s, sample_type)
    return out


def within(est: float, truth: float, tol: float) -> bool:
    return abs(est - truth) <= tol * truth


def sampling_tolerance(kept: list[bytes], sample_bytes: int = 16 * 1024) -> float:
    """4 standard errors of the Poisson-by-bytes estimate of `kept` (relative): sampling luck
    fails it once in ~16,000 comparisons (a fixed 12 % was 3 sigma for B's 3,000 blocks and
    failed about once in 400 runs)."""
    var = sum(
        s * s * (1 - p) / p
        for s in map(sys.getsizeof, kept)
        for p in [-math.expm1(-s / sample_bytes)]
    )
    return 4.0 * math.sqrt(var) / truth_of(kept)


@needs_sampler
@pytest.mark.parametrize("api", ["push", "ingest"])
def test_pushed_heap_profile_matches_ground_truth(
    receiver: PyroscopeReceiver, profiler: HeapProfiler, api: str
) -> None:
    tracer: Any = TracerProvider().get_tracer("it")
    assert profiler.start()
    pusher = PyroscopePusher(receiver.endpoint, api=api, timeout_s=5)
    exporter = HeapExporter(
        profiler, pusher, application_name="heap-it", labels={"env": "test"}, interval_s=3600
    )

    # GIVEN request A retains ~20 MB and is exported
    with tracer.start_as_current_span("request-a") as a:
        kept_a = retain_in_request(5_000)
    trace_a = format(a.get_span_context().trace_id, "032x")
    span_a = format(a.get_span_context().span_id, "016x")
    assert exporter.export_once()
    # WHEN A's memory is released, request B retains ~9 MB, and the exporter stops (final push)
    truth_a, tol_a = truth_of(kept_a), sampling_tolerance(kept_a)
    del kept_a
    with tracer.start_as_current_span("request-b") as b:
        kept_b = second_request(3_000)
    trace_b = format(b.get_span_context().trace_id, "032x")
    exporter.stop()
    profiles = receiver.wait_for(
        lambda: receiver.memory_profiles() if len(receiver.memory_profiles()) >= 2 else None
    )
    assert profiles, f"got {len(receiver.memory_profiles())} memory profiles"
    first, final = profiles[0], profiles[1]

    for p in (first, final):
        assert p.api == api and p.profile is not None
        assert p.profile.sample_types == MEMORY_SAMPLE_TYPES
        assert p.labels["service_name"] == "heap-it" and p.labels.get("env") == "test"
        for s in p.profile.samples:
            if "trace_id" in s.labels:
                assert len(s.labels["trace_id"]) == 32 and len(s.labels["span_id"]) == 16
    if api == "push":
        assert first.labels["__delta__"] == "false" and first.labels["__name__"] == "memory"
    else:
        assert first.format == "pprof" and first.from_ts is not None and first.until_ts is not None
        assert first.from_ts <= time.time() and first.until_ts >= first.from_ts

    # THEN the first profile holds A's bytes, live and allocated, under A's trace and span
    inuse_a = bytes_by_trace(first, "retain_in_request", "inuse_space")
    assert within(sum(inuse_a.values()), truth_a, tol_a), (inuse_a, truth_a, tol_a)
    assert inuse_a.get(trace_a, 0) >= 0.95 * sum(inuse_a.values())
    assert within(
        sum(bytes_by_trace(first, "retain_in_request", "alloc_space").values()), truth_a, tol_a
    )
    assert first.profile is not None
    assert all(
        s.labels.get("span_id") == span_a
        for s in first.profile.samples
        if s.labels.get("trace_id") == trace_a
    )
    # AND the final profile is a delta for alloc_*: A allocated nothing in its window and holds nothing
    assert sum(bytes_by_trace(final, "retain_in_request", "alloc_space").values()) == 0
    assert sum(bytes_by_trace(final, "retain_in_request", "inuse_space").values()) == 0
    truth_b, tol_b = truth_of(kept_b), sampling_tolerance(kept_b)
    inuse_b = bytes_by_trace(final, "second_request", "inuse_space")
    assert within(sum(inuse_b.values()), truth_b, tol_b), (inuse_b, truth_b, tol_b)
    assert inuse_b.get(trace_b, 0) >= 0.95 * sum(inuse_b.values())
    assert within(
        sum(bytes_by_trace(final, "second_request", "alloc_space").values()), truth_b, tol_b
    )


@needs_sampler
def test_periodic_export_runs_on_its_own(
    receiver: PyroscopeReceiver, profiler: HeapProfiler
) -> None:
    assert profiler.start()
    exporter = HeapExporter(
        profiler, PyroscopePusher(receiver.endpoint), application_name="tick", interval_s=0.2
    )
    got: list[object] = []
    exporter.subscribe(got.append)
    exporter.start()
    kept = []
    deadline = time.monotonic() + 5
    while len(receiver.memory_profiles()) < 2 and time.monotonic() < deadline:
        kept.append(bytes(50_000))  # something to sample in every window
        time.sleep(0.02)
    exporter.stop(final_push=False)
    assert len(receiver.memory_profiles()) >= 2
    assert len(got) >= 2  # the in-process listener saw the same snapshots


def test_hung_server_bounds_push_and_stop(receiver: PyroscopeReceiver) -> None:
    from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

    snap = HeapSnapshot(
        time.time(), time.time() - 1, (HeapSample((Frame("f", "x.py", 1),), 1, 10, 1, 10),), 1024
    )
    receiver.hang()
    pusher = PyroscopePusher(receiver.endpoint, timeout_s=0.5)
    t0 = time.monotonic()
    assert pusher.push(snap, application_name="hung") is False
    assert time.monotonic() - t0 < 3.0
    receiver.recover()
    receiver.fail(1, status=500)
    assert pusher.push(snap, application_name="err") is False
    assert pusher.push(snap, application_name="ok") is True
    # (the released hung request records its 503 whenever its thread gets there: order is free)
    assert receiver.wait_for(lambda: len(receiver.requests()) >= 3, timeout=5)
    statuses = sorted(r.status for r in receiver.requests())
    assert statuses == [200, 500, 503]
    assert (pusher.sent, pusher.failed) == (1, 2)
