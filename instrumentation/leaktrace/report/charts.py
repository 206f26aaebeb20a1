"""The page's charts as plotly figures: memory over the run, each suspect's growth beside its
holder's entries, and the live heap as an icicle (a flame graph, root on top).

plotly is imported inside each builder: this module loads without the `report` extra, and the
renderer checks for plotly (require_plotly) before it builds anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from leaktrace.analysis.model import Report, Suspect, format_size
from leaktrace.report.heapview import FlameGraph
from leaktrace.report.runs import MIB, MemoryLine

SUSPECT_COLOURS = (
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#1f77b4", "#2ca02c",
)  # fmt: skip
RSS_COLOUR, HEAP_COLOUR, ENTRIES_COLOUR = "#1f77b4", "#2ca02c", "#444444"
MEMORY_COLOURS = {
    "RSS": RSS_COLOUR,
    "sampled live heap": HEAP_COLOUR,
    "malloc in use (mallinfo2)": "#ff7f0e",
}
PLAIN_NODE = ("#c6dbef", "#9ecae1")  # alternating by depth, so neighbouring rows stay apart
MAX_SUSPECT_CHARTS = 5
FLAME_DEPTH = 14


def suspect_colour(rank: int) -> str:
    """Suspect #rank's colour, the same in its chart, its flame graph frames and its table row."""
    return SUSPECT_COLOURS[(rank - 1) % len(SUSPECT_COLOURS)]


def memory_figure(lines: Sequence[MemoryLine], *, t0: float, y_max: float) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    # One colour per reading across columns, so "RSS" is the same line on both sides.
    for line in lines:
        if len(line.series):
            colour = MEMORY_COLOURS.get(line.name, "#9467bd")
            fig.add_trace(
                go.Scatter(
                    x=_rel(line.series.times, t0),
                    y=[v / MIB for v in line.series.values],
                    name=line.name,
                    mode="lines",
                    line={"color": colour, "width": 2},
                )
            )
    layout = _base_layout(320, "memory over the run")
    layout["xaxis"] = {"title": {"text": "seconds since the first snapshot"}}
    # One scale for every run on the page, so a flat line next to a climbing one reads as flat.
    layout["yaxis"] = {"title": {"text": "MiB"}, "rangemode": "tozero"}
    if y_max > 0:
        layout["yaxis"]["range"] = [0, y_max * 1.05]
    fig.update_layout(**layout)
    return fig


def growth_figure(report: Report, *, t0: float) -> Any | None:
    """None when nothing kept growing (the page says so instead of drawing empty axes)."""
    suspects = report.suspects[:MAX_SUSPECT_CHARTS]
    if not suspects:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = [
        f"#{rank} {s.call_path}: retained bytes beside {_holder_name(s)} entries"
        for rank, s in enumerate(suspects, 1)
    ]
    fig = make_subplots(
        rows=len(suspects),
        cols=1,
        specs=[[{"secondary_y": True}]] * len(suspects),
        subplot_titles=titles,
        vertical_spacing=min(0.12, 0.5 / len(suspects)),
    )
    for rank, s in enumerate(suspects, 1):
        series = s.retained_series
        fig.add_trace(
            go.Scatter(
                x=_rel(series.times, t0),
                y=[v / MIB for v in series.values],
                mode="lines",
                name=f"#{rank} retained (MiB)",
                line={"color": suspect_colour(rank), "width": 2},
            ),
            row=rank,
            col=1,
            secondary_y=False,
        )
        if s.holder is not None and len(s.holder.entries):
            entries = s.holder.entries
            fig.add_trace(
                go.Scatter(
                    x=_rel(entries.times, t0),
                    y=list(entries.values),
                    mode="lines",
                    name=f"#{rank} {s.holder.name} entries",
                    line={"color": ENTRIES_COLOUR, "width": 1.5, "dash": "dot", "shape": "hv"},
                ),
                row=rank,
                col=1,
                secondary_y=True,
            )
        fig.update_yaxes(title_text="MiB", row=rank, col=1, secondary_y=False, rangemode="tozero")
        fig.update_yaxes(
            title_text="entries",
            row=rank,
            col=1,
            secondary_y=True,
            rangemode="tozero",
            showgrid=False,
        )
    fig.update_xaxes(title_text="seconds since the first snapshot", row=len(suspects), col=1)
    layout = _base_layout(120 + 190 * len(suspects), "")
    del layout["title"]
    layout["margin"]["t"] = 30
    layout["showlegend"] = False
    fig.update_layout(**layout)
    fig.update_annotations(font_size=12, x=0.0, xanchor="left")
    return fig


def flame_figure(flame: FlameGraph) -> Any:
    import plotly.graph_objects as go

    colours = []
    depth = {"": -1}
    for nid, parent, rank, path in zip(
        flame.ids, flame.parents, flame.suspect, flame.on_path, strict=True
    ):
        depth[nid] = depth.get(parent, -1) + 1
        if rank:
            colours.append(suspect_colour(rank))
        elif path:  # a caller on the way to a suspect: the suspect's colour, lighter
            colours.append(_tint(suspect_colour(path), 0.55))
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
    layout = _base_layout(
        620,
        f"live heap by call path ({format_size(flame.total_bytes)} in {flame.samples:,} samples): "
        "paths to suspects in colour, click a frame to zoom",
    )
    layout["margin"] = {"l": 5, "r": 5, "t": 40, "b": 5}
    fig.update_layout(**layout)
    return fig


def _holder_name(s: Suspect) -> str:
    return s.holder.name if s.holder is not None else "no holder"


def figure_dict(fig: Any) -> Any:
    # plotly's own JSON encoder (numbers, numpy-free lists); validated when the figure was built.
    return json.loads(fig.to_json())


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


def _rel(times: Sequence[float], t0: float) -> list[float]:
    return [round(t - t0, 3) for t in times]


def _tint(colour: str, amount: float) -> str:
    """`colour` mixed with white (amount 0..1 of white)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))
