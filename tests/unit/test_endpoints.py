"""Bytes per endpoint: span ids to local root span names, the analyzer's shares, the metrics and
the `span_name` label of heap profile samples (issue 16)."""

from __future__ import annotations

from leaktrace.analysis.analyzer import LeakAnalyzer
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.freelists import freelist_block_sizes, is_ambiguous
from leaktrace.analysis.suspect_metrics import SuspectCollector
from leaktrace.endpoints import OTHER, EndpointTracker, SpanNameCache
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from tests.support import pprof_proto

FF = FrameFilter(library_prefixes=("/usr/lib/python3.11/",))
SITE = (Frame("audit", "/app/views.py", 12), Frame("dispatch", "/app/views.py", 30))


def tracked_provider(tracker: EndpointTracker) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(tracker)
    return provider


def test_child_spans_resolve_to_their_local_root_and_ended_requests_are_counted() -> None:
    tracker = EndpointTracker()
    tracer = tracked_provider(tracker).get_tracer("t")
    with tracer.start_as_current_span("POST /login/{user}") as root:
        with tracer.start_as_current_span("render") as child:
            assert tracker.resolve(child.get_span_context().span_id) == (
                "POST /login/{user}",
                False,
            )
        root.update_name("POST /login/{name}")  # instrumentations may rename late
    assert tracker.resolve(child.get_span_context().span_id) == ("POST /login/{name}", True)
    assert tracker.resolve(root.get_span_context().span_id) == ("POST /login/{name}", True)
    # A remote parent (traceparent from the caller) still makes a local root.
    remote = trace.SpanContext(
        0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
    try:
        with tracer.start_as_current_span("GET /items/{id}") as served:
            pass
    finally:
        context.detach(token)
    assert tracker.resolve(served.get_span_context().span_id) == ("GET /items/{id}", True)
    assert tracker.requests() == {"POST /login/{name}": 1, "GET /items/{id}": 1}
    assert tracker.resolve(0xDEAD) is None


def test_the_tracker_is_bounded_in_spans_and_in_names() -> None:
    tracker = EndpointTracker(max_spans=100, max_endpoints=3)
    tracer = tracked_provider(tracker).get_tracer("t")
    ids = []
    for i in range(500):
        with tracer.start_as_current_span(f"GET /raw/path/{i}") as span:
            ids.append(span.get_span_context().span_id)
    assert len(tracker._spans) == 100
    assert tracker.resolve(ids[0]) is None and tracker.resolve(ids[-1]) == (OTHER, True)
    requests = tracker.requests()
    assert len(requests) == 4 and requests[OTHER] == 497


def test_a_name_cache_keeps_what_it_resolved_while_the_sample_lives() -> None:
    tracker = EndpointTracker(max_spans=1)
    tracer = tracked_provider(tracker).get_tracer("t")
    with tracer.start_as_current_span("POST /a") as a:
        pass
    sid = a.get_span_context().span_id
    cache = SpanNameCache(tracker)
    assert cache.names([sid]) == {sid: "POST /a"}
    with tracer.start_as_current_span("POST /b"):
        pass  # the tracker forgot /a
    assert tracker.resolve(sid) is None
    assert cache.names([sid]) == {sid: "POST /a"}  # carried from the last pass
    assert cache.names([]) == {}
    assert cache.names([sid]) == {}  # a pass without it: gone


def sample(trace_id: int, span_id: int, nbytes: float, objects: float = 1.0) -> HeapSample:
    return HeapSample(SITE, 0, 0, objects, nbytes, trace_id, span_id)


def test_bytes_per_request_per_endpoint_from_trustworthy_samples() -> None:
    import math

    # GIVEN two endpoints' ended requests on one growing path: logins leave ~3000 B each,
    # item views ~1000 B, and a freelist-sized dict (64 B) that another request may have reused
    tracker = EndpointTracker()
    tracer = tracked_provider(tracker).get_tracer("t")
    spans: dict[str, list[int]] = {"POST /login/{user}": [], "GET /items/{id}": []}
    for _i in range(100):
        for name in spans:
            with (
                tracer.start_as_current_span(name),
                tracer.start_as_current_span("render") as child,
            ):
                spans[name].append(child.get_span_context().span_id)
    dict_size = next(iter(sorted(freelist_block_sizes())))
    w = 1.0 / -math.expm1(-dict_size / 16384)  # the weight the sampler gives one such block
    analyzer = LeakAnalyzer(frame_filter=FF, endpoints=tracker)
    for step in range(1, 21):
        live = [
            sample(1000 + i, sid, 3000.0)
            for i, sid in enumerate(spans["POST /login/{user}"][: step * 5])
        ]
        live += [
            sample(5000 + i, sid, 1000.0)
            for i, sid in enumerate(spans["GET /items/{id}"][: step * 5])
        ]
        live += [
            sample(9000 + i, spans["GET /items/{id}"][0], dict_size * w, w)
            for i in range(step * 40)
        ]
        analyzer.observe(HeapSnapshot(float(step), 0.0, tuple(live), 16384))
    [suspect] = analyzer.report().suspects
    shares = {e.name: e for e in suspect.endpoints}
    # THEN each endpoint's share of the path is measured on trustworthy samples only, scaled to
    # every live byte of the path (the freelist-sized ones included), per ended request
    login, items = shares["POST /login/{user}"], shares["GET /items/{id}"]
    total = suspect.retained_bytes
    assert (
        abs(login.retained_bytes / total - 0.75) < 1e-6
        and abs(items.retained_bytes / total - 0.25) < 1e-6
    )
    assert (login.requests, items.requests) == (100, 100)
    assert login.bytes_per_request > 2.5 * items.bytes_per_request
    # AND the freelist-sized samples gave no trace id
    assert not any(t.startswith("00000000000000000000000000002") for t in suspect.trace_ids)
    assert all(int(t, 16) < 9000 for t in suspect.trace_ids)

    # The metrics name the endpoints, bounded per suspect.
    registry = CollectorRegistry()
    registry.register(SuspectCollector(analyzer.report, 5, 120, endpoints_per_suspect=1))
    labels = {"rank": "1", "call_path": suspect.call_path, "endpoint": "POST /login/{user}"}
    assert registry.get_sample_value(
        "leaktrace_leak_suspect_endpoint_bytes_per_request", labels
    ) == (login.bytes_per_request)
    assert (
        registry.get_sample_value("leaktrace_leak_suspect_endpoint_retained_bytes", labels)
        == login.retained_bytes
    )
    assert (
        registry.get_sample_value(
            "leaktrace_leak_suspect_endpoint_retained_bytes",
            {**labels, "endpoint": "GET /items/{id}"},
        )
        is None
    )
    assert registry.get_sample_value("leaktrace_hunt_telemetry_bytes") == 0.0


def test_freelist_sizes_follow_the_running_interpreter() -> None:
    import math
    import sys

    sizes = freelist_block_sizes()
    gc_header = sys.getsizeof([]) - [].__sizeof__()
    assert gc_header + dict.__basicsize__ in sizes and gc_header + list.__basicsize__ in sizes
    assert all(gc_header + tuple.__basicsize__ + 8 * n in sizes for n in range(1, 20))
    interval = 16384.0

    def w(size: float) -> float:
        return 1.0 / -math.expm1(-size / interval)

    small = frozenset({56, 64, 120})
    assert is_ambiguous(64 * w(64), w(64), small, interval)  # one freelisted block
    assert is_ambiguous(3 * 64 * w(64), 3 * w(64), small, interval)  # three of them
    # A dict and its key table, both reused from freelists (the case that got wrong ids)
    assert is_ambiguous(64 * w(64) + 120 * w(120), w(64) + w(120), small, interval)
    assert not is_ambiguous(92 * w(92), w(92), small, interval)  # one 92-byte str
    assert not is_ambiguous(2 * 92 * w(92), 2 * w(92), small, interval)  # two of them
    # A dict with its 30 KB buffer: bigger than any freelisted block on average
    assert not is_ambiguous(64 * w(64) + 30_000 * w(30_000), w(64) + w(30_000), small, interval)
    assert not is_ambiguous(64.0, 1.0, frozenset(), interval)


def test_heap_profile_samples_carry_the_endpoint_as_span_name() -> None:
    snap = HeapSnapshot(
        10.0, 0.0, (sample(7, 42, 4096.0), sample(8, 43, 2048.0), sample(0, 0, 512.0)), 16384
    )
    p = pprof_proto.parse(snapshot_to_pprof(snap, span_names={42: "POST /login/{user}"}))
    labels = [lab for _, _, lab in pprof_proto.stacks(p)]
    assert {
        "span_id": f"{42:016x}",
        "trace_id": f"{7:032x}",
        "span_name": "POST /login/{user}",
    } in labels
    assert {"span_id": f"{43:016x}", "trace_id": f"{8:032x}"} in labels  # unknown span: no name
    assert {} in labels
