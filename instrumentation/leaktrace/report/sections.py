"""The page's HTML, piece by piece: a run's column (verdict, charts' places, suspects table)
and the comparison table. Every value from a report is escaped here: frame names, holder names
and commands are the hunted program's text."""

from __future__ import annotations

import html

from leaktrace.analysis.model import Report, Suspect, format_rate, format_size
from leaktrace.report.charts import suspect_colour
from leaktrace.report.grafana import GrafanaLinks
from leaktrace.report.heapview import EndpointBytes, short_path
from leaktrace.report.runs import Comparison, RunView

MAX_TRACE_IDS = 50


def run_html(v: RunView, grafana: GrafanaLinks | None, *, has_growth: bool) -> str:
    r = v.run.report
    out = [f'<section class="run" id="{v.key}" data-run="{e(v.run.name)}">']
    if r is None:
        out.append(f'<h2>{e(v.run.name)} <span class="verdict plain">not hunted</span></h2>')
    else:
        plural = "s" if len(r.suspects) != 1 else ""
        verdict = (
            f'<span class="verdict leak">LEAK: {len(r.suspects)} suspect{plural}</span>'
            if r.suspects
            else '<span class="verdict ok">no leak found</span>'
        )
        facts = (
            f"{r.duration_s:.1f} s hunted · {r.snapshots} heap snapshots · "
            f"RSS {format_rate(r.rss_growth_bytes_per_s)}"
        )
        out += [f"<h2>{e(v.run.name)} {verdict}</h2>", f'<p class="meta">{e(facts)}</p>']
    if v.run.command:
        out.append(f'<p class="meta">command: <code>{e(v.run.command)}</code></p>')
    if v.run.note:
        out.append(f'<p class="meta">{e(v.run.note)}</p>')
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
    if v.flame is not None and v.has_flame:
        pruned = (
            f" ({v.flame.pruned_nodes:,} small frames left out)" if v.flame.pruned_nodes else ""
        )
        out.append(
            f'<div class="chart flame" id="{v.key}-flame"></div>'
            f'<p class="meta">the heap profile of the last verdict{e(pruned)}; the same data as '
            "<code>--pprof</code> writes</p>"
        )
    else:
        out.append(
            '<p class="empty">No heap profile: the hunted process left none (it ended before '
            "its first snapshot).</p>"
        )
    out.append("<h3>Suspects</h3>")
    out.append(_suspects_table(v, grafana))
    for note in r.notes:
        out.append(f'<p class="note">note: {e(note)}</p>')
    out.append("</section>")
    return "".join(out)


def comparison_html(c: Comparison) -> str:
    head = "".join(f"<th>{e(col)}</th>" for col in c.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in c.rows
    )
    notes = "".join(f'<p class="meta">{e(n)}</p>' for n in c.notes)
    return (
        '<section class="compare"><h2>Measured under the same load</h2>'
        f'<table class="compare"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody>'
        f"</table>{notes}</section>"
    )


def e(text: object) -> str:
    """`text` as HTML text or an attribute value."""
    return html.escape(str(text), quote=True)


def _suspects_table(v: RunView, grafana: GrafanaLinks | None) -> str:
    r = v.run.report
    if r is None or not r.suspects:
        return '<p class="empty">No suspects.</p>'
    span = _time_span(r)
    rows = []
    for rank, s in enumerate(r.suspects, 1):
        frames = "".join(
            f'<li><code>{e(f.function)}</code> <span class="file">{e(short_path(f.file))}:{f.line}'
            "</span></li>"
            for f in s.frames
        )
        focus = ""
        if v.flame is not None and rank in v.flame.focus:
            focus = (
                f'<button type="button" data-flame="{v.key}-flame" '
                f'data-focus="{v.flame.focus[rank]}" data-rank="{rank}">show in flame graph</button>'
            )
        rows.append(
            f'<tr id="{v.key}-suspect-{rank}" class="suspect">'
            f'<td class="rank" style="border-left:6px solid {suspect_colour(rank)}">#{rank}</td>'
            f'<td class="callpath"><code>{e(s.call_path)}</code>{focus}'
            f"<details><summary>{len(s.frames)} frames</summary><ol>{frames}</ol></details></td>"
            f'<td class="holder">{_holder_html(s)}</td>'
            f"<td>{e(format_rate(s.growth_bytes_per_s))}</td>"
            f'<td>{e(format_size(s.retained_bytes))}<br><span class="meta">{s.objects:,} objects'
            "</span></td>"
            f"<td>{_endpoints_html(v.endpoints.get(rank))}</td>"
            f'<td class="traces">{_traces_html(s, grafana, span)}</td></tr>'
        )
    head = (
        "<tr><th>#</th><th>call path</th><th>held by</th><th>growth</th><th>retained</th>"
        "<th>bytes per endpoint</th><th>requests still holding memory</th></tr>"
    )
    return f'<table class="suspects"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _holder_html(s: Suspect) -> str:
    h = s.holder
    if h is None:
        return '<span class="meta">unknown: no growing container matched</span>'
    if not h.kind:  # rebuilt from a document that only had the description
        return f"<code>{e(h.name)}</code><br>"
    confirmed = ", an entry was allocated here" if h.confirmed else ""
    return (
        f"<code>{e(h.name)}</code> ({e(h.kind)})"
        f"<br>{e(h.growth_text)}"
        f'<br><span class="meta">~{e(format_size(h.bytes_per_entry))} per entry, '
        f"R²={h.r_squared:.2f}{confirmed}</span>"
    )


def _endpoints_html(rows: tuple[EndpointBytes, ...] | None) -> str:
    if not rows:
        return '<span class="meta">not known (no endpoint label on the heap samples)</span>'
    items = []
    for row in rows:
        per = row.bytes_per_request
        each = f", {format_size(per)} per request ({row.requests:,})" if per is not None else ""
        items.append(
            f"<li><code>{e(row.endpoint)}</code>: {e(format_size(row.retained_bytes))}{e(each)}</li>"
        )
    return f'<ul class="endpoints">{"".join(items)}</ul>'


def _traces_html(s: Suspect, grafana: GrafanaLinks | None, span: tuple[float, float] | None) -> str:
    if not s.trace_ids:
        return '<span class="meta">none still live</span>'
    ids = s.trace_ids[:MAX_TRACE_IDS]

    def one(tid: str) -> str:
        if grafana is None:
            return f"<code>{e(tid)}</code>"
        url = grafana.trace_url(
            tid, start_s=span[0] if span else None, end_s=span[1] if span else None
        )
        return f'<a href="{e(url)}" target="_blank" rel="noopener"><code>{e(tid)}</code></a>'

    shown = " ".join(one(t) for t in ids[:3])
    rest = ""
    if len(ids) > 3:
        rest = f"<details><summary>{len(ids) - 3} more</summary>{' '.join(one(t) for t in ids[3:])}</details>"
    return f"{shown}{rest}"


def _time_span(r: Report) -> tuple[float, float] | None:
    times = [t for s in (r.heap_series, r.rss_series) for t in s.times]
    return (min(times), max(times)) if times else None
