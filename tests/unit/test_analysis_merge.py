"""Merging the hunt reports of a process tree (analysis/merge.py): pure functions, no processes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from leaktrace.analysis.merge import interleave, merge_reports, primary_pid, suspect_key

LEAK_FRAMES = [
    {"function": "place_order", "file": "/srv/app.py", "line": 12},
    {"function": "orders", "file": "/srv/app.py", "line": 20},
]


def suspect(
    growth: float,
    traces: list[str],
    *,
    frames: list[dict[str, Any]] | None = None,
    holder: str | None = "app.ORDERS (list, +40 entries in 20 s)",
    p: float = 0.001,
) -> dict[str, Any]:
    frames = frames if frames is not None else LEAK_FRAMES
    return {
        "frames": frames,
        "growth_bytes_per_s": growth,
        "retained_bytes": int(growth * 20),
        "objects": 40,
        "retained_by": holder,
        "trace_ids": traces,
        "call_path": f"app.{frames[0]['function']}:{frames[0]['line']}",
        "p_value": p,
        "grouped_by": frames[:2],
        "holder": {"name": holder} if holder else None,
        "retained_series": {"t": [1.0], "v": [growth]},
    }


def report(
    suspects: list[dict[str, Any]],
    *,
    pid: int,
    duration: float = 30.0,
    rss: float = 1000.0,
    snapshots: int = 30,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "verdict": "leak" if suspects else "no-leak",
        "duration_s": duration,
        "rss_growth_bytes_per_s": rss,
        "suspects": suspects,
        "snapshots": snapshots,
        "notes": notes or [],
        "timeline": {
            "heap_live_bytes": {"t": [float(pid)], "v": [1.0]},
            "rss_bytes": {"t": [], "v": []},
        },
        "process": {"pid": pid, "service_instance_id": f"id-{pid}"},
    }


def test_one_process_is_its_own_report_plus_the_breakdown() -> None:
    alone = report([suspect(2e5, ["a" * 32])], pid=7)
    merged = merge_reports({7: copy.deepcopy(alone)})
    expected = {k: v for k, v in alone.items() if k != "process"}
    assert {k: v for k, v in merged.items() if k != "processes"} == expected
    assert merged["processes"] == [
        {
            "pid": 7,
            "service_instance_id": "id-7",
            "verdict": "leak",
            "duration_s": 30.0,
            "rss_growth_bytes_per_s": 1000.0,
            "snapshots": 30,
            "suspects": 1,
            "top_call_path": "app.place_order:12",
        }
    ]


def test_the_same_leak_in_two_workers_is_one_suspect_with_per_worker_figures() -> None:
    master = report([], pid=100, rss=10.0)
    w1 = report([suspect(150_000.0, ["t1", "t2", "t3"])], pid=101)
    w2 = report([suspect(250_000.0, ["t4", "t5"], p=0.0001)], pid=102)
    merged = merge_reports({100: master, 101: w1, 102: w2})

    assert merged["verdict"] == "leak"
    [leak] = merged["suspects"]
    assert leak["growth_bytes_per_s"] == 400_000.0
    assert leak["retained_bytes"] == 150_000 * 20 + 250_000 * 20 and leak["objects"] == 80
    assert (
        leak["frames"] == LEAK_FRAMES
        and leak["retained_by"] == "app.ORDERS (list, +40 entries in 20 s)"
    )
    assert leak["p_value"] == 0.0001
    # most likely first within each worker, the faster worker leading
    assert leak["trace_ids"] == ["t4", "t1", "t5", "t2", "t3"]
    assert [(p["pid"], p["growth_bytes_per_s"], p["trace_ids"]) for p in leak["processes"]] == [
        (102, 250_000.0, ["t4", "t5"]),
        (101, 150_000.0, ["t1", "t2", "t3"]),
    ]
    # the schema's fields are all there, and a breakdown per process
    assert set(merged) >= {
        "verdict",
        "duration_s",
        "rss_growth_bytes_per_s",
        "suspects",
        "snapshots",
        "notes",
        "timeline",
        "processes",
    }
    assert merged["rss_growth_bytes_per_s"] == 2010.0 and merged["snapshots"] == 90
    assert [p["pid"] for p in merged["processes"]] == [100, 101, 102]
    assert [p["verdict"] for p in merged["processes"]] == ["no-leak", "leak", "leak"]
    assert merged["timeline"] == w2["timeline"]  # the fastest leak's process


def test_an_idle_supervisors_empty_report_never_wins() -> None:
    supervisor = report([], pid=1, duration=40.0, snapshots=40)
    worker = report([suspect(120_000.0, ["x"])], pid=2, duration=35.0)
    for order in ({1: supervisor, 2: worker}, {2: worker, 1: supervisor}):
        merged = merge_reports(order)
        assert merged["verdict"] == "leak" and len(merged["suspects"]) == 1
        assert primary_pid(order) == 2


def test_different_leaks_stay_apart_and_are_ordered_by_growth() -> None:
    other = [{"function": "cache_session", "file": "/srv/app.py", "line": 40}]
    merged = merge_reports(
        {
            1: report([suspect(1e4, ["s1"], frames=other, holder=None)], pid=1),
            2: report(
                [
                    suspect(5e4, ["o1"]),
                    suspect(2e4, ["s2"], frames=other, holder="app.SESSIONS (dict)"),
                ],
                pid=2,
            ),
        }
    )
    assert [s["frames"][0]["function"] for s in merged["suspects"]] == [
        "place_order",
        "cache_session",
    ]
    sessions = merged["suspects"][1]
    # a holder named by any worker is kept, even if the fastest did not name one
    assert (
        sessions["growth_bytes_per_s"] == 3e4 and sessions["retained_by"] == "app.SESSIONS (dict)"
    )
    assert sessions["trace_ids"] == ["s2", "s1"]


def test_no_leak_anywhere_is_no_leak_and_notes_are_kept_once() -> None:
    note = "heap samples from the tracemalloc fallback: no trace ids, higher overhead"
    merged = merge_reports({5: report([], pid=5, notes=[note]), 6: report([], pid=6, notes=[note])})
    assert merged["verdict"] == "no-leak" and merged["suspects"] == []
    assert merged["notes"][0] == note and merged["notes"].count(note) == 1
    assert "merged from 2 processes" in merged["notes"][-1]


def test_nothing_to_merge_is_an_error() -> None:
    with pytest.raises(ValueError, match="no process"):
        merge_reports({})


def test_suspect_identity_is_the_grouping_frames_else_the_site() -> None:
    a, b = suspect(1.0, []), suspect(2.0, [])
    assert suspect_key(a) == suspect_key(b)
    b["grouped_by"] = [{"function": "elsewhere", "file": "/srv/b.py", "line": 1}]
    assert suspect_key(a) != suspect_key(b)
    bare = {"frames": LEAK_FRAMES}
    assert suspect_key(bare) == (("place_order", "/srv/app.py", 12),)


def test_interleave_is_bounded_and_skips_repeats() -> None:
    assert interleave([["a", "b"], ["a", "c", "d"]]) == ["a", "b", "c", "d"]
    assert interleave(
        [[str(i) for i in range(300)], [str(i) for i in range(300, 600)]], limit=5
    ) == ["0", "300", "1", "301", "2"]
    assert interleave([]) == []


def test_bytes_per_endpoint_lines_and_telemetry_memory_add_up_over_workers() -> None:
    def with_extras(
        s: dict[str, Any], retained: int, requests: int, lines: list[int]
    ) -> dict[str, Any]:
        s["endpoints"] = [
            {
                "name": "POST /orders",
                "retained_bytes": retained,
                "requests": requests,
                "bytes_per_request": retained / requests,
            }
        ]
        s["lines"] = lines
        return s

    w1 = report([with_extras(suspect(1e5, ["a"]), 100_000, 10, [12])], pid=1)
    w2 = report([with_extras(suspect(2e5, ["b"]), 300_000, 20, [12, 13])], pid=2)
    w1["telemetry_bytes"], w2["telemetry_bytes"] = 1000, 2000
    merged = merge_reports({1: w1, 2: w2})
    [leak] = merged["suspects"]
    assert leak["endpoints"] == [
        {
            "name": "POST /orders",
            "retained_bytes": 400_000,
            "requests": 30,
            "bytes_per_request": 13333.3,
        }
    ]
    assert leak["lines"] == [12, 13] and merged["telemetry_bytes"] == 3000


def test_the_printed_report_says_which_processes_leak() -> None:
    import io

    from leaktrace.analysis.model import Report
    from leaktrace.report.text import render_text

    merged = merge_reports(
        {
            100: report([], pid=100),
            101: report([suspect(1024.0, ["a"])], pid=101),
            102: report([suspect(2048.0, ["b"])], pid=102),
        }
    )
    out = io.StringIO()
    render_text(Report.from_json_dict(merged), out)
    text = out.getvalue()
    assert "3 processes hunted (pids 100, 101, 102), 2 leaking" in text
    assert "in pid 102 +2.0 KiB/s, pid 101 +1.0 KiB/s" in text
