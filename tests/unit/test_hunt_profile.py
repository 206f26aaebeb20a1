"""`leaktrace hunt --pprof`: the hunted process keeps its final live heap as a standard pprof.

Checked with an independent decoder (Google's protobuf runtime over profile.proto's schema, and
the validity checks `go tool pprof` applies: tests/support/pprof_proto.py), and against the
encoding pushed to Pyroscope (the same sample types, period and labels)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from leaktrace.analysis.hunter import HunterConfig
from leaktrace.analysis.session import HuntSession
from leaktrace.profiling.pprof import MEMORY_SAMPLE_TYPES, _len_field, decode_profile
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

from tests.support import pprof_proto

LEAK = (
    Frame("make_session", "/srv/app.py", 14),
    Frame("handle", "/srv/app.py", 20),
    Frame("main", "/srv/app.py", 30),
)
STATIC = (Frame("load_table", "/srv/app.py", 50), Frame("main", "/srv/app.py", 31))


class FakeSampler:
    """Live snapshots of a heap that grows on one path, with trace and span ids (a native sampler)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.calls = 0

    def live_snapshot(self) -> HeapSnapshot:
        self.calls += 1
        self.t += 1.0
        n = self.calls
        samples = (
            *(
                HeapSample(LEAK, 0.0, 0.0, 4.0, 65536.0, trace_id=(1 << 100) + i, span_id=1000 + i)
                for i in range(n)
            ),
            HeapSample(STATIC, 0.0, 0.0, 10.0, 1e6),
        )
        return HeapSnapshot(self.t, 1000.0, samples, sample_interval_bytes=16384)

    def snapshot(self) -> HeapSnapshot:
        return self.live_snapshot()


def test_session_keeps_the_last_ticks_heap_as_pprof(tmp_path: Path) -> None:
    path = tmp_path / "heap.pb.gz"
    sampler = FakeSampler()
    session = HuntSession(
        heap_profiler=sampler,
        profile_path=str(path),
        profile_interval_s=3600.0,
        config=HunterConfig(interval_s=60.0),
    )
    hunter = session.hunter
    hunter.tick()
    assert path.exists()  # the first tick writes at once
    first = path.read_bytes()
    for _ in range(4):
        hunter.tick()
    assert path.read_bytes() == first  # then not before the interval: encoding costs
    session.stop()  # stop writes the last tick's heap, without a new snapshot
    assert sampler.calls == 5
    p = pprof_proto.parse(path.read_bytes())
    assert pprof_proto.sample_types(p) == list(MEMORY_SAMPLE_TYPES)
    stacks = pprof_proto.stacks(p)
    leak = [s for s in stacks if s[0][0][0] == "make_session"]
    assert len(leak) == 5  # the fifth snapshot's five leak samples
    assert sum(s[1][3] for s in leak) == 5 * 65536
    assert {s[2]["trace_id"] for s in leak} == {format((1 << 100) + i, "032x") for i in range(5)}
    assert all(len(s[2]["span_id"]) == 16 for s in leak)
    assert [f[0] for f in leak[0][0]] == [
        "make_session",
        "handle",
        "main",
    ]  # leaf first, as pprof stores it
    assert p.period == 16384 and p.time_nanos == 1000 * 10**9


def test_the_file_is_the_pushed_encoding_byte_for_byte() -> None:
    snap = FakeSampler().live_snapshot()
    data = snapshot_to_pprof(snap)
    assert data[:2] == b"\x1f\x8b"  # gzipped, as go tool pprof, profilecli and speedscope read it
    # Our own decoder and the independent one agree on every sample.
    ours = decode_profile(data)
    theirs = pprof_proto.stacks(pprof_proto.parse(data))
    assert [
        (tuple((f.function, f.file, f.line) for f in s.frames), list(s.values), dict(s.labels))
        for s in ours.samples
    ] == [(tuple(f), v, lb) for f, v, lb in theirs]


def test_no_profile_without_a_path_and_a_broken_path_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = HuntSession(heap_profiler=FakeSampler(), config=HunterConfig(interval_s=60.0))
    quiet.hunter.tick()
    quiet.stop()
    assert not list(tmp_path.iterdir())
    broken = HuntSession(
        heap_profiler=FakeSampler(),
        profile_path=str(tmp_path / "missing" / "heap.pb.gz"),
        profile_interval_s=0.0,
        config=HunterConfig(interval_s=60.0),
    )
    for _ in range(3):
        broken.hunter.tick()  # never raises into the host
    broken.stop()
    assert broken.hunter.errors == 0
    assert len([r for r in caplog.records if "heap profile" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: _len_field(6, b"x") + raw, "string_table\\[0\\]"),  # first string not ""
        (lambda raw: raw + _len_field(2, b"\x08\x63\x12\x01\x01"), "location|values"),  # bad sample
        (lambda raw: raw + b"\xa8\x06\x01", "not in profile.proto"),  # an unknown field 101
    ],
)
def test_the_independent_checker_rejects_broken_profiles(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = gzip.decompress(snapshot_to_pprof(FakeSampler().live_snapshot()))
    pprof_proto.parse(raw)  # the real thing passes
    with pytest.raises(pprof_proto.InvalidProfile, match=message):
        pprof_proto.parse(mutate(raw))
