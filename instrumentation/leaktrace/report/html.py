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
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from leaktrace.analysis.model import Report, Suspect, TimeSeries, format_rate, format_size
from leaktrace.profiling.pprof import DecodedProfile, decode_profile
from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.heapview import (
    EndpointBytes,
    FlameGraph,
    endpoint_bytes,
    flame_graph,
    samples_of,
    short_path,
)

EXTRA_HINT = "pip install 'leaktrace[report]'"
MIB = 1024.0 * 1024.0
SUSPECT_COLOURS = (
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#1f77b4", "#2ca02c",
)  # fmt: skip
RSS_COLOUR, HEAP_COLOUR, ENTRIES_COLOUR = "#1f77b4", "#2ca02c", "#444444"
MEMORY_COLOURS = {"RSS": RSS_COLOUR, "sampled live heap": HEAP_COLOUR, "malloc in use (mallinfo2)": "#ff7f0e"}
PLAIN_NODE = ("#c6dbef", "#9ecae1")  # alternating by depth, so neighbouring rows stay apart
MAX_SUSPECT_CHARTS = 5
FLAME_DEPTH = 14
MAX_TRACE_IDS = 50


class ReportUnavailable(RuntimeError):
    """The HTML report needs plotly, which is not installed (the `report` extra)."""


def require_plotly() -> None:
    """Raise ReportUnavailable with what to install, before any work is done."""
    try:
        import plotly.graph_objects
        import plotly.offline  # noqa: F401
    except ImportError as exc:
        raise ReportUnavailable(f"the HTML report needs plotly ({exc}); install it with: {EXTRA_HINT}") from None


@dataclass(frozen=True, slots=True)
class MemoryLine:
    """A memory reading over time, drawn in the run's first chart (bytes)."""

    name: str
    series: TimeSeries


@dataclass(frozen=True, slots=True)
class HuntRun:
    """One column of the page: a hunted process (its report and the live heap its last
    verdict was computed on), or a process only measured from outside (report None)."""

    name: str
    report: Report | None
    heap: DecodedProfile | None = None
    command: str = ""
    # Memory as measured from outside (the demo samples both services alike); without it the
    # chart draws the report's own RSS and sampled live heap.
    memory: tuple[MemoryLine, ...] = ()
    note: str = ""

    @classmethod
    def from_handoff(cls, name: str, doc: Mapping[str, Any], profile: bytes | None, *, command: str = "") -> HuntRun:
        """From what a hunted process hands over: its report document and its heap pprof."""
        report = Report.from_json_dict(doc)
        heap = None
        if profile:
            try:
                heap = decode_profile(profile)
            except (ValueError, OSError, EOFError) as exc:  # a torn or foreign file: say so, draw the rest
                report = replace(report, notes=(*report.notes, f"the heap profile could not be read ({exc})"))
        return cls(name, report, heap, command)

    def memory_lines(self) -> tuple[MemoryLine, ...]:
        if self.memory or self.report is None:
            return self.memory
        return (MemoryLine("RSS", self.report.rss_series), MemoryLine("sampled live heap", self.report.heap_series))


@dataclass(frozen=True, slots=True)
class Comparison:
    """A measured table across runs (the demo's leaky against fixed)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # label, then one cell per column
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _RunView:
    run: HuntRun
    key: str  # element id prefix
    flame: FlameGraph | None
    endpoints: dict[int, tuple[EndpointBytes, ...]] = field(default_factory=dict)


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
    views = [_view(run, i) for i, run in enumerate(runs)]
    t0 = min((s.times[0] for v in views for s in _series_of(v.run) if len(s)), default=0.0)
    y_max = max((max(m.series.values) / MIB for v in views for m in v.run.memory_lines() if len(m.series)),
                default=0.0)
    figures: dict[str, Any] = {}
    columns = []
    for v in views:
        figures[f"{v.key}-memory"] = _memory_figure(v.run.memory_lines(), t0=t0, y_max=y_max)
        growth = _growth_figure(v.run.report, t0=t0) if v.run.report is not None else None
        if growth is not None:
            figures[f"{v.key}-growth"] = growth
        if v.flame is not None and len(v.flame) > 1:
            figures[f"{v.key}-flame"] = _flame_figure(v.flame)
        columns.append(_run_html(v, grafana, has_growth=growth is not None))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(generated_at if generated_at is not None else time.time()))
    fig_json = json.dumps({k: _figure_dict(f) for k, f in figures.items()}, separators=(",", ":"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        _CSP_META,
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{plotly.offline.get_plotlyjs()}</script>",
        "</head><body>",
        (f'<header><h1>{_e(title)}</h1><p class="meta">generated {_e(stamp)} by leaktrace · '
         f"{len(runs)} process{'es' if len(runs) > 1 else ''} · offline file, no network</p></header>"),
    ]
    if comparison is not None:
        parts.append(_comparison_html(comparison))
    parts.append(f'<main class="runs" style="--columns:{len(views)}">{"".join(columns)}</main>')
    parts.append(f'<script type="application/json" id="leaktrace-figures">{_script_safe(fig_json)}</script>')
    parts.append(f"<script>{_JS}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- views ------------------------------------------------------------------------------------
def _view(run: HuntRun, index: int) -> _RunView:
    key = f"run{index}"
    if run.heap is None:
        return _RunView(run, key, None)
    samples = samples_of(run.heap)
    suspects = run.report.suspects if run.report is not None else ()
    return _RunView(run, key, flame_graph(samples, suspects), endpoint_bytes(samples, suspects))


def _series_of(run: HuntRun) -> list[TimeSeries]:
    out = [m.series for m in run.memory_lines()]
    if run.report is not None:
        for s in run.report.suspects:
            out.append(s.retained_series)
            if s.holder is not None:
                out.append(s.holder.entries)
    return out


def _rel(times: Sequence[float], t0: float) -> list[float]:
    return [round(t - t0, 3) for t in times]


# --- figures ----------------------------------------------------------------------------------
def _base_layout(height: int, title: str) -> dict[str, Any]:
    return {
        "height": height,
        "title": {"text": title, "x": 0.01, "font": {"size": 14}},
        "margin": {"l": 60, "r": 60, "t": 40, "b": 40},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#fafafa",
        "legend": {"orientation": "h", "y": -0.2},
        "font": {"family": "system-ui, sans-serif", "size": 12},
    }


def _memory_figure(lines: Sequence[MemoryLine], *, t0: float, y_max: float) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    # One colour per reading across columns, so "RSS" is the same line on both sides.
    for line in lines:
        if len(line.series):
            colour = MEMORY_COLOURS.get(line.name, "#9467bd")
            fig.add_trace(go.Scatter(x=_rel(line.series.times, t0), y=[v / MIB for v in line.series.values],
                                     name=line.name, mode="lines", line={"color": colour, "width": 2}))
    layout = _base_layout(320, "memory over the run")
    layout["xaxis"] = {"title": {"text": "seconds since the first snapshot"}}
    # One scale for every run on the page, so a flat line next to a climbing one reads as flat.
    layout["yaxis"] = {"title": {"text": "MiB"}, "rangemode": "tozero"}
    if y_max > 0:
        layout["yaxis"]["range"] = [0, y_max * 1.05]
    fig.update_layout(**layout)
    return fig


def _growth_figure(report: Report, *, t0: float) -> Any | None:
    suspects = report.suspects[:MAX_SUSPECT_CHARTS]
    if not suspects:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [f"#{rank} {s.call_path}: retained bytes beside {_holder_name(s)} entries"
              for rank, s in enumerate(suspects, 1)]
    fig = make_subplots(rows=len(suspects), cols=1, specs=[[{"secondary_y": True}]] * len(suspects),
                        subplot_titles=titles, vertical_spacing=min(0.12, 0.5 / len(suspects)))
    for rank, s in enumerate(suspects, 1):
        colour = SUSPECT_COLOURS[(rank - 1) % len(SUSPECT_COLOURS)]
        series = s.retained_series
        fig.add_trace(
            go.Scatter(x=_rel(series.times, t0), y=[v / MIB for v in series.values], mode="lines",
                       name=f"#{rank} retained (MiB)", line={"color": colour, "width": 2}),
            row=rank, col=1, secondary_y=False,
        )
        if s.holder is not None and len(s.holder.entries):
            entries = s.holder.entries
            fig.add_trace(
                go.Scatter(x=_rel(entries.times, t0), y=list(entries.values), mode="lines",
                           name=f"#{rank} {s.holder.name} entries",
                           line={"color": ENTRIES_COLOUR, "width": 1.5, "dash": "dot", "shape": "hv"}),
                row=rank, col=1, secondary_y=True,
            )
        fig.update_yaxes(title_text="MiB", row=rank, col=1, secondary_y=False, rangemode="tozero")
        fig.update_yaxes(title_text="entries", row=rank, col=1, secondary_y=True, rangemode="tozero",
                         showgrid=False)
    fig.update_xaxes(title_text="seconds since the first snapshot", row=len(suspects), col=1)
    layout = _base_layout(120 + 190 * len(suspects), "")
    del layout["title"]
    layout["margin"]["t"] = 30
    layout["showlegend"] = False
    fig.update_layout(**layout)
    fig.update_annotations(font_size=12, x=0.0, xanchor="left")
    return fig


def _flame_figure(flame: FlameGraph) -> Any:
    import plotly.graph_objects as go

    colours = []
    depth = {"": -1}
    for nid, parent, rank, path in zip(flame.ids, flame.parents, flame.suspect, flame.on_path, strict=True):
        depth[nid] = depth.get(parent, -1) + 1
        if rank:
            colours.append(SUSPECT_COLOURS[(rank - 1) % len(SUSPECT_COLOURS)])
        elif path:  # a caller on the way to a suspect: the suspect's colour, lighter
            colours.append(_tint(SUSPECT_COLOURS[(path - 1) % len(SUSPECT_COLOURS)], 0.55))
        elif nid == "root":
            colours.append("#e6e6e6")
        else:
            colours.append(PLAIN_NODE[depth[nid] % 2])
    hover = [
        f"{d}<br>{'suspect #' + str(r) if r else ('on the path to suspect #' + str(p) if p else '')}"
        for d, r, p in zip(flame.details, flame.suspect, flame.on_path, strict=True)
    ]
    trace = go.Icicle(
        ids=list(flame.ids),
        labels=list(flame.labels),
        parents=list(flame.parents),
        values=list(flame.values),
        branchvalues="total",
        customdata=list(flame.suspect),
        hovertext=hover,
        hovertemplate="%{hovertext}<br>%{value:,.0f} B live (%{percentRoot:.1%} of the heap)<extra></extra>",
        marker={"colors": colours, "line": {"width": 0.5, "color": "#ffffff"}},
        tiling={"orientation": "v", "pad": 0},
        textinfo="label",
        sort=False,
        # A dozen rows at a time keep frame names readable; clicking a frame zooms into it.
        maxdepth=FLAME_DEPTH,
    )
    fig = go.Figure(trace)
    layout = _base_layout(620, f"live heap by call path ({format_size(flame.total_bytes)} in {flame.samples:,} samples): "
                               "paths to suspects in colour, click a frame to zoom")
    layout["margin"] = {"l": 5, "r": 5, "t": 40, "b": 5}
    fig.update_layout(**layout)
    return fig


def _tint(colour: str, amount: float) -> str:
    """`colour` mixed with white (amount 0..1 of white)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))


def _figure_dict(fig: Any) -> Any:
    # plotly's own JSON encoder (numbers, numpy-free lists); validated when the figure was built.
    return json.loads(fig.to_json())


# --- HTML pieces ------------------------------------------------------------------------------
def _run_html(v: _RunView, grafana: GrafanaLinks | None, *, has_growth: bool) -> str:
    r = v.run.report
    out = [f'<section class="run" id="{v.key}" data-run="{_e(v.run.name)}">']
    if r is None:
        out.append(f'<h2>{_e(v.run.name)} <span class="verdict plain">not hunted</span></h2>')
    else:
        verdict = (f'<span class="verdict leak">LEAK: {len(r.suspects)} suspect{"s" if len(r.suspects) != 1 else ""}'
                   "</span>" if r.suspects else '<span class="verdict ok">no leak found</span>')
        facts = (f"{r.duration_s:.1f} s hunted · {r.snapshots} heap snapshots · "
                 f"RSS {format_rate(r.rss_growth_bytes_per_s)}")
        out += [f"<h2>{_e(v.run.name)} {verdict}</h2>", f'<p class="meta">{_e(facts)}</p>']
    if v.run.command:
        out.append(f'<p class="meta">command: <code>{_e(v.run.command)}</code></p>')
    if v.run.note:
        out.append(f'<p class="meta">{_e(v.run.note)}</p>')
    out.append(f'<div class="chart" id="{v.key}-memory"></div>')
    if r is None:
        out.append("</section>")
        return "".join(out)
    out.append("<h3>Suspects over time</h3>")
    if has_growth:
        out.append(f'<div class="chart" id="{v.key}-growth"></div>')
    else:
        out.append('<p class="empty">No call path kept growing: nothing to chart.</p>')
    out.append("<h3>Live heap by call path</h3>")
    if v.flame is not None and len(v.flame) > 1:
        pruned = f" ({v.flame.pruned_nodes:,} small frames left out)" if v.flame.pruned_nodes else ""
        out.append(f'<div class="chart flame" id="{v.key}-flame"></div>'
                   f'<p class="meta">the heap profile of the last verdict{_e(pruned)}; the same data as '
                   "<code>--pprof</code> writes</p>")
    else:
        out.append('<p class="empty">No heap profile: the hunted process left none (it ended before its first '
                   "snapshot).</p>")
    out.append("<h3>Suspects</h3>")
    out.append(_suspects_table(v, grafana))
    for note in r.notes:
        out.append(f'<p class="note">note: {_e(note)}</p>')
    out.append("</section>")
    return "".join(out)


def _suspects_table(v: _RunView, grafana: GrafanaLinks | None) -> str:
    r = v.run.report
    if r is None or not r.suspects:
        return '<p class="empty">No suspects.</p>'
    span = _time_span(r)
    rows = []
    for rank, s in enumerate(r.suspects, 1):
        colour = SUSPECT_COLOURS[(rank - 1) % len(SUSPECT_COLOURS)]
        frames = "".join(f"<li><code>{_e(f.function)}</code> <span class=\"file\">{_e(short_path(f.file))}:{f.line}"
                         "</span></li>" for f in s.frames)
        focus = ""
        if v.flame is not None and rank in v.flame.focus:
            focus = (f'<button type="button" data-flame="{v.key}-flame" data-focus="{v.flame.focus[rank]}" '
                     f'data-rank="{rank}">show in flame graph</button>')
        rows.append(
            f'<tr id="{v.key}-suspect-{rank}" class="suspect">'
            f'<td class="rank" style="border-left:6px solid {colour}">#{rank}</td>'
            f'<td class="callpath"><code>{_e(s.call_path)}</code>{focus}'
            f"<details><summary>{len(s.frames)} frames</summary><ol>{frames}</ol></details></td>"
            f'<td class="holder">{_holder_html(s)}</td>'
            f"<td>{_e(format_rate(s.growth_bytes_per_s))}</td>"
            f"<td>{_e(format_size(s.retained_bytes))}<br><span class=\"meta\">{s.objects:,} objects</span></td>"
            f"<td>{_endpoints_html(v.endpoints.get(rank))}</td>"
            f'<td class="traces">{_traces_html(s, grafana, span)}</td></tr>'
        )
    head = ("<tr><th>#</th><th>call path</th><th>held by</th><th>growth</th><th>retained</th>"
            "<th>bytes per endpoint</th><th>requests still holding memory</th></tr>")
    return f'<table class="suspects"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _holder_name(s: Suspect) -> str:
    return s.holder.name if s.holder is not None else "no holder"


def _holder_html(s: Suspect) -> str:
    h = s.holder
    if h is None:
        return '<span class="meta">unknown: no growing container matched</span>'
    detail = ""
    if h.kind:
        detail = (f'<br><span class="meta">~{_e(format_size(h.bytes_per_entry))} per entry, R²={h.r_squared:.2f}'
                  f'{", an entry was allocated here" if h.confirmed else ""}</span>')
    return f"<code>{_e(h.name)}</code>{'' if not h.kind else ' (' + _e(h.kind) + ')'}" \
           f"<br>{_e(f'{h.entries_growth:+,} entries in {h.span_s:.0f} s') if h.kind else ''}{detail}"


def _endpoints_html(rows: tuple[EndpointBytes, ...] | None) -> str:
    if not rows:
        return '<span class="meta">not known (no endpoint label on the heap samples)</span>'
    items = []
    for row in rows:
        per = row.bytes_per_request
        each = f", {format_size(per)} per request ({row.requests:,})" if per is not None else ""
        items.append(f"<li><code>{_e(row.endpoint)}</code>: {_e(format_size(row.retained_bytes))}{_e(each)}</li>")
    return f'<ul class="endpoints">{"".join(items)}</ul>'


def _traces_html(s: Suspect, grafana: GrafanaLinks | None, span: tuple[float, float] | None) -> str:
    if not s.trace_ids:
        return '<span class="meta">none still live</span>'
    ids = s.trace_ids[:MAX_TRACE_IDS]

    def one(tid: str) -> str:
        if grafana is None:
            return f"<code>{_e(tid)}</code>"
        url = grafana.trace_url(tid, start_s=span[0] if span else None, end_s=span[1] if span else None)
        return f'<a href="{_e(url)}" target="_blank" rel="noopener"><code>{_e(tid)}</code></a>'

    shown = " ".join(one(t) for t in ids[:3])
    rest = ""
    if len(ids) > 3:
        rest = f"<details><summary>{len(ids) - 3} more</summary>{' '.join(one(t) for t in ids[3:])}</details>"
    return f"{shown}{rest}"


def _time_span(r: Report) -> tuple[float, float] | None:
    times = [t for s in (r.heap_series, r.rss_series) for t in s.times]
    return (min(times), max(times)) if times else None


def _comparison_html(c: Comparison) -> str:
    head = "".join(f"<th>{_e(col)}</th>" for col in c.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in c.rows)
    notes = "".join(f'<p class="meta">{_e(n)}</p>' for n in c.notes)
    return (f'<section class="compare"><h2>Measured under the same load</h2>'
            f'<table class="compare"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>{notes}'
            "</section>")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _script_safe(text: str) -> str:
    # JSON inside <script>: "</script>" in a frame name must not end the element.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


# Nothing may be fetched: the policy makes the browser refuse it even if a chart tried.
_CSP_META = (
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'\">"
)

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f4f5f7; }
header { background: #1f2937; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 22px; }
header .meta { color: #cbd5e1; }
.meta { color: #666; font-size: 12px; margin: 2px 0; }
section.compare, section.run { background: #fff; margin: 12px; padding: 12px 16px; border-radius: 6px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; }
main.runs { display: grid; grid-template-columns: repeat(var(--columns), minmax(0, 1fr)); }
h2 { font-size: 18px; margin: 4px 0; }
h3 { font-size: 15px; margin: 16px 0 4px; border-bottom: 1px solid #eee; }
.verdict { font-size: 13px; padding: 2px 8px; border-radius: 10px; margin-left: 8px; vertical-align: middle; }
.verdict.leak { background: #fde2e1; color: #a11; }
.verdict.ok { background: #dcf5e3; color: #17612f; }
.verdict.plain { background: #e5e7eb; color: #333; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
table.compare { width: auto; min-width: 520px; }
th, td { text-align: left; vertical-align: top; padding: 4px 6px; border-bottom: 1px solid #eee; }
table.compare td:not(:first-child), table.compare th { text-align: right; }
table.compare td:first-child { color: #444; }
td.traces code, td.holder code { word-break: break-all; }
td.traces a { margin-right: 4px; }
tr.suspect.active { background: #fff7d6; }
td.callpath button { display: block; margin: 4px 0; font-size: 11px; cursor: pointer; }
details summary { cursor: pointer; color: #555; }
ol, ul { margin: 2px 0; padding-left: 18px; }
.file { color: #777; }
.empty { color: #555; font-style: italic; }
.note { color: #8a5a00; font-size: 12px; }
"""

_JS = """
(function () {
  var figures = JSON.parse(document.getElementById("leaktrace-figures").textContent);
  var config = {displaylogo: false, responsive: true, showLink: false, showSendToCloud: false};
  function activate(run, rank) {
    document.querySelectorAll("#" + run + " tr.suspect").forEach(function (row) {
      row.classList.toggle("active", row.id === run + "-suspect-" + rank);
    });
  }
  var drawn = Object.keys(figures).map(function (id) {
    var fig = figures[id];
    return Plotly.newPlot(id, fig.data, fig.layout, config).then(function (div) {
      if (id.slice(-6) === "-flame") {
        div.on("plotly_icicleclick", function (event) {
          var rank = event.points && event.points[0] && event.points[0].customdata;
          if (rank) { activate(id.slice(0, -6), rank); }
        });
      }
      return div;
    });
  });
  document.querySelectorAll("button[data-focus]").forEach(function (button) {
    button.addEventListener("click", function () {
      var div = document.getElementById(button.dataset.flame);
      Plotly.restyle(div, {level: button.dataset.focus}, [0]);
      activate(button.dataset.flame.slice(0, -6), button.dataset.rank);
      div.scrollIntoView({block: "center"});
    });
  });
  Promise.all(drawn).then(function () {
    document.body.setAttribute("data-rendered", String(drawn.length));
  }, function (error) {
    document.body.setAttribute("data-render-error", String(error));
  });
})();
"""
