"""Pictures of a hunt: the HTML report (needs the optional extra `leaktrace[report]`, plotly).

- `heapview`: the live heap as a bounded flame-graph tree with suspects marked, bytes per
  endpoint (pure).
- `grafana`: trace-id links to Grafana Explore on the Tempo datasource (pure).
- `html`: `render_html(runs)`, the HTML renderer over the analysis `Report` model.
"""

from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.heapview import FlameGraph, endpoint_bytes, flame_graph
from leaktrace.report.html import (
    Comparison,
    HuntRun,
    ReportUnavailable,
    render_html,
    require_plotly,
)

__all__ = [
    "Comparison",
    "FlameGraph",
    "GrafanaLinks",
    "HuntRun",
    "ReportUnavailable",
    "endpoint_bytes",
    "flame_graph",
    "render_html",
    "require_plotly",
]
