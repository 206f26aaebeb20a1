"""The renderers of the hunt report, over the one analysis `Report` model (its JSON is the
model's own `Report.to_json_dict()`).

- `text`: `render_text(report)`, what `leaktrace hunt` and `leaktrace demo` print, and the
  progress line.
- `heapview`: the live heap as a bounded flame-graph tree with suspects marked, bytes per
  endpoint (pure).
- `grafana`: trace-id links to Grafana Explore on the Tempo datasource (pure).
- `html`: `render_html(runs)`, the self-contained HTML page (needs the optional extra
  `leaktrace[report]`, plotly), built from `runs` (what a page is given: `HuntRun`,
  `MemoryLine`, `Comparison`), `charts` (the plotly figures), `sections` (the HTML pieces)
  and `assets` (policy, style, script).
"""

from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.heapview import FlameGraph, endpoint_bytes, flame_graph
from leaktrace.report.html import ReportUnavailable, render_html, require_plotly
from leaktrace.report.runs import Comparison, HuntRun, MemoryLine
from leaktrace.report.text import render_progress, render_text

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
    "render_progress",
    "render_text",
    "require_plotly",
]
