"""Report JSON (the `leaktrace hunt --json` contract) and the human rendering."""

from __future__ import annotations

import io
import json

from leaktrace.analysis.model import Holder, Report, Suspect, TimeSeries
from leaktrace.profiling.samples import Frame
from leaktrace.report.text import render_progress, render_text

FRAMES = (Frame("make_session", "/srv/app.py", 15), Frame("handle", "/srv/app.py", 21))
HOLDER = Holder(
    "services.leaky.app.SESSION_CACHE", "dict", 3750, 25.0, 2150.0, 0.98, confirmed=True
)
TRACES = tuple(format(i, "032x") for i in range(1, 8))


def leak_report() -> Report:
    s = Suspect(FRAMES, 102_400.5, 2_560_000, 3750, 1e-9, TRACES, HOLDER, key=FRAMES)
    return Report(duration_s=25.04, rss_growth_bytes_per_s=150_000.0, suspects=(s,), snapshots=50)


CONTRACT_KEYS = ("verdict", "duration_s", "rss_growth_bytes_per_s", "suspects")
SUSPECT_KEYS = (
    "frames",
    "growth_bytes_per_s",
    "retained_bytes",
    "objects",
    "retained_by",
    "trace_ids",
)


def test_json_document_matches_the_hunt_contract() -> None:
    # The original contract is unchanged; later fields are only added (see the next test).
    full = json.loads(json.dumps(leak_report().to_json_dict()))
    doc = {k: full[k] for k in CONTRACT_KEYS}
    doc["suspects"] = [{k: s[k] for k in SUSPECT_KEYS} for s in full["suspects"]]
    assert doc == {
        "verdict": "leak",
        "duration_s": 25.04,
        "rss_growth_bytes_per_s": 150000.0,
        "suspects": [
            {
                "frames": [
                    {"function": "make_session", "file": "/srv/app.py", "line": 15},
                    {"function": "handle", "file": "/srv/app.py", "line": 21},
                ],
                "growth_bytes_per_s": 102400.5,
                "retained_bytes": 2560000,
                "objects": 3750,
                "retained_by": "services.leaky.app.SESSION_CACHE (dict, +3,750 entries in 25 s)",
                "trace_ids": list(TRACES),
            }
        ],
    }


def test_no_leak_report_has_empty_suspects() -> None:
    doc = Report(duration_s=10.0, rss_growth_bytes_per_s=-3.0).to_json_dict()
    assert doc["verdict"] == "no-leak" and doc["suspects"] == []


def test_suspect_without_holder_has_null_retained_by() -> None:
    s = Suspect(FRAMES, 1.0, 1, 1, 0.5)
    assert s.to_json_dict()["retained_by"] is None
    assert s.confidence == 0.5
    assert s.call_path == "app.make_session:15"


def test_render_names_site_holder_and_requests() -> None:
    out = io.StringIO()
    render_text(leak_report(), out, verbose=True)
    text = out.getvalue()
    assert "LEAK after 25.0 s" in text
    assert "#1 app.make_session:15  growing +100.0 KiB/s" in text
    assert "at make_session (/srv/app.py:15)" in text
    assert "retained by: services.leaky.app.SESSION_CACHE (dict, +3,750 entries in 25 s)" in text
    assert "entry allocated here" in text
    assert f"{TRACES[0]}" in text and "(+2 more)" in text


def test_the_parent_prints_what_the_child_wrote() -> None:
    out = io.StringIO()
    render_text(Report.from_json_dict(json.loads(json.dumps(leak_report().to_json_dict()))), out)
    text = out.getvalue()
    assert text.startswith("leaktrace hunt: LEAK after 25.0 s (RSS ")
    assert "#1 app.make_session:15  growing +100.0 KiB/s, 2.4 MiB live in 3,750 objects\n" in text
    assert "retained by: services.leaky.app.SESSION_CACHE (dict, +3,750 entries in 25 s)" in text
    assert "(+2 more)" in text
    # The terminal form leaves the statistics to --json and the verbose form.
    assert "p=" not in text and "R^2" not in text and "heap snapshots" not in text


def test_the_parent_names_the_holder_as_the_child_described_it() -> None:
    # GIVEN a holder whose span sits just under a half second: the document rounds it to 25.5
    holder = Holder("app.CACHE", "dict", 10, 25.4996, 100.0, 0.9)
    child = Report(26.0, 1.0, (Suspect(FRAMES, 1.0, 1, 1, 0.01, (), holder),))
    assert child.suspects[0].retained_by == "app.CACHE (dict, +10 entries in 25 s)"
    back = Report.from_json_dict(json.loads(json.dumps(child.to_json_dict())))
    # THEN the parent prints the child's words, not a description of the rounded span (26 s)
    assert back.suspects[0].holder is not None and back.suspects[0].holder.span_s == 25.5
    assert back.suspects[0].retained_by == "app.CACHE (dict, +10 entries in 25 s)"


def test_the_progress_line_names_the_fastest_suspect() -> None:
    assert render_progress(1.0, 20.0, None) == "\rleaktrace hunt:   1.0/20 s  starting   "
    leak = render_progress(12.5, 20.0, leak_report())
    assert leak == "\rleaktrace hunt:  12.5/20 s  LEAK at make_session:15 (100.0 KiB/s)   "
    quiet = render_progress(3.0, 20.0, Report(3.0, 0.0))
    assert quiet.endswith("no leak so far   ")


def test_render_no_leak() -> None:
    out = io.StringIO()
    render_text(
        Report(
            duration_s=3.0,
            rss_growth_bytes_per_s=0.0,
            notes=("the heap sampler dropped 5 samples",),
        ),
        out,
        verbose=True,
    )
    assert out.getvalue().startswith("leaktrace hunt: no leak found after 3.0 s")
    assert "note: the heap sampler dropped 5 samples" in out.getvalue()


def test_added_fields_carry_series_holder_and_grouping_and_round_trip() -> None:
    heap = TimeSeries.of([100.0, 101.0, 102.5], [1e6, 2e6, 3.5e6])
    entries = TimeSeries.of([100.0, 101.0, 102.0], [10, 20, 30])
    holder = Holder("app.CACHE", "dict", 20, 2.0, 1000.0, 0.99, confirmed=True, entries=entries)
    s = Suspect(
        FRAMES,
        5000.0,
        3_500_000,
        40,
        1e-6,
        TRACES,
        holder,
        key=FRAMES[:1],
        retained_series=TimeSeries.of([100.0, 102.5], [0.0, 3.5e6]),
    )
    report = Report(
        12.5,
        900.0,
        (s,),
        snapshots=13,
        notes=("a note",),
        heap_series=heap,
        rss_series=TimeSeries.of([100.0], [5e7]),
    )
    doc = json.loads(json.dumps(report.to_json_dict()))
    assert doc["snapshots"] == 13 and doc["notes"] == ["a note"]
    assert doc["timeline"]["heap_live_bytes"] == {
        "t": [100.0, 101.0, 102.5],
        "v": [1e6, 2e6, 3.5e6],
    }
    assert doc["timeline"]["rss_bytes"] == {"t": [100.0], "v": [5e7]}
    sj = doc["suspects"][0]
    assert sj["call_path"] == "app.make_session:15" and sj["p_value"] == 1e-6
    assert sj["grouped_by"] == [{"function": "make_session", "file": "/srv/app.py", "line": 15}]
    assert sj["retained_series"] == {"t": [100.0, 102.5], "v": [0.0, 3.5e6]}
    assert sj["holder"]["name"] == "app.CACHE" and sj["holder"]["entries_series"]["v"] == [
        10,
        20,
        30,
    ]
    # AND the model comes back whole from the document (what the parent process renders)
    back = Report.from_json_dict(doc)
    assert back.heap_series == heap and back.snapshots == 13 and back.notes == ("a note",)
    b = back.suspects[0]
    assert b.frames == FRAMES and b.key == FRAMES[:1] and b.trace_ids == TRACES
    assert b.holder is not None and b.holder.entries == entries and b.holder.confirmed
    assert b.retained_by == s.retained_by and b.retained_series == s.retained_series
    assert back.to_json_dict() == doc


def test_documents_from_before_the_added_fields_still_load() -> None:
    old = {
        "verdict": "leak",
        "duration_s": 3.0,
        "rss_growth_bytes_per_s": 1.0,
        "suspects": [
            {
                "frames": [{"function": "f", "file": "/a.py", "line": 3}],
                "growth_bytes_per_s": 2.0,
                "retained_bytes": 10,
                "objects": 1,
                "retained_by": "x.Y (dict, +3 entries in 2 s)",
                "trace_ids": [],
            }
        ],
    }
    back = Report.from_json_dict(old)
    assert back.suspects[0].retained_by == "x.Y (dict, +3 entries in 2 s)"
    assert back.heap_series == TimeSeries() and back.suspects[0].key == ()
