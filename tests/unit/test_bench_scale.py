"""The scale benchmarks behind docs/kubernetes.md: bench/footprint_rates.py and bench/hunter_memory.py.

Their counting functions on known inputs, and a very short run of each command (so they cannot
rot) whose results must say what they claim: rates reached or not by their own rule, heap
profiles decoded with the trace ids they carry, a hunter measured inside its bounds.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from leaktrace.profiling.pprof import decode_profile
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

from tests.unit.test_bench_common import load

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 150


def _profile(samples: list[HeapSample], labels: dict[str, str]) -> Any:
    raw = snapshot_to_pprof(
        HeapSnapshot(timestamp=10.0, start=0.0, samples=tuple(samples), sample_interval_bytes=65536)
    )
    return types.SimpleNamespace(profile=decode_profile(raw), labels=labels, raw=raw)


def test_heap_profile_stats_counts_stacks_ids_and_series() -> None:
    fr = load("footprint_rates")
    a, b = (
        (Frame("handler", "app.py", 10),),
        (Frame("cache_put", "app.py", 20), Frame("handler", "app.py", 11)),
    )
    t1, t2 = 0x1234 << 64 | 1, 0x5678 << 64 | 2
    samples = [
        HeapSample(a, 1, 100, 1, 100, trace_id=t1, span_id=7),
        HeapSample(a, 1, 100, 1, 100, trace_id=t2, span_id=8),  # same stack, another request
        HeapSample(b, 2, 300, 0, 0, trace_id=t1, span_id=9),
        HeapSample(b, 1, 50, 1, 50),  # no span: no labels
    ]
    series = {"service_name": "svc", "__name__": "memory"}
    stats = fr.heap_profile_stats([_profile(samples, series), _profile(samples[:2], series)])
    assert stats["profiles"] == 2 and stats["series_count"] == 1
    assert stats["sample_label_keys"] == ["span_id", "trace_id"]
    assert stats["samples"] == {"median": 3.0, "max": 4.0}
    assert stats["distinct_stacks"]["max"] == 2 and stats["distinct_trace_ids"]["max"] == 2
    assert stats["distinct_span_ids"]["max"] == 3
    assert stats["samples_with_trace_id"]["max"] == 3
    assert stats["id_string_bytes"]["max"] == 34 * 2 + 18 * 3
    # A profile that is not a pprof is skipped, not counted as empty.
    undecoded = types.SimpleNamespace(profile=None, labels=series, raw=b"x")
    assert fr.heap_profile_stats([undecoded])["profiles"] == 0


def test_combined_load_sums_the_generators_and_needs_every_report() -> None:
    fr = load("footprint_rates")
    one = {
        "planned": 10,
        "completed": 9,
        "ok": 8,
        "errors": 1,
        "skipped": 1,
        "achieved_rate": 4.5,
        "latency_ms": {"p50": 1.0},
        "error_kinds": {"HTTP 404": 1},
    }
    two = {**one, "achieved_rate": 5.0, "errors": 0}
    load_ = fr.combined_load([one, two])
    assert load_["completed"] == 18 and load_["errors"] == 1 and load_["achieved_rate"] == 9.5
    assert len(load_["latency_ms"]) == 2
    assert fr.combined_load([one, None]) is None


def test_reachable_bytes_counts_each_object_once_and_stays_out_of_code() -> None:
    sys.path.insert(0, str(ROOT / "bench" / "workloads"))
    import hunter_stress as hs

    shared = "x" * 1000
    inner = [shared, shared]
    total, count = hs.reachable_bytes([{"a": inner, "b": inner}])
    assert count == 1 + 2 + 1 + 1  # dict, its two keys, the list, the string once
    assert total >= sys.getsizeof(shared) + sys.getsizeof(inner)
    # A function, a module and a bound method are not entered (their globals are not ours).
    big = [bytes(10_000)]
    holder = types.SimpleNamespace(fn=lambda: big, mod=sys.modules[__name__], meth=big.append)
    total2, _ = hs.reachable_bytes([holder.__dict__])
    assert total2 < 10_000
    gc.collect()


def test_hunter_memory_pairs_rss_by_time_and_measures_second_half_growth() -> None:
    hm = load("hunter_memory")
    hunt = [
        {"t": 30.0, "rss_bytes": 110},
        {"t": 60.1, "rss_bytes": 130},
        {"t": 90.0, "rss_bytes": 150},
    ]
    control = [{"t": 30.2, "rss_bytes": 100}, {"t": 59.9, "rss_bytes": 100}]
    assert hm.paired_rss(hunt, control) == [
        {"t": 30.0, "rss_hunt_minus_control_bytes": 10.0},
        {"t": 60.1, "rss_hunt_minus_control_bytes": 30.0},
    ]
    assert hm.growth(hunt, "rss_bytes") == 20.0
    assert hm.growth(hunt[:1], "rss_bytes") is None
    bounds = hm.configured_bounds()
    assert bounds["analyzer"]["max_paths"] >= 1 and bounds["hunt_max_duty"] <= 1


def _run(script: str, args: list[str], out: Path) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "LEAKTRACE_", "PYROSCOPE_"))
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", *args, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"{script}: {proc.stderr[-3000:]}"
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    # Side by side: both mostly wait on their request schedules.
    tmp = tmp_path_factory.mktemp("scale")
    jobs = {
        "footprint_rates": ["--rates", "20", "--warmup", "3", "--measure", "20"],
        "hunter_memory": ["--rps", "150"],
    }
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {
            n: pool.submit(_run, f"{n}.py", args, tmp / f"{n}.json") for n, args in jobs.items()
        }
        return {n: f.result() for n, f in futures.items()}


@pytest.mark.subprocess
def test_footprint_rates_quick_run_counts_bytes_and_heap_labels(
    quick_runs: dict[str, dict[str, Any]],
) -> None:
    doc = quick_runs["footprint_rates"]
    [run] = doc["runs"]
    assert doc["benchmark"] == "footprint_rates" and doc["quick"] is True
    load_ = run["load"]
    assert run["reached"] == (
        load_["achieved_rate"] >= 19 and load_["errors"] <= 0.01 * load_["completed"]
    )
    assert run["bytes_per_minute"]["traces"] > 0 and run["bytes_per_minute"]["logs"] > 0
    hp = run["heap_profiles"]
    assert hp["profiles"] >= 1, "one heap profile is pushed every 15 s"
    assert hp["series_count"] == 1 and "trace_id" in hp["sample_label_keys"]
    assert hp["distinct_trace_ids"]["max"] >= 1


@pytest.mark.subprocess
def test_hunter_memory_quick_run_measures_a_hunter_inside_its_bounds(
    quick_runs: dict[str, dict[str, Any]],
) -> None:
    doc = quick_runs["hunter_memory"]
    bounds = doc["config"]["bounds"]
    rows = [r for r in doc["hunt_samples"] if "reachable_bytes" in r]
    assert rows, "the hunt child measured its hunter"
    assert all("reachable_bytes" not in r for r in doc["control_samples"]), (
        "the control runs no hunter"
    )
    for r in rows:
        assert r["reachable_bytes"] > 0
        assert r["paths"] <= bounds["analyzer"]["max_paths"]
        assert r["light_paths"] <= bounds["analyzer"]["max_light_paths"]
        assert r["census_candidates"] <= bounds["retention"]["max_candidates"]
    assert doc["rss_paired"] and doc["summary"]["reachable_bytes_max"] == max(
        r["reachable_bytes"] for r in rows
    )
