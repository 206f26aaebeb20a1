"""The text renderer of the hunt report: what `leaktrace hunt` and `leaktrace demo` print.

Over the same `Report` model the JSON document and the HTML page come from. The terminal form
names, per suspect, the allocation site, its growth, the frames, what holds it, the requests
still holding memory there and the endpoints that left it; `verbose` adds the statistics
behind each verdict (snapshot count, p-value, merged lines, the holder's fit) and the notes.
"""

from __future__ import annotations

import sys
from typing import TextIO

from leaktrace.analysis.model import LEAK, EndpointShare, Report, Suspect, format_rate, format_size

SHOWN_TRACE_IDS = 5
SHOWN_ENDPOINTS = 5


def render_text(
    report: Report, file: TextIO | None = None, *, max_frames: int = 6, verbose: bool = False
) -> None:
    out = file if file is not None else sys.stdout
    head = "LEAK" if report.suspects else "no leak found"
    snapshots = f"{report.snapshots} heap snapshots, " if verbose else ""
    out.write(
        f"leaktrace hunt: {head} after {report.duration_s:.1f} s "
        f"({snapshots}RSS {format_rate(report.rss_growth_bytes_per_s)})\n"
    )
    out.write(f"telemetry (export queues): {_mib(report.telemetry_bytes)}\n")
    if len(report.processes) > 1:  # a process tree (prefork workers): analysis/merge.py
        pids = ", ".join(str(p.pid) for p in report.processes)
        leaking = sum(1 for p in report.processes if p.verdict == LEAK)
        out.write(f"{len(report.processes)} processes hunted (pids {pids}), {leaking} leaking\n")
    for rank, s in enumerate(report.suspects, 1):
        _write_suspect(out, rank, s, max_frames=max_frames, verbose=verbose)
    if verbose:
        for note in report.notes:
            out.write(f"note: {note}\n")


def render_progress(elapsed: float, duration: float, report: Report | None) -> str:
    """The line `leaktrace hunt` redraws while the program runs (None: no report yet)."""
    if report is None:
        state = "starting"
    elif report.suspects:
        top = report.suspects[0]
        where = f"{top.frames[0].function}:{top.frames[0].line}" if top.frames else "?:?"
        state = f"LEAK at {where} ({top.growth_bytes_per_s / 1024:,.1f} KiB/s)"
    else:
        state = "no leak so far"
    return f"\rleaktrace hunt: {elapsed:5.1f}/{duration:.0f} s  {state}   "


def _write_suspect(out: TextIO, rank: int, s: Suspect, *, max_frames: int, verbose: bool) -> None:
    p_value = f" (p={s.p_value:.1g})" if verbose else ""
    out.write(
        f"\n#{rank} {s.site}  growing {format_rate(s.growth_bytes_per_s)}, "
        f"{format_size(s.retained_bytes)} live in {s.objects:,} objects{p_value}\n"
    )
    if verbose and len(s.lines) > 1:
        out.write(f"  lines {', '.join(str(n) for n in s.lines)} of {s.frames[0].function}\n")
    for f in s.frames[:max_frames]:
        out.write(f"    at {f.function} ({f.file}:{f.line})\n")
    if len(s.frames) > max_frames:
        out.write(f"    ... {len(s.frames) - max_frames} more frames\n")
    out.write(f"  retained by: {s.retained_by or 'unknown (no growing container matched)'}\n")
    if verbose and s.holder is not None:
        confirmed = ", entry allocated here" if s.holder.confirmed else ""
        out.write(
            f"    ~{format_size(s.holder.bytes_per_entry)} per entry, "
            f"R^2={s.holder.r_squared:.2f}{confirmed}\n"
        )
    if s.trace_ids:
        shown = ", ".join(s.trace_ids[:SHOWN_TRACE_IDS])
        extra = len(s.trace_ids) - SHOWN_TRACE_IDS
        more = f" (+{extra} more)" if extra > 0 else ""
        out.write(f"  requests still holding memory here: {shown}{more}\n")
    if len(s.processes) > 1:
        shares = ", ".join(f"pid {p.pid} {format_rate(p.growth_bytes_per_s)}" for p in s.processes)
        out.write(f"  in {shares}\n")
    _write_endpoints(out, s.endpoints)


def _write_endpoints(out: TextIO, endpoints: tuple[EndpointShare, ...]) -> None:
    if not endpoints:
        return
    out.write("  left behind by:\n")
    for e in endpoints[:SHOWN_ENDPOINTS]:
        out.write(f"    {e.describe()}\n")
    if len(endpoints) > SHOWN_ENDPOINTS:
        out.write(f"    ... {len(endpoints) - SHOWN_ENDPOINTS} more endpoints\n")


def _mib(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
