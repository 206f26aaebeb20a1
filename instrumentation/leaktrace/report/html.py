"""The HTML renderer of the hunt report: one self-contained file that works offline.

The same `Report` model the text and JSON renderers print, plus the live heap it was computed
on (the pprof the hunted process left). Charts are drawn by plotly.js, taken from the plotly
wheel (the optional extra `leaktrace[report]`) and inlined, so the page loads nothing: no CDN,
no font, no request of any kind (tests/integration/test_report_browser.py checks it in a real
browser).

What the page shows, per hunted run (the demo puts leaky and fixed side by side):
- RSS and the sampled live heap over the run;
- each suspect's retained bytes over time beside its holder's entry count;
- an icicle (flame graph, root on top) of the live heap by call path, suspects' paths in
  colour; clicking a node, or a suspect's "show in flame graph", focuses it;
- the suspects table: call path, holder, growth, retained bytes, bytes per endpoint where the
  heap samples carry one, and trace ids (links to Grafana Explore when a Grafana URL is given).

The parts: `runs` (what the page is given and prepares), `charts` (the plotly figures),
`sections` (the HTML of each column and table), `assets` (policy, style, script); this module
assembles the page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from leaktrace.report.assets import CSP_META, CSS, JS
from leaktrace.report.charts import figure_dict, flame_figure, growth_figure, memory_figure
from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.runs import Comparison, HuntRun, memory_ceiling_mib, run_view, time_origin
from leaktrace.report.sections import comparison_html, e, run_html

EXTRA_HINT = "pip install 'leaktrace[report]'"


class ReportUnavailable(RuntimeError):
    """The HTML report needs plotly, which is not installed (the `report` extra)."""


def require_plotly() -> None:
    """Raise ReportUnavailable with what to install, before any work is done."""
    try:
        import plotly.graph_objects
        import plotly.offline  # noqa: F401
    except ImportError as exc:
        raise ReportUnavailable(
            f"the HTML report needs plotly ({exc}); install it with: {EXTRA_HINT}"
        ) from None


def render_html(
    runs: Sequence[HuntRun],
    *,
    title: str = "leaktrace hunt report",
    comparison: Comparison | None = None,
    grafana: GrafanaLinks | None = None,
    generated_at: float | None = None,
) -> str:
    """The whole page as one string. Raises ReportUnavailable without plotly."""
    require_plotly()
    import plotly.offline

    if not runs:
        raise ValueError("at least one run")
    views = [run_view(run, i) for i, run in enumerate(runs)]
    t0, y_max = time_origin(views), memory_ceiling_mib(views)
    figures: dict[str, Any] = {}
    columns = []
    for v in views:
        figures[f"{v.key}-memory"] = memory_figure(v.run.memory_lines(), t0=t0, y_max=y_max)
        growth = growth_figure(v.run.report, t0=t0) if v.run.report is not None else None
        if growth is not None:
            figures[f"{v.key}-growth"] = growth
        if v.flame is not None and v.has_flame:
            figures[f"{v.key}-flame"] = flame_figure(v.flame)
        columns.append(run_html(v, grafana, has_growth=growth is not None))
    when = generated_at if generated_at is not None else time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    fig_json = json.dumps({k: figure_dict(f) for k, f in figures.items()}, separators=(",", ":"))
    processes = f"{len(runs)} process{'es' if len(runs) > 1 else ''}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        CSP_META,
        f"<title>{e(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{plotly.offline.get_plotlyjs()}</script>",
        "</head><body>",
        f'<header><h1>{e(title)}</h1><p class="meta">generated {e(stamp)} by leaktrace · '
        f"{processes} · offline file, no network</p></header>",
    ]
    if comparison is not None:
        parts.append(comparison_html(comparison))
    parts.append(f'<main class="runs" style="--columns:{len(views)}">{"".join(columns)}</main>')
    parts.append(
        f'<script type="application/json" id="leaktrace-figures">{_script_safe(fig_json)}</script>'
    )
    parts.append(f"<script>{JS}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _script_safe(text: str) -> str:
    # JSON inside <script>: "</script>" in a frame name must not end the element.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")
