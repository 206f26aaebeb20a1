"""Pictures of a hunt: the HTML report (needs the optional extra `leaktrace[report]`, plotly).

- `heapview`: the live heap as a bounded flame-graph tree with suspects marked, bytes per
  endpoint (pure).
- `grafana`: trace-id links to Grafana Explore on the Tempo datasource (pure).
- `html`: `render_html(runs)`, the HTML renderer over the analysis `Report` model, built from
  `runs` (what a page is given: `HuntRun`, `MemoryLine`, `Comparison`), `charts` (the plotly
  figures), `sections` (the HTML pieces) and `assets` (policy, style, script).
"""

from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.heapview import FlameGraph, endpoint_bytes, flame_graph
from leaktrace.report.html import ReportUnavailable, render_html, require_plotly
from leaktrace.report.runs import Comparison, HuntRun, MemoryLine

__all__ = [
    "Comparison",
    "FlameGraph",
    "GrafanaLinks",
    "HuntRun",
    "MemoryLine",
    "ReportUnavailable",
    "endpoint_bytes",
    "flame_graph",
    "render_html",
    "require_plotly",
]
