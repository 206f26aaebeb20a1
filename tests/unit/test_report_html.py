"""The HTML renderer over the hunt report model (what the page contains; the browser test in
tests/integration/test_report_browser.py checks how it renders)."""

from __future__ import annotations

import json
import re
import sys
import urllib.parse

import pytest
from leaktrace.analysis.model import Holder, Report, Suspect, TimeSeries
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from leaktrace.report import (
    Comparison,
    HuntRun,
    MemoryLine,
    ReportUnavailable,
    render_html,
    require_plotly,
)
from leaktrace.report.grafana import BadGrafanaURL, GrafanaLinks

LEAK = Frame("make_session", "/srv/app.py", 14)
HANDLE = Frame("handle", "/srv/app.py", 20)
MAIN = Frame("main", "/srv/app.py", 30)
ODD = Frame("</script><b>x", "/srv/odd.py", 1)  # a hostile frame name must stay text
T0 = 1_700_000_000.0
TRACE = "0af7651916cd43dd8448eb211c80319c"


def report() -> Report:
    entries = TimeSeries.of([T0 + i for i in range(10)], [10 * i for i in range(10)])
    holder = Holder(
        "app.SESSION_CACHE", "dict", 90, 9.0, 1024.0, 0.99, confirmed=True, entries=entries
    )
    s = Suspect(
        (LEAK, HANDLE, MAIN),
        10240.0,
        92160,
        90,
        1e-6,
        (TRACE,),
        holder,
        key=(LEAK, HANDLE),
        retained_series=TimeSeries.of(
            [T0 + i for i in range(10)], [1024.0 * 10 * i for i in range(10)]
        ),
    )
    return Report(
        9.0,
        20480.0,
        (s,),
        snapshots=10,
        notes=("a degraded mode",),
        heap_series=TimeSeries.of([T0, T0 + 9], [5e6, 6e6]),
        rss_series=TimeSeries.of([T0, T0 + 9], [4e7, 4.2e7]),
    )


def profile() -> bytes:
    snap = HeapSnapshot(
        T0 + 9,
        T0,
        (
            HeapSample(
                (LEAK, HANDLE, MAIN), 0, 0, 90.0, 92160.0, trace_id=int(TRACE, 16), span_id=5
            ),
            HeapSample((ODD, MAIN), 0, 0, 1.0, 5000.0),
        ),
        sample_interval_bytes=16384,
    )
    return snapshot_to_pprof(snap)


def figures(page: str) -> dict:  # type: ignore[type-arg]
    raw = re.search(
        r'<script type="application/json" id="leaktrace-figures">(.*?)</script>', page, re.DOTALL
    )
    assert raw is not None
    return json.loads(raw.group(1).replace("<\\/", "</"))


def test_page_is_self_contained_and_has_every_part() -> None:
    doc = report().to_json_dict()
    page = render_html(
        [HuntRun.from_handoff("app.py", doc, profile(), command="python app.py")], title="hunt"
    )
    # One file: plotly.js inlined, nothing referenced from outside.
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself is in the page
    assert len(page.encode()) < 8_000_000
    assert "default-src 'none'" in page  # the browser refuses any fetch a chart might attempt
    figs = figures(page)
    assert set(figs) == {"run0-memory", "run0-growth", "run0-flame"}
    memory = {t["name"]: t for t in figs["run0-memory"]["data"]}
    assert set(memory) == {"RSS", "sampled live heap"} and memory["RSS"]["x"] == [0.0, 9.0]
    growth = figs["run0-growth"]["data"]
    assert [t["yaxis"] for t in growth] == ["y", "y2"]  # bytes beside entries, on two axes
    assert growth[1]["y"] == [10 * i for i in range(10)]
    icicle = figs["run0-flame"]["data"][0]
    assert icicle["type"] == "icicle" and icicle["branchvalues"] == "total"
    site = icicle["labels"].index("make_session:14")
    assert icicle["customdata"][site] == 1 and icicle["marker"]["colors"][site] == "#d62728"
    # The table names the call path, the holder, the growth and the trace id.
    assert "app.make_session:14" in page and "app.SESSION_CACHE" in page and "+10.0 KiB/s" in page
    assert TRACE in page and "a degraded mode" in page
    assert f'data-focus="{icicle["ids"][site]}"' in page  # "show in flame graph" focuses the site
    # No endpoint label on these samples: said, not guessed.
    assert "not known (no endpoint label" in page


def test_hostile_names_stay_text() -> None:
    page = render_html([HuntRun.from_handoff("x", report().to_json_dict(), profile())])
    assert "</script><b>x" not in page
    assert "&lt;/script&gt;&lt;b&gt;x" in page or "<\\/script><b>x" in page
    assert "<\\/script><b>x" in page.split('id="leaktrace-figures">', 1)[1]


def test_trace_ids_link_to_grafana_explore_on_tempo() -> None:
    grafana = GrafanaLinks.parse("http://127.0.0.1:3000/", tempo_uid="tempo")
    page = render_html([HuntRun.from_handoff("x", report().to_json_dict(), None)], grafana=grafana)
    href = re.search(r'href="(http://127\.0\.0\.1:3000/explore\?[^"]+)"', page)
    assert href is not None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href.group(1).replace("&amp;", "&")).query)
    pane = json.loads(query["panes"][0])["leak"]
    assert pane["datasource"] == "tempo"
    assert pane["queries"][0] == {
        "refId": "A",
        "datasource": {"type": "tempo", "uid": "tempo"},
        "queryType": "traceql",
        "query": TRACE,
    }
    assert pane["range"] == {
        "from": str(int((T0 - 60) * 1000)),
        "to": str(int((T0 + 9 + 60) * 1000)),
    }
    without = render_html([HuntRun.from_handoff("x", report().to_json_dict(), None)])
    assert "/explore?" not in without and f"<code>{TRACE}</code>" in without


@pytest.mark.parametrize("bad", ["127.0.0.1:3000", "ftp://grafana", "http://", ""])
def test_a_bad_grafana_url_is_refused(bad: str) -> None:
    with pytest.raises(BadGrafanaURL):
        GrafanaLinks.parse(bad)


def test_side_by_side_runs_share_one_memory_scale_and_a_comparison() -> None:
    flat = MemoryLine("RSS", TimeSeries.of([T0, T0 + 9], [4e7, 4e7]))
    page = render_html(
        [
            HuntRun.from_handoff("leaky", report().to_json_dict(), profile()),
            HuntRun("fixed", None, memory=(flat,), note="not hunted"),
        ],
        comparison=Comparison(
            ("leaky", "fixed"), (("RSS growth", "+9.0 MiB", "+0.1 MiB"),), ("reduction 0.99",)
        ),
    )
    figs = figures(page)
    assert set(figs) == {"run0-memory", "run0-growth", "run0-flame", "run1-memory"}
    assert (
        figs["run0-memory"]["layout"]["yaxis"]["range"]
        == figs["run1-memory"]["layout"]["yaxis"]["range"]
    )
    assert (
        "--columns:2" in page
        and "not hunted" in page
        and "reduction 0.99" in page
        and "+0.1 MiB" in page
    )


def test_an_unreadable_profile_is_a_note_not_a_crash() -> None:
    run = HuntRun.from_handoff("x", report().to_json_dict(), b"\x1f\x8bnot gzip at all")
    assert run.heap is None and "could not be read" in run.report.notes[-1]  # type: ignore[union-attr]
    assert "No heap profile" in render_html([run])


def test_without_plotly_the_renderer_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly now raises ImportError
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ReportUnavailable, match=r"leaktrace\[report\]"):
        require_plotly()
    with pytest.raises(ReportUnavailable):
        render_html([HuntRun.from_handoff("x", report().to_json_dict(), None)])
