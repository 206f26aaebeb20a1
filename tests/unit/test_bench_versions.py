"""bench/callgrind_alloc.py and bench/heap_overhead.py's per-version figures, and how report.py
renders them (issue 13). The arithmetic and rendering only: the benchmarks themselves need
valgrind and minutes, and belong in bench/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_bench_common import load

CG = load("callgrind_alloc")
HO = load("heap_overhead")
R = load("report")

CALLGRIND_OUT = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -c ...
part: 1

desc: I1 cache:
events: Ir
summary: 2181234567
fl= (1) ???
fn= (1) main
0 12
totals: 2181234567
"""


def test_instruction_total_is_read_from_the_summary_line() -> None:
    assert CG.parse_callgrind_total(CALLGRIND_OUT) == 2181234567
    assert CG.parse_callgrind_total("events: Ir\ntotals: 17\n") == 17
    with pytest.raises(ValueError):
        CG.parse_callgrind_total("events: Ir\n")


def test_loop_is_main_thread_at_n_minus_at_zero_and_start_up_is_every_thread_at_zero() -> None:
    # GIVEN ((main, all threads) at 0 iterations, (main, all) at N) per configuration
    counts = {
        "bare": ((40, 45), (2040, 2050)),
        "leaktrace": ((500, 620), (2600, 2800)),
        "ddtrace_memalloc": ((900, 1200), (3100, 3500)),
    }
    s = CG.summarize(counts)
    # THEN the loop subtracts start-up on the main thread, ratios are against bare's loop
    assert s["bare"]["loop_instructions"] == 2000 and s["bare"]["loop_vs_bare"] == 1.0
    assert s["leaktrace"]["loop_instructions"] == 2100 and s["leaktrace"][
        "loop_vs_bare"
    ] == pytest.approx(1.05)
    assert s["leaktrace"]["startup_instructions"] == 620
    assert s["leaktrace"]["startup_vs_bare"] == pytest.approx(620 / 45)
    assert CG.leaktrace_costs_least(s) == "pass"
    # AND a profiler cheaper than leaktrace fails the goal
    s["ddtrace_memalloc"]["loop_vs_bare"] = 1.01
    assert CG.leaktrace_costs_least(s) == "fail"
    assert CG.leaktrace_costs_least({"bare": s["bare"]}) == "not measured"


def test_every_configuration_runs_the_same_loop() -> None:
    programs = {c: CG.program(c) for c in CG.CONFIGS}
    assert all(p.endswith(CG.LOOP) for p in programs.values())
    assert "SAMPLE_BYTES" not in "".join(programs.values())
    assert (
        str(CG.SAMPLE_BYTES) in programs["leaktrace"]
        and str(CG.SAMPLE_BYTES) in programs["pyroscope_mem"]
    )
    assert CG.ENV["ddtrace_memalloc"]["DD_PROFILING_HEAP_SAMPLE_SIZE"] == str(CG.SAMPLE_BYTES)


def test_heap_overhead_ratios_are_within_one_interpreter() -> None:
    doc = HO.summarize(
        {"off": [1.0, 1.2, 1.1], "leaktrace": [1.15, 1.2, 1.16], "pyroscope_mem": [1.4, 1.3, 1.35]}
    )
    assert doc["ratio_leaktrace_vs_off"] == pytest.approx(1.16 / 1.1)
    assert doc["ratio_pyroscope_mem_vs_off"] == pytest.approx(1.35 / 1.1)
    assert doc["goal_status"] == "pass"
    assert HO.summarize({"off": [1.0], "leaktrace": [1.2]})["goal_status"] == "fail"


def test_report_renders_versions_side_by_side(tmp_path: Path) -> None:
    heap = {
        "benchmark": "heap_overhead",
        "iterations": 300000,
        "rounds": 9,
        "sample_bytes": 524288,
        "command": "python bench/heap_overhead.py",
        "ratio_leaktrace_vs_off": 1.08,
        "ratio_pyroscope_mem_vs_off": 1.3,
        "versions": {
            "3.11.7": {
                "ratio_leaktrace_vs_off": 1.02,
                "ratio_pyroscope_mem_vs_off": 1.25,
                "goal_status": "pass",
            },
            "3.13.0": {
                "ratio_leaktrace_vs_off": 1.12,
                "ratio_pyroscope_mem_vs_off": 1.3,
                "goal_status": "fail",
            },
        },
    }
    cg = {
        "benchmark": "callgrind_alloc",
        "date": "2026-12-01T12:00:00+00:00",
        "iterations": 300000,
        "sample_bytes": 524288,
        "command": "python bench/callgrind_alloc.py",
        "versions": {
            "3.12.1": {
                "configs": CG.summarize(
                    {"bare": ((40, 45), (2040, 2050)), "leaktrace": ((500, 620), (2600, 2800))}
                ),
                "skipped": {"ddtrace_memalloc": "ddtrace is not installed"},
                "goal_status": "not measured",
            }
        },
    }
    (tmp_path / "heap_overhead.json").write_text(json.dumps(heap))
    (tmp_path / "callgrind_alloc.json").write_text(json.dumps(cg))
    text = R.render(R.load_results(tmp_path)).split("### Heap sampler", 1)[1]
    assert "| 3.11.7  | 1.02" in text and "| 3.13.0  | 1.12" in text and "FAIL" in text
    assert "| 3.12.1  | leaktrace heap sampler | 0.000 G" in text
    assert "| 1.05 " in text and "skipped" in text and "ddtrace is not installed" in text
    assert "3.12.1 NOT MEASURED" in text
