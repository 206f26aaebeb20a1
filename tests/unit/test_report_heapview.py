"""The flame-graph tree and bytes per endpoint the HTML report draws (pure functions)."""

from __future__ import annotations

from leaktrace.analysis.model import Suspect
from leaktrace.profiling.pprof import decode_profile
from leaktrace.profiling.push import snapshot_to_pprof
from leaktrace.profiling.samples import Frame, HeapSnapshot
from leaktrace.profiling.samples import HeapSample as RawSample
from leaktrace.report.heapview import (
    HeapSample,
    endpoint_bytes,
    flame_graph,
    samples_of,
    site_index,
)

MAIN = Frame("main", "/srv/app.py", 30)
HANDLE = Frame("handle", "/srv/app.py", 20)
LIB = Frame("dispatch", "/venv/lib/site-packages/web.py", 5)
LEAK = Frame("make_session", "/srv/app.py", 14)
COPY = Frame("copy", "/usr/lib/python3.11/json.py", 7)
OTHER = Frame("load_config", "/srv/app.py", 44)


def suspect(*key: Frame) -> Suspect:
    return Suspect(
        frames=key, growth_bytes_per_s=1.0, retained_bytes=1, objects=1, p_value=0.0, key=key
    )


def test_site_is_the_first_key_frame_with_the_rest_of_the_key_among_its_callers() -> None:
    stack = (COPY, LEAK, LIB, HANDLE, MAIN)  # leaf first
    assert site_index(stack, (LEAK, HANDLE)) == 1  # a library frame in between is allowed
    assert site_index(stack, (LEAK,)) == 1
    assert site_index(stack, (LEAK, OTHER)) is None  # wrong caller: not this suspect's
    assert site_index(stack, (HANDLE, LEAK)) is None  # order matters
    assert site_index(stack, ()) is None


def test_tree_sums_bytes_marks_suspects_and_their_callers() -> None:
    samples = [
        HeapSample((COPY, LEAK, LIB, HANDLE, MAIN), 600.0, {}),
        HeapSample((LEAK, LIB, HANDLE, MAIN), 300.0, {}),
        HeapSample((OTHER, MAIN), 100.0, {}),
    ]
    g = flame_graph(samples, [suspect(LEAK, HANDLE)])
    by_label = {label: i for i, label in enumerate(g.labels)}
    assert g.total_bytes == 1000.0 and g.values[0] == 1000.0 and g.parents[0] == ""
    # parents come before their children and every id is unique
    seen: set[str] = set()
    for nid, parent in zip(g.ids, g.parents, strict=True):
        assert parent == "" or parent in seen
        seen.add(nid)
    # a parent holds at least what its children hold (icicle "total" branch values)
    for i, parent in enumerate(g.parents):
        if parent:
            assert g.values[g.ids.index(parent)] >= g.values[i]
    site = by_label["make_session:14"]
    assert g.values[site] == 900.0 and g.suspect[site] == 1
    assert g.suspect[by_label["copy:7"]] == 1  # allocated under the site: the suspect's
    assert g.suspect[by_label["handle:20"]] == 0 and g.on_path[by_label["handle:20"]] == 1
    assert g.suspect[by_label["load_config:44"]] == 0 and g.on_path[by_label["load_config:44"]] == 0
    assert g.focus == {1: g.ids[site]}
    assert "/srv/app.py:14" in g.details[site]


def test_pruning_keeps_the_biggest_nodes_and_never_a_suspect() -> None:
    samples = [
        HeapSample((Frame(f"f{i}", "/srv/a.py", i), MAIN), 1000.0 - i, {}) for i in range(200)
    ]
    tiny_leak = HeapSample((LEAK, HANDLE, MAIN), 0.5, {})
    g = flame_graph([*samples, tiny_leak], [suspect(LEAK, HANDLE)], max_nodes=20)
    assert 20 <= len(g) <= 23  # 20 biggest plus the suspect's site and its callers
    assert g.pruned_nodes == 204 - len(g)  # root, main, 200 f, handle, make_session
    assert "make_session:14" in g.labels and "f1:1" in g.labels and "f150:150" not in g.labels
    assert g.total_bytes == sum(s.inuse_bytes for s in samples) + 0.5


def test_a_higher_ranked_suspect_wins_a_shared_node() -> None:
    samples = [HeapSample((LEAK, HANDLE, MAIN), 10.0, {})]
    g = flame_graph(samples, [suspect(LEAK, HANDLE), suspect(LEAK)])
    site = g.labels.index("make_session:14")
    assert g.suspect[site] == 1 and set(g.focus) == {1}


def test_bytes_per_endpoint_from_span_name_labels() -> None:
    samples = [
        HeapSample((LEAK, HANDLE, MAIN), 3000.0, {"span_name": "POST /login", "trace_id": "a"}),
        HeapSample((LEAK, HANDLE, MAIN), 1000.0, {"span_name": "POST /login", "trace_id": "b"}),
        HeapSample((LEAK, HANDLE, MAIN), 500.0, {"span_name": "GET /profile", "trace_id": "c"}),
        HeapSample((LEAK, HANDLE, MAIN), 700.0, {}),  # no endpoint: not counted anywhere
        HeapSample((OTHER, MAIN), 900.0, {"span_name": "POST /login", "trace_id": "d"}),
    ]
    rows = endpoint_bytes(samples, [suspect(LEAK, HANDLE), suspect(OTHER)])
    login, profile = rows[1]
    assert (login.endpoint, login.retained_bytes, login.requests, login.bytes_per_request) == (
        "POST /login",
        4000.0,
        2,
        2000.0,
    )
    assert (profile.endpoint, profile.retained_bytes, profile.requests) == (
        "GET /profile",
        500.0,
        1,
    )
    assert [(r.endpoint, r.retained_bytes) for r in rows[2]] == [("POST /login", 900.0)]
    assert endpoint_bytes([HeapSample((LEAK, HANDLE), 1.0, {})], [suspect(LEAK)]) == {}  # not known


def test_samples_come_from_the_pushed_pprof_encoding() -> None:
    snap = HeapSnapshot(
        timestamp=10.0,
        start=5.0,
        sample_interval_bytes=16384,
        samples=(
            RawSample((LEAK, HANDLE, MAIN), 0.0, 0.0, 4.0, 4096.0, trace_id=7, span_id=9),
            RawSample((OTHER, MAIN), 0.0, 0.0, 0.0, 0.0),
        ),
    )
    got = samples_of(decode_profile(snapshot_to_pprof(snap)))
    assert len(got) == 1  # the empty sample holds nothing live
    assert got[0].frames == (LEAK, HANDLE, MAIN) and got[0].inuse_bytes == 4096.0
    assert got[0].labels == {"trace_id": format(7, "032x"), "span_id": format(9, "016x")}
