"""The refactor measurement's arithmetic and table (services/measure.py, used by bench/refactor.py
and `leaktrace demo`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.loadgen.driver import LoadReport

BENCH = Path(__file__).resolve().parents[2] / "bench" / "refactor.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    import services.measure

    return services.measure


@pytest.fixture(scope="module")
def bench_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_refactor", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_refactor"] = module
    spec.loader.exec_module(module)
    return module


def load_report(sent: int) -> LoadReport:
    return LoadReport(
        target="http://x",
        planned=sent,
        sent=sent,
        completed=sent,
        ok=sent,
        errors=0,
        error_kinds={},
        skipped=0,
        unfinished=0,
        elapsed_s=1.0,
        achieved_rate=float(sent),
        latency_ms={"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
        by_kind={},
        users_created=1,
    )


def test_compare_computes_growth_and_per_request_figures(bench: ModuleType) -> None:
    before = bench.Sample(
        at=0.0,
        rss_bytes=100,
        open_fds=10,
        threads=3,
        metrics={
            "service_malloc_in_use_bytes": 1000.0,
            "service_allocated_blocks": 500.0,
            "service_requests_total": 20.0,
        },
    )
    after = bench.Sample(
        at=5.0,
        rss_bytes=4100,
        open_fds=30,
        threads=8,
        metrics={
            "service_malloc_in_use_bytes": 3000.0,
            "service_allocated_blocks": 900.0,
            "service_requests_total": 120.0,
        },
    )
    out = bench.compare(before, after, load_report(100))
    assert out["rss_growth_bytes"] == 4000
    assert out["heap_growth_bytes"] == 2000 and out["heap_method"].startswith("glibc")
    assert (out["open_fds_growth"], out["threads_growth"], out["requests"]) == (20, 5, 100)
    assert out["allocs_per_request"] == 4.0
    assert out["heap_growth_per_request_bytes"] == 20.0


def test_compare_prefers_the_heap_sampler_and_says_so(bench: ModuleType) -> None:
    metrics = {
        "leaktrace_heap_live_bytes": 10.0,
        "service_malloc_in_use_bytes": 1.0,
        "service_requests_total": 0.0,
    }
    before = bench.Sample(at=0.0, rss_bytes=0, open_fds=0, threads=0, metrics=metrics)
    after = bench.Sample(
        at=1.0,
        rss_bytes=0,
        open_fds=0,
        threads=0,
        metrics={**metrics, "leaktrace_heap_live_bytes": 50.0},
    )
    out = bench.compare(before, after, load_report(0))
    assert out["heap_growth_bytes"] == 40 and "leaktrace" in out["heap_method"]
    # no requests served: per-request figures are unknown, not zero
    assert out["allocs_per_request"] is None and out["heap_growth_per_request_bytes"] is None


def test_reduction(bench: ModuleType) -> None:
    assert bench.reduction(1000, 50) == 0.95
    assert bench.reduction(1000, -10) == 1.01
    assert bench.reduction(1000, 2000) == -1.0
    assert bench.reduction(0, 10) is None  # nothing to reduce: not a made-up figure


def test_table_shows_both_services_and_the_reduction(bench: ModuleType) -> None:
    s0 = bench.Sample(
        at=0.0, rss_bytes=0, open_fds=5, threads=2, metrics={"service_requests_total": 0.0}
    )
    leaky = bench.compare(
        s0,
        bench.Sample(
            at=1.0,
            rss_bytes=64 * 1024 * 1024,
            open_fds=50,
            threads=40,
            metrics={"service_requests_total": 10.0},
        ),
        load_report(10),
    )
    fixed = bench.compare(
        s0,
        bench.Sample(
            at=1.0,
            rss_bytes=1024 * 1024,
            open_fds=6,
            threads=2,
            metrics={"service_requests_total": 10.0},
        ),
        load_report(10),
    )
    table = bench.render_table(
        {
            "leaky": leaky,
            "fixed": fixed,
            "reduction": bench.reduction(leaky["rss_growth_bytes"], fixed["rss_growth_bytes"]),
        }
    )
    assert "+64.0 MiB" in table and "+1.0 MiB" in table
    assert "5 -> 50" in table and "reduction" in table and "0.984" in table


def test_bad_arguments_exit_2(bench_cli: ModuleType) -> None:
    for argv in (["--duration", "0"], ["--rate", "x"], ["--churn", "-1"]):
        with pytest.raises(SystemExit) as exc:
            bench_cli.main(argv)
        assert exc.value.code == 2
