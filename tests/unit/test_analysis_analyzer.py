"""LeakAnalyzer on synthetic snapshots: verdicts, call paths, trace attribution, bounds."""

from __future__ import annotations

import math
import random
import tracemalloc

import pytest
from leaktrace.analysis import analyzer as analyzer_mod
from leaktrace.analysis import path_totals as path_totals_mod
from leaktrace.analysis import paths as paths_mod
from leaktrace.analysis import series as series_mod
from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer, analyze
from leaktrace.analysis.callpath import FrameFilter, call_path_key, user_frames
from leaktrace.analysis.series import Series
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

LIB = "/usr/lib/python3.11/"
FF = FrameFilter(library_prefixes=(LIB, "/venv/site-packages/"))

JSON_LOADS = Frame("raw_decode", LIB + "json/decoder.py", 353)
FRAMEWORK = Frame("__call__", "/venv/site-packages/starlette/routing.py", 70)
LEAK = (
    JSON_LOADS,
    Frame("remember", "/app/sessions.py", 12),
    Frame("login", "/app/routes.py", 40),
    FRAMEWORK,
)
CACHE = (Frame("warm", "/app/cache.py", 8), Frame("get", "/app/routes.py", 55), FRAMEWORK)
BUFFER = (Frame("append", "/app/buffer.py", 20), Frame("log", "/app/routes.py", 60), FRAMEWORK)
STARTUP = (Frame("load_table", "/app/geo.py", 3), Frame("<module>", "/app/main.py", 1))


def snap(t: float, samples: list[HeapSample]) -> HeapSnapshot:
    return HeapSnapshot(timestamp=t, start=0.0, samples=tuple(samples), sample_interval_bytes=1)


def sample(
    frames: tuple[Frame, ...],
    nbytes: float,
    objects: float = 1.0,
    trace_id: int = 0,
    span_id: int = 0,
) -> HeapSample:
    return HeapSample(frames, objects, nbytes, objects, nbytes, trace_id, span_id)


def scenario(n: int = 40, dt: float = 0.5, seed: int = 3) -> list[HeapSnapshot]:
    """A leak at 100 KB/s among a warming cache, a sawtooth buffer and a startup table."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = i * dt

        def noise() -> float:
            return rnd.gauss(0, 20e3)

        out.append(
            snap(
                t,
                [
                    sample(LEAK, 1e6 + 100e3 * t + noise(), 10 + 50 * t),
                    sample(CACHE, min(t, 5.0) * 300e3 + noise() + 50e3, 100),
                    sample(BUFFER, (t % 2.0) * 400e3 + 1e3, 10),
                    sample(STARTUP, 30e6 if t >= 1.0 else 1.0, 5000),
                ],
            )
        )
    return out


def test_only_the_leak_is_reported_at_its_user_allocation_site() -> None:
    report = analyze(scenario(), frame_filter=FF)
    assert report.verdict == "leak"
    assert len(report.suspects) == 1
    s = report.suspects[0]
    # THEN the allocation site is the first *user* frame, not json's decoder
    assert s.frames[0] == LEAK[1]
    assert s.frames == LEAK[1:3]  # trailing framework frames trimmed too
    assert s.growth_bytes_per_s == pytest.approx(100e3, rel=0.1)
    assert s.retained_bytes == pytest.approx(1e6 + 100e3 * 19.5, rel=0.05)
    assert s.p_value < 1e-6
    assert report.duration_s == pytest.approx(19.5)
    assert report.snapshots == 40


def test_controls_alone_give_no_leak() -> None:
    only_controls = [
        snap(s.timestamp, [x for x in s.samples if x.frames != LEAK]) for s in scenario()
    ]
    report = analyze(only_controls, frame_filter=FF)
    assert report.verdict == "no-leak" and report.suspects == ()


def test_two_leaks_are_ranked_by_rate() -> None:
    slow = (Frame("audit", "/app/audit.py", 5), FRAMEWORK)
    snaps = [
        snap(i * 0.5, [sample(LEAK, 120e3 * i * 0.5 + 1), sample(slow, 40e3 * i * 0.5 + 1)])
        for i in range(30)
    ]
    report = analyze(snaps, frame_filter=FF)
    assert [s.frames[0].function for s in report.suspects] == ["remember", "audit"]


def test_framework_frames_below_the_handler_do_not_split_a_leak() -> None:
    # GIVEN the same leak reached through two different framework stacks
    other = (*LEAK[:3], Frame("handle", "/venv/site-packages/uvicorn/h11.py", 400))
    snaps = [
        snap(i * 0.5, [sample(LEAK, 50e3 * i * 0.5 + 1), sample(other, 50e3 * i * 0.5 + 1)])
        for i in range(30)
    ]
    report = analyze(snaps, frame_filter=FF)
    assert len(report.suspects) == 1
    assert report.suspects[0].growth_bytes_per_s == pytest.approx(100e3, rel=0.05)


def test_call_path_key_skips_library_frames_and_repeated_lines() -> None:
    comp = Frame("<listcomp>", "/app/sessions.py", 12)
    key = call_path_key((JSON_LOADS, comp, LEAK[1], FRAMEWORK, LEAK[2]), FF, depth=2)
    assert key == (comp, LEAK[2])
    assert call_path_key((JSON_LOADS, FRAMEWORK), FF, depth=2) == (JSON_LOADS, FRAMEWORK)
    assert user_frames((JSON_LOADS, FRAMEWORK), FF) == (JSON_LOADS, FRAMEWORK)


def test_default_frame_filter_treats_stdlib_and_leaktrace_as_library() -> None:
    ff = FrameFilter.default()
    assert not ff.is_user(tracemalloc.__file__)
    assert not ff.is_user(analyzer_mod.__file__)
    assert ff.is_user(__file__)
    assert not ff.is_user("<frozen runpy>")


def test_rss_growth_comes_from_rss_when_given() -> None:
    snaps = scenario(n=20)
    rss = [50e6 + 250e3 * s.timestamp for s in snaps]
    report = analyze(snaps, frame_filter=FF, rss=rss)
    assert report.rss_growth_bytes_per_s == pytest.approx(250e3)


def test_out_of_order_snapshots_are_ignored() -> None:
    a = LeakAnalyzer(frame_filter=FF)
    a.observe(snap(2.0, [sample(LEAK, 10)]))
    a.observe(snap(1.0, [sample(LEAK, 99)]))
    a.observe(snap(2.0, [sample(LEAK, 99)]))
    assert a.snapshots == 1
    assert a.path_series(call_path_key(LEAK, FF)) == ((2.0,), (10.0,))


# --- trace attribution -------------------------------------------------------------------
def simulate_traced_run(
    min_trace_age_s: float, seed: int = 11
) -> tuple[set[str], set[str], tuple[str, ...]]:
    """A Poisson-like sampler over 20 s at 50 requests/s.

    Every request allocates 2 KB on the leaking path and keeps it. 30% of requests also
    allocate 8 KB of scratch on the same path, freed when they end; requests take 40 ms,
    and one in ten is slow (1.2 s), so scratch of in-flight requests shows in snapshots.
    Returns (leaked trace ids sampled, transient trace ids sampled, reported trace ids).
    """
    rnd = random.Random(seed)
    interval = 16 * 1024
    live: list[tuple[int, int, float]] = []  # (trace, span, free_at) of sampled blocks
    leaked: set[str] = set()
    transient: set[str] = set()
    cfg = AnalyzerConfig(min_trace_age_s=min_trace_age_s, max_reported_traces=10_000)
    a = LeakAnalyzer(cfg, frame_filter=FF)
    t = 0.0
    next_snap = 0.5
    while t < 20.0:
        trace_id, span_id = rnd.getrandbits(128) | 1, rnd.getrandbits(64) | 1
        if rnd.random() < 2048 / interval:
            live.append((trace_id, span_id, float("inf")))
            leaked.add(format(trace_id, "032x"))
        if rnd.random() < 0.3 and rnd.random() < 8192 / interval:
            live.append((trace_id, span_id, t + (1.2 if rnd.random() < 0.1 else 0.04)))
            transient.add(format(trace_id, "032x"))
        t += 0.02
        live = [b for b in live if b[2] > t]
        if t >= next_snap:
            next_snap += 0.5
            a.observe(
                snap(
                    t,
                    [sample(LEAK, interval, 1, tid, sid) for tid, sid, _ in live]
                    + [sample(CACHE, 1e6)],
                )
            )
    report = a.report()
    assert report.suspects and report.suspects[0].frames[0] == LEAK[1]
    return leaked, transient - leaked, report.suspects[0].trace_ids


def test_trace_ids_of_retained_requests_have_high_precision() -> None:
    leaked, transient, reported = simulate_traced_run(min_trace_age_s=1.5)
    got = set(reported)
    precision = len(got & leaked) / len(got)
    recall = len(got & leaked) / len(leaked)
    assert precision >= 0.9
    assert recall >= 0.7  # all but the most recent leaks (younger than min_trace_age_s)
    assert transient, "the simulation must produce transient traces, or this test proves nothing"
    assert all(len(t) == 32 and int(t, 16) for t in reported)


def test_without_an_age_threshold_transient_requests_pollute_the_trace_ids() -> None:
    # The same run with no age threshold reports in-flight requests too: the threshold
    # is what the precision above rests on.
    _, transient, reported = simulate_traced_run(min_trace_age_s=0.0)
    assert set(reported) & transient


def sampled_cache_hunt(seed: int, *, with_trace_ids: bool) -> LeakAnalyzer:
    """bench/noise_threshold.py's warming LRU cache (one sampled 2 KB page per request, 16 KiB
    sampler) fed to the analyzer, each page under its own request's trace id or none."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "noise_threshold.py"
    spec = importlib.util.spec_from_file_location("noise_threshold", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    live: list[frozenset[int]] = []
    ts, _, _ = bench.warm_cache_series(seed, sample_bytes=16384, duration_s=14.0, live=live)
    step = 2000 / -math.expm1(-2000 / 16384)
    a = LeakAnalyzer(frame_filter=FF)
    for t, pages in zip(ts, live, strict=True):
        samples = tuple(
            HeapSample(
                CACHE,
                step / 2000,
                step,
                step / 2000,
                step,
                *((i + 1, i + 1) if with_trace_ids else (0, 0)),
            )
            for i in sorted(pages)
        )
        a.observe(
            HeapSnapshot(timestamp=t, start=0.0, samples=samples, sample_interval_bytes=16384)
        )
    return a


def test_a_churning_cache_is_no_leak_when_its_evictions_are_counted_by_trace_id() -> None:
    # GIVEN the seeded hunts of a warming cache that look like a leak unless evictions count
    # (3 of these 720 seeds)
    fooled = [
        s for s in range(720) if sampled_cache_hunt(s, with_trace_ids=False).report().suspects
    ]
    assert fooled, "no seed drifts up: this test would prove nothing"
    # THEN with each page under its request's trace id, the analyzer sees the evictions
    # (requests gone from the path between two snapshots) and none of them is a leak
    for s in fooled:
        assert sampled_cache_hunt(s, with_trace_ids=True).report().suspects == ()


def test_a_small_growing_path_among_many_big_static_ones_gets_a_slot() -> None:
    # GIVEN 2000 big static call paths (more than max_paths) seen first, and a leak
    # that starts small, listed last
    statics = [(Frame(f"f{i}", f"/app/m{i}.py", i),) for i in range(2000)]
    cfg = AnalyzerConfig(max_paths=64)
    a = LeakAnalyzer(cfg, frame_filter=FF)
    for i in range(40):
        t = i * 0.5
        a.observe(snap(t, [sample(f, 5e6) for f in statics] + [sample(LEAK, 1e3 + 100e3 * t)]))
    report = a.report()
    # THEN it was promoted over a static path and found within the 20 s
    assert [s.frames[0] for s in report.suspects] == [LEAK[1]]
    assert a.tracked_paths <= 64


# --- bounds ------------------------------------------------------------------------------
def test_series_thins_history_but_keeps_recent_points_dense() -> None:
    s = Series(capacity=20)
    for i in range(1000):
        s.append(float(i), float(i))
    assert len(s) <= 20
    assert s.times[-1] == 999.0 and s.times[0] == 0.0
    assert list(s.times[-5:]) == [995.0, 996.0, 997.0, 998.0, 999.0]
    assert list(s.times) == sorted(s.times)


def test_analyzer_state_is_bounded_under_path_and_trace_churn() -> None:
    cfg = AnalyzerConfig(
        max_paths=50, max_points=32, max_traces_per_path=16, key_cache_size=100, max_light_paths=300
    )
    a = LeakAnalyzer(cfg, frame_filter=FF)
    rnd = random.Random(1)
    for i in range(600):
        samples = [sample(LEAK, 1e6 + 1e3 * i, 1, rnd.getrandbits(128) | 1, 1) for _ in range(20)]
        samples += [
            sample((Frame("f", f"/app/m{rnd.randrange(10**6)}.py", 1),), rnd.random() * 1e5)
            for _ in range(30)
        ]
        a.observe(snap(float(i), samples))
    assert a.tracked_paths <= 50
    assert all(len(p.bytes) <= 32 and len(p.first_seen) <= 16 for p in a._paths.values())
    assert len(a._keys) <= 100
    assert len(a._light) <= 300
    # the steady leak survives the churn (it is never the smallest path)
    assert call_path_key(LEAK, FF) in a._paths


def test_analyzer_memory_stays_flat_in_a_soak() -> None:
    # GIVEN an analyzer fed thousands of snapshots with churning paths and traces
    cfg = AnalyzerConfig(max_paths=64, max_points=64, max_light_paths=500)
    a = LeakAnalyzer(cfg, frame_filter=FF)
    rnd = random.Random(2)

    def feed(start: int, n: int) -> None:
        for i in range(start, start + n):
            samples = [
                sample(LEAK, 1e6 + 1e3 * i, 1, rnd.getrandbits(128) | 1, 1) for _ in range(10)
            ]
            samples += [
                sample((Frame("f", f"/app/m{rnd.randrange(10**6)}.py", 1),), 1e4) for _ in range(10)
            ]
            a.observe(snap(float(i), samples))

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start(1)
    try:
        # The analyzer and the modules that hold its per-path state.
        only_analyzer = [
            tracemalloc.Filter(True, mod.__file__)
            for mod in (analyzer_mod, paths_mod, path_totals_mod, series_mod)
        ]
        feed(0, 200)
        first = sum(
            s.size
            for s in tracemalloc.take_snapshot().filter_traces(only_analyzer).statistics("filename")
        )
        feed(200, 800)
        second = sum(
            s.size
            for s in tracemalloc.take_snapshot().filter_traces(only_analyzer).statistics("filename")
        )
    finally:
        if not was_tracing:
            tracemalloc.stop()
    # THEN four times the input leaves the analyzer's own allocations about the same
    assert first > 0
    assert second < first * 1.3


def test_leaktraces_own_allocations_are_never_a_suspect_call_path() -> None:
    import os

    import leaktrace
    from leaktrace.analysis.callpath import FrameFilter, call_path_key
    from leaktrace.profiling.samples import Frame

    own = os.path.join(os.path.dirname(leaktrace.__file__), "profiling", "heap.py")
    stdlib = os.path.join(os.path.dirname(os.__file__), "threading.py")
    f = FrameFilter.default()
    # GIVEN the profiler's own thread allocating (leaktrace + stdlib frames only)
    assert call_path_key((Frame("_frame", own, 341), Frame("run", stdlib, 982)), f) == ()
    user = Frame("handler", "/srv/app/views.py", 12)
    # AND what leaktrace allocates when user code calls it (a log record in its handler) is its own
    assert call_path_key((Frame("emit", own, 60), user), f) == ()
    # BUT leaktrace frames *below* user code (the ASGI wrapper around a handler) leave the
    # handler's allocations to the user
    web = os.path.join(os.path.dirname(leaktrace.__file__), "web.py")
    json_frame = Frame(
        "raw_decode", os.path.join(os.path.dirname(os.__file__), "json", "decoder.py"), 353
    )
    assert call_path_key((json_frame, user, Frame("__call__", web, 90)), f) == (user,)


def test_spans_waiting_in_the_sdk_export_queue_are_not_the_callers_leak() -> None:
    import os

    import opentelemetry.sdk.trace as sdk_trace
    from leaktrace.analysis.callpath import FrameFilter, call_path_key

    # GIVEN a span allocated inside the OpenTelemetry SDK under the user's `start_as_current_span`
    # (with a dead collector these pile up in the bounded export queue, then drain and refill)
    f = FrameFilter.default()
    user = Frame("handle", "/srv/app/views.py", 30)
    sdk = Frame("start_span", os.path.abspath(sdk_trace.__file__), 1100)
    # THEN the sample has no call path: it is telemetry's own memory, never a leak suspect
    assert call_path_key((sdk, user), f) == ()
    # AND user memory allocated through an ordinary library is still the user's
    lib = Frame("raw_decode", os.path.join(os.path.dirname(os.__file__), "json", "decoder.py"), 353)
    assert call_path_key((lib, user), f) == (user,)
