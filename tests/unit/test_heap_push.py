"""pprof building from HeapSnapshot and the pusher's failure behaviour, without a server."""

from __future__ import annotations

import io
import logging
import urllib.error
import urllib.request
from typing import Any, Self

import pytest
from leaktrace.profiling.exporter import HeapExporter
from leaktrace.profiling.pprof import MEMORY_SAMPLE_TYPES, decode_profile
from leaktrace.profiling.push import (
    PyroscopePusher,
    encode_push_request,
    snapshot_to_pprof,
)
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

from tests.support.pyroscope_receiver import parse_push_request

TRACE = 0x0123456789ABCDEF0011223344556677
SPAN = 0x00000000000000FF


def snapshot() -> HeapSnapshot:
    leaf = Frame("make_buffer", "/app/buf.py", 12)
    root = Frame("handle", "/app/views.py", 40)
    return HeapSnapshot(
        timestamp=1_700_000_015.0,
        start=1_700_000_000.0,
        samples=(
            HeapSample((leaf, root), 10.4, 40_960.6, 3.0, 12_288.0, trace_id=TRACE, span_id=SPAN),
            HeapSample((root,), 0.0, 0.0, 1.0, 100.0),  # no span: no labels
            HeapSample((root,), 0.2, 0.3, 0.0, 0.0),  # rounds to nothing: left out
        ),
        sample_interval_bytes=512 * 1024,
    )


def test_pprof_has_four_memory_types_values_labels_and_window() -> None:
    prof = decode_profile(snapshot_to_pprof(snapshot()))
    assert prof.sample_types == MEMORY_SAMPLE_TYPES
    assert prof.period_type == ("space", "bytes") and prof.period == 512 * 1024
    assert prof.time_nanos == 1_700_000_000 * 10**9 and prof.duration_nanos == 15 * 10**9
    assert len(prof.samples) == 2
    labelled = [s for s in prof.samples if s.labels]
    assert len(labelled) == 1
    s = labelled[0]
    assert s.labels == {
        "span_id": "00000000000000ff",
        "trace_id": "0123456789abcdef0011223344556677",
    }
    assert len(s.labels["span_id"]) == 16 and len(s.labels["trace_id"]) == 32
    assert s.values == (10, 40_961, 3, 12_288)
    assert [f.function for f in s.frames] == ["make_buffer", "handle"]  # leaf first
    assert s.frames[0] == Frame("make_buffer", "/app/buf.py", 12)


def test_stacks_shared_between_samples_and_varint_boundaries_decode_exactly() -> None:
    from leaktrace.profiling.pprof import ProfileBuilder

    # GIVEN one frames tuple used by many samples (the encoder caches its packed locations by
    # identity), an equal but distinct tuple, and values on every varint length boundary
    stack = tuple(Frame(f"f{i}", f"/app/m{i}.py", 100 + i) for i in range(200))
    twin = tuple(Frame(f.function, f.file, f.line) for f in stack)
    values = [0, 1, 127, 128, 16_383, 16_384, 2**21, 2**40]
    b = ProfileBuilder(sample_types=(("a", "count"), ("b", "bytes")))
    expected = []
    for i, v in enumerate(values):
        frames = twin if i % 3 == 0 else stack
        b.add(frames, [v, i], {"span_id": f"{i:016x}"})
        expected.append((frames, (v, i), {"span_id": f"{i:016x}"}))
    # WHEN encoded and decoded
    prof = decode_profile(b.encode_gzip())
    # THEN every sample comes back with its own stack, values and labels
    got = [(s.frames, s.values, dict(s.labels)) for s in prof.samples]
    assert got == [(tuple(f), v, lab) for f, v, lab in expected]


def test_push_request_round_trips_through_the_receiver_parser() -> None:
    raw = snapshot_to_pprof(snapshot())
    body = encode_push_request(
        {"service_name": "svc", "__delta__": "false", "__name__": "memory"}, raw, "id-1"
    )
    [series] = parse_push_request(body)
    assert dict(series.labels) == {
        "service_name": "svc",
        "__delta__": "false",
        "__name__": "memory",
    }
    assert series.samples == ((raw, "id-1"),)


class _Resp(io.BytesIO):
    status = 200

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *a: object) -> None:
        self.close()


def test_push_never_raises_and_rate_limits_warnings(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[urllib.request.Request] = []
    now = [0.0]

    def failing_opener(req: urllib.request.Request, timeout: float) -> Any:
        calls.append(req)
        raise urllib.error.URLError("connection refused")

    pusher = PyroscopePusher(
        "http://127.0.0.1:9", opener=failing_opener, warn_interval_s=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="leaktrace.profiling.push"):
        results = [pusher.push(snapshot(), application_name="svc") for _ in range(5)]
        now[0] = 61.0
        results.append(pusher.push(snapshot(), application_name="svc"))
    assert results == [False] * 6 and len(calls) == 6 and pusher.failed == 6
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # first failure, then one after the interval
    assert "4 similar warnings suppressed" in warnings[1]


def test_push_sends_auth_tenant_and_delta_labels() -> None:
    seen: list[urllib.request.Request] = []

    def opener(req: urllib.request.Request, timeout: float) -> Any:
        seen.append(req)
        assert timeout == 2.5
        return _Resp(b"")

    pusher = PyroscopePusher(
        "http://127.0.0.1:4040/", opener=opener, timeout_s=2.5, auth_token="tok", tenant_id="t1"
    )
    assert pusher.push(
        snapshot(), application_name="svc", labels={"env": "test", "service_name": "dup"}
    )
    req = seen[0]
    assert req.full_url == "http://127.0.0.1:4040/push.v1.PusherService/Push"
    assert (
        req.get_header("Authorization") == "Bearer tok" and req.get_header("X-scope-orgid") == "t1"
    )
    assert isinstance(req.data, bytes)
    [series] = parse_push_request(req.data)
    labels = dict(series.labels)
    assert labels == {
        "__name__": "memory",
        "__delta__": "false",
        "service_name": "svc",
        "env": "test",
    }


def test_bad_pusher_configuration_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="http"):
        PyroscopePusher("localhost:4040")
    with pytest.raises(ValueError, match="api"):
        PyroscopePusher("http://127.0.0.1:4040", api="grpc")


def test_invalid_label_name_degrades_to_a_warning() -> None:
    pusher = PyroscopePusher("http://127.0.0.1:9", opener=lambda req, timeout: _Resp(b""))
    assert pusher.push(snapshot(), application_name="svc", labels={"bad-name": "x"}) is False
    assert pusher.failed == 1


class _FakeProfiler:
    def __init__(self) -> None:
        self.running = True
        self.calls: list[bool] = []

    def snapshot(self, reset_alloc: bool = False) -> HeapSnapshot:
        self.calls.append(reset_alloc)
        return snapshot()


class _FakePusher:
    def __init__(self) -> None:
        self.pushed: list[tuple[HeapSnapshot, str, dict[str, str]]] = []

    def push(self, snap: HeapSnapshot, *, application_name: str, labels: Any = None) -> bool:
        self.pushed.append((snap, application_name, dict(labels or {})))
        return True


def test_exporter_stop_makes_a_final_push_with_reset_and_feeds_listeners() -> None:
    prof, pusher = _FakeProfiler(), _FakePusher()
    got: list[HeapSnapshot] = []
    exporter = HeapExporter(
        prof, pusher, application_name="svc", labels={"env": "t"}, interval_s=3600
    )
    exporter.subscribe(got.append)
    exporter.subscribe(lambda s: 1 / 0)  # a broken listener must not stop the others or the push
    exporter.start()
    assert exporter.running
    exporter.stop()
    assert not exporter.running
    assert prof.calls == [True]  # one export, at stop, resetting the alloc window
    assert [(a, lbl) for _, a, lbl in pusher.pushed] == [("svc", {"env": "t"})]
    assert got == [pusher.pushed[0][0]]


def test_exporter_skips_push_when_profiler_stopped() -> None:
    prof, pusher = _FakeProfiler(), _FakePusher()
    prof.running = False
    exporter = HeapExporter(prof, pusher, application_name="svc", interval_s=3600)
    assert exporter.export_once() is False
    assert pusher.pushed == [] and prof.calls == []
