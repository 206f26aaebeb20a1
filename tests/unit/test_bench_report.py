"""bench/report.py: the README section is generated from result files and nothing else changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_bench_common import load

R = load("report")
HS = load("hunt_speed")
FP = load("footprint")


def overhead_doc(
    value: float, *, quick: bool = False, date: str = "2026-11-26T23:00:00+00:00"
) -> dict[str, Any]:
    return {
        "benchmark": "overhead",
        "date": date,
        "command": "python bench/overhead.py --runs 5",
        "quick": quick,
        "machine": {
            "cpus_logical": 2,
            "python": "3.11.7",
            "packages": {"leaktrace": "0.1.0"},
            "git_commit": "abc",
        },
        "config": {"runs": 5},
        "goals": [
            {
                "name": "allocation-heavy loop: leaktrace/bare time",
                "metric": "time leaktrace/bare",
                "op": "<=",
                "limit": 1.25,
                "value": value,
                "status": "pass" if value <= 1.25 else "fail",
                "round": "live",
            },
        ],
        "table": {
            "headers": ["round", "workload", "lt/bare"],
            "rows": [["live", "alloc_heavy", value]],
        },
    }


def write(dir_: Path, name: str, doc: dict[str, Any]) -> None:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / name).write_text(json.dumps(doc))


def test_render_shows_goals_tables_and_missing_benchmarks(tmp_path: Path) -> None:
    # GIVEN only an overhead result (and an unrelated file from another benchmark)
    write(tmp_path, "overhead.json", overhead_doc(1.31))
    write(tmp_path, "heap_overhead.json", {"benchmark": "heap_overhead", "ratio": 1.07})
    docs = R.load_results(tmp_path)
    # WHEN rendered
    text = R.render(docs)
    # THEN the failed goal is listed with its number, the table is there, the others say "not run"
    assert set(docs) == {"overhead"}
    assert "| allocation-heavy loop: leaktrace/bare time (live exporters) | 1.31" in text
    assert "FAIL" in text and "| live  | alloc_heavy | 1.31" in text
    assert "Not run yet: `python bench/hunt_speed.py" in text
    assert "Not run yet: `python bench/footprint.py" in text
    assert "Quick run" not in text


def test_newest_result_wins_and_quick_results_are_flagged(tmp_path: Path) -> None:
    write(tmp_path, "a.json", overhead_doc(1.1, date="2026-11-26T10:00:00+00:00"))
    write(tmp_path, "b.json", overhead_doc(1.2, quick=True, date="2026-11-26T12:00:00+00:00"))
    text = R.render(R.load_results(tmp_path))
    assert "1.2" in text and "| 1.1 " not in text
    assert "Quick run" in text


def test_splice_replaces_only_between_the_markers() -> None:
    readme = (
        "# T\n\nintro\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\nafter\n  trailing  \n"
    )
    out = R.splice(readme, "NEW\n")
    assert (
        out == "# T\n\nintro\n<!-- bench:begin -->\nNEW\n<!-- bench:end -->\nafter\n  trailing  \n"
    )
    # idempotent: splicing the same section again changes nothing
    assert R.splice(out, "NEW\n") == out


@pytest.mark.parametrize(
    "readme",
    [
        "no markers\n",
        "<!-- bench:end -->\n<!-- bench:begin -->\n",
        "<!-- bench:begin -->\n<!-- bench:end -->\n<!-- bench:begin -->\n<!-- bench:end -->\n",
    ],
)
def test_splice_refuses_missing_reversed_or_repeated_markers(readme: str) -> None:
    with pytest.raises(R.MarkersMissing):
        R.splice(readme, "x")


def test_main_rewrites_the_readme_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    write(results, "overhead.json", overhead_doc(1.05))
    readme = tmp_path / "README.md"
    before, after = "# leaktrace\n\nkeep me\n", "\n## Next\nkeep me too\n"
    readme.write_text(before + "<!-- bench:begin -->\nstale\n<!-- bench:end -->" + after)
    assert R.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith(before + "<!-- bench:begin -->\n") and text.endswith(
        "<!-- bench:end -->" + after
    )
    assert "stale" not in text and "1.05" in text and "PASS" in text


def test_main_without_markers_prints_and_leaves_the_readme_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    write(results, "overhead.json", overhead_doc(1.4))
    readme = tmp_path / "README.md"
    readme.write_text("# leaktrace\nno markers here\n")
    assert R.main(["--results", str(results), "--readme", str(readme)]) == 0
    captured = capsys.readouterr()
    assert readme.read_text() == "# leaktrace\nno markers here\n"
    assert "1.4" in captured.out and "README not updated" in captured.err


def test_hunt_median_counts_undetected_trials_as_slowest() -> None:
    assert HS.median_time([5.0, None, 7.0], 300) == 7.0
    assert HS.median_time([5.0, None, None], 300) is None
    assert HS.median_time([4.0, 6.0], 300) == 5.0
    assert HS.median_time([], 300) is None


def test_false_alarm_summary_rates() -> None:
    controls = {
        "steady": [
            {"reports": 100, "alarm_reports_before_leak": 0, "alarm_count": 0, "duration_s": 600}
        ],
        "sawtooth": [
            {"reports": 100, "alarm_reports_before_leak": 10, "alarm_count": 2, "duration_s": 600}
        ],
    }
    fa = HS.false_alarm_summary(controls)
    assert fa["false_alarm_report_fraction"] == pytest.approx(0.05)
    assert fa["false_alarms_per_hour"] == pytest.approx(2 / (1200 / 3600))


def test_own_memory_subtracts_the_bare_twin_and_ignores_warmup() -> None:
    # GIVEN both copies growing 1 MB/min together, and leaktrace 10 MB bigger after a 60 s warm-up
    samples = []
    for t in range(0, 301, 5):
        bare = 50e6 + t * 1e6 / 60
        extra = (t / 60) * 10e6 if t < 60 else 10e6
        samples.append({"t": float(t), "rss_bare": bare, "rss_leaktrace": bare + 20e6 + extra})
    mem = FP.own_memory(samples, 60.0)
    # THEN leaktrace's own memory is flat after warm-up though both processes grew
    assert mem["own_rss_growth_bytes"] == pytest.approx(0.0, abs=1.0)
    assert mem["own_rss_at_end_bytes"] == pytest.approx(30e6)
    # each end is the median of its 5 nearest samples (t=70 and t=290): 220 s of 1 MB/min
    assert mem["bare_rss_growth_bytes"] == pytest.approx(220 * 1e6 / 60)
    # AND a leaktrace-only drift of 20 KB/s shows up as growth and slope
    drifting = [dict(s, rss_leaktrace=s["rss_leaktrace"] + 20e3 * s["t"]) for s in samples]
    mem2 = FP.own_memory(drifting, 60.0)
    assert mem2["own_rss_growth_bytes"] == pytest.approx(20e3 * 220)
    assert mem2["own_rss_slope_bytes_per_min"] == pytest.approx(20e3 * 60, rel=0.01)


def test_profile_requests_are_split_by_sender() -> None:
    assert FP.classify_profile_request("/ingest", "pyroscope-rs/0.1") == "cpu_profiles"
    assert (
        FP.classify_profile_request("/push.v1.PusherService/Push", "Python-urllib/3.11")
        == "heap_profiles"
    )


def test_render_includes_the_ablation_table_and_the_judging_basis(tmp_path: Path) -> None:
    doc = overhead_doc(1.1)
    doc["config"]["judged_on"] = "cpu"
    doc["goals"][0]["basis"] = "cpu"
    doc["ablation_table"] = {
        "headers": ["workload", "mode", "process CPU s"],
        "rows": [["request_loop", "lt-no-profiling", 2.5]],
    }
    write(tmp_path, "overhead.json", doc)
    text = R.render(R.load_results(tmp_path))
    assert "(live exporters, cpu basis)" in text
    assert "Goals are judged on the cpu figures" in text
    # AND the default basis says which figure each goal was judged on
    doc["config"]["judged_on"] = "stated"
    write(tmp_path, "overhead.json", doc)
    assert "the service on throughput, the loops on process CPU" in R.render(
        R.load_results(tmp_path)
    )
    assert "What costs what" in text and "| request_loop | lt-no-profiling | 2.5" in text


def test_heap_sampler_figures_come_from_the_heap_bench_files(tmp_path: Path) -> None:
    # GIVEN the flat documents bench/heap_overhead.py and bench/heap_accuracy.py write
    write(
        tmp_path,
        "heap_overhead.json",
        {
            "benchmark": "heap_overhead",
            "iterations": 300000,
            "rounds": 9,
            "sample_bytes": 524288,
            "ratio_leaktrace_vs_off": 1.0694,
            "ratio_pyroscope_mem_vs_off": 1.2517,
        },
    )
    write(
        tmp_path,
        "heap_accuracy.json",
        {
            "benchmark": "heap_accuracy",
            "mb": 100.0,
            "trials": 20,
            "sample_bytes": 524288,
            "summary": {
                "total": {"mean_rel_error": 0.029, "stdev_rel_error": 0.05, "within_10pct": 0.8}
            },
        },
    )
    # WHEN the section is rendered
    text = R.render(R.load_results(tmp_path))
    # THEN the figures are the files' figures
    heap = text.split("### Heap sampler", 1)[1]
    assert "on/off 1.069" in heap and "1.252" in heap and "20 trials" in heap
    assert "| total" in heap and "0.8" in heap


def test_variant_runs_never_replace_the_default_figures(tmp_path: Path) -> None:
    # GIVEN the default overhead run, and a newer footprint-style variant of it (extra settings)
    write(tmp_path, "overhead.json", overhead_doc(1.10))
    variant = overhead_doc(1.40, date="2026-11-28T00:00:00+00:00")
    variant["config"]["extra_env"] = {"LEAKTRACE_CPU_SPAN_LABELS": "true"}
    write(tmp_path, "overhead_labels.json", variant)
    dead = overhead_doc(1.50, date="2026-11-29T00:00:00+00:00")
    dead["config"]["exporters"] = "dead"
    write(tmp_path, "overhead_dead.json", dead)
    # WHEN the README section is built
    docs = R.load_results(tmp_path)
    # THEN the default run's figure is the one shown, however new the variants are
    assert docs["overhead"]["goals"][0]["value"] == 1.10
    assert R.is_variant(variant) and R.is_variant(dead) and not R.is_variant(docs["overhead"])


def test_footprint_variant_settings_are_checked_and_recorded() -> None:
    # GIVEN a variant setting for the leaktrace copy
    a = FP.parse_args(["--duration", "300", "--env", "LEAKTRACE_CPU_SPAN_LABELS=true"])
    # THEN it is parsed into the environment the leaktrace copy gets
    assert a.extra_env == {"LEAKTRACE_CPU_SPAN_LABELS": "true"}
    # AND a malformed one, or a setting that is not leaktrace's, is refused with exit status 2
    for bad in ("LEAKTRACE_CPU_SPAN_LABELS", "PATH=/tmp"):
        with pytest.raises(SystemExit) as exc:
            FP.parse_args(["--env", bad])
        assert exc.value.code == 2
