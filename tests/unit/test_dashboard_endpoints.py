"""The leak-hunt dashboard shows bytes per endpoint and filters the heap flame graph by
endpoint (issue 16); tests/integration/test_stack_promql.py runs the queries on real data."""

from __future__ import annotations

import json
from pathlib import Path

BOARD = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "leak-hunt.json"


def test_the_endpoint_table_variable_and_flame_graph_filter_are_wired() -> None:
    board = json.loads(BOARD.read_text())
    panels = {p.get("title"): p for p in board["panels"]}
    table = panels["Bytes left per request, by endpoint"]
    exprs = [t["expr"] for t in table["targets"]]
    assert exprs == [
        'leaktrace_leak_suspect_endpoint_bytes_per_request{job=~"$service"}',
        'leaktrace_leak_suspect_endpoint_retained_bytes{job=~"$service"}',
    ]
    assert table["options"]["sortBy"] == [{"displayName": "per request", "desc": True}]
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "endpoint"]
    assert variable["definition"] == (
        "label_values(leaktrace_leak_suspect_endpoint_retained_bytes, endpoint)"
    )
    assert variable["includeAll"] and variable["allValue"] == ".*"  # All keeps unlabelled samples
    heap = panels["Heap flame graph (inuse_space)"]
    assert (
        heap["targets"][0]["labelSelector"]
        == '{service_name=~"${service:regex}", span_name=~"${endpoint:regex}"}'
    )
    # Both suspect tables fit side by side in the row.
    suspects = panels["Leak suspects (leaktrace)"]
    assert suspects["gridPos"]["w"] + table["gridPos"]["w"] == 24
    assert suspects["gridPos"]["y"] == table["gridPos"]["y"]
