"""The arithmetic and plumbing of bench/_common.py: schedules, medians, ratios, goals, results."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name.lstrip('_')}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


C = load("_common")


def test_interleaved_runs_every_mode_once_per_run_and_rotates_the_first() -> None:
    # GIVEN three modes and four runs
    order = C.interleaved(("bare", "alt", "lt"), 4)
    # THEN each run holds each mode exactly once, runs are contiguous, and the first mode rotates
    assert len(order) == 12
    for run in range(4):
        chunk = order[run * 3 : run * 3 + 3]
        assert {i for i, _ in chunk} == {run}
        assert sorted(m for _, m in chunk) == ["alt", "bare", "lt"]
    assert [order[i * 3][1] for i in range(4)] == ["bare", "alt", "lt", "bare"]


def test_interleaved_without_rotation_keeps_the_given_order() -> None:
    assert C.interleaved(("a", "b"), 2, rotate=False) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]


@pytest.mark.parametrize("modes,runs", [((), 3), (("a",), 0), (("a", "a"), 2)])
def test_interleaved_rejects_bad_input(modes: tuple[str, ...], runs: int) -> None:
    with pytest.raises(ValueError):
        C.interleaved(modes, runs)


def test_median_skips_missing_values() -> None:
    assert C.median([3.0, None, 1.0, 2.0]) == 2.0
    assert C.median([4.0, 1.0, None, 2.0, 3.0]) == 2.5
    assert C.median([None, float("nan")]) is None
    assert C.median([]) is None


def test_paired_ratios_pair_within_a_run_not_across() -> None:
    # GIVEN a machine that got 2x slower in run 1: both modes slowed down together
    per_run = {"lt": [1.1, 2.2, None], "bare": [1.0, 2.0, 1.0]}
    ratios = C.paired_ratios(per_run, "lt", "bare")
    # THEN every present pair gives 1.1, the run with a failed measurement gives None
    assert ratios[0] == pytest.approx(1.1)
    assert ratios[1] == pytest.approx(1.1)
    assert ratios[2] is None
    assert C.median(ratios) == pytest.approx(1.1)
    assert C.paired_ratios({"a": [1.0], "b": [0.0]}, "a", "b") == [None]


def test_goal_judges_both_directions_and_missing_values() -> None:
    g = C.Goal("x", "time", 1.25)
    assert g.judge(1.2)["status"] == "pass"
    assert g.judge(1.25)["passed"] is True
    assert g.judge(1.3)["status"] == "fail"
    assert g.judge(None)["status"] == "unmeasured"
    assert C.Goal("y", "rate", 10.0, ">=").judge(9.0)["status"] == "fail"
    with pytest.raises(ValueError):
        C.Goal("z", "m", 1.0, "<").judge(0.5)


def test_parse_result_takes_the_last_marker_line_and_ignores_noise() -> None:
    out = 'hello\nBENCH_RESULT {"seconds": 1}\nwarning\nBENCH_RESULT {"seconds": 2.5}\n'
    assert C.parse_result(out) == {"seconds": 2.5}
    with pytest.raises(ValueError):
        C.parse_result("no result here\n")
    with pytest.raises(ValueError):
        C.parse_result("BENCH_RESULT [1, 2]\n")


@pytest.mark.subprocess
def test_run_child_returns_the_result_and_reports_failures(tmp_path: Path) -> None:
    ok = C.run_child(
        [sys.executable, "-c", "print('BENCH_RESULT {\"v\": 7}')"], env=C.child_env(), timeout_s=30
    )
    assert ok["v"] == 7
    with pytest.raises(C.ChildFailed, match="exited 3"):
        C.run_child(
            [sys.executable, "-c", "import sys; sys.exit(3)"], env=C.child_env(), timeout_s=30
        )
    with pytest.raises(C.ChildFailed, match="no BENCH_RESULT"):
        C.run_child([sys.executable, "-c", "print('nothing')"], env=C.child_env(), timeout_s=30)


def test_child_env_drops_the_callers_telemetry_settings_and_adds_the_repo_root() -> None:
    env = C.child_env(
        {
            "PATH": "/bin",
            "OTEL_SDK_DISABLED": "true",
            "LEAKTRACE_HEAP_ENABLED": "false",
            "PYROSCOPE_SERVER_ADDRESS": "http://x",
        },
        LEAKTRACE_METRICS_PORT="0",
    )
    assert "OTEL_SDK_DISABLED" not in env and "LEAKTRACE_HEAP_ENABLED" not in env
    assert "PYROSCOPE_SERVER_ADDRESS" not in env
    assert env["LEAKTRACE_METRICS_PORT"] == "0"
    assert env["PYTHONPATH"].split(":")[0] == str(C.ROOT)


def test_dead_port_refuses_connections() -> None:
    port = C.dead_port()
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.subprocess  # platform.processor() runs uname
def test_result_doc_carries_machine_info_and_round_trips_through_json(tmp_path: Path) -> None:
    doc = C.result_doc(
        "overhead", argv=["--runs", "5"], quick=False, goals=[], table={"headers": [], "rows": []}
    )
    assert doc["benchmark"] == "overhead" and doc["command"].endswith("--runs 5")
    m = doc["machine"]
    assert m["cpus_logical"] >= 1 and m["python"].count(".") == 2
    assert "opentelemetry-sdk" in m["packages"]
    path = C.write_json(tmp_path / "sub" / "r.json", doc)
    assert json.loads(path.read_text())["date"] == doc["date"]


def test_table_formats_numbers_and_missing_values() -> None:
    text = C.table(["a", "b"], [["x", 1.23456], ["yy", None], ["z", 12345.6]])
    lines = text.splitlines()
    assert lines[0].startswith("| a ") and set(lines[1]) <= {"|", "-"}
    assert "1.235" in lines[2] and "| -" in lines[3] and "12,346" in lines[4]
    assert len({len(line) for line in lines}) == 1  # columns line up
